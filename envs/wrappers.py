"""Wrappers: continuous candidate scores -> top-k slate; the ``Dict`` observation -> flat ``Box``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from recsim_llm.context import flatten_observation


def flat_observation_space(space: spaces.Space) -> spaces.Box:
    """The flat ``Box`` of a single-user slate ``Dict`` space: user, then candidates row-major."""
    if not isinstance(space, spaces.Dict) or not {"user", "candidates"} <= set(space.spaces):
        raise ValueError("expected the slate envs' Dict observation space (user, candidates)")
    n = int(space["user"].shape[0]) + int(np.prod(space["candidates"].shape))
    return spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float32)


class FlattenSlateObservation(gym.ObservationWrapper):
    """The slate env's ``Dict`` observation as one flat ``Box`` (for ``MlpPolicy``).

    The flat vector is ``obs['user']`` followed by ``obs['candidates']`` row-major (candidate
    0's features first); the candidate mask is dropped.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = flat_observation_space(env.observation_space)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return flatten_observation(observation)


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
    """``RecSimLLM/SlateScores-v1``: ``SlateEnv`` behind ``TopKSlateWrapper``.

    The contract is ``SlateEnv``'s (``Dict`` observation, shuffled candidates, rewards, episode
    end) except the action: a ``Box(-1, 1, (n_candidates,))`` of scores, the slate being the
    ``slate_size`` highest (ties to the lower index).

    Version History: v1 as ``SlateEnv`` v1 (``Dict`` observation, shuffled candidates, more
    user scalars); v0 initial version.
    """
    from recsim_llm.envs.slate import SlateEnv

    return TopKSlateWrapper(SlateEnv(**kwargs))
