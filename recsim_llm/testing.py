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
    for _ in range(n_steps):
        action = _sample(env.action_space, rng)
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        dones.append(bool(terminated or truncated))
        if terminated or truncated:
            obs, _ = env.reset()
        observations.append(obs)
    return {
        "observations": stack_observations(observations),
        "rewards": np.asarray(rewards, dtype=np.float64),
        "dones": np.asarray(dones),
    }


def stack_observations(observations: list[Any]) -> Any:
    """Observations stacked along a new first axis: an array, or a dict of arrays per key."""
    if observations and isinstance(observations[0], dict):
        return {k: np.asarray([o[k] for o in observations]) for k in observations[0]}
    return np.asarray(observations)


def same_observation(a: Any, b: Any) -> bool:
    """Whether two observations (arrays or dicts of arrays) are bit-identical, shapes included."""
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)) or set(a) != set(b):
            return False
        return all(same_observation(a[k], b[k]) for k in a)
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b)


def assert_same_trace(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Raise ``AssertionError`` unless two traces are bit-identical."""
    for key in ("observations", "rewards", "dones"):
        if not same_observation(a[key], b[key]):
            raise AssertionError(f"traces differ in {key}")


def _without_make_wrappers(env: gym.Env) -> gym.Env:
    """Strip the bookkeeping wrappers ``gym.make`` adds, keeping the env's own wrappers."""
    from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker

    while isinstance(env, (OrderEnforcing, PassiveEnvChecker)):
        env = env.env
    return env


def check_recsim_env(make_env: Callable[[], gym.Env], n_steps: int = 50) -> None:
    """Gymnasium + SB3 checks, determinism and a pickle round trip for ``make_env()``.

    The pickle check copies the env mid-episode and requires both copies to continue
    identically without a reset.
    """
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    gym_check(_without_make_wrappers(make_env()), skip_render_check=True)
    sb3_check(make_env(), warn=False)
    first = rollout_trace(make_env(), seed=123, n_steps=n_steps)
    second = rollout_trace(make_env(), seed=123, n_steps=n_steps)
    assert_same_trace(first, second)

    env = make_env()
    env.reset(seed=7)
    rng = np.random.default_rng(1)
    for _ in range(3):
        _, _, terminated, truncated, _ = env.step(_sample(env.action_space, rng))
        if terminated or truncated:
            env.reset()
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(5):
        action = _sample(env.action_space, rng)
        a, b = env.step(action), clone.step(action)
        if not (same_observation(a[0], b[0]) and a[1] == b[1] and a[2:4] == b[2:4]):
            raise AssertionError("a pickled copy does not continue like the original")
        if a[2] or a[3]:
            break


def _sample(space: gym.Space, rng: np.random.Generator) -> np.ndarray:
    if isinstance(space, gym.spaces.MultiDiscrete):
        return rng.integers(space.nvec)
    return rng.uniform(space.low, space.high).astype(space.dtype)
