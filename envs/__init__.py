"""Gymnasium environments over the recsim_llm world.

Names are imported on first use (PEP 562), so ``import recsim_llm.envs`` stays light: the SB3
adapter imports stable_baselines3 (and torch) only when ``SB3VecEnv`` is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recsim_llm.registry import lazy_exports

if TYPE_CHECKING:
    from recsim_llm.envs.core import SlateSimulator
    from recsim_llm.envs.movielens import MovieLensEnv, MovieLensVectorEnv, movielens_env_config
    from recsim_llm.envs.sb3 import SB3VecEnv
    from recsim_llm.envs.slate import SlateEnv
    from recsim_llm.envs.vector import SlateVectorEnv
    from recsim_llm.envs.wrappers import (
        FlattenSlateObservation,
        TopKSlateWrapper,
        make_scores_env,
        scores_to_slate,
    )

_EXPORTS = {
    "FlattenSlateObservation": "recsim_llm.envs.wrappers:FlattenSlateObservation",
    "MovieLensEnv": "recsim_llm.envs.movielens:MovieLensEnv",
    "MovieLensVectorEnv": "recsim_llm.envs.movielens:MovieLensVectorEnv",
    "SB3VecEnv": "recsim_llm.envs.sb3:SB3VecEnv",
    "SlateEnv": "recsim_llm.envs.slate:SlateEnv",
    "SlateSimulator": "recsim_llm.envs.core:SlateSimulator",
    "SlateVectorEnv": "recsim_llm.envs.vector:SlateVectorEnv",
    "TopKSlateWrapper": "recsim_llm.envs.wrappers:TopKSlateWrapper",
    "make_scores_env": "recsim_llm.envs.wrappers:make_scores_env",
    "movielens_env_config": "recsim_llm.envs.movielens:movielens_env_config",
    "scores_to_slate": "recsim_llm.envs.wrappers:scores_to_slate",
}

__all__ = [
    "FlattenSlateObservation",
    "MovieLensEnv",
    "MovieLensVectorEnv",
    "SB3VecEnv",
    "SlateEnv",
    "SlateSimulator",
    "SlateVectorEnv",
    "TopKSlateWrapper",
    "make_scores_env",
    "movielens_env_config",
    "scores_to_slate",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
