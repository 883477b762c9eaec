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
