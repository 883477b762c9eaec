"""Wrappers: continuous candidate scores -> top-k slate, for continuous-action algorithms."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


def scores_to_slate(scores: np.ndarray, slate_size: int) -> np.ndarray:
    """Indices of the ``slate_size`` highest scores along the last axis, best first.

    Ties go to the lower index. Raises ``ValueError`` on NaN or infinite scores.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite: got NaN or inf in the action")
    return np.argsort(-scores, axis=-1, kind="stable")[..., :slate_size]


class TopKSlateWrapper(gym.ActionWrapper):
    """Action = one score per candidate in ``[-1, 1]``; the slate is the top ``slate_size``.

    This makes ``SlateEnv`` usable by SAC, TD3, DDPG and PPO with a Gaussian policy.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        base = env.action_space
        if not isinstance(base, spaces.MultiDiscrete):
            raise ValueError("TopKSlateWrapper needs an env with a MultiDiscrete slate action")
        self.n_candidates = int(base.nvec[0])
        self.slate_size = int(base.shape[0])
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.n_candidates,), dtype=np.float32)

    def action(self, action: Any) -> np.ndarray:
        arr = np.asarray(action)
        if arr.shape != (self.n_candidates,):
            raise ValueError(f"action must have shape ({self.n_candidates},), got {arr.shape}")
        return scores_to_slate(arr, self.slate_size)


def make_scores_env(**kwargs: Any) -> gym.Env:
    """``RecSimLLM/SlateScores-v0``: ``SlateEnv`` behind ``TopKSlateWrapper``."""
    from recsim_llm.envs.slate import SlateEnv

    return TopKSlateWrapper(SlateEnv(**kwargs))
