"""Ranking metrics shared by fine-tuning (validation) and encoder evaluation."""

from __future__ import annotations

import numpy as np

__all__ = ["auc"]


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN when one class is absent."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(y).ravel() > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size)
    sorted_scores = scores[order]
    # Average ranks of ties.
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
