"""Few-shot cold start (``recsim_llm.lm.fewshot``) and per-row metrics, on tiny logs and the tiny
random BERT: states after k steps see only those k steps, the table's shape and invariants."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from recsim_llm.lm.finetune import FinetuneConfig, finetune
from recsim_llm.lm.logs import load_logs, split_logs, write_behaviour_logs
from recsim_llm.lm.rowmetrics import bootstrap_mean, per_row_metrics

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


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return write_behaviour_logs(
        tmp_path_factory.mktemp("logs") / "logs", n_users=12, n_steps=9, seed=7
    )


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, logs):
    from recsim_llm.lm.model import make_tiny_backbone

    tiny = make_tiny_backbone(tmp_path_factory.mktemp("tiny") / "bert", seed=0)
    cfg = FinetuneConfig(model_path=str(tiny), lora=True, **TINY)
    return finetune(logs, tmp_path_factory.mktemp("enc") / "lora", cfg, progress=False)


@pytest.fixture(scope="module")
def setup_and_methods(logs, encoder):
    from recsim_llm.lm.fewshot import FewShotData, default_methods, training_popularity

    data = load_logs(logs)
    split = split_logs(data, seed=0)
    setup = FewShotData(
        data=data,
        cold_items=split.cold_items,
        popularity=training_popularity(data, split.train, split.cold_items, "click"),
    )
    return setup, default_methods(setup, encoder, data, split.train, n_threads=1)


def test_per_row_metrics_match_hand_computed_values():
    # Row 0: slate [3, 5, 7], clicked 5; scores put 5 above 3, tied with 7 -> AUC (1 + 0.5) / 2.
    cands = np.array([[3, 5, 7, 9], [1, 2, 3, -1]])
    scores = np.array([[0.1, 0.5, 0.5, 0.9], [0.3, 0.2, 0.1, -np.inf]])
    slates = np.array([[3, 5, 7], [1, 2, 3]])
    y = np.array([[0, 1, 0], [0, 0, 0]], dtype=float)
    has_pos, row_auc, ndcg = per_row_metrics(scores, cands, slates, y)
    assert has_pos.tolist() == [True, False]
    assert row_auc[0] == pytest.approx(0.75) and np.isnan(row_auc[1])
    # Rank of item 5 among 4 candidates: item 9 above, item 7 tied -> rank 2.5.
    assert ndcg[0] == pytest.approx(1.0 / np.log2(3.5)) and np.isnan(ndcg[1])
    # One shown item per row (MovieLens): the other valid candidates are the negatives.
    has_pos, row_auc, _ = per_row_metrics(
        np.array([[0.4, 0.9, 0.1, -np.inf]]),
        np.array([[8, 6, 4, -1]]),
        np.array([[8]]),
        np.array([[1.0]]),
    )
    assert row_auc[0] == pytest.approx(0.5)  # above 4, below 6; the pad is no negative


def test_bootstrap_over_users_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 40, size=400)
    values = rng.random(400)
    values[:10] = np.nan  # skipped
    a = bootstrap_mean(values, users, n_boot=300, seed=1)
    assert a == bootstrap_mean(values, users, n_boot=300, seed=1)
    assert a["lo"] < a["mean"] < a["hi"] and a["n_rows"] == 390
    assert a["mean"] == pytest.approx(np.nanmean(values))
    # Intervals come from users: one user's rows all alike make no narrower interval.
    assert bootstrap_mean(np.ones(5), np.zeros(5, int))["lo"] == 1.0


def test_state_after_k_steps_sees_the_profile_and_those_k_steps_only(setup_and_methods):
    from recsim_llm.lm.fewshot import first_rows, replay

    setup, methods = setup_and_methods
    data = setup.data
    users, starts = first_rows(data, 3)
    assert users.size >= 4
    base = replay(data, starts, methods, ks=(0, 1, 3))
    # Change every logged response from step 1 on (later history and the held-out steps).
    changed = dataclasses.replace(
        data,
        click_pos=data.click_pos.copy(),
        rating=data.rating.copy(),
        slates=data.slates.copy(),
    )
    later = np.concatenate([np.arange(s + 1, s + 4) for s in starts.tolist()])
    changed.click_pos[later] = np.where(data.click_pos[later] >= 0, -1, 0)
    changed.rating[later] = np.where(changed.click_pos[later] >= 0, 5.0, 0.0)
    changed.slates[later] = np.roll(data.slates[later], 1, axis=0)
    after = replay(changed, starts, methods, ks=(0, 1, 3))
    for m in methods:
        np.testing.assert_array_equal(base[m.name][0], after[m.name][0], err_msg=m.name)
        np.testing.assert_array_equal(base[m.name][1], after[m.name][1], err_msg=m.name)
    for name in ("fine-tuned (fast)", "fine-tuned (exact)", "MiniLM zero-shot", "bow (env)"):
        assert not np.allclose(base[name][3], after[name][3]), name
        # and history moves the state away from the profile-only one
        assert not np.allclose(base[name][0], base[name][3]), name
    np.testing.assert_array_equal(base["popularity"][0], base["popularity"][3])


def test_fast_state_replay_matches_the_env_encoder_and_fast_head(setup_and_methods, encoder):
    """The replayed lm-fast state is the fast head on the same events (``fast_states_numpy``)."""
    from recsim_llm.lm.fewshot import first_rows, replay
    from recsim_llm.lm.logs import Histories
    from recsim_llm.lm.model import fast_states_numpy
    from recsim_llm.lm.store import load_encoder

    setup, methods = setup_and_methods
    data = setup.data
    fast = next(m for m in methods if m.name == "fine-tuned (fast)")
    _, starts = first_rows(data, 3)
    got = replay(data, starts, [fast], ks=(3,))["fine-tuned (fast)"][3]
    enc = load_encoder(encoder)
    hist = Histories(data, 20)
    prof = enc.encode_users([_profile_text(data, r) for r in starts.tolist()])
    it, ty, ag, mk = hist.arrays(starts + 3, 3 * data.slates.shape[1])
    want = fast_states_numpy(enc.model.fast.export(), prof, fast.item_vectors()[it], ty, ag, mk)
    np.testing.assert_allclose(got, want, atol=1e-4)  # LoRA merged vs not


def _profile_text(data, row):
    from recsim_llm import text

    return text.history_text(data.profiles[row], [])


def test_fewshot_table_rows_intervals_and_outputs(tmp_path, setup_and_methods):
    from recsim_llm.io import read_marker
    from recsim_llm.lm.fewshot import fewshot_table, write_fewshot

    setup, methods = setup_and_methods
    ks = (0, 1, 3)
    result = fewshot_table(setup, methods, ks=ks, window=4, n_boot=100)
    rows = result["rows"]
    assert len(rows) == len(methods) * 2 * len(ks)
    assert result["setup"]["n_users"] >= 4 and result["setup"]["held_out_rows"] > 0
    for r in rows:
        if r["n_rankings"]:
            assert 0.0 <= r["auc_lo"] <= r["auc"] <= r["auc_hi"] <= 1.0, r
            assert 0.0 <= r["ndcg@10"] <= 1.0
    pop = {r["k"]: r for r in rows if r["method"] == "popularity" and r["segment"] == "new users"}
    assert pop[0]["auc"] == pop[3]["auc"]  # popularity does not learn from a user's steps
    # Every method is scored on the same held-out rankings.
    seg = [r["n_rankings"] for r in rows if r["segment"] == "new users"]
    assert len(set(seg)) == 1 and seg[0] > 0
    out = write_fewshot(tmp_path / "fs", result, "tiny")
    assert (out / "fewshot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "results.json").read_text())["setup"]["ks"] == list(ks)
    assert "AUC k=3" in (out / "results.md").read_text()
    assert read_marker(out)["kind"] == "eval"
    with pytest.raises(ValueError, match="no user has 41 consecutive"):
        fewshot_table(setup, methods, ks=(0, 40))
    with pytest.raises(ValueError, match="window must be"):
        fewshot_table(setup, methods, ks=(0,), window=0)


def test_training_popularity_counts_training_rows_only_and_never_cold_items(logs):
    from recsim_llm.lm.fewshot import training_popularity
    from recsim_llm.lm.logs import labels

    data = load_logs(logs)
    split = split_logs(data, seed=0)
    pop = training_popularity(data, split.train, split.cold_items, "click")
    assert (pop[split.cold_items] == 0).all()
    y = labels(data, "click")
    clicked_train = data.slates[split.train][y[split.train] > 0]
    warm = np.setdiff1d(clicked_train, split.cold_items)
    assert pop.sum() == np.isin(clicked_train, warm).sum() and (pop[warm] > 0).all()
