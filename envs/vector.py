"""A native batched ``gymnasium.vector.VectorEnv``: one world of ``num_envs`` user slots.

Unlike a ``SyncVectorEnv`` of single envs, every step is a handful of NumPy operations over all
users. Autoreset is ``SAME_STEP``: when a user churns or its session ends, the returned
observation is already the next new user's, and the last observation of the finished session is
in ``info['final_obs']`` (mask ``info['_final_obs']``; each entry is that user's ``Dict``
observation), with its step info in ``info['final_info']``. Observations are ``Dict`` s of
batched arrays (``user`` (n, ...), ``candidates`` (n, n_candidates, ...), ``candidate_mask``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from recsim_llm.config import EnvConfig
from recsim_llm.encoders import UserEncoder
from recsim_llm.envs.core import SlateSimulator
from recsim_llm.envs.slate import observation_space, resolve_config, step_info
from recsim_llm.world import Catalog, World


class SlateVectorEnv(VectorEnv):
    """``num_envs`` concurrent user sessions over one catalog (see ``SlateEnv`` for the MDP).

    Args:
        num_envs: user slots.
        config: an ``EnvConfig``; or ``scenario``: a scenario name.
        encoder, catalog: prebuilt parts to share.
        world: a prebuilt world with ``num_envs`` user slots (e.g. a calibrated one).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 8,
        config: EnvConfig | None = None,
        scenario: str | None = None,
        encoder: UserEncoder | None = None,
        catalog: Catalog | None = None,
        world: World | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise ValueError(f"unexpected arguments: {sorted(kwargs)}")
        if (
            isinstance(num_envs, bool)
            or not isinstance(num_envs, (int, np.integer))
            or num_envs < 1
        ):
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.config = resolve_config(config, scenario)
        self.num_envs = int(num_envs)
        self.sim = SlateSimulator(
            self.config, self.num_envs, catalog=catalog, encoder=encoder, world=world
        )
        self.single_observation_space = observation_space(self.sim)
        self.single_action_space = spaces.MultiDiscrete(
            [self.config.n_candidates] * self.config.slate_size
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None
        self._needs_reset = True

    @property
    def world(self):  # noqa: ANN201
        """The hidden world (oracle and evaluation use only)."""
        return self.sim.world

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if isinstance(seed, list):
            raise ValueError("seed must be an int or None for SlateVectorEnv (one batched world)")
        super().reset(seed=seed)
        obs = self.sim.reset(self.np_random)
        self._needs_reset = False
        return obs, {}

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        rng = self.np_random
        result = self.sim.step(actions, rng)
        info = step_info(result, slice(None))
        self.sim.draw_candidates(rng)
        obs = self.sim.observe()
        done = result.terminated | result.truncated
        if done.any():
            rows = np.flatnonzero(done)
            final_info: dict[str, Any] = {k: v.copy() for k, v in info.items()}
            final_info.update({f"_{k}": done.copy() for k in info})
            final_obs = np.full(self.num_envs, None, dtype=object)
            kept = {key: value[rows] for key, value in obs.items()}  # one copy, not views
            for i, row in enumerate(rows.tolist()):
                final_obs[row] = {key: value[i] for key, value in kept.items()}
            info["final_obs"] = final_obs
            info["_final_obs"] = done.copy()
            info["final_info"] = final_info
            info["_final_info"] = done.copy()
            self.sim.reset_users(rows, rng)
            self.sim.draw_candidates(rng, rows)
            for key, value in self.sim.observe(rows).items():
                obs[key][rows] = value
        return obs, result.reward, result.terminated, result.truncated, info
