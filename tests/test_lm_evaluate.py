"""The encoder evaluation table: known-answer metrics, bootstrap, leak-free baselines, hidden truth.

Runs on tiny logs and the tiny randomly initialised BERT of ``test_lm_encoder.py``.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from recsim_llm.lm import evaluate as ev_mod
from recsim_llm.lm.evaluate import (
    mean_by_user,
    per_row_auc,
    pooled_auc_by_user,
    resample_counts,
    training_click_counts,
)
from recsim_llm.lm.finetune import FinetuneConfig, finetune
from recsim_llm.lm.logs import labels, load_logs, split_logs
from recsim_llm.lm.metrics import auc


@pytest.fixture(scope="module")
def enc_dir(lora_dir):
    """The shared tiny LoRA encoder (conftest ``lora_dir``)."""
    return lora_dir


# -- known answers -----------------------------------------------------------------------------------
def test_per_row_auc_known_answers():
    y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 1]])
    perfect = np.where(y > 0, 1.0, 0.0)
    assert per_row_auc(perfect, y)[:2].tolist() == [1.0, 1.0]
    assert per_row_auc(-perfect, y)[:2].tolist() == [0.0, 0.0]
    assert per_row_auc(np.zeros(y.shape), y)[:2].tolist() == [0.5, 0.5]
    # No positive, or no negative: undefined.
    assert np.isnan(per_row_auc(perfect, y)[2:]).all()
    # One win, one tie out of two pairs; a masked-out column counts for nothing.
    scores = np.array([[2.0, 1.0, 2.0, 9.0]])
    yy = np.array([[1, 0, 0, 0]])
    assert per_row_auc(scores, yy, np.array([[True, True, True, False]]))[0] == 0.75


def test_bootstrap_intervals_known_answers():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), 4)
    y = (rng.random(users.size) < 0.4).astype(float)
    counts = resample_counts(30, 200, seed=1)
    assert counts.shape == (200, 30) and (counts.sum(1) == 30).all()
    for scores, expected in ((y, 1.0), (-y, 0.0), (np.zeros_like(y), 0.5)):
        point, boot = pooled_auc_by_user(scores, y, users, counts)
        assert point == expected
        assert np.nanmin(boot) == np.nanmax(boot) == expected  # zero-width interval
    noisy = y + rng.normal(0, 1, y.size)
    point, boot = pooled_auc_by_user(noisy, y, users, counts)
    assert point == pytest.approx(auc(noisy, y))
    # A resample's weighted AUC equals the AUC of the data with each user repeated.
    c = counts[7]
    rep = np.repeat(np.arange(users.size), c[users].astype(int))
    assert boot[7] == pytest.approx(auc(noisy[rep], y[rep]))
    assert np.percentile(boot, 2.5) < point < np.percentile(boot, 97.5)
    # Per-row means: point and resample means weight rows of drawn users.
    vals = rng.random(users.size)
    vals[3] = np.nan
    point, boot = mean_by_user(vals, users, counts)
    assert point == pytest.approx(np.nanmean(vals))
    assert boot[7] == pytest.approx(np.nanmean(vals[rep]))
    same = mean_by_user(np.ones(users.size), users, counts)
    assert same[0] == 1.0 and (same[1] == 1.0).all()
    # Seeded: the same resamples again.
    assert (resample_counts(30, 200, seed=1) == counts).all()


# -- leak-free popularity and hidden truth -----------------------------------------------------------
def test_leak_free_popularity_has_no_counts_on_cold_items(logs):
    data = load_logs(logs)
    split = split_logs(data, "user", 0.1, 0.2, 0.3, seed=0)
    counts = training_click_counts(data, split, "click")
    assert counts[split.cold_items].sum() == 0.0
    y = labels(data, "click")
    # Counting every training click would have counted cold items (so the test can fail) ...
    naive = np.zeros(data.n_items)
    np.add.at(naive, data.slates[split.train][y[split.train] > 0], 1.0)
    assert naive[split.cold_items].sum() > 0
    # ... and no held-out row's click is counted.
    assert counts.sum() == naive.sum() - naive[split.cold_items].sum()
    warm = np.setdiff1d(np.arange(data.n_items), split.cold_items)
    assert (counts[warm] == naive[warm]).all()


def test_logs_record_hidden_truth_per_shown_slot(logs):
    from recsim_llm.config import EnvConfig
    from recsim_llm.world.catalog import generate_catalog

    data = load_logs(logs)
    assert not hasattr(data, "hidden")  # the reader training uses never loads it
    hidden = ev_mod.load_hidden(logs, data)
    assert set(hidden) == {"appeal", "match", "utility"}
    assert hidden["appeal"].shape == data.slates.shape
    appeal = generate_catalog(EnvConfig().world.catalog).appeal
    assert np.allclose(hidden["appeal"], appeal[data.slates], atol=1e-5)
    assert np.all(np.abs(hidden["match"]) <= 1.0 + 1e-6)


def test_hidden_fields_never_reach_training_or_encoders(
    tmp_path, tiny_model, logs, enc_dir, tiny_finetune
):
    # The same logs with the hidden truth scrambled: training and encoder scores do not move.
    other = tmp_path / "scrambled"
    shutil.copytree(logs, other)
    rows = [json.loads(line) for line in (logs / "impressions.jsonl").open()]
    rng = np.random.default_rng(0)
    for r in rows:
        r["hidden"] = {k: rng.normal(size=len(v)).tolist() for k, v in r["hidden"].items()}
    (other / "impressions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = FinetuneConfig(model_path=str(tiny_model), lora=True, keep_best=False, **tiny_finetune)
    again = finetune(other, tmp_path / "enc", cfg, progress=False)
    files = json.loads((again / "encoder.json").read_text())["files"]
    assert files == json.loads((enc_dir / "encoder.json").read_text())["files"]
    a = ev_mod.evaluate_encoders(logs, [str(enc_dir)], tmp_path / "a", max_rows=30, n_boot=20)
    b = ev_mod.evaluate_encoders(other, [str(enc_dir)], tmp_path / "b", max_rows=30, n_boot=20)
    assert a["table"] == b["table"]  # every encoder and baseline row
    ceil_a = a["runs"][0]["hidden_ceilings"]["hidden full utility"]["all"]["auc"]
    ceil_b = b["runs"][0]["hidden_ceilings"]["hidden full utility"]["all"]["auc"]
    assert ceil_a != ceil_b  # only the ceilings read the hidden fields


# -- the table ---------------------------------------------------------------------------------------
def test_personal_component_of_identical_users_is_exactly_chance(
    tmp_path, logs, enc_dir, monkeypatch
):
    def same(self, rows):
        u = np.zeros((len(rows), self.enc.dim), dtype=np.float32)
        u[:, 0] = 1.0
        return u

    monkeypatch.setattr(ev_mod.EncoderStates, "exact", same)
    monkeypatch.setattr(ev_mod.EncoderStates, "fast", same)
    res = ev_mod.evaluate_encoders(logs, [str(enc_dir)], tmp_path / "e", max_rows=0, n_boot=20)
    personal = [n for n in res["table"] if "personal" in n]
    assert len(personal) == 2
    for name in personal:
        for seg, row in res["table"][name].items():
            if res["runs"][0]["segments"][seg]["n_rankings"]:
                assert row["row_auc"] == 0.5 and row["auc"] == 0.5, (name, seg)
    div = res["diversity"]
    assert div["LoRA [lora] fast"]["mean_pairwise_cosine"] == pytest.approx(1.0)


def test_encoder_eval_table_rows_intervals_and_paired_differences(tmp_path, logs, enc_dir):
    from recsim_llm.cli import main

    out = tmp_path / "eval"
    args = ["encoder-eval", "--logs", str(logs), "--encoders", str(enc_dir), "--out", str(out)]
    assert main([*args, "--max-rows", "40", "--n-boot", "50"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["command"].startswith("recsim-llm encoder-eval --logs")
    table, intervals = res["table"], res["intervals"]
    assert set(ev_mod.BASELINES) <= set(table)
    for kind in ("exact", "fast"):
        for part in ("s·u·v + b (text only)", "personal (u - ū)·v", "prior s·ū·v + b"):
            assert f"LoRA [lora] {kind}: {part}" in table
    assert "LoRA [lora] fast + popularity (logistic on validation rows)" in table
    for name, row in table.items():
        assert set(row) == {"all", "cold_items", "first_step"}, name
        for seg, metrics in row.items():
            for m, v in metrics.items():
                lo, hi = intervals[name][seg][m]
                if np.isfinite(v) and np.isfinite(lo):
                    assert lo - 1e-9 <= v <= hi + 1e-9 or lo == hi, (name, seg, m)
    paired = res["paired"]["LoRA [lora] exact: s·u·v + b (text only)"]
    assert set(paired) == set(ev_mod.BASELINES)
    d = paired["popularity (leak-free)"]["all"]["row_auc"]
    assert d[0] == pytest.approx(
        table["LoRA [lora] exact: s·u·v + b (text only)"]["all"]["row_auc"]
        - table["popularity (leak-free)"]["all"]["row_auc"]
    )
    assert res["runs"][0]["popularity_cold_item_counts"] == 0.0
    ceilings = res["runs"][0]["hidden_ceilings"]
    assert set(ceilings) == set(ev_mod.HIDDEN_CEILINGS)
    md = (out / "results.md").read_text()
    assert "| popularity (leak-free) |" in md and "hidden full utility" in md
    assert "mean pairwise cosine" in md
    # The cold-item segment is also resampled over its clicked cold items: same point, its own
    # interval, and the paired difference carries it too.
    n_items = res["runs"][0]["segments"]["cold_items"]["n_clicked_items"]
    assert n_items >= 1
    for name, row in table.items():
        cold = row["cold_items"]
        assert cold[ev_mod.ITEM_METRIC] == pytest.approx(cold["row_auc"], nan_ok=True), name
    assert paired["popularity (leak-free)"]["cold_items"][ev_mod.ITEM_METRIC][0] == pytest.approx(
        paired["popularity (leak-free)"]["cold_items"]["row_auc"][0], nan_ok=True
    )
    assert f"bootstrap over the {n_items} clicked cold items" in md
    # Among new items only: leak-free popularity gives every cold item the same count (0), so
    # it ties on every pair there (0.5), whatever it does against warm negatives.
    pop_new = table["popularity (leak-free)"]["cold_items"][ev_mod.NEW_METRIC]
    assert pop_new == pytest.approx(0.5)
    assert "ranked among the new items only" in md
    # Its paired differences are computed and reach the table (not "–" cells).
    main = "LoRA [lora] exact: s·u·v + b (text only)"
    d = paired["popularity (leak-free)"]["cold_items"][ev_mod.NEW_METRIC]
    assert np.isfinite(d[0])
    assert d[0] == pytest.approx(table[main]["cold_items"][ev_mod.NEW_METRIC] - pop_new)
    new_table = md.split("ranked among the new items only")[1].split("\n\n")[1]
    assert f"| {main} | " in new_table and ev_mod._fmt(*d) in new_table


def test_among_new_items_metric_ignores_warm_items_and_a_new_item_offset(logs):
    data = load_logs(logs)
    split = split_logs(data, cold_item_fraction=0.3, seed=0)
    cold = split.cold_mask(data.n_items)
    ev = ev_mod.build_eval_set(data, split, "click", 0, 0, n_boot=50)
    scores = np.random.default_rng(0).normal(size=data.candidates[ev.rows].shape)
    on_cold = cold[np.maximum(data.candidates[ev.rows], 0)]
    base = ev_mod.score_metrics(ev, scores)["cold_items"]
    lifted = ev_mod.score_metrics(ev, scores + 10.0 * on_cold)["cold_items"]
    # A constant lift of every new item wins every cold-positive row against warm negatives...
    assert lifted["row_auc"][0] > base["row_auc"][0] + 0.05
    # ...and leaves the ranking among new items exactly as it was.
    assert lifted[ev_mod.NEW_METRIC][0] == base[ev_mod.NEW_METRIC][0]
    np.testing.assert_array_equal(lifted[ev_mod.NEW_METRIC][1], base[ev_mod.NEW_METRIC][1])
    # Known answer: scoring the clicked item highest ranks it first among the new items too.
    y_cand = np.zeros(scores.shape)
    np.put_along_axis(y_cand, ev.slate_col, ev.y, axis=1)
    perfect = ev_mod.score_metrics(ev, y_cand)["cold_items"]
    assert perfect[ev_mod.NEW_METRIC][0] == 1.0 and perfect["row_auc"][0] == 1.0


def test_among_new_items_metric_on_candidate_rankings(tmp_path):
    """Rows showing one rated item (MovieLens): the liked cold item against the cold candidates."""
    from test_movielens_data import write_grouplens

    from recsim_llm.lm.logs import write_movielens_logs

    data = load_logs(
        write_movielens_logs(write_grouplens(tmp_path / "ml"), tmp_path / "logs", n_candidates=8)
    )
    split = split_logs(data, "time", cold_item_fraction=0.3, seed=0)
    cold = split.cold_mask(data.n_items)
    ev = ev_mod.build_eval_set(data, split, "liked", 0, 0, n_boot=50)
    assert ev.over == "candidates" and ev.segments["cold_items"][0].sum() >= 5
    cands = data.candidates[ev.rows]
    np.testing.assert_array_equal(ev.cold_cand, (cands >= 0) & cold[np.maximum(cands, 0)])
    scores = np.random.default_rng(1).normal(size=cands.shape)
    base = ev_mod.score_metrics(ev, scores)["cold_items"]
    lifted = ev_mod.score_metrics(ev, scores + 10.0 * ev.cold_cand)["cold_items"]
    assert lifted["row_auc"][0] > base["row_auc"][0] + 0.05
    assert lifted[ev_mod.NEW_METRIC][0] == base[ev_mod.NEW_METRIC][0]
    np.testing.assert_array_equal(lifted[ev_mod.NEW_METRIC][1], base[ev_mod.NEW_METRIC][1])
    perfect = np.zeros(cands.shape)
    perfect[np.arange(cands.shape[0]), ev.pos_col] = 1.0
    assert ev_mod.score_metrics(ev, perfect)["cold_items"][ev_mod.NEW_METRIC][0] == 1.0


def test_item_bootstrap_of_one_item_has_no_spread_and_users_do():
    """Rows that all share one clicked item: resampling items cannot move the mean, resampling
    their users does."""
    values = np.array([0.2, 0.9, 0.4, 0.7])
    users = np.array([0, 1, 2, 3])
    items = np.zeros(4, dtype=np.int64)
    _, by_user = ev_mod.mean_by_user(values, users, ev_mod.resample_counts(4, 200, 0))
    point, by_item = ev_mod.mean_by_user(
        values, items, ev_mod.resample_counts(1, 200, 0, stream=0x17E5)
    )
    assert point == pytest.approx(0.55)
    np.testing.assert_allclose(by_item, 0.55)
    assert np.ptp(by_user) > 0.2


def test_encoder_eval_without_exact_states_scores_the_fast_state_and_baselines(
    tmp_path, logs, enc_dir
):
    from recsim_llm.cli import main

    out = tmp_path / "eval"
    args = ["encoder-eval", "--logs", str(logs), "--encoders", str(enc_dir), "--out", str(out)]
    assert main([*args, "--max-rows", "40", "--n-boot", "20", "--no-exact"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["command"].endswith("--no-exact")
    assert "LoRA [lora] fast: s·u·v + b (text only)" in res["table"]
    assert set(ev_mod.BASELINES) <= set(res["table"])
    assert not [name for name in res["table"] if " exact: " in name]


def test_encoder_eval_refuses_bad_arguments_before_work(tmp_path, logs, enc_dir):
    with pytest.raises(ValueError, match="max_rows"):
        ev_mod.evaluate_encoders(logs, [str(enc_dir)], tmp_path / "e", max_rows=-1)
    with pytest.raises(ValueError, match="n_boot"):
        ev_mod.evaluate_encoders(logs, [str(enc_dir)], tmp_path / "e", n_boot=1)
    with pytest.raises(ValueError, match="encoders"):
        ev_mod.evaluate_encoders(logs, [], tmp_path / "e")
    assert not (tmp_path / "e").exists()


def test_popularity_combiner_learns_on_the_ranking_the_table_reports():
    """Rows showing one item (MovieLens ratings): the combiner's training set is the candidates of
    rows with a positive, labelled 1 for the shown item only; with shown slates, the shown items."""
    from types import SimpleNamespace

    from recsim_llm.lm.evaluate import combiner_training_set
    from recsim_llm.lm.logs import Split

    data = SimpleNamespace(
        slates=np.array([[2], [0], [1]]),
        candidates=np.array([[2, 0, 1, -1], [0, 3, 2, 1], [1, 3, 0, 2]]),
        click_pos=np.array([0, 0, 0]),
        rating=np.array([5.0, 2.0, 4.0]),  # liked, not liked, liked
    )
    split = Split(np.array([], int), np.array([0, 1, 2]), np.array([], int), np.array([], int))
    states = SimpleNamespace(
        fast=lambda rows: np.ones((len(rows), 2)),
        items=np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 0.0]]),
        bias=np.zeros(4),
        scale=1.0,
    )
    pop = np.array([0.0, 1.0, 3.0, 7.0])
    x, y = combiner_training_set(data, split, "liked", "candidates", states, pop)
    # Rows 0 and 2 (liked) with 3 and 4 valid candidates; row 1 has no positive and is left out.
    assert y.tolist() == [1, 0, 0, 1, 0, 0, 0]
    assert x[:, 0].tolist() == [2.0, 1.0, 1.0, 1.0, 0.0, 1.0, 2.0]
    assert np.allclose(x[:, 1], np.log1p([3, 0, 1, 1, 7, 0, 3]))
    # Shown slates: every shown item of every validation row, labelled by its response.
    x, y = combiner_training_set(data, split, "liked", "slate", states, pop)
    assert y.tolist() == [1, 0, 1] and x[:, 0].tolist() == [2.0, 1.0, 1.0]
    # No liked row: nothing to fit on (evaluate_split then skips the combined row).
    data.rating = np.array([2.0, 1.0, 3.0])
    x, y = combiner_training_set(data, split, "liked", "candidates", states, pop)
    assert x.shape == (0, 2) and y.size == 0
