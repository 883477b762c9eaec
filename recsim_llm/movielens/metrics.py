"""Distances and summaries the fidelity report compares real and simulated logs with.

Plain NumPy functions of arrays; the activity refinement of the fit uses ``ks_distance`` too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from recsim_llm.movielens.data import GENRES

__all__ = [
    "genre_matrix",
    "gini",
    "js_divergence",
    "ks_distance",
    "per_user_auc",
    "rating_hist",
    "top_share",
    "total_variation",
    "user_genre_mix",
    "wasserstein1",
]


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between two samples (max gap of empirical CDFs)."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    grid = np.union1d(a, b)
    if grid.size == 0:
        return 0.0
    ca = np.searchsorted(a, grid, side="right") / max(a.size, 1)
    cb = np.searchsorted(b, grid, side="right") / max(b.size, 1)
    return float(np.max(np.abs(ca - cb)))


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 = equal, towards 1 = concentrated)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return 0.0
    return float((2.0 * np.sum(np.arange(1, n + 1) * x) / (n * total)) - (n + 1.0) / n)


def top_share(counts: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the total held by the top ``fraction`` of entries."""
    x = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    total = x.sum()
    if total <= 0:
        return 0.0
    k = max(1, int(math.ceil(fraction * x.size)))
    return float(x[:k].sum() / total)


def rating_hist(ratings: np.ndarray) -> np.ndarray:
    """(5,) shares of ratings 1..5 (rounded and clipped); zeros for no ratings."""
    r = np.clip(np.rint(ratings).astype(np.int64), 1, 5)
    h = np.bincount(r, minlength=6)[1:].astype(np.float64)
    return h / max(h.sum(), 1.0)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance between two distributions on the same support."""
    return float(0.5 * np.abs(p - q).sum())


def wasserstein1(p: np.ndarray, q: np.ndarray) -> float:
    """1-Wasserstein distance between distributions on 1..5 (rating points)."""
    return float(np.abs(np.cumsum(p) - np.cumsum(q)).sum())


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Jensen-Shannon divergence, base 2 (0 = same mix, 1 = disjoint)."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(a > 0, a * np.log2(a / np.where(b > 0, b, 1.0)), 0.0)
        return t.sum(axis=1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def genre_matrix(genres: tuple[tuple[str, ...], ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """(n_movies, n_genres) genre shares of each movie (a movie's genres weigh equally), and
    the genre names (``GENRES``); a movie without genres counts as 'unknown'."""
    g = np.zeros((len(genres), len(GENRES)))
    index = {name: k for k, name in enumerate(GENRES)}
    for i, names in enumerate(genres):
        names = names or ("unknown",)
        for name in names:
            g[i, index[name]] += 1.0 / len(names)
    return g, GENRES


def user_genre_mix(
    user: np.ndarray, movie: np.ndarray, genre_of_movie: np.ndarray, n_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n_users, n_genres) genre shares of each user's consumption, and consumption counts."""
    mix = np.zeros((n_users, genre_of_movie.shape[1]))
    np.add.at(mix, user, genre_of_movie[movie])
    counts = np.bincount(user, minlength=n_users)
    total = mix.sum(axis=1, keepdims=True)
    return mix / np.maximum(total, 1e-12), counts


def per_user_auc(
    pos_user: np.ndarray,
    pos_item: np.ndarray,
    neg: np.ndarray,
    neg_users: np.ndarray,
    score_of: Any,
) -> np.ndarray:
    """AUC per user in ``neg_users`` (row k of ``neg`` = that user's negatives)."""
    out = np.empty(neg_users.size)
    order = np.argsort(pos_user, kind="stable")
    pu, pi = pos_user[order], pos_item[order]
    starts = np.searchsorted(pu, neg_users, side="left")
    ends = np.searchsorted(pu, neg_users, side="right")
    for k, u in enumerate(neg_users.tolist()):
        items = np.concatenate([pi[starts[k] : ends[k]], neg[k]])
        s = score_of(u, items)
        sp, sn = s[: ends[k] - starts[k]], s[ends[k] - starts[k] :]
        greater = (sp[:, None] > sn[None, :]).mean()
        ties = (sp[:, None] == sn[None, :]).mean()
        out[k] = greater + 0.5 * ties
    return out
