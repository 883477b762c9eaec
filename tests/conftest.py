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


TINY_FINETUNE = dict(
    epochs=1,
    max_train_rows=64,
    max_val_rows=24,
    batch_size=8,
    fast_rows=48,
    fast_epochs=20,
    user_max_length=64,
    item_max_length=32,
    lr=1e-3,
    threads=1,
)
"""Fine-tuning settings of the tiny-BERT LM tests (seconds per run)."""


@pytest.fixture(scope="session")
def tiny_finetune():
    """``FinetuneConfig`` keyword arguments for a seconds-long fine-tune of the tiny BERT."""
    return dict(TINY_FINETUNE)


@pytest.fixture(scope="session")
def lora_dir(tmp_path_factory, tiny_model, logs, tiny_finetune):
    """A LoRA encoder of the tiny BERT on ``logs``, built once (tests copy it before writing).

    keep_best=False: the saved adapter must hold trained weights (tests check it is not a
    no-op); early stopping may otherwise keep the untrained start.
    """
    from recsim_llm.lm.finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig(model_path=str(tiny_model), lora=True, keep_best=False, **tiny_finetune)
    return finetune(logs, tmp_path_factory.mktemp("enc") / "lora", cfg, progress=False)
