"""Per-row ranking metrics with bootstrap intervals over users (few-shot and transfer tables).

A *ranking row* is one logged impression row with a positive response. Its per-row AUC is the
share of (positive, negative) pairs the scores order correctly (ties count half); its NDCG@10
ranks the positive among all the row's candidates. Which items are the AUC's negatives depends on
what the log observed: the shown-but-skipped slate items when a slate shows several items (the
synthetic world), or the row's other candidates when a row shows one item (MovieLens rows: the
rated movie among unrated ones, as in the fidelity table's AUC).

Intervals resample users (the unit that is independent), not rows: a user's rows share a state.
"""

from __future__ import annotations

import numpy as np

K = 10


def per_row_metrics(
    scores: np.ndarray,
    candidates: np.ndarray,
    slates: np.ndarray,
    y: np.ndarray,
    k: int = K,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(has_positive, per-row AUC, NDCG@k) of rows of candidate scores.

    Args:
        scores: (n, n_candidates) scores of each row's candidates (-inf where padded).
        candidates: (n, n_candidates) item ids (-1 padded).
        slates: (n, slate_size) shown items (each among the row's candidates).
        y: (n, slate_size) 0/1 response of each shown item; the first positive is the row's.

    Returns:
        Boolean mask of rows with a positive, and per row (NaN where there is no positive, or
        no negative for the AUC) the AUC of the positive against the negatives and its NDCG@k
        among all valid candidates.
    """
    n = scores.shape[0]
    has_pos = y.sum(1) > 0
    col = np.argmax(candidates[:, None, :] == slates[:, :, None], axis=2)  # (n, slate)
    first = np.argmax(y, axis=1)
    pos_col = col[np.arange(n), first]
    pos_score = scores[np.arange(n), pos_col][:, None]
    valid = candidates >= 0
    if slates.shape[1] > 1:  # negatives: the shown items without a response
        neg_scores = np.take_along_axis(scores, col, axis=1)
        neg_mask = y == 0
    else:  # one shown item per row: the other candidates are the negatives
        neg_scores = scores
        neg_mask = valid.copy()
        neg_mask[np.arange(n), pos_col] = False
    wins = ((neg_scores < pos_score) + 0.5 * (neg_scores == pos_score)) * neg_mask
    n_neg = neg_mask.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        row_auc = np.where(has_pos & (n_neg > 0), wins.sum(1) / n_neg, np.nan)
    others = valid.copy()
    others[np.arange(n), pos_col] = False
    rank = (
        1.0 + ((scores > pos_score) & others).sum(1) + 0.5 * ((scores == pos_score) & others).sum(1)
    )
    ndcg = np.where(rank <= k, 1.0 / np.log2(rank + 1.0), 0.0)
    return has_pos, row_auc, np.where(has_pos, ndcg, np.nan)


def bootstrap_mean(
    values: np.ndarray,
    users: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Mean of per-row ``values`` (NaN rows skipped) with a bootstrap interval over users.

    Each resample draws users with replacement and takes the mean over all their rows, so users
    with more rows weigh more, as in the point estimate.

    Returns:
        ``mean``, ``lo``, ``hi`` (the percentile interval), ``n_users``, ``n_rows``.
    """
    ok = ~np.isnan(values)
    values, users = values[ok], users[ok]
    if values.size == 0:
        nan = float("nan")
        return {"mean": nan, "lo": nan, "hi": nan, "n_users": 0, "n_rows": 0}
    ids, inv = np.unique(users, return_inverse=True)
    sums = np.bincount(inv, weights=values, minlength=ids.size)
    counts = np.bincount(inv, minlength=ids.size).astype(np.float64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB00]))
    draws = rng.multinomial(ids.size, np.full(ids.size, 1.0 / ids.size), size=n_boot)
    means = (draws @ sums) / np.maximum(draws @ counts, 1e-12)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return {
        "mean": float(sums.sum() / counts.sum()),
        "lo": float(lo),
        "hi": float(hi),
        "n_users": int(ids.size),
        "n_rows": int(values.size),
    }
