"""Shared fixtures: fast configs and the location of the shared MovieLens data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_ML100K = REPO.parent / "shared" / "data" / "ml-100k"


@pytest.fixture
def bow_config():
    """The default env config with the fast non-LM encoder and a short horizon."""
    from recsim_llm.config import EnvConfig

    return EnvConfig(encoder="bow", horizon=30)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny randomly initialised BERT (shared by the LM tests; built once per session)."""
    from recsim_llm.lm.model import make_tiny_backbone

    return make_tiny_backbone(tmp_path_factory.mktemp("tiny") / "bert", seed=0)


@pytest.fixture(scope="session")
def logs(tmp_path_factory):
    """Small behaviour logs of the default world (24 users x 8 steps, seed 3), built once."""
    from recsim_llm.lm.logs import write_behaviour_logs

    return write_behaviour_logs(
        tmp_path_factory.mktemp("logs") / "logs", n_users=24, n_steps=8, seed=3
    )
