"""Statistics with few seeds: known answers for IQM, aggregates, probability of improvement,
stratified bootstrap, paired differences and the reliability rule."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_llm import stats
from recsim_llm.stats import (
    MIN_RELIABLE_RUNS,
    Estimate,
    aggregate,
    improvement_probabilities,
    interval_estimates,
    iqm,
    mean_estimate,
    optimality_gap,
    paired_difference,
    probability_of_improvement,
    stratified_resamples,
)

# --- IQM and aggregates ------------------------------------------------------------------------


def test_iqm_of_one_to_eight_is_the_mean_of_three_to_six():
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)
    # A (runs x tasks) matrix: the IQM is over all run-task scores, whatever the shape.
    assert iqm(np.arange(1, 9).reshape(4, 2)) == pytest.approx(4.5)
    assert iqm([10, 1, 100, 2]) == pytest.approx(6.0)  # sorted: cut 1 and 100, mean of 2 and 10
    assert iqm([1, 2, 30]) == pytest.approx(11.0)  # int(0.25 * 3) = 0: nothing is cut


def test_iqm_equals_scipy_trim_mean():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for size in range(1, 30):
        x = rng.normal(size=size).round(1)  # rounding makes ties
        assert iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25))
    matrix = rng.normal(size=(7, 3))
    assert iqm(matrix) == pytest.approx(scipy_stats.trim_mean(matrix, 0.25, axis=None))


def test_aggregates_have_known_values():
    scores = np.array([[1.0, 10.0, 4.0], [3.0, 20.0, 6.0]])  # task means 2, 15, 5
    assert aggregate(scores, "mean") == pytest.approx(22 / 3)
    assert aggregate(scores, "median") == pytest.approx(5.0)
    assert aggregate(scores, "iqm") == pytest.approx(iqm(scores))
    # Clipped at 5: [[1, 5, 4], [3, 5, 5]], mean 23/6.
    assert optimality_gap(scores, gamma=5.0) == pytest.approx(5 - 23 / 6)
    assert aggregate(scores, "optimality_gap", gamma=5.0) == pytest.approx(5 - 23 / 6)


def test_optimality_gap_needs_gamma():
    with pytest.raises(ValueError, match="gamma"):
        aggregate([1.0, 2.0], "optimality_gap")
    with pytest.raises(ValueError, match="gamma"):
        interval_estimates({"p": [1.0, 2.0]}, "optimality_gap")


# --- probability of improvement ----------------------------------------------------------------


def test_probability_of_improvement_known_values():
    x = np.array([[5.0, 9.0], [6.0, 8.0], [7.0, 7.5]])
    y = np.array([[1.0, 2.0], [2.0, 3.0]])
    assert probability_of_improvement(x, y) == 1.0
    assert probability_of_improvement(y, x) == 0.0
    assert probability_of_improvement(x, x) == 0.5
    assert probability_of_improvement([3.0, 3.0], [3.0, 3.0, 3.0]) == 0.5  # all ties


def test_probability_of_improvement_hand_computed_mixed_case():
    # Task 1: x = [1, 3, 6, 7] against y = [2, 3]: pairs won 0, 1 + 1/2 (tie), 2, 2 -> 5.5 / 8.
    # Task 2: X wins every pair -> 1. Mean over tasks: (0.6875 + 1) / 2.
    x = np.array([[1.0, 10.0], [3.0, 11.0], [6.0, 12.0], [7.0, 13.0]])
    y = np.array([[2.0, 0.0], [3.0, 1.0]])
    assert probability_of_improvement(x[:, 0], y[:, 0]) == pytest.approx(0.6875)
    assert probability_of_improvement(x, y) == pytest.approx((0.6875 + 1.0) / 2)
    assert probability_of_improvement(y, x) == pytest.approx(1 - (0.6875 + 1.0) / 2)


def test_improvement_probabilities_intervals():
    rng = np.random.default_rng(0)
    scores = {
        "good": rng.normal(10, 1, size=(6, 2)),
        "bad": rng.normal(0, 1, size=(6, 2)),
        "alike": rng.normal(0, 1, size=(6, 2)),
        "single": rng.normal(0, 1, size=(1, 2)),
    }
    result = improvement_probabilities(scores, n_resamples=500, rng=1)
    assert list(result) == [
        ("good", "bad"),
        ("good", "alike"),
        ("good", "single"),
        ("bad", "alike"),
        ("bad", "single"),
        ("alike", "single"),
    ]
    separated = result[("good", "bad")]
    assert (separated.point, separated.low, separated.high, separated.n) == (1.0, 1.0, 1.0, 6)
    close = result[("bad", "alike")]
    assert 0.0 <= close.low < close.point < close.high <= 1.0 and close.reliable
    assert not result[("good", "single")].has_interval  # one run on a side: no interval
    only = improvement_probabilities(scores, [("alike", "bad")], n_resamples=500, rng=1)
    assert only[("alike", "bad")].point == pytest.approx(1 - close.point)


def test_rliable_agrees_on_point_estimates():
    metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(3)
    for n_x, n_y, n_tasks in [(5, 5, 1), (10, 7, 4), (3, 8, 2)]:
        x = rng.normal(size=(n_x, n_tasks)).round(1)  # rounding makes ties
        y = rng.normal(0.3, size=(n_y, n_tasks)).round(1)
        assert iqm(x) == pytest.approx(metrics.aggregate_iqm(x))
        assert aggregate(x, "mean") == pytest.approx(metrics.aggregate_mean(x))
        assert aggregate(x, "median") == pytest.approx(metrics.aggregate_median(x))
        assert optimality_gap(x, 0.5) == pytest.approx(metrics.aggregate_optimality_gap(x, 0.5))
        assert probability_of_improvement(x, y) == pytest.approx(
            metrics.probability_of_improvement(x, y)
        )


# --- stratified bootstrap ----------------------------------------------------------------------


def _disjoint_tasks(n_runs: int = 6) -> np.ndarray:
    """Task t's scores lie in [100 t, 100 t + 1): any mixing of tasks would show."""
    rng = np.random.default_rng(5)
    return rng.uniform(size=(n_runs, 3)) + 100.0 * np.arange(3)


def test_stratified_bootstrap_never_mixes_tasks():
    scores = _disjoint_tasks()
    resamples = stratified_resamples(scores, n_resamples=2000, rng=0)
    assert resamples.shape == (2000, 6, 3)
    for t in range(3):
        assert np.isin(resamples[:, :, t], scores[:, t]).all()
    low, high = scores.min(axis=0), scores.max(axis=0)
    # Each resample's aggregates stay within what per-task resampling allows.
    means = resamples.mean(axis=(1, 2))
    assert (means >= low.mean()).all() and (means <= high.mean()).all()
    medians = np.median(resamples.mean(axis=1), axis=1)  # always the middle task's mean
    assert (medians >= low[1]).all() and (medians <= high[1]).all()
    # The intervals do too; the mean's is well inside (a pooled bootstrap would reach 0 or 201).
    estimates = {
        name: interval_estimates({"p": scores}, name, n_resamples=2000, rng=0)["p"]
        for name in ("mean", "median")
    }
    assert low.mean() <= estimates["mean"].low < estimates["mean"].high <= high.mean()
    assert low[1] <= estimates["median"].low < estimates["median"].high <= high[1]


def test_stratified_interval_covers_the_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    task_means = np.array([0.0, 5.0, 10.0])
    covered = 0
    for _ in range(400):
        scores = rng.normal(task_means, [1.0, 2.0, 0.5], size=(20, 3))
        estimate = interval_estimates({"p": scores}, "mean", n_resamples=1000, rng=rng)["p"]
        covered += estimate.low <= task_means.mean() <= estimate.high
    assert 0.90 <= covered / 400 <= 0.98


def test_interval_estimates_per_policy_and_seeded():
    rng = np.random.default_rng(2)
    scores = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=(8, 2)), "c": [[1.0, 2.0]]}
    first = interval_estimates(scores, "iqm", n_resamples=300, rng=7)
    again = interval_estimates(scores, "iqm", n_resamples=300, rng=np.random.default_rng(7))
    assert first == again
    assert [first[p].n for p in "abc"] == [3, 8, 1]
    assert [first[p].reliable for p in "abc"] == [False, True, False]
    assert not first["c"].has_interval and first["c"].point == pytest.approx(1.5)
    for p in "ab":
        assert first[p].point == pytest.approx(iqm(scores[p]))
        assert first[p].low <= first[p].high


# --- paired differences --------------------------------------------------------------------------


def test_paired_difference_is_the_mean_of_per_seed_differences():
    a = {0: 10.0, 1: 12.0, 2: 15.0}
    b = {2: 11.0, 0: 8.0, 1: 11.0}  # order does not matter: seeds are matched
    estimate = paired_difference(a, b, n_resamples=1000, rng=0)
    assert estimate.point == pytest.approx((2 + 1 + 4) / 3)
    assert 1.0 <= estimate.low <= estimate.high <= 4.0
    assert estimate.n == 3 and not estimate.reliable
    five = paired_difference({s: s + 1.0 for s in range(5)}, {s: 0.5 * s for s in range(5)})
    assert five.point == pytest.approx(np.mean([1 + 0.5 * s for s in range(5)]))
    assert five.reliable
    one = paired_difference({7: 3.0}, {7: 1.0})
    assert one.point == 2.0 and not one.has_interval


def test_paired_difference_refuses_different_seed_sets():
    with pytest.raises(ValueError, match=r"same seeds.*only in a \[3\], only in b \[4\]"):
        paired_difference({0: 1.0, 1: 2.0, 3: 3.0}, {0: 1.0, 1: 2.0, 4: 3.0})


# --- the reliability rule ------------------------------------------------------------------------


def test_reliability_rule_by_number_of_seeds():
    assert MIN_RELIABLE_RUNS == 5
    one = mean_estimate([412.3])
    assert (one.low, one.high, one.has_interval, one.reliable) == (None, None, False, False)
    assert one.format() == "412.3 (1 seed: no interval)"
    three = mean_estimate([400.0, 410.0, 420.0])
    assert three.has_interval and not three.reliable
    assert three.format().endswith("(n=3: unreliable)")
    assert 400.0 <= three.low <= three.high <= 420.0
    five = mean_estimate([400.0, 405.0, 410.0, 415.0, 420.0])
    assert five.reliable and "unreliable" not in five.format()


@pytest.mark.parametrize(
    ("estimate", "text"),
    [
        (Estimate(412.3, 400.1, 420.0, 5), "412.3 [400.1, 420.0]"),
        (Estimate(412.3, 400.1, 420.0, 3), "412.3 [400.1, 420.0] (n=3: unreliable)"),
        (Estimate(412.3, None, None, 1), "412.3 (1 seed: no interval)"),
    ],
)
def test_estimate_format(estimate, text):
    assert estimate.format() == text
    assert str(estimate) == text


def test_estimate_format_spec():
    assert Estimate(0.61234, 0.5, 0.7, 10).format(".1%") == "61.2% [50.0%, 70.0%]"
    assert Estimate(0.5, 0.4, 0.6, 4).format_interval(".2f") == "[0.40, 0.60] (n=4: unreliable)"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"point": 1.0, "low": None, "high": None, "n": 0}, "n must be a positive integer"),
        ({"point": 1.0, "low": None, "high": None, "n": True}, "n must be a positive integer"),
        ({"point": 1.0, "low": 0.0, "high": 2.0, "n": 1}, "low and high must be None"),
        ({"point": 1.0, "low": None, "high": None, "n": 3}, "low and high are required"),
        ({"point": 1.0, "low": 2.0, "high": 0.0, "n": 3}, "low must be <= high"),
        ({"point": 1.0, "low": 0.0, "high": 2.0, "n": 3, "confidence": 1.0}, "confidence"),
    ],
)
def test_estimate_rejects_inconsistent_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Estimate(**kwargs)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: iqm([]), "scores must be a non-empty"),
        (lambda: iqm(np.ones((2, 2, 2))), "scores must be a non-empty"),
        (lambda: iqm([1.0, np.nan]), "scores must be finite"),
        (lambda: aggregate([1.0], "max"), "aggregate must be one of"),
        (lambda: interval_estimates({}), "scores must hold at least one policy"),
        (lambda: interval_estimates({"p": [1.0, np.inf]}), r"scores\['p'\] must be finite"),
        (lambda: interval_estimates({"p": [1.0, 2.0]}, n_resamples=0), "n_resamples"),
        (lambda: interval_estimates({"p": [1.0, 2.0]}, confidence=1.5), "confidence"),
        (lambda: interval_estimates({"p": [1.0, 2.0]}, rng=-1), "rng"),
        (lambda: stratified_resamples([1.0, 2.0], n_resamples=-3), "n_resamples"),
        (lambda: probability_of_improvement(np.ones((2, 2)), np.ones((2, 3))), "same number"),
        (lambda: improvement_probabilities({"a": [1.0]}), "pairs must hold at least one"),
        (lambda: improvement_probabilities({"a": [1.0]}, [("a", "z")]), "'z'"),
        (lambda: mean_estimate([[1.0, 2.0]]), "values must be a non-empty 1-D"),
        (lambda: paired_difference({0: 1.0}, {0: np.nan}), "finite"),
    ],
)
def test_bad_inputs_name_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_public_names_exist_and_are_documented():
    import inspect

    for name in stats.__all__:
        assert hasattr(stats, name), name
        value = getattr(stats, name)
        if callable(value):
            doc = inspect.getdoc(value)
            assert doc and doc.strip(), f"{name} has no docstring"
    # The constants the docstrings promise: every aggregate name is accepted by ``aggregate``.
    for name in stats.AGGREGATES:
        assert np.isfinite(aggregate([1.0, 2.0, 3.0], name, gamma=2.0)), name
