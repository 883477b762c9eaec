"""Slate/session metrics: known answers, and the rollout's per-session and per-step metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsim_llm import metrics
from recsim_llm.agents.baselines import OraclePolicy, RandomPolicy
from recsim_llm.evaluation import DRIFT_METRICS, SESSION_METRICS, STEP_METRICS, rollout
from recsim_llm.grid import add_reference_scores
from recsim_llm.scenarios import scenario_config


def test_diversity_of_hand_built_slates():
    emb = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    slates = np.array([[0, 1], [0, 2]])
    np.testing.assert_allclose(metrics.slate_diversity(slates, emb), [0.0, 1.0])
    # three items: cosines (0,1)=1, (0,2)=0, (1,2)=0 -> mean 1/3 -> diversity 2/3
    np.testing.assert_allclose(metrics.slate_diversity(np.array([[0, 1, 2]]), emb), [2 / 3])
    np.testing.assert_allclose(
        metrics.slate_diversity(np.array([[0, 3]]), emb), [1 - 1 / np.sqrt(2)]
    )
    assert metrics.slate_diversity(np.array([[2]]), emb).tolist() == [0.0]
    with pytest.raises(ValueError, match="slates"):
        metrics.slate_diversity(np.array([0, 1]), emb)


def test_coverage_counts_distinct_items_over_available():
    assert metrics.catalog_coverage(np.array([[0, 1], [1, 2], [-1, 2]]), 10) == 0.3
    with pytest.raises(ValueError, match="available"):
        metrics.catalog_coverage(np.array([1]), 0)


def test_novelty_and_popularity_bias_known_answers():
    popularity = np.array([6, 0, 0, 2])
    available = np.array([True, True, True, True])
    # p = (clicks + 1) / (8 + 4): item 0 -> 7/12, item 1 -> 1/12
    np.testing.assert_allclose(
        metrics.novelty(np.array([[0, 1]]), popularity, available),
        [(-np.log2(7 / 12) - np.log2(1 / 12)) / 2],
    )
    # mean popularity of {0, 3} = 4, catalog mean = 2 -> 2
    np.testing.assert_allclose(
        metrics.popularity_bias(np.array([[0, 3]]), popularity, available), [2.0]
    )
    assert np.isnan(metrics.popularity_bias(np.array([[0]]), np.zeros(4), available)).all()


def test_slate_metrics_refuse_empty_slates_and_out_of_range_ids():
    emb = np.eye(3)
    popularity = np.array([1, 0, 2])
    available = np.ones(3, dtype=bool)
    empty = np.zeros((2, 0), dtype=int)
    with pytest.raises(ValueError, match="slates must have shape"):
        metrics.slate_diversity(empty, emb)
    with pytest.raises(ValueError, match="slates must have shape"):
        metrics.novelty(empty, popularity, available)
    with pytest.raises(ValueError, match="slates must have shape"):
        metrics.popularity_bias(empty, popularity, available)
    # -1 would index the last item and 3 is past the catalog: both refused, naming slates.
    for bad in (np.array([[0, -1]]), np.array([[0, 3]])):
        with pytest.raises(ValueError, match=r"slates must hold item ids in \[0, 2\]"):
            metrics.slate_diversity(bad, emb)
        with pytest.raises(ValueError, match=r"slates must hold item ids in \[0, 2\]"):
            metrics.novelty(bad, popularity, available)
        with pytest.raises(ValueError, match=r"slates must hold item ids in \[0, 2\]"):
            metrics.popularity_bias(bad, popularity, available)
    with pytest.raises(ValueError, match="integer item ids"):
        metrics.slate_diversity(np.array([[0.0, 1.0]]), emb)
    with pytest.raises(ValueError, match="popularity must hold finite"):
        metrics.novelty(np.array([[0, 1]]), np.array([1.0, np.nan, 0.0]), available)
    with pytest.raises(ValueError, match="available must be a bool array"):
        metrics.popularity_bias(np.array([[0, 1]]), popularity, np.ones(2, dtype=bool))
    # No item available yet: no catalog mean, NaN (not a warning and a division).
    assert np.isnan(
        metrics.popularity_bias(np.array([[0]]), popularity, np.zeros(3, dtype=bool))
    ).all()


def test_steps_to_first_click_is_censored_at_length_plus_one():
    clicks = np.array([[0, 0, 1], [1, 0, 0], [0, 0, 0]], dtype=bool)  # (T=3, n=3)
    assert metrics.steps_to_first_click(clicks, np.array([3, 3, 2])).tolist() == [2.0, 4.0, 1.0]
    with pytest.raises(ValueError, match="clicks"):
        metrics.steps_to_first_click(clicks, np.array([3, 3]))


def test_steps_to_recover_known_answer():
    reward = np.array([5, 5, 5, 1, 1, 4, 6, 6, 6, 6], dtype=float)
    # window 2, before = 5; moving means after step 3: 1, 2.5, 5, 6, ... -> first at index 2
    assert metrics.steps_to_recover(reward, 3, window=2) == 2.0
    assert np.isnan(metrics.steps_to_recover(np.array([5, 5, 1, 1, 1.0]), 2, window=2))
    assert metrics.steps_to_recover(np.full(8, 3.0), 4, window=2) == 0.0


def test_rollout_reports_every_metric_and_the_same_numbers_for_the_same_seed():
    config = scenario_config("default", encoder="bow", horizon=20)
    a = rollout(RandomPolicy(), config, 4, 16)
    b = rollout(RandomPolicy(), config, 4, 16)
    assert set(a.sessions) == set(SESSION_METRICS)
    assert set(a.steps) == set(STEP_METRICS)
    for key in a.sessions:
        np.testing.assert_array_equal(a.sessions[key], b.sessions[key])
    s = a.sessions
    np.testing.assert_allclose(s["ctr"], s["clicks"] / s["session_length"])
    assert ((s["diversity"] > 0) & (s["diversity"] <= 1)).all()
    assert (s["steps_to_first_click"] >= 1).all()
    assert (s["steps_to_first_click"] <= s["session_length"] + 1).all()
    assert 0 < s["coverage"][0] <= 1 and np.ptp(s["coverage"]) == 0
    assert a.steps["active_users"][0] == 16
    cov = a.steps["coverage"]
    assert (np.diff(cov) >= -1e-12).all()  # cumulative on a fixed catalog
    assert a.user_steps is None


def test_oracle_beats_random_on_hidden_satisfaction_and_drift_metrics_exist():
    config = scenario_config("taste-shift", encoder="bow", horizon=60)
    rnd = rollout(RandomPolicy(), config, 0, 32)
    orc = rollout(OraclePolicy(), config, 0, 32)
    assert set(DRIFT_METRICS) <= set(rnd.sessions)
    assert orc.sessions["return"].mean() > rnd.sessions["return"].mean()
    assert orc.sessions["mean_satisfaction"].mean() > rnd.sessions["mean_satisfaction"].mean()
    assert np.isfinite(np.nanmean(rnd.sessions["reward_before_shift"]))


def test_first_k_is_checked():
    config = scenario_config("default", encoder="bow", horizon=5)
    with pytest.raises(ValueError, match="first_k"):
        rollout(RandomPolicy(), config, 0, 4, first_k=0)


def test_reference_scores_random_zero_oracle_one():
    rows = [
        ("r", "random", "s", 0, -1, "return", 10.0),
        ("r", "oracle", "s", 0, -1, "return", 30.0),
        ("r", "mine", "s", 0, -1, "return", 25.0),
        ("r", "mine", "s", 0, 3, "reward", 1.0),
    ]
    cols = ["run_id", "policy", "scenario", "seed", "step", "metric", "value"]
    table = add_reference_scores(pd.DataFrame(rows, columns=cols))
    score = table[table.metric == "normalised_score"].set_index("policy").value
    assert score.to_dict() == {"random": 0.0, "oracle": 1.0, "mine": 0.75}
    regret = table[table.metric == "regret"].set_index("policy").value
    assert regret.to_dict() == {"random": 20.0, "oracle": 0.0, "mine": 5.0}
    without_oracle = pd.DataFrame(rows, columns=cols).query("policy != 'oracle'")
    assert len(add_reference_scores(without_oracle)) == len(without_oracle)
