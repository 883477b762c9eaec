"""The MovieLens fit: tastes, choice, ratings and churn, fitted on the training logs.

The pipeline, all NumPy, float64 and seeded:

1. **Split** each user's ratings by time: the last ``test_fraction`` are held out
   (``time_split``). A seeded ``cold_user_fraction`` of users is also kept out of the item fit:
   their tastes are folded in from their own training ratings with the items fixed, so they
   enter the simulator as cold-start users the item model never saw.
2. **Tastes**: logistic matrix factorisation of implicit feedback (rated = 1, not rated = 0) on
   the unit sphere, full batch on the dense user x movie matrix:
   ``logit P(u rates i) = scale * cos(theta_u, phi_i) + bias_i``.
3. **World mapping** (``recsim_llm.movielens.world``): the world's interest space has one more
   dimension than the fit, a constant coordinate shared by users and items, so that the world's
   ``match`` (a cosine) is ``offset + (1 - offset) * cos``. Then
   ``match_weight = scale / (1 - offset)``, appeal is the normalised item bias,
   ``appeal_weight`` its range, and ``no_click_base`` is set so that a user shown a single movie
   clicks it with the fitted probability that they rated it.
4. **Ratings**: ``rating = clip(round(1 + 4 * quality * match + noise), 1, 5)`` as in the world;
   per-movie ``quality`` by shrunk least squares, ``offset`` and ``rating_noise`` by maximum
   likelihood of the ordinal model on the training ratings.
5. **Activity and churn**: each user's initial satisfaction is set so that, under a logging
   protocol of random slates, the expected number of consumptions before churning matches the
   user's real activity over a period as long as the held-out one (``refine_activity`` then
   checks this by simulation).
6. **New movies** (rated only in the held-out period) arrive during a run; their hidden vectors,
   bias and quality are predicted from genres and release year (ridge regression).

Users with a single rating are kept, by design: the rating stays in training (their taste is
fitted from it) and nothing of theirs is held out. Data with no rating at all, or no training
rating from a fitted user, is refused with a ``DataFormatError`` naming the ratings file
(``check_fit_data``) before anything is fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from recsim_llm.movielens.data import GENRES, DataFormatError, MovieLens
from recsim_llm.movielens.metrics import ks_distance
from recsim_llm.movielens.spec import CalibrationConfig, CalibrationFit
from recsim_llm.movielens.world import build_calibration, simulate_logging

__all__ = [
    "check_fit_data",
    "fit_calibration",
    "fit_rating_model",
    "refine_activity",
    "slate_click_probability",
    "time_split",
]


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


def check_fit_data(data: MovieLens) -> None:
    """Refuse data the fit cannot use, before fitting.

    Raises:
        DataFormatError: naming the ratings file: it holds no rating at all.
    """
    if data.n_ratings == 0:
        raise DataFormatError(
            data.ratings_file, 0, "at least one rating to calibrate on", "none (a header only)"
        )


def _draw_cold_users(n_users: int, config: CalibrationConfig) -> np.ndarray:
    """(n_users,) bool: a seeded ``cold_user_fraction`` of users (never all of them)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xC01D]))
    n_cold = int(round(config.cold_user_fraction * n_users))
    cold_user = np.zeros(n_users, dtype=bool)
    if n_cold:
        cold_user[rng.choice(n_users, size=min(n_cold, n_users - 1), replace=False)] = True
    return cold_user


# -- fitting ------------------------------------------------------------------------------------


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
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
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


def fit_rating_model(
    cos: np.ndarray,
    item: np.ndarray,
    rating: np.ndarray,
    n_items: int,
    prior: float,
    offsets: tuple[float, ...] = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8),
) -> tuple[float, float, np.ndarray, float]:
    """(offset, rating_noise, quality, log-likelihood) maximising the ordinal likelihood.

    ``cos`` is each rating's fitted cosine, ``item`` its movie, ``rating`` its stars (1..5);
    ``prior`` pseudo-ratings shrink each movie's quality toward the global fit. The popularity
    reference of the fidelity report calls it with one "movie" and ``offsets=(0.0,)``.
    """
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


def slate_click_probability(
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


@dataclass(frozen=True)
class _ItemFit:
    """Step 2 and 6 of the pipeline: tastes of every user, vectors and biases of every movie."""

    known_item: np.ndarray
    user_vec: np.ndarray
    item_vec: np.ndarray
    item_bias: np.ndarray
    scale: float
    loss: float
    features: np.ndarray
    known_ids: np.ndarray
    new_ids: np.ndarray


def _fit_items(
    data: MovieLens, train: np.ndarray, warm: np.ndarray, config: CalibrationConfig
) -> _ItemFit:
    """Logistic MF on warm users' training ratings; content regression for new movies."""
    n_users, n_items = len(data.users), len(data.movies)
    tu, ti = data.user[train], data.item[train]
    known_item = np.zeros(n_items, dtype=bool)
    known_item[ti[warm[tu]]] = True
    if not known_item.any():
        raise DataFormatError(
            data.ratings_file,
            0,
            "training ratings from the users the item model is fitted on",
            "none after the time split and the cold-user draw",
        )
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
    return _ItemFit(
        known_item, u_vec, item_vec, item_bias, scale, loss, features, known_ids, new_ids
    )


def _fit_ratings(
    data: MovieLens, train: np.ndarray, warm: np.ndarray, items: _ItemFit, prior: float
) -> tuple[np.ndarray, dict[str, float]]:
    """Step 4: quality per movie, offset, rating noise and the value reference."""
    rw = train & warm[data.user] & items.known_item[data.item]
    cos = np.sum(items.user_vec[data.user[rw]] * items.item_vec[data.item[rw]], axis=1)
    offset, noise, quality, rating_ll = fit_rating_model(
        cos, data.item[rw], data.rating[rw], len(data.movies), prior
    )
    if items.new_ids.size:
        known, new = items.known_ids, items.new_ids
        w_q = _ridge(items.features[known], quality[known])
        quality[new] = np.clip(items.features[new] @ w_q, 0.0, 1.0)
    match_train = np.clip(offset + (1.0 - offset) * cos, 0.0, 1.0)
    value_reference = float(np.mean(quality[data.item[rw]] * match_train))
    return quality, {
        "offset": float(offset),
        "rating_noise": float(noise),
        "rating_loglik": float(rating_ll),
        "value_reference": value_reference,
    }


def _fit_choice(item_bias: np.ndarray, scale: float, offset: float) -> dict[str, float]:
    """Step 3: P(click a single shown movie) = fitted P(rated); appeal = normalised bias."""
    b_lo = float(np.quantile(item_bias, 0.005))
    bias = np.maximum(item_bias, b_lo)
    b_hi = float(bias.max())
    match_weight = scale / (1.0 - offset)
    no_click_base = match_weight * offset - b_lo
    return {
        "match_weight": float(match_weight),
        "appeal_weight": float(max(b_hi - b_lo, 1e-6)),
        "bias_low": b_lo,
        "no_click_base": float(no_click_base),
    }


def _activity_targets(
    data: MovieLens, train: np.ndarray, items: _ItemFit, bias_low: float, config: CalibrationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Step 5's inputs: per-user click probability under random slates, and target activity
    (training consumptions rescaled to a period as long as the held-out one, at least 1)."""
    n_train = np.bincount(data.user[train], minlength=len(data.users)).astype(np.float64)
    target = n_train * config.test_fraction / (1.0 - config.test_fraction)
    bias = np.maximum(items.item_bias, bias_low)
    utility = items.scale * (items.user_vec @ items.item_vec.T) + bias[None, :]
    click_prob = slate_click_probability(
        utility, 0.0, config.logging_slate_size, config.position_bias
    )
    return click_prob, np.maximum(target, 1.0)


def fit_calibration(data: MovieLens, config: CalibrationConfig | None = None) -> CalibrationFit:
    """Fit tastes, choice, rating and churn parameters on the training part of ``data``.

    Raises:
        DataFormatError: the data holds nothing to fit (``check_fit_data``).
    """
    config = config or CalibrationConfig()
    check_fit_data(data)
    is_test = time_split(data.user, data.timestamp, config.test_fraction)
    train = ~is_test
    cold_user = _draw_cold_users(len(data.users), config)
    items = _fit_items(data, train, ~cold_user, config)
    quality, rating_scalars = _fit_ratings(data, train, ~cold_user, items, config.quality_prior)
    choice = _fit_choice(items.item_bias, items.scale, rating_scalars["offset"])
    click_prob, target = _activity_targets(data, train, items, choice["bias_low"], config)
    satisfaction, churn = _fit_churn(click_prob, target)
    scalars = {
        "scale": float(items.scale),
        **rating_scalars,
        **choice,
        "mf_loss": float(items.loss),
        "mean_click_prob": float(click_prob.mean()),
        **churn,
    }
    fit = CalibrationFit(
        is_test=is_test,
        cold_user=cold_user,
        known_item=items.known_item,
        user_vec=items.user_vec,
        item_vec=items.item_vec,
        item_bias=items.item_bias,
        quality=quality,
        satisfaction=satisfaction,
        scalars=scalars,
    )
    if config.activity_shrink:
        fit = refine_activity(data, fit, config, click_prob, target)
    return fit


# -- activity refinement by simulation ----------------------------------------------------------


def refine_activity(
    data: MovieLens,
    fit: CalibrationFit,
    config: CalibrationConfig,
    click_prob: np.ndarray,
    target: np.ndarray,
    max_steps: int = 1000,
) -> CalibrationFit:
    """Pick the activity shrink and rescale churn by simulating the logging protocol.

    ``click_prob`` and ``target`` are each user's per-step click probability and target
    activity from ``fit_calibration``; returns ``fit`` with the chosen satisfaction and churn.

    Uses training data only: users start from their fitted state, may not be shown what they
    rated in training, and the target is their training activity rescaled to the held-out
    period's length.
    """
    train = ~fit.is_test
    excluded = np.zeros((len(data.users), len(data.movies)), dtype=bool)
    excluded[data.user[train], data.item[train]] = True
    goal = np.floor(target + 0.5)

    def simulate(candidate: CalibrationFit) -> np.ndarray:
        cal = build_calibration(data, candidate, config)
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xAC7]))
        return simulate_logging(
            cal.world_config,
            cal.catalog,
            cal.user_interest,
            candidate.satisfaction,
            cal.movie_of_item,
            excluded,
            config.logging_slate_size,
            max_steps,
            rng,
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
