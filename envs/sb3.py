"""Adapter from the native ``SlateVectorEnv`` to Stable-Baselines3's ``VecEnv`` API.

SB3 refuses ``gymnasium.vector`` envs, and its ``VecEnv`` differs: ``step_async``/``step_wait``,
one ``dones`` array, and a list of per-env info dicts carrying ``terminal_observation`` and
``TimeLimit.truncated``. The batched world stays in this process (no subprocess per user).
Observations are the env's ``Dict`` (SB3 takes a dict of batched arrays, for
``MultiInputPolicy``; ``terminal_observation`` is one env's dict), or with ``flatten=True`` one
flat ``Box`` (user, then candidates row-major, the mask dropped) for ``MlpPolicy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from recsim_llm.context import flatten_observation
from recsim_llm.envs.vector import SlateVectorEnv
from recsim_llm.envs.wrappers import flat_observation_space

Observation = dict[str, np.ndarray] | np.ndarray


class SB3VecEnv(VecEnv):
    """``SlateVectorEnv`` as an SB3 ``VecEnv`` (seed with ``seed()`` before ``reset()``).

    Args:
        env: the batched env.
        flatten: give the flat ``Box`` view instead of the ``Dict`` observation.
    """

    def __init__(self, env: SlateVectorEnv, flatten: bool = False) -> None:
        if not isinstance(env, SlateVectorEnv):
            raise ValueError(f"env must be a SlateVectorEnv, got {type(env).__name__}")
        self.env = env
        self.flatten = bool(flatten)
        space: spaces.Space = env.single_observation_space
        if self.flatten:
            space = flat_observation_space(space)
        super().__init__(env.num_envs, space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None

    def _convert(self, obs: dict[str, np.ndarray]) -> Observation:
        return flatten_observation(obs) if self.flatten else obs

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        self._seed = seed
        return [seed] * self.num_envs

    def reset(self) -> Observation:
        obs, _ = self.env.reset(seed=self._seed)
        self._seed = None
        return self._convert(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[Observation, np.ndarray, np.ndarray, list[dict[str, Any]]]:
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
        # Column-wise: one ``tolist`` per key gives the Python scalars ``.item()`` would, without
        # a NumPy scalar per user and key (at 1024 users this was most of the step's time).
        columns = [info[k].tolist() for k in keys]
        infos: list[dict[str, Any]] = [
            dict(zip(keys, [column[i] for column in columns], strict=True))
            for i in range(self.num_envs)
        ]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = self._convert(info["final_obs"][i])
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return self._convert(obs), reward.astype(np.float32), dones, infos

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
