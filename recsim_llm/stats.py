"""Statistics that hold with few seeds: IQM, stratified bootstrap, probability of improvement.

The definitions follow rliable (Agarwal et al., 2021, "Deep RL at the edge of the statistical
precipice"); only NumPy is used. Scores are ``(n_runs, n_tasks)`` matrices: one row per run
(a seed here), one column per task (a scenario here). A 1-D array is one task.

Every interval is an ``Estimate``, which carries the number of runs it rests on and the
reliability rule: with one run there is no interval at all; with fewer than
``MIN_RELIABLE_RUNS`` runs a percentile bootstrap interval is little more than the range of the
runs (with 3 runs it is nearly [min, max]) and is flagged unreliable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "AGGREGATES",
    "MIN_RELIABLE_RUNS",
    "Estimate",
    "aggregate",
    "improvement_probabilities",
    "interval_estimates",
    "iqm",
    "mean_estimate",
    "optimality_gap",
    "paired_difference",
    "probability_of_improvement",
    "stratified_resamples",
]

MIN_RELIABLE_RUNS = 5
"""Intervals resting on fewer runs (seeds) than this are flagged unreliable."""

AGGREGATES = ("mean", "median", "iqm", "optimality_gap")
"""Aggregate names accepted by ``aggregate`` and ``interval_estimates`` (rliable's)."""

# Upper bound on the floats one vectorised chunk of bootstrap resamples holds.
_CHUNK_ELEMENTS = 4_000_000

RngLike = np.random.Generator | int


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval and the number of runs behind it.

    ``low`` and ``high`` are ``None`` exactly when ``n == 1`` (one run gives no interval).
    """

    point: float
    """The statistic on the observed runs."""
    low: float | None
    """Lower end of the percentile bootstrap interval (``None`` with one run)."""
    high: float | None
    """Upper end of the percentile bootstrap interval (``None`` with one run)."""
    n: int
    """Runs (seeds) behind the estimate; for a comparison, the smaller side's."""
    confidence: float = 0.95
    """Nominal coverage of the interval, in (0, 1)."""

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise ValueError(f"n must be a positive integer, got {self.n!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.n == 1:
            if self.low is not None or self.high is not None:
                raise ValueError("low and high must be None when n == 1 (one run: no interval)")
        elif self.low is None or self.high is None:
            raise ValueError(f"low and high are required when n >= 2, got n={self.n}")
        elif not self.low <= self.high:
            raise ValueError(f"low must be <= high, got low={self.low}, high={self.high}")

    @property
    def has_interval(self) -> bool:
        """Whether there is an interval (more than one run)."""
        return self.n > 1

    @property
    def reliable(self) -> bool:
        """Whether the interval rests on at least ``MIN_RELIABLE_RUNS`` runs."""
        return self.n >= MIN_RELIABLE_RUNS

    def format_interval(self, spec: str = ".1f") -> str:
        """The interval part alone: ``[low, high]``, flagged when unreliable; or why none."""
        if not self.has_interval:
            return "(1 seed: no interval)"
        text = f"[{self.low:{spec}}, {self.high:{spec}}]"
        return text if self.reliable else f"{text} (n={self.n}: unreliable)"

    def format(self, spec: str = ".1f") -> str:
        """``412.3 [400.1, 420.0]``, ``... (n=3: unreliable)`` or ``412.3 (1 seed: no interval)``.

        Args:
            spec: a format spec applied to every number (``".3f"``, ``".1%"``).
        """
        return f"{self.point:{spec}} {self.format_interval(spec)}"

    def __str__(self) -> str:
        return self.format()


# --- checks ---------------------------------------------------------------------------------


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _check_resamples(n_resamples: int) -> None:
    if (
        isinstance(n_resamples, bool)
        or not isinstance(n_resamples, (int, np.integer))
        or n_resamples < 1
    ):
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def _generator(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)) or rng < 0:
        raise ValueError(f"rng must be a numpy Generator or a non-negative int seed, got {rng!r}")
    return np.random.default_rng(int(rng))


def _scores(values: ArrayLike, name: str) -> np.ndarray:
    """A finite float ``(n_runs, n_tasks)`` matrix; a 1-D array is one task."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"{name} must be a non-empty (n_runs, n_tasks) array or a 1-D array of runs, "
            f"got shape {np.shape(values)}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite")
    return x


def _runs(values: ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite")
    return x


# --- aggregates (batched over a leading resample axis) ----------------------------------------


def _trimmed_mean_flat(flat: np.ndarray) -> np.ndarray:
    """25% trimmed mean of each row of ``(batch, size)``, cut as scipy.stats.trim_mean cuts."""
    size = flat.shape[-1]
    cut = int(0.25 * size)
    ordered = np.sort(flat, axis=-1)
    return ordered[:, cut : size - cut].mean(axis=-1)


def _batched_aggregate(name: str, gamma: float | None) -> Callable[[np.ndarray], np.ndarray]:
    """``f(batch (B, n_runs, n_tasks)) -> (B,)`` for an aggregate name."""
    if name not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {name!r}")
    if name == "optimality_gap":
        if gamma is None or not np.isfinite(gamma):
            raise ValueError(
                "gamma (the score counted as optimal) is required and must be finite for "
                f"aggregate 'optimality_gap', got {gamma!r}"
            )
        g = float(gamma)
        return lambda b: g - np.minimum(b, g).mean(axis=(1, 2))
    if name == "mean":
        # Mean of task means; every task has the same number of runs, so the overall mean.
        return lambda b: b.mean(axis=1).mean(axis=1)
    if name == "median":
        return lambda b: np.median(b.mean(axis=1), axis=1)
    return lambda b: _trimmed_mean_flat(b.reshape(b.shape[0], -1))


def iqm(scores: ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50% of all run (and task) scores.

    rliable's definition, ``scipy.stats.trim_mean(scores, 0.25, axis=None)``: the flattened
    scores are sorted and ``int(0.25 * size)`` are cut from each end (so up to 3 values nothing
    is cut).
    """
    return float(_trimmed_mean_flat(_scores(scores, "scores").reshape(1, -1))[0])


def optimality_gap(scores: ArrayLike, gamma: float) -> float:
    """``gamma`` minus the mean of the scores clipped at ``gamma`` (how far below optimal)."""
    x = _scores(scores, "scores")
    return float(_batched_aggregate("optimality_gap", gamma)(x[None])[0])


def aggregate(scores: ArrayLike, name: str = "iqm", gamma: float | None = None) -> float:
    """An aggregate of a ``(n_runs, n_tasks)`` score matrix, as rliable defines it.

    Args:
        scores: one row per run, one column per task (a 1-D array is one task).
        name: ``"mean"`` (of task means), ``"median"`` (of task means), ``"iqm"`` (over all
            run-task scores) or ``"optimality_gap"``.
        gamma: the optimal score, required for ``"optimality_gap"``.
    """
    x = _scores(scores, "scores")
    return float(_batched_aggregate(name, gamma)(x[None])[0])


# --- bootstrap ---------------------------------------------------------------------------------


def _chunks(n_resamples: int, per_resample: int) -> list[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(1, per_resample))
    return [slice(i, min(i + step, n_resamples)) for i in range(0, n_resamples, step)]


def _interval(stats: np.ndarray, point: float, n: int, confidence: float) -> Estimate:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Estimate(float(point), float(low), float(high), int(n), confidence)


def _run_indices(n_runs: int, n_tasks: int, n_resamples: int, rng: np.random.Generator):
    """Run indices ``(n_resamples, n_runs, n_tasks)``: each task's runs resampled on their own."""
    return rng.integers(n_runs, size=(n_resamples, n_runs, n_tasks))


def stratified_resamples(
    scores: ArrayLike, n_resamples: int = 1000, rng: RngLike = 0
) -> np.ndarray:
    """Bootstrap resamples of a score matrix, stratified by task.

    Runs are drawn with replacement within each task column independently, so a resample's
    column ``t`` only ever holds task ``t``'s scores (tasks are never mixed; the set of tasks
    is fixed). rliable's ``StratifiedBootstrap`` with ``task_bootstrap=False``.

    Returns:
        ``(n_resamples, n_runs, n_tasks)`` resampled scores.
    """
    x = _scores(scores, "scores")
    _check_resamples(n_resamples)
    idx = _run_indices(*x.shape, n_resamples, _generator(rng))
    return x[idx, np.arange(x.shape[1])]


def interval_estimates(
    scores: Mapping[str, ArrayLike],
    aggregate: str = "iqm",
    *,
    gamma: float | None = None,
    confidence: float = 0.95,
    n_resamples: int = 5000,
    rng: RngLike = 0,
) -> dict[str, Estimate]:
    """Per policy, an aggregate with a stratified percentile bootstrap interval.

    As rliable's ``get_interval_estimates``: each policy's runs are resampled within each task
    (``stratified_resamples``), the aggregate is computed on every resample, and the interval is
    the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those values.

    Args:
        scores: policy -> ``(n_runs, n_tasks)`` scores (a 1-D array is one task).
        aggregate: one of ``AGGREGATES``.
        gamma: the optimal score, required for ``"optimality_gap"``.
        confidence: nominal coverage of the interval.
        n_resamples: bootstrap resamples per policy.
        rng: a ``np.random.Generator``, or an int seed for a fresh one; policies draw from it
            in the mapping's order.

    Returns:
        policy -> ``Estimate`` (``n`` = runs; one run: no interval).
    """
    _check_confidence(confidence)
    _check_resamples(n_resamples)
    if not scores:
        raise ValueError("scores must hold at least one policy")
    fn = _batched_aggregate(aggregate, gamma)
    matrices = {policy: _scores(v, f"scores[{policy!r}]") for policy, v in scores.items()}
    generator = _generator(rng)
    result = {}
    for policy, x in matrices.items():
        n_runs, n_tasks = x.shape
        point = float(fn(x[None])[0])
        if n_runs == 1:
            result[policy] = Estimate(point, None, None, 1, confidence)
            continue
        idx = _run_indices(n_runs, n_tasks, n_resamples, generator)
        columns = np.arange(n_tasks)
        stats = np.concatenate([fn(x[idx[part], columns]) for part in _chunks(n_resamples, x.size)])
        result[policy] = _interval(stats, point, n_runs, confidence)
    return result


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 per batch row: ``x (B, n)``, ``y (B, m)`` -> ``(B,)``."""
    diff = x[:, :, None] - y[:, None, :]
    return (diff > 0).mean(axis=(1, 2)) + 0.5 * (diff == 0).mean(axis=(1, 2))


def probability_of_improvement(scores_x: ArrayLike, scores_y: ArrayLike) -> float:
    """P(X > Y): per task the Mann–Whitney U statistic over ``n * m``, averaged over tasks.

    rliable's definition: for each task, the share of (run of X, run of Y) pairs in which X
    scores higher, ties counting one half; then the mean over tasks. 1 when X beats Y in every
    pair, 0.5 for identical samples.

    Args:
        scores_x: ``(n_runs_x, n_tasks)`` scores of X (a 1-D array is one task).
        scores_y: ``(n_runs_y, n_tasks)`` scores of Y, the same tasks in the same order.
    """
    x = _scores(scores_x, "scores_x")
    y = _scores(scores_y, "scores_y")
    _check_same_tasks(x, y, "scores_x", "scores_y")
    return float(
        np.mean([_improvement(x[None, :, t], y[None, :, t])[0] for t in range(x.shape[1])])
    )


def _check_same_tasks(x: np.ndarray, y: np.ndarray, name_x: str, name_y: str) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{name_x} and {name_y} must have the same number of tasks (columns), "
            f"got {x.shape[1]} and {y.shape[1]}"
        )


def improvement_probabilities(
    scores: Mapping[str, ArrayLike],
    pairs: Sequence[tuple[str, str]] | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = 5000,
    rng: RngLike = 0,
) -> dict[tuple[str, str], Estimate]:
    """P(X > Y) for policy pairs with a stratified bootstrap interval.

    For every resample, X's runs and Y's runs are each redrawn within every task, independently
    (rliable's ``StratifiedIndependentBootstrap``), and ``probability_of_improvement`` is
    recomputed.

    Args:
        scores: policy -> ``(n_runs, n_tasks)`` scores; every policy has the same tasks.
        pairs: ``(x, y)`` policy names; by default every pair in the mapping's order.
        confidence: nominal coverage of the interval.
        n_resamples: bootstrap resamples per pair.
        rng: a ``np.random.Generator`` or an int seed; pairs draw from it in order.

    Returns:
        ``(x, y)`` -> ``Estimate`` of P(X > Y), ``n`` = the smaller of the two run counts
        (no interval when either has one run).
    """
    _check_confidence(confidence)
    _check_resamples(n_resamples)
    matrices = {policy: _scores(v, f"scores[{policy!r}]") for policy, v in scores.items()}
    if pairs is None:
        pairs = list(combinations(matrices, 2))
    if not pairs:
        raise ValueError("pairs must hold at least one (x, y) pair (or scores two policies)")
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"pairs must hold (x, y) name pairs, got {pair!r}")
        for name in pair:
            if name not in matrices:
                raise ValueError(
                    f"pairs names policy {name!r}, which is not in scores {sorted(matrices)}"
                )
    generator = _generator(rng)
    result = {}
    for name_x, name_y in pairs:
        x, y = matrices[name_x], matrices[name_y]
        _check_same_tasks(x, y, f"scores[{name_x!r}]", f"scores[{name_y!r}]")
        point = probability_of_improvement(x, y)
        n = min(x.shape[0], y.shape[0])
        if n == 1:
            # One run on either side: the rule gives no interval, whatever the other side has.
            result[(name_x, name_y)] = Estimate(point, None, None, 1, confidence)
            continue
        n_tasks = x.shape[1]
        idx_x = _run_indices(x.shape[0], n_tasks, n_resamples, generator)
        idx_y = _run_indices(y.shape[0], n_tasks, n_resamples, generator)
        per_task = np.empty((n_resamples, n_tasks))
        for t in range(n_tasks):
            for part in _chunks(n_resamples, x.shape[0] * y.shape[0]):
                per_task[part, t] = _improvement(x[idx_x[part, :, t], t], y[idx_y[part, :, t], t])
        result[(name_x, name_y)] = _interval(per_task.mean(axis=1), point, n, confidence)
    return result


# --- one task, runs as seeds -------------------------------------------------------------------


def _bootstrap_means(x: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` resamples of ``x`` with replacement (the draws ``bootstrap_ci``
    has always made, so its numbers are unchanged)."""
    return np.concatenate(
        [
            x[rng.integers(x.size, size=(part.stop - part.start, x.size))].mean(axis=1)
            for part in _chunks(n_resamples, x.size)
        ]
    )


def mean_estimate(
    values: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 5000,
    rng: RngLike = 0,
) -> Estimate:
    """The mean of per-seed values with a percentile bootstrap interval over seeds.

    One value gives no interval; fewer than ``MIN_RELIABLE_RUNS`` an unreliable one.
    """
    x = _runs(values, "values")
    _check_confidence(confidence)
    _check_resamples(n_resamples)
    generator = _generator(rng)
    if x.size == 1:
        return Estimate(float(x[0]), None, None, 1, confidence)
    return _interval(_bootstrap_means(x, n_resamples, generator), x.mean(), x.size, confidence)


def paired_difference(
    a: Mapping[int, float],
    b: Mapping[int, float],
    *,
    confidence: float = 0.95,
    n_resamples: int = 5000,
    rng: RngLike = 0,
) -> Estimate:
    """Mean over common seeds of ``a[seed] - b[seed]``, with a bootstrap interval over seeds.

    Pairing removes what the seeds share (the same users, the same candidates), so the
    interval of the difference is usually much narrower than the two intervals side by side.

    Args:
        a: seed -> value of policy A (e.g. its mean session return on that seed).
        b: seed -> value of policy B on the same seeds.

    Raises:
        ValueError: when the two seed sets differ (naming the seeds only one side has).
    """
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    if only_a or only_b:
        raise ValueError(
            "a and b must hold the same seeds for a paired difference: "
            f"only in a {only_a}, only in b {only_b}"
        )
    seeds = sorted(a)
    diffs = _runs([float(a[s]) - float(b[s]) for s in seeds], "a - b")
    return mean_estimate(diffs, confidence=confidence, n_resamples=n_resamples, rng=rng)
