"""A public test harness users can run on their own envs and configs.

``check_recsim_env`` runs Gymnasium's and Stable-Baselines3's env checkers, a determinism
rollout (same seed twice gives identical observations and rewards) and a pickle round trip.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np


def rollout_trace(env: gym.Env, seed: int, n_steps: int, action_seed: int = 0) -> dict[str, Any]:
    """Observations, rewards and done flags of ``n_steps`` random-action steps from ``seed``.

    Actions come from a generator seeded with ``action_seed``; the env is reset on episode end
    (without a new seed, so the trajectory continues from the env's own generator).
    """
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    observations, rewards, dones = [obs], [], []
    space = env.action_space
    for _ in range(n_steps):
        if isinstance(space, gym.spaces.MultiDiscrete):
            action = rng.integers(space.nvec)
        else:
            action = rng.uniform(space.low, space.high).astype(space.dtype)
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        dones.append(bool(terminated or truncated))
        if terminated or truncated:
            obs, _ = env.reset()
        observations.append(obs)
    return {
        "observations": np.asarray(observations),
        "rewards": np.asarray(rewards, dtype=np.float64),
        "dones": np.asarray(dones),
    }


def assert_same_trace(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Raise ``AssertionError`` unless two traces are bit-identical."""
    for key in ("observations", "rewards", "dones"):
        if a[key].shape != b[key].shape or not np.array_equal(a[key], b[key]):
            raise AssertionError(f"traces differ in {key}")


def check_recsim_env(make_env: Callable[[], gym.Env], n_steps: int = 50) -> None:
    """Gymnasium + SB3 checks, determinism and a pickle round trip for ``make_env()``."""
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    gym_check(make_env().unwrapped, skip_render_check=True)
    sb3_check(make_env(), warn=False)
    first = rollout_trace(make_env(), seed=123, n_steps=n_steps)
    second = rollout_trace(make_env(), seed=123, n_steps=n_steps)
    assert_same_trace(first, second)
    env = make_env()
    env.reset(seed=7)
    clone = pickle.loads(pickle.dumps(env))
    assert_same_trace(
        rollout_trace(env, seed=9, n_steps=5), rollout_trace(clone, seed=9, n_steps=5)
    )
