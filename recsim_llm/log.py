"""The observable interaction log: what a real recommender would have recorded.

One ring buffer per user slot of the last ``history_length`` steps (the slate shown, the clicked
position, the rating and the watch time), the users' profile texts, and platform-wide click
counts (observable popularity). Encoders read this log and nothing hidden.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recsim_llm import text

RATING_SCALE = 5.0
"""Ratings are 1..5; ``feedback`` reports them divided by this (0 without a rated click)."""
ENGAGEMENT_SCALE = 30.0
"""Minutes; ``feedback`` reports watch time divided by this (about [0, 1] in the default world)."""


class InteractionLog:
    """Observable history of ``n_users`` user slots.

    Args:
        n_users: user slots.
        history_length: steps kept per user.
        slate_size: items per shown slate.
        n_items: total item ids (for popularity counts).
        item_genres: each item's observable genre labels, named in history texts (None: none).
    """

    def __init__(
        self,
        n_users: int,
        history_length: int,
        slate_size: int,
        n_items: int,
        item_genres: Sequence[Sequence[str]] | None = None,
    ) -> None:
        if item_genres is not None and len(item_genres) != n_items:
            raise ValueError(
                f"item_genres must have one entry per item ({n_items}), got {len(item_genres)}"
            )
        self.item_genres = item_genres
        self.n_users = n_users
        self.history_length = history_length
        self.slate_size = slate_size
        self.slates = np.full((n_users, history_length, slate_size), -1, dtype=np.int64)
        self.click_pos = np.full((n_users, history_length), -1, dtype=np.int64)
        self.rating = np.zeros((n_users, history_length))
        self.engagement = np.zeros((n_users, history_length))
        self.count = np.zeros(n_users, dtype=np.int64)
        """Steps recorded for each user since it arrived."""
        self.popularity = np.zeros(n_items, dtype=np.int64)
        """Clicks observed per item over all users since the log was created."""
        self.profiles: list[str] = [""] * n_users

    def reset_users(self, rows: np.ndarray, profiles: Sequence[str]) -> None:
        """New users in ``rows``: empty history, given profiles. Popularity is kept."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(profiles) != rows.size:
            raise ValueError(
                f"profiles must have one entry per row ({rows.size}), got {len(profiles)}"
            )
        self.slates[rows] = -1
        self.click_pos[rows] = -1
        self.rating[rows] = 0.0
        self.engagement[rows] = 0.0
        self.count[rows] = 0
        for row, profile in zip(rows.tolist(), profiles, strict=True):
            self.profiles[row] = profile

    def record(
        self,
        slates: np.ndarray,
        click_pos: np.ndarray,
        rating: np.ndarray,
        engagement: np.ndarray,
    ) -> None:
        """Append one step for every user slot."""
        rows = np.arange(self.n_users)
        slot = self.count % self.history_length
        self.slates[rows, slot] = slates
        self.click_pos[rows, slot] = click_pos
        self.rating[rows, slot] = rating
        self.engagement[rows, slot] = engagement
        self.count += 1
        clicked = np.flatnonzero(click_pos >= 0)
        items = slates[clicked, click_pos[clicked]]
        if items.size and (items.min() < 0 or items.max() >= self.popularity.size):
            raise IndexError(f"clicked item ids must be in [0, {self.popularity.size - 1}]")
        self.popularity += np.bincount(items, minlength=self.popularity.size)

    def feedback(self, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """(n, 4) float64 summaries of each user's kept history (the last ``history_length`` steps).

        Columns: click rate (clicks / steps kept, 0 with no step), mean rating of the clicked
        items / ``RATING_SCALE`` (0 with no click), mean watch time of the clicked items /
        ``ENGAGEMENT_SCALE`` (0 with no click), and steps since the last click / history_length
        (0 when the latest step was a click, 1 when no kept step has one).
        """
        rows = slice(None) if rows is None else rows
        h = self.history_length
        click_pos = self.click_pos[rows]
        count = self.count[rows]
        clicked = click_pos >= 0  # unfilled slots hold -1: never a click
        n_clicks = clicked.sum(axis=1)
        n_kept = np.minimum(count, h)
        per_click = np.maximum(n_clicks, 1)
        out = np.empty((click_pos.shape[0], 4))
        out[:, 0] = n_clicks / np.maximum(n_kept, 1)
        out[:, 1] = np.where(clicked, self.rating[rows], 0.0).sum(axis=1) / per_click
        out[:, 1] /= RATING_SCALE
        out[:, 2] = np.where(clicked, self.engagement[rows], 0.0).sum(axis=1) / per_click
        out[:, 2] /= ENGAGEMENT_SCALE
        # Ring slot j was written (count - 1 - j) mod h steps ago.
        age = (count[:, None] - 1 - np.arange(h)[None, :]) % h
        out[:, 3] = np.where(clicked, age, h).min(axis=1) / h
        return out

    def last_slot(self) -> np.ndarray:
        """(n_users,) ring-buffer index of each user's latest step (meaningful where count > 0)."""
        return (self.count - 1) % self.history_length

    def recent_steps(self, row: int) -> list[int]:
        """Ring-buffer indices of a user's kept steps, most recent first."""
        n = int(min(self.count[row], self.history_length))
        last = int(self.count[row]) - 1
        return [(last - i) % self.history_length for i in range(n)]

    def events(self, row: int, titles: Sequence[str]) -> list[text.Event]:
        """A user's history as ``text.Event`` tuples, most recent first (clicks before skips)."""
        genres = self.item_genres
        out: list[text.Event] = []
        for slot in self.recent_steps(row):
            pos = int(self.click_pos[row, slot])
            items = self.slates[row, slot].tolist()
            if pos >= 0:
                item = items[pos]
                out.append(
                    (
                        titles[item],
                        genres[item] if genres else (),
                        True,
                        float(self.rating[row, slot]),
                    )
                )
            out.extend(
                (titles[item], genres[item] if genres else (), False, None)
                for j, item in enumerate(items)
                if j != pos
            )
        return out

    def history_text(self, row: int, titles: Sequence[str], max_clicks: int | None = None) -> str:
        """The observable history of user ``row`` as text (``text.render_history``).

        ``max_clicks`` keeps only the most recent clicked items (and the skips they span).
        """
        return text.render_history(self.profiles[row], self.events(row, titles), max_clicks)
