"""Candidate generation: which items the policy may choose from at each step.

Per user, a mix of the most clicked items so far (observable popularity), newly arrived items
and a uniform sample of everything available; always distinct within a user's candidate set.
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
        """(n_users, n_candidates) distinct item ids available at world step ``clock``."""
        cfg = self.config
        arrival = self.catalog.arrival_step
        available = np.flatnonzero(arrival <= clock)
        c = cfg.n_candidates
        parts = []
        if cfg.n_popular_candidates:
            # Ties (e.g. before any click) are broken by a random draw so early candidates vary.
            keys = popularity[available] + rng.random(available.size) * 0.5
            pool = available[np.argsort(-keys, kind="stable")[: cfg.popular_pool]]
            parts.append(pool[rng.integers(pool.size, size=(n_users, cfg.n_popular_candidates))])
        if cfg.n_new_candidates:
            fresh = available[arrival[available] > max(clock - cfg.new_item_window, 0)]
            pool = fresh if fresh.size else available
            parts.append(pool[rng.integers(pool.size, size=(n_users, cfg.n_new_candidates))])
        n_random = c - cfg.n_popular_candidates - cfg.n_new_candidates
        parts.append(available[rng.integers(available.size, size=(n_users, n_random))])
        candidates = np.concatenate(parts, axis=1)
        return _make_distinct(candidates, available, rng)


def _make_distinct(
    candidates: np.ndarray, available: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Redraw repeated ids uniformly from ``available`` until every row is distinct."""
    if candidates.shape[1] > available.size:
        raise ValueError(
            f"n_candidates ({candidates.shape[1]}) exceeds the available items ({available.size})"
        )
    # Only rows that still hold a repeat are re-checked: a row without one never changes again,
    # so the redraws (row-major over the repeated positions) are those of checking every row.
    candidates = candidates.copy()
    rows = np.arange(candidates.shape[0])
    sub = candidates
    while True:
        order = np.argsort(sub, axis=1, kind="stable")
        ranked = np.take_along_axis(sub, order, axis=1)
        repeat = np.zeros(sub.shape, dtype=bool)
        repeat[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
        has_repeat = repeat.any(axis=1)
        if not has_repeat.any():
            return candidates
        dup = np.zeros(sub.shape, dtype=bool)
        np.put_along_axis(dup, order, repeat, axis=1)
        sub[dup] = available[rng.integers(available.size, size=int(dup.sum()))]
        if sub is not candidates:
            candidates[rows] = sub
        rows = rows[has_repeat]
        sub = candidates[rows]
