"""A world calibrated on MovieLens-100K: real movies, fitted hidden tastes, fitted behaviour.

The pipeline, all NumPy and seeded:

1. **Split** each user's ratings by time: the last ``test_fraction`` are held out
   (``time_split``). A seeded ``cold_user_fraction`` of users is also kept out of the item fit:
   their tastes are folded in from their own training ratings with the items fixed, so they
   enter the simulator as cold-start users the item model never saw.
2. **Tastes**: logistic matrix factorisation of implicit feedback (rated = 1, not rated = 0) on
   the unit sphere, full batch on the dense user x movie matrix:
   ``logit P(u rates i) = scale * cos(theta_u, phi_i) + bias_i``.
3. **World mapping**: the world's interest space has one more dimension than the fit, a constant
   coordinate shared by users and items, so that the world's ``match`` (a cosine) is
   ``offset + (1 - offset) * cos``. Then ``match_weight = scale / (1 - offset)``, appeal is the
   normalised item bias, ``appeal_weight`` its range, and ``no_click_base`` is set so that a user
   shown a single movie clicks it with the fitted probability that they rated it.
4. **Ratings**: ``rating = clip(round(1 + 4 * quality * match + noise), 1, 5)`` as in the world;
   per-movie ``quality`` by shrunk least squares, ``offset`` and ``rating_noise`` by maximum
   likelihood of the ordinal model on the training ratings.
5. **Activity and churn**: each user's initial satisfaction is set so that, under a logging
   protocol of random slates, the expected number of consumptions before churning matches the
   user's real activity over a period as long as the held-out one.
6. **New movies** (rated only in the held-out period) arrive during a run; their hidden vectors,
   bias and quality are predicted from genres and release year (ridge regression).

``calibrate(data_dir)`` caches the fit per data directory (in process, and optionally on disk in
``cache_dir``, written atomically), so creating an env after the first fit is fast.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm import text
from recsim_llm.config import (
    CatalogConfig,
    ChoiceConfig,
    DynamicsConfig,
    ResponseConfig,
    UserConfig,
    WorldConfig,
)
from recsim_llm.movielens import GENRES, GROUPLENS_FILES, RECBOLE_FILES, MovieLens, load_movielens
from recsim_llm.results import share_file_mode
from recsim_llm.world import Catalog, NewUsers, World, item_utility, no_click_utility

__all__ = [
    "TOPIC_GENRES",
    "Calibration",
    "CalibrationConfig",
    "CalibrationFit",
    "MovieLensUserSampler",
    "build_calibration",
    "calibrate",
    "clear_cache",
    "fit_calibration",
    "simulate_logging",
    "time_split",
]

WORLD_DIM = 16
"""Interest-space dimension of the calibrated world (the catalog's ``n_topics``)."""

TOPIC_GENRES: tuple[str, ...] = (
    "Drama", "Comedy", "Thriller", "Action", "Romance", "Adventure", "Children's", "Crime",
    "Sci-Fi", "Horror", "War", "Mystery", "Musical", "Documentary", "Animation", "other",
)
"""Boredom topics: the 15 most common MovieLens genres, then 'other' (Western, Film-Noir,
Fantasy, unknown). A movie's topic is its first listed genre."""

CACHE_VERSION = 1


@dataclass(frozen=True)
class CalibrationConfig:
    """How the MovieLens world is fitted."""

    test_fraction: float = 0.2
    """Share of each user's ratings, the latest, held out (time-based split)."""
    cold_user_fraction: float = 0.1
    """Share of users kept out of the item fit; they become cold-start users."""
    latent_dim: int = 15
    """Dimension of the fitted taste vectors (the world adds one constant coordinate)."""
    iterations: int = 150
    """Full-batch Adam steps of the logistic factorisation."""
    learning_rate: float = 0.05
    """Adam step size."""
    bias_l2: float = 1e-4
    """L2 penalty on the item biases (per entry of the loss mean)."""
    quality_prior: float = 5.0
    """Pseudo-ratings shrinking each movie's quality toward the global fit."""
    logging_slate_size: int = 10
    """Random movies shown per step by the logging protocol used to fit churn (and fidelity)."""
    satisfaction_rate: float = 0.02
    """Step of satisfaction per unit of (consumed value - its training mean)."""
    boredom_weight: float = 0.5
    """Utility lost per unit of genre boredom (not identifiable from ratings; a mild default)."""
    position_bias: float = 0.5
    """Utility lost per log(1 + position) (not identifiable from ratings; the world default)."""
    filter_bubble_rate: float = 0.0
    """Step of a user's interest toward a consumed movie. Not identifiable from ratings, and 0
    by default: because the world's match weight is large, even 0.01 per click pulls users'
    consumption toward the long tail (popularity Gini 0.26 instead of 0.55 in the fidelity
    protocol)."""
    drift_std: float = 0.0
    """Random walk of interests per step; 0 because fitted tastes are sharp: the world's match
    weight is large, so even small drift would wash them out within a session."""
    activity_shrink: tuple[float, ...] = (0.4, 0.7, 1.0)
    """Exponents tried for shrinking each user's target activity toward the mean (1 = none).
    Churn is a per-step coin, which adds geometric spread on top of the users' differences;
    the exponent whose simulated activity distribution is closest (KS) to the training one wins.
    Empty: no simulation-based refinement (faster, activity less faithful)."""
    new_items_per_step: int = 2
    """New movies arriving per world step, in order of release year (then movie id)."""
    seed: int = 0
    """Seed of the factorisation's initialisation and the cold-user draw."""

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, allowed: str) -> None:
            if not ok:
                raise ValueError(
                    f"calibration.{name} must be {allowed}, got {getattr(self, name)!r}"
                )

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        tf = self.test_fraction
        check("test_fraction", is_num(tf) and 0.0 < tf < 1.0, "in (0, 1)")
        cf = self.cold_user_fraction
        check("cold_user_fraction", is_num(cf) and 0.0 <= cf < 1.0, "in [0, 1)")
        ld = self.latent_dim
        check("latent_dim", is_int(ld) and 2 <= ld <= WORLD_DIM - 1, f"in [2, {WORLD_DIM - 1}]")
        check("iterations", is_int(self.iterations) and self.iterations >= 1, "an integer >= 1")
        lr = self.learning_rate
        check("learning_rate", is_num(lr) and 0.0 < lr <= 1.0, "in (0, 1]")
        check("bias_l2", is_num(self.bias_l2) and self.bias_l2 >= 0.0, ">= 0")
        check("quality_prior", is_num(self.quality_prior) and self.quality_prior >= 0.0, ">= 0")
        ls = self.logging_slate_size
        check("logging_slate_size", is_int(ls) and ls >= 1, "an integer >= 1")
        sr = self.satisfaction_rate
        check("satisfaction_rate", is_num(sr) and 0.0 <= sr <= 1.0, "in [0, 1]")
        bw = self.boredom_weight
        check("boredom_weight", is_num(bw) and 0.0 <= bw <= 100.0, "in [0, 100]")
        pb = self.position_bias
        check("position_bias", is_num(pb) and 0.0 <= pb <= 100.0, "in [0, 100]")
        fb = self.filter_bubble_rate
        check("filter_bubble_rate", is_num(fb) and 0.0 <= fb <= 1.0, "in [0, 1]")
        ds = self.drift_std
        check("drift_std", is_num(ds) and 0.0 <= ds <= 10.0, "in [0, 10]")
        shrink = self.activity_shrink
        check(
            "activity_shrink",
            isinstance(shrink, tuple) and all(is_num(g) and 0.0 <= g <= 1.0 for g in shrink),
            "a tuple of numbers in [0, 1]",
        )
        ni = self.new_items_per_step
        check("new_items_per_step", is_int(ni) and ni >= 1, "an integer >= 1")
        check("seed", is_int(self.seed) and self.seed >= 0, "an integer >= 0")


# -- split ---------------------------------------------------------------------------------------


def time_split(user: np.ndarray, timestamp: np.ndarray, test_fraction: float) -> np.ndarray:
    """Boolean mask of held-out ratings: each user's latest ``round(test_fraction * n)``.

    Ties in time keep file order. Users with a single rating keep it in training.
    """
    n = user.shape[0]
    order = np.lexsort((np.arange(n), timestamp, user))
    counts = np.bincount(user)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(n) - starts[user[order]]
    n_test = np.floor(test_fraction * counts + 0.5).astype(np.int64)
    n_test = np.where(counts >= 2, np.clip(n_test, 1, counts - 1), 0)
    is_test = np.zeros(n, dtype=bool)
    is_test[order] = rank >= (counts - n_test)[user[order]]
    return is_test


# -- fitting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationFit:
    """Everything fitted: plain arrays and numbers (what the on-disk cache stores)."""

    is_test: np.ndarray
    """(n_ratings,) held-out flag of each rating."""
    cold_user: np.ndarray
    """(n_users,) users kept out of the item fit."""
    known_item: np.ndarray
    """(n_movies,) movies with training ratings from fitted users (the rest are new items)."""
    user_vec: np.ndarray
    """(n_users, latent_dim) unit taste vectors."""
    item_vec: np.ndarray
    """(n_movies, latent_dim) unit movie vectors (predicted from content for new movies)."""
    item_bias: np.ndarray
    """(n_movies,) logit bias of being rated."""
    quality: np.ndarray
    """(n_movies,) quality in [0, 1]."""
    satisfaction: np.ndarray
    """(n_users,) initial satisfaction (encodes activity through churn)."""
    scalars: dict[str, float]
    """scale, offset, rating_noise, value_reference, churn_base, churn_max, churn_threshold,
    churn_width, no_click_base, final_loss, ..."""


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class _Adam:
    def __init__(self, lr: float) -> None:
        self.lr, self.t = lr, 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = 0.9, 0.999
        for name, g in grads.items():
            m = self.m.setdefault(name, np.zeros_like(g))
            v = self.v.setdefault(name, np.zeros_like(g))
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            mhat = m / (1 - b1**self.t)
            vhat = v / (1 - b2**self.t)
            params[name] -= self.lr * mhat / (np.sqrt(vhat) + 1e-8)


def _fit_logistic_mf(
    y: np.ndarray, warm: np.ndarray, config: CalibrationConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Logistic MF on the unit sphere; returns user vecs, item vecs, biases, scale, loss.

    ``y`` is the dense (n_users, n_items) 0/1 matrix. Rows of cold users (``~warm``) move only
    their own vectors: the item side (vectors, biases, scale) learns from warm rows alone.
    """
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x3F]))
    n_users, n_items = y.shape
    d = config.latent_dim
    freq = np.clip(y[warm].mean(axis=0), 1e-4, 1 - 1e-4)
    params = {
        "u": _normalise(rng.normal(size=(n_users, d))),
        "v": _normalise(rng.normal(size=(n_items, d))),
        "b": np.log(freq / (1 - freq)),
        "s": np.array([1.0]),
    }
    opt = _Adam(config.learning_rate)
    n_warm_entries = float(warm.sum() * n_items)
    loss = math.nan
    wmask = warm[:, None].astype(np.float64)
    y = y.astype(np.float64)
    for _ in range(config.iterations):
        u, v, b, s = params["u"], params["v"], params["b"], float(params["s"][0])
        # float64 throughout: in float32 the fit (and everything simulated from it) changed with
        # the number of BLAS threads.
        cos = u @ v.T
        z = s * cos + b[None, :]
        g = _sigmoid(z)
        g -= y
        g *= 1.0 / n_warm_entries
        g_warm = g * wmask
        grad_u = s * (g @ v)
        grad_u -= np.sum(grad_u * u, axis=1, keepdims=True) * u
        grad_v = s * (g_warm.T @ u)
        grad_v -= np.sum(grad_v * v, axis=1, keepdims=True) * v
        grad_b = g_warm.sum(axis=0, dtype=np.float64) + 2.0 * config.bias_l2 * b
        grad_s = np.array([np.sum(g_warm * cos, dtype=np.float64)])
        opt.step(params, {"u": grad_u, "v": grad_v, "b": grad_b, "s": grad_s})
        params["u"] = _normalise(params["u"])
        params["v"] = _normalise(params["v"])
    u, v, b, s = params["u"], params["v"], params["b"], float(params["s"][0])
    z = s * (u[warm] @ v.T) + b[None, :]
    yw = y[warm].astype(np.float64)
    loss = float(np.mean(np.logaddexp(0.0, z) - yw * z))
    return u, v, b, s, loss


def _content_features(data: MovieLens) -> np.ndarray:
    """(n_movies, f) genre one-hot, standardised year (0 where unknown), unknown-year flag, 1."""
    n = len(data.movies)
    genre = np.zeros((n, len(GENRES)))
    index = {g: k for k, g in enumerate(GENRES)}
    for i, names in enumerate(data.movies.genres):
        for g in names:
            genre[i, index[g]] = 1.0
    years = data.movies.years.astype(np.float64)
    known = years > 0
    mean = years[known].mean() if known.any() else 0.0
    std = years[known].std() if known.sum() > 1 else 1.0
    z = np.where(known, (years - mean) / max(std, 1e-9), 0.0)
    return np.column_stack([genre, z, z * z, (~known).astype(np.float64), np.ones(n)])


def _ridge(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> np.ndarray:
    a = x.T @ x + l2 * np.eye(x.shape[1])
    return np.linalg.solve(a, x.T @ y)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz & Stegun 7.1.26 erf, error < 2e-7), NumPy only."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _rating_probabilities(mean: np.ndarray, noise: float) -> np.ndarray:
    """(n, 5) P(rating = 1..5) of clip(round(mean + noise * N(0, 1)), 1, 5)."""
    cuts = np.array([1.5, 2.5, 3.5, 4.5])
    cdf = _normal_cdf((cuts[None, :] - mean[:, None]) / max(noise, 1e-6))
    n = mean.shape[0]
    cdf = np.concatenate([np.zeros((n, 1)), cdf, np.ones((n, 1))], axis=1)
    return np.clip(np.diff(cdf, axis=1), 1e-12, 1.0)


def _fit_quality(
    match: np.ndarray, item: np.ndarray, rating: np.ndarray, n_items: int, prior: float
) -> tuple[np.ndarray, float]:
    """Per-item quality by shrunk least squares of (rating - 1) / 4 on match; global q0."""
    target = (rating - 1.0) / 4.0
    q0 = float(np.clip(np.sum(match * target) / max(np.sum(match * match), 1e-12), 0.0, 1.0))
    num = np.bincount(item, weights=match * target, minlength=n_items) + prior * q0
    den = np.bincount(item, weights=match * match, minlength=n_items) + prior
    return np.clip(num / den, 0.0, 1.0), q0


def _fit_rating_model(
    cos: np.ndarray, item: np.ndarray, rating: np.ndarray, n_items: int, prior: float,
    offsets: tuple[float, ...] = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8),
) -> tuple[float, float, np.ndarray, float]:
    """(offset, rating_noise, quality, log-likelihood) maximising the ordinal likelihood."""
    best: tuple[float, float, np.ndarray, float] | None = None
    # A fixed subsample keeps the grid search fast; the estimate is of two scalars.
    idx = np.arange(0, rating.shape[0], max(1, rating.shape[0] // 20000))
    r_idx = rating[idx].astype(np.int64) - 1
    for offset in offsets:
        match = np.clip(offset + (1.0 - offset) * cos, 0.0, 1.0)
        quality, _ = _fit_quality(match, item, rating, n_items, prior)
        mean = 1.0 + 4.0 * quality[item[idx]] * match[idx]
        for noise in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4):
            probs = _rating_probabilities(mean, noise)
            ll = float(np.mean(np.log(probs[np.arange(idx.size), r_idx])))
            if best is None or ll > best[3]:
                best = (offset, noise, quality, ll)
    assert best is not None
    return best


def _slate_click_probability(
    utility: np.ndarray, no_click: float, slate_size: int, position_bias: float
) -> np.ndarray:
    """Approximate per-step click probability of each user shown random slates of the items.

    ``utility`` is (n_users, n_items); MNL with the no-click option; the expectation of the
    slate's exp-utility sum is exact, the ratio is approximated at that expectation.
    """
    pos_weight = np.exp(-position_bias * np.log1p(np.arange(slate_size))).sum()
    mean_exp = np.exp(utility - no_click).mean(axis=1)
    total = pos_weight * mean_exp
    return total / (1.0 + total)


def _fit_churn(
    click_prob: np.ndarray, target_activity: np.ndarray
) -> tuple[np.ndarray, dict[str, float]]:
    """Initial satisfaction per user and churn parameters: expected consumptions match targets.

    A user who clicks with probability p per step and leaves with probability h per step
    consumes p / h items on average; h(s) = base + max * sigmoid((threshold - s) / width).
    """
    hazard = np.clip(click_prob / np.maximum(target_activity, 1e-9), 1e-5, 0.5)
    lo, hi = np.quantile(hazard, [0.01, 0.99])
    hi = max(hi, lo * 1.01)
    edge = 0.0025  # sigmoid(-6): satisfaction 1 and 0 map to the 1% and 99% quantile hazards
    churn_max = (hi - lo) / (1.0 - 2.0 * edge)
    churn_base = max(lo - edge * churn_max, 0.0)
    threshold, width = 0.5, 0.5 / 6.0
    frac = np.clip((hazard - churn_base) / churn_max, edge, 1.0 - edge)
    satisfaction = np.clip(threshold - width * np.log(frac / (1.0 - frac)), 0.0, 1.0)
    return satisfaction, {
        "churn_base": float(churn_base),
        "churn_max": float(min(churn_max, 1.0 - churn_base)),
        "churn_threshold": threshold,
        "churn_width": width,
    }


def fit_calibration(data: MovieLens, config: CalibrationConfig | None = None) -> CalibrationFit:
    """Fit tastes, choice, rating and churn parameters on the training part of ``data``."""
    config = config or CalibrationConfig()
    n_users, n_items = len(data.users), len(data.movies)
    is_test = time_split(data.user, data.timestamp, config.test_fraction)
    train = ~is_test

    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xC01D]))
    n_cold = int(round(config.cold_user_fraction * n_users))
    cold_user = np.zeros(n_users, dtype=bool)
    if n_cold:
        cold_user[rng.choice(n_users, size=min(n_cold, n_users - 1), replace=False)] = True
    warm = ~cold_user

    tu, ti = data.user[train], data.item[train]
    known_item = np.zeros(n_items, dtype=bool)
    known_item[ti[warm[tu]]] = True
    if not known_item.any():
        raise ValueError(f"{data.data_dir}: no training ratings to calibrate on")
    known_ids = np.flatnonzero(known_item)
    col = np.full(n_items, -1, dtype=np.int64)
    col[known_ids] = np.arange(known_ids.size)

    y = np.zeros((n_users, known_ids.size))
    keep = known_item[ti]
    y[tu[keep], col[ti[keep]]] = 1.0
    u_vec, v_known, b_known, scale, loss = _fit_logistic_mf(y, warm, config)

    # Movies without training ratings: vectors and biases from genres and year.
    features = _content_features(data)
    item_vec = np.zeros((n_items, config.latent_dim))
    item_bias = np.zeros(n_items)
    item_vec[known_ids] = v_known
    item_bias[known_ids] = b_known
    new_ids = np.flatnonzero(~known_item)
    if new_ids.size:
        w_vec = _ridge(features[known_ids], v_known)
        w_bias = _ridge(features[known_ids], b_known)
        item_vec[new_ids] = _normalise(features[new_ids] @ w_vec)
        item_bias[new_ids] = features[new_ids] @ w_bias

    # Ratings: ordinal model on warm users' training ratings.
    rw = train & warm[data.user] & known_item[data.item]
    cos = np.sum(u_vec[data.user[rw]] * item_vec[data.item[rw]], axis=1)
    offset, noise, quality, rating_ll = _fit_rating_model(
        cos, data.item[rw], data.rating[rw], n_items, config.quality_prior
    )
    if new_ids.size:
        w_q = _ridge(features[known_ids], quality[known_ids])
        quality[new_ids] = np.clip(features[new_ids] @ w_q, 0.0, 1.0)
    match_train = np.clip(offset + (1.0 - offset) * cos, 0.0, 1.0)
    value_reference = float(np.mean(quality[data.item[rw]] * match_train))

    # Choice: P(click a single shown movie) = fitted P(rated); appeal = normalised bias.
    b_lo = float(np.quantile(item_bias, 0.005))
    bias = np.maximum(item_bias, b_lo)
    b_hi = float(bias.max())
    match_weight = scale / (1.0 - offset)
    no_click_base = match_weight * offset - b_lo

    # Activity: expected consumptions over a period as long as the held-out one.
    n_train = np.bincount(data.user[train], minlength=n_users).astype(np.float64)
    target = n_train * config.test_fraction / (1.0 - config.test_fraction)
    utility = scale * (u_vec @ item_vec.T) + bias[None, :]
    click_prob = _slate_click_probability(
        utility, 0.0, config.logging_slate_size, config.position_bias
    )
    satisfaction, churn = _fit_churn(click_prob, np.maximum(target, 1.0))

    scalars = {
        "scale": float(scale),
        "offset": float(offset),
        "rating_noise": float(noise),
        "rating_loglik": float(rating_ll),
        "value_reference": value_reference,
        "match_weight": float(match_weight),
        "appeal_weight": float(max(b_hi - b_lo, 1e-6)),
        "bias_low": b_lo,
        "no_click_base": float(no_click_base),
        "mf_loss": float(loss),
        "mean_click_prob": float(click_prob.mean()),
        **churn,
    }
    fit = CalibrationFit(
        is_test=is_test,
        cold_user=cold_user,
        known_item=known_item,
        user_vec=u_vec,
        item_vec=item_vec,
        item_bias=item_bias,
        quality=quality,
        satisfaction=satisfaction,
        scalars=scalars,
    )
    if config.activity_shrink:
        fit = _refine_activity(data, fit, config, click_prob, np.maximum(target, 1.0))
    return fit


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between two samples (max gap of empirical CDFs)."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    grid = np.union1d(a, b)
    if grid.size == 0:
        return 0.0
    ca = np.searchsorted(a, grid, side="right") / max(a.size, 1)
    cb = np.searchsorted(b, grid, side="right") / max(b.size, 1)
    return float(np.max(np.abs(ca - cb)))


def _refine_activity(
    data: MovieLens,
    fit: CalibrationFit,
    config: CalibrationConfig,
    click_prob: np.ndarray,
    target: np.ndarray,
    max_steps: int = 1000,
) -> CalibrationFit:
    """Pick the activity shrink and rescale churn by simulating the logging protocol.

    Uses training data only: users start from their fitted state, may not be shown what they
    rated in training, and the target is their training activity rescaled to the held-out
    period's length.
    """
    from dataclasses import replace

    train = ~fit.is_test
    excluded = np.zeros((len(data.users), len(data.movies)), dtype=bool)
    excluded[data.user[train], data.item[train]] = True
    goal = np.floor(target + 0.5)

    def simulate(candidate: CalibrationFit) -> np.ndarray:
        cal = build_calibration(data, candidate, config)
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xAC7]))
        return simulate_logging(
            cal.world_config, cal.catalog, cal.user_interest, candidate.satisfaction,
            cal.movie_of_item, excluded, config.logging_slate_size, max_steps, rng,
        )["activity"]

    def rescaled(candidate: CalibrationFit, factor: float) -> CalibrationFit:
        sc = dict(candidate.scalars)
        base, top = sc["churn_base"] * factor, sc["churn_max"] * factor
        total = base + top
        if total > 1.0:  # keep a valid churn probability
            base, top = base / total, top / total
        sc.update(churn_base=float(base), churn_max=float(top))
        return replace(candidate, scalars=sc)

    best: tuple[float, CalibrationFit, float] | None = None
    mean = float(target.mean())
    for gamma in config.activity_shrink:
        shrunk = mean * (target / mean) ** gamma
        shrunk *= mean / shrunk.mean()
        satisfaction, churn = _fit_churn(click_prob, shrunk)
        candidate = replace(fit, satisfaction=satisfaction, scalars={**fit.scalars, **churn})
        activity = simulate(candidate)
        factor = max(float(activity.mean()), 1e-6) / mean
        # Scaling every hazard by `factor` scales expected activity by about 1 / factor.
        ks = ks_distance(activity / factor, goal)
        if best is None or ks < best[0]:
            best = (ks, rescaled(candidate, factor), gamma)
    assert best is not None
    _, chosen, gamma = best
    # One more pass corrects what the 1 / factor approximation missed.
    activity = simulate(chosen)
    chosen = rescaled(chosen, max(float(activity.mean()), 1e-6) / mean)
    sc = dict(chosen.scalars)
    sc.update(activity_shrink=float(gamma), activity_ks_train=round(best[0], 4))
    return replace(chosen, scalars=sc)


# -- the calibrated world -----------------------------------------------------------------------


class MovieLensUserSampler:
    """Draws real users: fitted hidden tastes, satisfaction from activity, demographic profile.

    Args:
        interest: (n_pool, dim) unit interest vectors of the pool.
        satisfaction: (n_pool,) initial satisfaction.
        profiles: profile text of each pool user.
        user_rows: (n_pool,) row of each pool user in the MovieLens user table.
    """

    def __init__(
        self,
        interest: np.ndarray,
        satisfaction: np.ndarray,
        profiles: tuple[str, ...],
        user_rows: np.ndarray,
    ) -> None:
        if interest.shape[0] == 0:
            raise ValueError("the user pool is empty")
        self.interest = interest
        self.satisfaction = satisfaction
        self.profiles = profiles
        self.user_rows = user_rows
        self.last_drawn = np.zeros(0, dtype=np.int64)
        """Pool indices of the users drawn by the latest ``sample`` call."""

    def sample(self, n: int, rng: np.random.Generator) -> NewUsers:
        pick = rng.integers(self.interest.shape[0], size=n)
        self.last_drawn = pick
        return NewUsers(
            interest=self.interest[pick].copy(),
            satisfaction=self.satisfaction[pick].copy(),
            profiles=tuple(self.profiles[i] for i in pick.tolist()),
        )

    def sample_interest(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Tastes of other real users (a taste shift makes a user like someone else)."""
        return self.interest[rng.integers(self.interest.shape[0], size=n)].copy()


class _PoolSampler:
    """Only for the World's constructor: the logging simulation places users itself."""

    def __init__(self, interest: np.ndarray) -> None:
        self.interest = interest

    def sample(self, n: int, rng: np.random.Generator) -> NewUsers:
        pick = rng.integers(self.interest.shape[0], size=n)
        return NewUsers(self.interest[pick].copy(), np.ones(n), tuple("" for _ in range(n)))

    def sample_interest(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.interest[rng.integers(self.interest.shape[0], size=n)].copy()


def simulate_logging(
    world_config: WorldConfig,
    catalog: Catalog,
    interest: np.ndarray,
    satisfaction: np.ndarray,
    movie_of_item: np.ndarray,
    excluded_movies: np.ndarray,
    slate_size: int,
    max_steps: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The logging protocol: every user sees random unrated movies until they churn.

    Each step a user is shown ``slate_size`` random movies they may still be shown, clicks at
    most one through the world's choice model, rates it, and may churn (``World.step``).

    Args:
        world_config, catalog: the simulated world.
        interest, satisfaction: (n_users, dim) and (n_users,) starting hidden state.
        movie_of_item: MovieLens movie row of each catalog item id.
        excluded_movies: (n_users, n_movies) bool, movies a user is never shown (already rated);
            movies consumed in the simulation are added.
        slate_size: movies shown per step.
        max_steps: cap on steps per user.
        rng: the only source of randomness.

    Returns:
        ``user``, ``movie``, ``rating`` of every simulated consumption, ``activity`` (clicks
        per user) and ``steps`` (steps each user stayed).
    """
    n_users = interest.shape[0]
    n_items = catalog.n_total
    world = World(world_config, n_users, catalog, _PoolSampler(interest))
    world.interest[:] = interest
    world.satisfaction[:] = satisfaction
    world.boredom[:] = 0.0
    excluded = excluded_movies[:, movie_of_item].copy()  # now indexed by item id
    rows = np.arange(n_users)
    # Each user walks a private random order of the catalog, skipping excluded items.
    perm = np.argsort(rng.random((n_users, n_items)), axis=1)
    pointer = np.zeros(n_users, dtype=np.int64)
    offsets = np.arange(min(n_items, 4 * slate_size))
    active = np.ones(n_users, dtype=bool)
    steps = np.zeros(n_users, dtype=np.int64)
    out_user: list[np.ndarray] = []
    out_item: list[np.ndarray] = []
    out_rating: list[np.ndarray] = []
    for _ in range(max_steps):
        if not active.any():
            break
        cand = perm[rows[:, None], (pointer[:, None] + offsets[None, :]) % n_items]
        valid = ~excluded[rows[:, None], cand]
        order = np.argsort(~valid, axis=1, kind="stable")[:, :slate_size]
        slates = np.take_along_axis(cand, order, axis=1)
        pointer = (pointer + order.max(axis=1) + 1) % n_items
        responses = world.step(slates, rng)
        clicked = (responses.click_pos >= 0) & active
        c_rows = rows[clicked]
        items = responses.clicked_item[clicked]
        excluded[c_rows, items] = True
        out_user.append(c_rows)
        out_item.append(items)
        out_rating.append(responses.rating[clicked])
        steps += active
        active &= ~responses.churned
    user = np.concatenate(out_user) if out_user else np.zeros(0, dtype=np.int64)
    item = np.concatenate(out_item) if out_item else np.zeros(0, dtype=np.int64)
    return {
        "user": user,
        "movie": movie_of_item[item],
        "rating": np.concatenate(out_rating) if out_rating else np.zeros(0),
        "activity": np.bincount(user, minlength=n_users),
        "steps": steps,
    }


def _world_vectors(vec: np.ndarray, offset: float) -> np.ndarray:
    """Fitted unit vectors with the constant coordinate: cosines become offset + (1-offset)cos."""
    alpha = math.sqrt(offset / (1.0 - offset))
    out = np.concatenate([np.full((vec.shape[0], 1), alpha), vec], axis=1)
    out = out / math.sqrt(1.0 + alpha * alpha)
    if out.shape[1] < WORLD_DIM:
        out = np.concatenate([out, np.zeros((out.shape[0], WORLD_DIM - out.shape[1]))], axis=1)
    return out


def _topic(genres: tuple[str, ...]) -> int:
    first = genres[0] if genres else "unknown"
    return TOPIC_GENRES.index(first) if first in TOPIC_GENRES else len(TOPIC_GENRES) - 1


def _describe(year: int, genres: tuple[str, ...]) -> str:
    names = [g.lower() if g not in ("Sci-Fi", "Film-Noir") else g for g in genres if g != "unknown"]
    when = f"Released in {year}." if year > 0 else "Release year unknown."
    if not names:
        return f"{when} A film."
    kinds = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    article = "An" if kinds[0].lower() in "aeiou" else "A"
    return f"{when} {article} {kinds} film."


@dataclass
class Calibration:
    """A fitted MovieLens world: catalog, world config, user pools, and the fit behind them.

    Item ids of the catalog: movies with training ratings first (present from the start), then
    new movies in order of arrival. ``movie_of_item`` maps item ids to MovieLens movie rows.
    """

    data: MovieLens
    fit: CalibrationFit
    config: CalibrationConfig
    catalog: Catalog
    world_config: WorldConfig
    movie_of_item: np.ndarray
    item_of_movie: np.ndarray
    user_interest: np.ndarray
    """(n_users, 16) world interest vectors of every MovieLens user."""
    profiles: tuple[str, ...]
    fit_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def warm_users(self) -> np.ndarray:
        return np.flatnonzero(~self.fit.cold_user)

    @property
    def cold_users(self) -> np.ndarray:
        return np.flatnonzero(self.fit.cold_user)

    def user_sampler(self, pool: str = "warm") -> MovieLensUserSampler:
        """Sampler over 'warm' (fitted), 'cold' (held-out, cold-start) or 'all' users."""
        if pool == "warm":
            rows = self.warm_users
        elif pool == "cold":
            rows = self.cold_users
        elif pool == "all":
            rows = np.arange(len(self.data.users))
        else:
            raise ValueError(f"user_pool must be 'warm', 'cold' or 'all', got {pool!r}")
        return MovieLensUserSampler(
            self.user_interest[rows],
            self.fit.satisfaction[rows],
            tuple(self.profiles[i] for i in rows.tolist()),
            rows,
        )

    def make_world(self, n_users: int, pool: str = "warm") -> World:
        """A world of ``n_users`` slots whose new users are real users from ``pool``."""
        return World(self.world_config, n_users, self.catalog, self.user_sampler(pool))

    def click_logits(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """(len(users), len(movies)) logit of clicking each movie shown alone at slot 0.

        ``world utility - no-click utility`` for fresh users (no boredom): the simulator's
        choice score used for held-out AUC.
        """
        c = self.world_config.choice
        items = self.item_of_movie[movies]
        match = self.user_interest[users] @ self.catalog.latent[items].T
        utility = item_utility(c, match, self.catalog.appeal[items][None, :])
        return utility - no_click_utility(c, self.fit.satisfaction[users])[:, None]

    def summary(self) -> dict[str, Any]:
        """Plain-number description of the fit (for reports and JSON)."""
        return {
            "data_dir": self.data.data_dir,
            "layout": self.data.layout,
            "n_users": len(self.data.users),
            "n_cold_users": int(self.fit.cold_user.sum()),
            "n_movies": len(self.data.movies),
            "n_new_movies": int((~self.fit.known_item).sum()),
            "n_train_ratings": int((~self.fit.is_test).sum()),
            "n_test_ratings": int(self.fit.is_test.sum()),
            "fit_seconds": round(self.fit_seconds, 3),
            "config": asdict(self.config),
            "scalars": dict(self.fit.scalars),
        }


def build_calibration(
    data: MovieLens, fit: CalibrationFit, config: CalibrationConfig | None = None
) -> Calibration:
    """Assemble catalog, world config and user vectors from a fit."""
    config = config or CalibrationConfig()
    sc = fit.scalars
    n_movies = len(data.movies)
    known = np.flatnonzero(fit.known_item)
    new = np.flatnonzero(~fit.known_item)
    # New movies arrive by release year (then id): observable before any held-out rating, so the
    # held-out period's timestamps do not leak into the world.
    new = new[np.lexsort((new, data.movies.years[new]))]
    movie_of_item = np.concatenate([known, new])
    item_of_movie = np.empty(n_movies, dtype=np.int64)
    item_of_movie[movie_of_item] = np.arange(n_movies)

    offset = sc["offset"]
    latent = _world_vectors(fit.item_vec[movie_of_item], offset)
    bias = np.maximum(fit.item_bias[movie_of_item], sc["bias_low"])
    appeal = np.clip((bias - sc["bias_low"]) / sc["appeal_weight"], 0.0, 1.0)
    arrival = np.zeros(n_movies, dtype=np.int64)
    arrival[known.size :] = 1 + np.arange(new.size) // config.new_items_per_step
    genres = tuple(data.movies.genres[m] for m in movie_of_item.tolist())
    catalog = Catalog(
        latent=latent,
        topic=np.array([_topic(g) for g in genres], dtype=np.int64),
        quality=fit.quality[movie_of_item].astype(np.float64),
        appeal=appeal,
        clickbait=np.zeros(n_movies, dtype=bool),
        arrival_step=arrival,
        titles=tuple(data.movies.titles[m] for m in movie_of_item.tolist()),
        descriptions=tuple(
            _describe(int(data.movies.years[m]), data.movies.genres[m])
            for m in movie_of_item.tolist()
        ),
        genres=tuple(tuple(g) or ("unknown",) for g in genres),
    )
    world_config = WorldConfig(
        catalog=CatalogConfig(
            n_items=int(known.size),
            n_new_items=int(new.size),
            new_items_per_step=config.new_items_per_step,
            n_topics=WORLD_DIM,
            clickbait_fraction=0.0,
        ),
        users=UserConfig(),
        choice=ChoiceConfig(
            model="mnl",
            match_weight=float(min(sc["match_weight"], 100.0)),
            appeal_weight=float(min(sc["appeal_weight"], 100.0)),
            boredom_weight=config.boredom_weight,
            position_bias=config.position_bias,
            no_click_base=float(np.clip(sc["no_click_base"], -100.0, 100.0)),
            no_click_dissatisfaction=0.0,
        ),
        response=ResponseConfig(rating_noise=float(sc["rating_noise"])),
        dynamics=DynamicsConfig(
            filter_bubble_rate=config.filter_bubble_rate,
            drift_std=config.drift_std,
            satisfaction_rate=config.satisfaction_rate,
            value_reference=float(np.clip(sc["value_reference"], 0.0, 1.0)),
            churn_base=sc["churn_base"],
            churn_max=sc["churn_max"],
            churn_threshold=sc["churn_threshold"],
            churn_width=sc["churn_width"],
        ),
    )
    users = data.users
    profiles = tuple(
        text.demographic_profile_text(int(users.age[i]), users.gender[i], users.occupation[i])
        for i in range(len(users))
    )
    return Calibration(
        data=data,
        fit=fit,
        config=config,
        catalog=catalog,
        world_config=world_config,
        movie_of_item=movie_of_item,
        item_of_movie=item_of_movie,
        user_interest=_world_vectors(fit.user_vec, offset),
        profiles=profiles,
    )


# -- caching ------------------------------------------------------------------------------------

_CACHE: dict[tuple[str, str], Calibration] = {}


def _fingerprint(data_dir: Path, config: CalibrationConfig) -> str:
    """Hash of the data files' contents and the config: the cache key."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, **asdict(config)}, sort_keys=True).encode())
    for name in RECBOLE_FILES + GROUPLENS_FILES:
        path = data_dir / name
        if path.is_file():
            h.update(name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:32]


def _save_fit(path: Path, fit: CalibrationFit) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                is_test=fit.is_test,
                cold_user=fit.cold_user,
                known_item=fit.known_item,
                user_vec=fit.user_vec,
                item_vec=fit.item_vec,
                item_bias=fit.item_bias,
                quality=fit.quality,
                satisfaction=fit.satisfaction,
                scalars=np.array(json.dumps(fit.scalars)),
            )
        share_file_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load_fit(path: Path) -> CalibrationFit | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return CalibrationFit(
                is_test=z["is_test"],
                cold_user=z["cold_user"],
                known_item=z["known_item"],
                user_vec=z["user_vec"],
                item_vec=z["item_vec"],
                item_bias=z["item_bias"],
                quality=z["quality"],
                satisfaction=z["satisfaction"],
                scalars=json.loads(str(z["scalars"])),
            )
    except (OSError, KeyError, ValueError):
        return None  # a corrupt or foreign cache file is refitted, never trusted


def calibrate(
    data_dir: str | Path,
    config: CalibrationConfig | None = None,
    cache_dir: str | Path | None = None,
) -> Calibration:
    """The calibrated world of the MovieLens data in ``data_dir`` (fitted once, then cached).

    Args:
        data_dir: a directory with MovieLens-100K in GroupLens or RecBole layout.
        config: fitting settings.
        cache_dir: optional directory for an on-disk cache of the fit (keyed by a hash of the
            data files and the config); the in-process cache is always used.
    """
    import time

    config = config or CalibrationConfig()
    if not isinstance(config, CalibrationConfig):
        raise ValueError(f"config must be a CalibrationConfig, got {type(config).__name__}")
    root = Path(data_dir).expanduser().resolve()
    data = None
    if not root.is_dir():
        raise FileNotFoundError(f"--data-dir {data_dir}: no such directory")
    key = (str(root), _fingerprint(root, config))
    if key in _CACHE:
        return _CACHE[key]
    start = time.perf_counter()
    data = load_movielens(root)
    fit = None
    disk = Path(cache_dir) / f"movielens-fit-{key[1]}.npz" if cache_dir is not None else None
    if disk is not None and disk.is_file():
        fit = _load_fit(disk)
        if fit is not None and fit.is_test.shape[0] != data.n_ratings:
            fit = None
    if fit is None:
        fit = fit_calibration(data, config)
        if disk is not None:
            _save_fit(disk, fit)
    calibration = build_calibration(data, fit, config)
    calibration.fit_seconds = time.perf_counter() - start
    _CACHE[key] = calibration
    return calibration


def clear_cache() -> None:
    """Forget in-process calibrations (the on-disk cache is left alone)."""
    _CACHE.clear()
