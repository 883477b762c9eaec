"""Gymnasium ids, registered with string entry points (no torch import at registration)."""

from __future__ import annotations

import gymnasium as gym

ENV_IDS = ("RecSimLLM/Slate-v0", "RecSimLLM/SlateScores-v0")

DATA_ENV_IDS = ("RecSimLLM/MovieLens-v0",)
"""Ids that need a data directory (``gym.make(id, data_dir=...)``); not in ``ENV_IDS``."""


def register_envs() -> None:
    """Register every recsim_llm id (idempotent)."""
    if "RecSimLLM/Slate-v0" not in gym.registry:
        gym.register(
            id="RecSimLLM/Slate-v0",
            entry_point="recsim_llm.envs.slate:SlateEnv",
            vector_entry_point="recsim_llm.envs.vector:SlateVectorEnv",
        )
    if "RecSimLLM/SlateScores-v0" not in gym.registry:
        gym.register(
            id="RecSimLLM/SlateScores-v0",
            entry_point="recsim_llm.envs.wrappers:make_scores_env",
        )
    if "RecSimLLM/MovieLens-v0" not in gym.registry:
        gym.register(
            id="RecSimLLM/MovieLens-v0",
            entry_point="recsim_llm.envs.movielens:MovieLensEnv",
            vector_entry_point="recsim_llm.envs.movielens:MovieLensVectorEnv",
        )
