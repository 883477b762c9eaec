"""Candidate generation: which items the policy may choose from at each step.

Per user, a mix of the most clicked items so far (observable popularity), newly arrived items
and a uniform sample of everything available; always distinct within a user's candidate set.
Each user's candidates come in a seeded random order (a permutation drawn from the same
generator), so a candidate's position does not reveal which source it came from.
"""

from __future__ import annotations

import numpy as np

from recsim_llm.config import EnvConfig
from recsim_llm.world.catalog import Catalog


class CandidateGenerator:
    """Draws ``n_candidates`` distinct available items per user."""

    def __init__(self, config: EnvConfig, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog

    def sample(
        self, n_users: int, clock: int, popularity: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(n_users, n_candidates) distinct item ids available at world step ``clock``.

        Every row is shuffled by its own permutation drawn from ``rng`` (after the draws of the
        sources), so positions carry no information about the source.
        """
        return rng.permuted(self.sample_by_source(n_users, clock, popularity, rng), axis=1)

    def sample_by_source(
        self, n_users: int, clock: int, popularity: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """``sample`` before the shuffle: per row the popular, then new, then random candidates.

        The same draws as ``sample`` up to the shuffle (tests use it to locate the sources).
        """
        cfg = self.config
        arrival = self.catalog.arrival_step
        available = np.flatnonzero(arrival <= clock)
        c = cfg.n_candidates
        parts = []
        if cfg.n_popular_candidates:
            # Ties (e.g. before any click) are broken by a random draw so early candidates vary.
            keys = popularity[available] + rng.random(available.size) * 0.5
            pool = available[_top_stable(keys, cfg.popular_pool)]
            parts.append(pool[rng.integers(pool.size, size=(n_users, cfg.n_popular_candidates))])
        if cfg.n_new_candidates:
            fresh = available[arrival[available] > max(clock - cfg.new_item_window, 0)]
            pool = fresh if fresh.size else available
            parts.append(pool[rng.integers(pool.size, size=(n_users, cfg.n_new_candidates))])
        n_random = c - cfg.n_popular_candidates - cfg.n_new_candidates
        parts.append(available[rng.integers(available.size, size=(n_users, n_random))])
        candidates = np.concatenate(parts, axis=1)
        return _make_distinct(candidates, available, rng, copy=False)


def _top_stable(keys: np.ndarray, k: int) -> np.ndarray:
    """``np.argsort(-keys, kind="stable")[:k]`` without sorting every key.

    Only the keys at or above the k-th largest can be among the first k; sorting them (in index
    order, stably) ranks them as the full sort does, ties at the boundary included.
    """
    if k >= keys.size:
        return np.argsort(-keys, kind="stable")[:k]
    neg = -keys
    kth = np.partition(neg, k - 1)[k - 1]
    top = np.flatnonzero(neg <= kth)
    return top[np.argsort(neg[top], kind="stable")[:k]]


def _make_distinct(
    candidates: np.ndarray, available: np.ndarray, rng: np.random.Generator, copy: bool = True
) -> np.ndarray:
    """Redraw repeated ids uniformly from ``available`` until every row is distinct.

    In each round, every later occurrence of an id already in its row (left to right) is redrawn,
    row-major; only rows that held a repeat are checked again (a row without one never changes).
    ``copy=False`` works in place on ``candidates``.
    """
    if candidates.shape[1] > available.size:
        raise ValueError(
            f"n_candidates ({candidates.shape[1]}) exceeds the available items ({available.size})"
        )
    if copy:
        candidates = candidates.copy()
    n_cols = candidates.shape[1]
    # Sorting 32-bit ids is faster; the ids are the same numbers.
    narrow = np.int32 if available.size and available.max() < 2**31 else candidates.dtype
    rows = np.arange(candidates.shape[0])
    sub = candidates
    while True:
        # Sorted rows show each repeat as equal neighbours; most rows have none, so only the
        # repeated values are looked up again in their rows (no per-row argsort).
        flat = np.sort(sub.astype(narrow), axis=1).ravel()
        later = np.flatnonzero(flat[1:] == flat[:-1]) + 1
        later = later[later % n_cols != 0]  # neighbours across two rows are no repeat
        if not later.size:
            return candidates
        hit_rows = later // n_cols
        where = sub[hit_rows] == flat[later][:, None]  # every occurrence of a repeated id
        where[np.arange(later.size), where.argmax(axis=1)] = False  # its first one stays
        hit, col = np.nonzero(where)
        dup = np.zeros(sub.shape, dtype=bool)
        dup[hit_rows[hit], col] = True
        sub[dup] = available[rng.integers(available.size, size=int(dup.sum()))]
        if sub is not candidates:
            candidates[rows] = sub
        again = np.zeros(sub.shape[0], dtype=bool)
        again[hit_rows] = True
        rows = rows[again]
        sub = candidates[rows]
