"""``RecSimLLM/MovieLens-v3``: slate recommendation in a world calibrated on MovieLens-100K.

The MDP is ``SlateEnv``'s; only the world differs: items are the real movies, users are real
users (fitted hidden tastes, demographic profile text), and choice, rating and churn parameters
are fitted on the training part of the logs (see ``recsim_llm.movielens``). The fit is cached
per data directory, so creating a second env is fast.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm.config import EnvConfig
from recsim_llm.encoders import UserEncoder
from recsim_llm.envs.slate import SlateEnv
from recsim_llm.envs.vector import SlateVectorEnv
from recsim_llm.movielens import Calibration, CalibrationConfig, calibrate

__all__ = ["MovieLensEnv", "MovieLensVectorEnv", "movielens_env_config"]


def movielens_env_config(calibration: Calibration, config: EnvConfig | None = None) -> EnvConfig:
    """``config`` (default ``EnvConfig()``) with its world replaced by the calibrated one.

    An LM state (``lm-fast``/``lm-exact``) without an ``encoder_path`` uses the shipped MovieLens
    encoder (fit on MovieLens-100K ratings), not the synthetic world's default encoder.
    """
    if config is not None and not isinstance(config, EnvConfig):
        raise ValueError(f"config must be an EnvConfig, got {type(config).__name__}")
    config = replace(config or EnvConfig(), world=calibration.world_config)
    if config.encoder in ("lm-fast", "lm-exact") and not config.encoder_path:
        from recsim_llm.lm.state import shipped_movielens_encoder_path

        config = replace(config, encoder_path=str(shipped_movielens_encoder_path()))
    return config


def _calibration(
    data_dir: str | Path | None,
    calibration: CalibrationConfig | None,
    cache_dir: str | Path | None,
) -> Calibration:
    if data_dir is None:
        raise ValueError(
            "data_dir is required: the directory holding MovieLens-100K (GroupLens u.data/u.item/"
            "u.user or RecBole ml-100k.inter/.item/.user); it is never downloaded"
        )
    return calibrate(data_dir, calibration, cache_dir)


class MovieLensEnv(SlateEnv):
    """One real MovieLens user's session in the calibrated world.

    ## Description
    As ``SlateEnv``, over the MovieLens-100K movies (title, release year and genres as text). A
    new episode draws a real user: hidden taste fitted by logistic matrix factorisation on the
    training logs, profile text from their age, gender and occupation. Movies rated only in the
    held-out period arrive during the session as new items.

    ## Action Space
    ``MultiDiscrete([n_candidates] * slate_size)`` (repeats repaired as in ``SlateEnv``).

    ## Observation Space
    As in ``SlateEnv``: a ``Dict`` with ``"user"`` (encoder state and the six observable user
    scalars: session progress, history fill, click rate, mean rating, mean watch time, steps
    since the last click), ``"candidates"`` (per candidate embedding, is-new flag, popularity;
    in a seeded random order) and ``"candidate_mask"`` (all ones).

    ## Rewards
    Engagement (watch time) of the clicked movie, 0 without a click.

    ## Starting State
    A real user from ``user_pool``: 'warm' (users the item model was fitted with), 'cold'
    (held-out users, cold start) or 'all'.

    ## Episode End
    ``terminated`` on churn (fitted so activity matches the logs); ``truncated`` at ``horizon``.

    ## Arguments
    ``data_dir`` (required): MovieLens-100K directory, GroupLens or RecBole layout.
    ``config``: an ``EnvConfig`` whose world is replaced by the calibrated one.
    ``encoder``: a prebuilt encoder. ``user_pool``: see Starting State.
    ``calibration``: a ``CalibrationConfig``. ``cache_dir``: on-disk cache of the fit.

    ## Version History
    * v3: the shipped MovieLens encoder's projection keeps an item click-prior direction
      (``finetune --prior-direction``), so LM states differ from v2's; the world is unchanged.
    * v2: LM states (``lm-fast``/``lm-exact``) without an ``encoder_path`` use the shipped
      MovieLens encoder (heads fit on MovieLens-100K ratings) instead of the synthetic world's.
    * v1: as ``SlateEnv`` v1: ``Dict`` observation, candidates in a seeded random order, four
      more observable user scalars; the calibrated world is unchanged.
    * v0: initial version (flat ``Box`` observation, candidates in source order).
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        config: EnvConfig | None = None,
        encoder: UserEncoder | None = None,
        user_pool: str = "warm",
        calibration: CalibrationConfig | None = None,
        cache_dir: str | Path | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.calibration = _calibration(data_dir, calibration, cache_dir)
        self.user_pool = user_pool
        super().__init__(
            config=movielens_env_config(self.calibration, config),
            encoder=encoder,
            render_mode=render_mode,
            world=self.calibration.make_world(1, user_pool),
        )


class MovieLensVectorEnv(SlateVectorEnv):
    """``num_envs`` concurrent real-user sessions in the calibrated world (see MovieLensEnv)."""

    def __init__(
        self,
        num_envs: int = 8,
        data_dir: str | Path | None = None,
        config: EnvConfig | None = None,
        encoder: UserEncoder | None = None,
        user_pool: str = "warm",
        calibration: CalibrationConfig | None = None,
        cache_dir: str | Path | None = None,
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
        self.calibration = _calibration(data_dir, calibration, cache_dir)
        self.user_pool = user_pool
        super().__init__(
            num_envs=int(num_envs),
            config=movielens_env_config(self.calibration, config),
            encoder=encoder,
            world=self.calibration.make_world(int(num_envs), user_pool),
        )
