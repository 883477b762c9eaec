"""Fine-tuning from an existing encoder (``init_from``): round trip, record, refused mismatches.

Runs on the tiny randomly initialised BERT (MiniLM's tokenizer), like ``test_lm_encoder.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recsim_llm.lm.finetune import FinetuneConfig, Trainer, finetune
from recsim_llm.lm.logs import load_logs, write_behaviour_logs

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
"""The shared MovieLens-100K; the test using it skips where it is absent."""

TINY = dict(
    epochs=1,
    max_train_rows=48,
    max_val_rows=16,
    batch_size=8,
    fast_rows=32,
    fast_epochs=10,
    user_max_length=64,
    item_max_length=32,
    lr=1e-3,
    threads=1,
)
TEXTS = [
    "User aged 25-34, teacher. History: clicked The galaxy story (rated 5).",
    "The jazz club. Genres: Music & Style.",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from recsim_llm.lm.model import make_tiny_backbone

    return make_tiny_backbone(tmp_path_factory.mktemp("tiny") / "bert", seed=0)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return write_behaviour_logs(
        tmp_path_factory.mktemp("logs") / "logs", n_users=16, n_steps=6, seed=5
    )


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory, tiny_model, logs):
    # keep_best=False: the start must hold trained weights, not early stopping's untrained choice.
    cfg = FinetuneConfig(model_path=str(tiny_model), lora=True, keep_best=False, **TINY)
    return finetune(logs, tmp_path_factory.mktemp("enc") / "lora", cfg, progress=False)


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory, tiny_model, logs):
    cfg = FinetuneConfig(
        model_path=str(tiny_model), lora=False, max_steps=2, keep_best=False, **TINY
    )
    return finetune(logs, tmp_path_factory.mktemp("enc") / "full", cfg, progress=False)


def _vectors(model, tokenizer):
    from recsim_llm.lm.model import encode_texts

    return encode_texts(model, tokenizer, TEXTS, 64), model.fast.export()


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_init_from_gives_the_saved_encoders_vectors_before_any_step(
    kind, lora_dir, full_dir, tiny_model, logs
):
    from recsim_llm.lm.store import load_encoder

    src = lora_dir if kind == "lora" else full_dir
    saved = load_encoder(src)
    cfg = FinetuneConfig(
        model_path=str(tiny_model) if kind == "lora" else "",
        lora=kind == "lora",
        init_from=str(src),
        dropout=0.2,  # the start's weights, this fine-tune's dropout
        **TINY,
    )
    trainer = Trainer(cfg, load_logs(logs), progress=False)
    got, got_head = _vectors(trainer.model, trainer.tokenizer)
    want, want_head = _vectors(saved.model, saved.tokenizer)
    np.testing.assert_allclose(got, want, atol=1e-6)
    for key in want_head:
        np.testing.assert_array_equal(got_head[key], want_head[key])
    # Not the pretrained start: a fresh model from the same base embeds differently.
    fresh = Trainer(
        FinetuneConfig(model_path=str(tiny_model), lora=kind == "lora", **TINY),
        load_logs(logs),
        progress=False,
    )
    assert not np.allclose(_vectors(fresh.model, fresh.tokenizer)[0], want, atol=1e-4)
    # Training from it moves the weights that this kind trains.
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert any(("lora_" in n) == (kind == "lora") for n in trainable if n.startswith("backbone."))


def test_finetune_from_an_encoder_records_its_start(tmp_path, lora_dir, tiny_model, logs):
    from recsim_llm.lm.store import load_encoder

    cfg = FinetuneConfig(
        model_path=str(tiny_model),
        lora=True,
        init_from=str(lora_dir),
        max_steps=2,
        keep_best=False,  # the two steps' weights, whatever validation says
        **TINY,
    )
    out = finetune(logs, tmp_path / "next", cfg, progress=False)
    rec = json.loads((out / "encoder.json").read_text())
    start = json.loads((lora_dir / "encoder.json").read_text())
    assert rec["finetune"]["init_from"] == str(lora_dir)
    assert rec["init_from"]["path"] == str(lora_dir.resolve())
    assert rec["init_from"]["lora"] is True
    assert rec["init_from"]["sha256"]["heads.safetensors"] == start["files"]["heads.safetensors"]
    assert (
        rec["init_from"]["sha256"]["adapter/adapter_model.safetensors"]
        == (start["files"]["adapter/adapter_model.safetensors"])
    )
    # Two optimiser steps moved it away from the start (and it loads like any encoder).
    after, before = load_encoder(out), load_encoder(lora_dir)
    assert not np.allclose(after.encode_users(TEXTS), before.encode_users(TEXTS), atol=1e-7)
    plain = json.loads((lora_dir / "encoder.json").read_text())
    assert plain["init_from"] is None


def test_init_from_refuses_an_encoder_that_does_not_fit(tmp_path, lora_dir, full_dir, tiny_model):
    from recsim_llm.lm.model import make_tiny_backbone
    from recsim_llm.lm.transfer import InitMismatchError, check_init_from

    def cfg(**kw):
        base = dict(TINY, model_path=str(tiny_model), lora=True, init_from=str(lora_dir))
        base.update(kw)
        return FinetuneConfig(**base)

    assert check_init_from(cfg())["lora"] is True
    with pytest.raises(FileNotFoundError, match="init_from.*does not exist"):
        check_init_from(cfg(init_from=str(tmp_path / "nope")))
    with pytest.raises(InitMismatchError, match="LoRA encoder but this fine-tune is full"):
        check_init_from(cfg(lora=False, model_path=""))
    with pytest.raises(InitMismatchError, match="full/merged encoder but this fine-tune is LoRA"):
        check_init_from(cfg(init_from=str(full_dir)))
    with pytest.raises(InitMismatchError, match="model_path must be empty"):
        check_init_from(cfg(init_from=str(full_dir), lora=False))
    with pytest.raises(InitMismatchError, match="proj_dim 32 .* proj_dim=16"):
        check_init_from(cfg(proj_dim=16))
    with pytest.raises(InitMismatchError, match="lora_r 8 .* lora_r=4"):
        check_init_from(cfg(lora_r=4))
    other = make_tiny_backbone(tmp_path / "other", seed=1)
    with pytest.raises(InitMismatchError, match="trained on the base model"):
        check_init_from(cfg(model_path=str(other)))
    with pytest.raises(ValueError, match="init_from must be"):
        FinetuneConfig(init_from=None)


def test_finetune_cli_init_from_mismatch_exits_2_before_any_work(tmp_path, capsys, lora_dir, logs):
    from recsim_llm.cli import main

    out = tmp_path / "enc"
    argv = ["finetune", "--logs", str(logs), "--out", str(out), "--init-from", str(lora_dir)]
    code = main([*argv, "--proj-dim", "16"])
    assert code == 2
    err = capsys.readouterr().err
    assert "proj_dim 32" in err and "--proj-dim 32" in err
    assert not out.exists()


# -- the transfer curve's pieces -------------------------------------------------------------------


def test_user_split_shares_are_nested_and_held_out_users_never_train(logs):
    import math

    from recsim_llm.lm.transfer import heldout_rows, subset_users, user_split

    data = load_logs(logs)
    train_users, test_users = user_split(data, 0.25, seed=1)
    assert np.intersect1d(train_users, test_users).size == 0
    assert np.union1d(train_users, test_users).size == np.unique(data.user).size
    again = user_split(data, 0.25, seed=1)
    np.testing.assert_array_equal(again[0], train_users)
    small = train_users[: math.ceil(0.3 * train_users.size)]
    sub = subset_users(data, small)
    assert set(sub.user.tolist()) == set(small.tolist())
    assert sub.n_rows == int(np.isin(data.user, small).sum()) == len(sub.profiles)
    # Rows keep their order (by user, then step), so histories rebuild the same way.
    keep = np.isin(data.user, small)
    np.testing.assert_array_equal(sub.t, data.t[keep])
    assert sub.history_text == [h for h, k in zip(data.history_text, keep, strict=True) if k]
    rows = heldout_rows(data, test_users, "click", per_user=2, seed=0)
    assert np.isin(data.user[rows], test_users).all()
    assert (np.bincount(data.user[rows]) <= 2).all()
    assert (data.click_pos[rows] >= 0).all()  # every sampled row has a positive
    with pytest.raises(ValueError, match="test_fraction"):
        user_split(data, 0.0)


def test_transfer_scores_and_table_on_movielens(tmp_path, lora_dir):
    """On the real MovieLens-100K logs (skipped without ../shared): the source encoder's scores
    are finite, one liked movie against 19 unrated per row, intervals bracket the means."""
    if not REAL_DATA.is_dir():
        pytest.skip(
            f"MovieLens-100K not found at {REAL_DATA} (shared data is not part of the repo)"
        )
    from recsim_llm.lm.logs import write_movielens_logs
    from recsim_llm.lm.transfer import encoder_scores, heldout_rows, score_table, user_split

    ml = load_logs(write_movielens_logs(REAL_DATA, tmp_path / "ml"))
    _, test_users = user_split(ml, 0.2, seed=0)
    rows = heldout_rows(ml, test_users[:12], "liked", per_user=1, seed=0)
    assert rows.size >= 10 and ml.candidates.shape[1] == 20 and ml.slates.shape[1] == 1
    scores = encoder_scores(ml, rows, lora_dir, n_threads=1)
    assert scores["exact"].shape == (rows.size, 20) and np.isfinite(scores["fast"]).all()
    table = score_table(ml, rows, {"tiny (exact)": scores["exact"]}, "liked", n_boot=100)
    r = table["tiny (exact)"]
    assert r["n_rankings"] == rows.size and r["auc_lo"] <= r["auc"] <= r["auc_hi"]
