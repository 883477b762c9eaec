"""Adapter from the native ``SlateVectorEnv`` to Stable-Baselines3's ``VecEnv`` API.

SB3 refuses ``gymnasium.vector`` envs, and its ``VecEnv`` differs: ``step_async``/``step_wait``,
one ``dones`` array, and a list of per-env info dicts carrying ``terminal_observation`` and
``TimeLimit.truncated``. The batched world stays in this process (no subprocess per user).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from recsim_llm.envs.vector import SlateVectorEnv


class SB3VecEnv(VecEnv):
    """``SlateVectorEnv`` as an SB3 ``VecEnv`` (seed with ``seed()`` before ``reset()``)."""

    def __init__(self, env: SlateVectorEnv) -> None:
        if not isinstance(env, SlateVectorEnv):
            raise ValueError(f"env must be a SlateVectorEnv, got {type(env).__name__}")
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        self._seed = seed
        return [seed] * self.num_envs

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self._seed)
        self._seed = None
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("step_async must be called before step_wait")
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        keys = [
            k
            for k, v in info.items()
            if isinstance(v, np.ndarray) and not k.startswith("_") and k not in ("final_obs",)
        ]
        infos: list[dict[str, Any]] = [
            {k: info[k][i].item() for k in keys} for i in range(self.num_envs)
        ]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)
