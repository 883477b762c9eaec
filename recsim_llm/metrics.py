"""Slate and session metrics beyond return: diversity, coverage, novelty, popularity bias,
cold-start and drift measures. Pure NumPy functions over item ids, so each has a known answer.

Definitions (the rollout in ``recsim_llm.evaluation`` applies them per step and per session):

* **intra-slate diversity**: 1 - mean pairwise cosine of the slate's items' *hidden latent
  vectors* (``Catalog.latent``, the topic-mixture embeddings the world scores items with); 0 for
  identical items, 1 for orthogonal ones. Hidden truth, for evaluation only.
* **catalog coverage**: distinct items shown / items available.
* **novelty**: mean over shown items of ``-log2 p(item)``, with ``p`` the item's share of the
  clicks observed so far, add-one smoothed over the available items (observable popularity).
* **popularity bias**: mean clicks-so-far of the shown items / mean clicks-so-far of the
  available items (1 = shows the catalog's average popularity; > 1 favours popular items;
  undefined (NaN) before any click).
* **steps to first click**: 1 when the first step has a click; a session without any click
  counts ``length + 1`` (censored).
* **steps to recover** (drift): the first step s after the shift (0 = at once) from which the
  mean reward of steps s .. s + window - 1 is back to the mean of the window before (NaN: never).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "catalog_coverage",
    "novelty",
    "popularity_bias",
    "slate_diversity",
    "steps_to_first_click",
    "steps_to_recover",
]


def _check_slates(slates: np.ndarray, n_items: int) -> np.ndarray:
    """``slates`` as an (n, k >= 1) integer array of item ids in [0, n_items); ValueError naming
    ``slates`` otherwise (a negative id would otherwise index from the end, silently)."""
    slates = np.asarray(slates)
    if slates.ndim != 2 or slates.shape[1] < 1:
        raise ValueError(f"slates must have shape (n, k) with k >= 1, got {slates.shape}")
    if slates.size and not np.issubdtype(slates.dtype, np.integer):
        raise ValueError(f"slates must hold integer item ids, got {slates.dtype}")
    if slates.size and (slates.min() < 0 or slates.max() >= n_items):
        raise ValueError(
            f"slates must hold item ids in [0, {n_items - 1}], "
            f"got ids in [{slates.min()}, {slates.max()}]"
        )
    return slates


def slate_diversity(slates: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """(n,) 1 - mean pairwise cosine of the items of each slate in ``slates`` (n, k).

    ``embeddings`` (n_items, d) rows need not be unit length (they are normalised here). A slate
    of one item has no pair: 0.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (n_items, d), got {embeddings.shape}")
    slates = _check_slates(slates, embeddings.shape[0])
    n, k = slates.shape
    if k < 2:
        return np.zeros(n)
    vectors = embeddings[slates]
    vectors /= np.maximum(np.linalg.norm(vectors, axis=2, keepdims=True), 1e-12)
    gram = np.einsum("nid,njd->nij", vectors, vectors)
    pair_sum = (gram.sum(axis=(1, 2)) - np.trace(gram, axis1=1, axis2=2)) / 2.0
    return 1.0 - pair_sum / (k * (k - 1) / 2.0)


def catalog_coverage(shown: np.ndarray, available: int) -> float:
    """Distinct item ids in ``shown`` (any shape; negative ids ignored) / ``available``."""
    if available < 1:
        raise ValueError(f"available must be >= 1, got {available}")
    items = np.asarray(shown).ravel()
    return float(np.unique(items[items >= 0]).size / available)


def _check_popularity(popularity: np.ndarray, available: np.ndarray):
    """(n_items,) finite non-negative click counts and a same-shape bool mask."""
    popularity = np.asarray(popularity, dtype=np.float64)
    available = np.asarray(available)
    if popularity.ndim != 1:
        raise ValueError(f"popularity must have shape (n_items,), got {popularity.shape}")
    if not np.all(np.isfinite(popularity)) or (popularity < 0).any():
        raise ValueError("popularity must hold finite non-negative click counts")
    if available.shape != popularity.shape or available.dtype != bool:
        raise ValueError(
            f"available must be a bool array of shape {popularity.shape}, "
            f"got {available.dtype} {available.shape}"
        )
    return popularity, available


def novelty(slates: np.ndarray, popularity: np.ndarray, available: np.ndarray) -> np.ndarray:
    """(n,) mean ``-log2 p(item)`` of each slate's items (add-one smoothed click shares).

    Args:
        slates: (n, k) item ids.
        popularity: (n_items,) clicks observed per item so far.
        available: (n_items,) bool, items that have arrived (the smoothing's support).
    """
    popularity, available = _check_popularity(popularity, available)
    slates = _check_slates(slates, popularity.size)
    n_available = max(int(available.sum()), 1)
    total = popularity[available].sum()
    p = (popularity[slates] + 1.0) / (total + n_available)
    return (-np.log2(p)).mean(axis=1)


def popularity_bias(
    slates: np.ndarray, popularity: np.ndarray, available: np.ndarray
) -> np.ndarray:
    """(n,) mean popularity of each slate's items / mean popularity of the available items
    (NaN while no available item has a click)."""
    popularity, available = _check_popularity(popularity, available)
    slates = _check_slates(slates, popularity.size)
    shown = popularity[slates].mean(axis=1)
    if not available.any():
        return np.full(shown.shape, np.nan)
    catalog_mean = popularity[available].mean()
    if catalog_mean <= 0.0:
        return np.full(shown.shape, np.nan)
    return shown / catalog_mean


def steps_to_first_click(clicks: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(n,) per session the 1-based step of the first click, ``length + 1`` without one.

    Args:
        clicks: (T, n) bool, click at each step (steps after a session ended must be False).
        length: (n,) session lengths.
    """
    clicks = np.asarray(clicks, dtype=bool)
    if clicks.ndim != 2 or clicks.shape[1] != np.asarray(length).shape[0]:
        raise ValueError(f"clicks must be (T, n) with n = len(length), got {clicks.shape}")
    first = np.argmax(clicks, axis=0) + 1.0
    return np.where(clicks.any(axis=0), first, np.asarray(length, dtype=np.float64) + 1.0)


def steps_to_recover(reward: np.ndarray, shift_step: int, window: int = 5) -> float:
    """Steps after ``shift_step`` until the ``window``-step moving mean of ``reward`` (per-step
    means) is back at the mean of the ``window`` steps before the shift; NaN if it never is,
    or if there are fewer than ``window`` steps before the shift."""
    reward = np.asarray(reward, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if shift_step < window or shift_step >= reward.size:
        return float("nan")
    before = reward[shift_step - window : shift_step].mean()
    after = reward[shift_step:]
    if after.size < window:
        return float("nan")
    moving = np.convolve(after, np.ones(window) / window, mode="valid")
    hits = np.flatnonzero(moving >= before)
    return float(hits[0]) if hits.size else float("nan")
