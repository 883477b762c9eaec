"""The hidden world: a batch of users reacting to slates, in pure NumPy.

The world owns the truth a recommender never sees: interests, satisfaction, per-topic boredom,
churn and item quality/appeal. It never imports torch, transformers or gymnasium. All arrays are
batched over user slots, shape ``(n_users, ...)``, and every random draw uses the
``np.random.Generator`` passed in.

Model, per step and user (the parts are small functions so they can be read and swapped):

* utility of slot j: ``match_weight * <interest, latent_j> + appeal_weight * appeal_j
  - boredom_weight * boredom[topic_j] - position_bias * log(1 + j)``; no-click utility
  ``no_click_base + no_click_dissatisfaction * (1 - satisfaction)``;
* choice: multinomial logit with no-click, or cascade;
* consumed value ``quality * clip(<interest, latent>, 0, 1)``; engagement (watch time) grows with
  value and appeal; the 1-5 rating follows value only;
* dynamics: interests move toward consumed items (filter bubble), random-walk, and may be redrawn
  at a scheduled shift event; boredom rises on the consumed topic and decays; satisfaction moves
  with ``value - value_reference``; churn probability rises as satisfaction falls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsim_llm.catalog import Catalog, generate_catalog
from recsim_llm.choice import make_choice_model
from recsim_llm.config import WorldConfig
from recsim_llm.users import SyntheticUserSampler, UserSampler


@dataclass(frozen=True)
class Responses:
    """What happened at one step, per user slot. ``value`` and ``satisfaction`` are hidden truth."""

    click_pos: np.ndarray
    """(n,) clicked slate position, -1 for none."""
    clicked_item: np.ndarray
    """(n,) clicked item id, -1 for none."""
    engagement: np.ndarray
    """(n,) watch time in minutes (0 without a click)."""
    rating: np.ndarray
    """(n,) rating 1..5 of the consumed item, 0 without a click."""
    value: np.ndarray
    """(n,) consumed value in [0, 1] (hidden)."""
    satisfaction: np.ndarray
    """(n,) satisfaction after the step (hidden)."""
    churned: np.ndarray
    """(n,) bool: the user left."""


class World:
    """A batch of ``n_users`` user slots over one catalog.

    Args:
        config: world settings.
        n_users: number of user slots (users are replaced in their slot when they leave).
        catalog: the catalog; built from ``config.catalog`` when omitted.
        user_sampler: draws new users; the synthetic sampler of ``config.users`` when omitted.
    """

    def __init__(
        self,
        config: WorldConfig,
        n_users: int,
        catalog: Catalog | None = None,
        user_sampler: UserSampler | None = None,
    ) -> None:
        if isinstance(n_users, bool) or not isinstance(n_users, (int, np.integer)) or n_users < 1:
            raise ValueError(f"n_users must be a positive integer, got {n_users!r}")
        self.config = config
        self.catalog = catalog if catalog is not None else generate_catalog(config.catalog)
        if self.catalog.n_topics != config.catalog.n_topics:
            raise ValueError(
                f"catalog has {self.catalog.n_topics} topics but config.catalog.n_topics is "
                f"{config.catalog.n_topics}"
            )
        self.n_users = int(n_users)
        self.user_sampler: UserSampler = (
            user_sampler
            if user_sampler is not None
            else SyntheticUserSampler(config.users, self.catalog.n_topics)
        )
        self.choice_model = make_choice_model(config.choice.model, config.choice.cascade_continue)
        k = self.catalog.n_topics
        self.interest = np.zeros((self.n_users, k))
        self.satisfaction = np.zeros(self.n_users)
        self.boredom = np.zeros((self.n_users, k))
        self.session_step = np.zeros(self.n_users, dtype=np.int64)
        self.clock = 0
        self._position_penalty: np.ndarray | None = None

    # -- users ---------------------------------------------------------------------------------
    def reset_users(self, rows: np.ndarray, rng: np.random.Generator) -> tuple[str, ...]:
        """Replace the users in ``rows`` by new, cold-start users; returns their profile texts."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_users):
            raise ValueError(f"rows must be in [0, {self.n_users - 1}], got {rows}")
        new = self.user_sampler.sample(rows.size, rng)
        self.interest[rows] = new.interest
        self.satisfaction[rows] = new.satisfaction
        self.boredom[rows] = 0.0
        self.session_step[rows] = 0
        return new.profiles

    def available_items(self) -> np.ndarray:
        """Ids of items that have arrived by the current world clock."""
        return self.catalog.available(self.clock)

    # -- model parts -------------------------------------------------------------------------
    def match(self, items: np.ndarray) -> np.ndarray:
        """(n, m) cosine of each user's interest with items ``items`` (n, m)."""
        return np.einsum("nmk,nk->nm", self.catalog.latent[items], self.interest)

    def item_utilities(self, items: np.ndarray) -> np.ndarray:
        """(n, m) click utility of items ``items`` (n, m) before position bias."""
        c = self.config.choice
        cat = self.catalog
        rows = np.arange(self.n_users)[:, None]
        return (
            c.match_weight * self.match(items)
            + c.appeal_weight * cat.appeal[items]
            - c.boredom_weight * self.boredom[rows, cat.topic[items]]
        )

    def consumed_value(self, items: np.ndarray) -> np.ndarray:
        """(n, m) value of consuming items ``items`` (n, m): quality times interest match."""
        return self.catalog.quality[items] * np.clip(self.match(items), 0.0, 1.0)

    def no_click_utility(self) -> np.ndarray:
        """(n,) utility of clicking nothing; dissatisfied users click less."""
        c = self.config.choice
        return c.no_click_base + c.no_click_dissatisfaction * (1.0 - self.satisfaction)

    def position_penalty(self, slate_size: int) -> np.ndarray:
        """(slate_size,) utility lost by position."""
        if self._position_penalty is None or self._position_penalty.shape[0] != slate_size:
            self._position_penalty = self.config.choice.position_bias * np.log1p(
                np.arange(slate_size)
            )
        return self._position_penalty

    def click_probabilities(self, slates: np.ndarray) -> np.ndarray:
        """(n, slate_size + 1) click probabilities of each slot (last column: no click)."""
        slates = self._check_slates(slates)
        utilities = self.item_utilities(slates) - self.position_penalty(slates.shape[1])
        return self.choice_model.probabilities(utilities, self.no_click_utility())

    def churn_probability(self) -> np.ndarray:
        """(n,) probability of leaving at the end of this step, from current satisfaction."""
        d = self.config.dynamics
        z = (d.churn_threshold - self.satisfaction) / d.churn_width
        return d.churn_base + d.churn_max / (1.0 + np.exp(-z))

    # -- one step ------------------------------------------------------------------------------
    def _check_slates(self, slates: np.ndarray) -> np.ndarray:
        slates = np.asarray(slates)
        if slates.ndim != 2 or slates.shape[0] != self.n_users:
            raise ValueError(
                f"slates must have shape (n_users={self.n_users}, slate_size), got {slates.shape}"
            )
        if not np.issubdtype(slates.dtype, np.integer):
            raise ValueError(f"slates must hold integer item ids, got dtype {slates.dtype}")
        if slates.size and (slates.min() < 0 or slates.max() >= self.catalog.n_total):
            raise ValueError(f"slates must hold item ids in [0, {self.catalog.n_total - 1}]")
        if slates.shape[1] > 1:
            ranked = np.sort(slates, axis=1)
            if (ranked[:, 1:] == ranked[:, :-1]).any():
                raise ValueError("slates must not show an item twice to the same user")
        return slates

    def step(self, slates: np.ndarray, rng: np.random.Generator) -> Responses:
        """Show ``slates`` (n_users, slate_size) of item ids; users respond and their state moves."""
        slates = self._check_slates(slates)
        n = self.n_users
        rows = np.arange(n)
        cfg = self.config
        cat = self.catalog
        utilities = self.item_utilities(slates) - self.position_penalty(slates.shape[1])
        pos = self.choice_model.sample(utilities, self.no_click_utility(), rng)
        clicked = pos >= 0
        item = np.where(clicked, slates[rows, np.maximum(pos, 0)], -1)
        safe_item = np.maximum(item, 0)

        # Responses to the consumed item.
        latent = cat.latent[safe_item]
        match = np.einsum("nk,nk->n", latent, self.interest)
        value = np.where(clicked, cat.quality[safe_item] * np.clip(match, 0.0, 1.0), 0.0)
        r = cfg.response
        noise = rng.standard_normal((2, n))
        watch = (
            r.engagement_appeal_weight * cat.appeal[safe_item] + r.engagement_value_weight * value
        )
        engagement = np.where(
            clicked, r.engagement_scale * watch * np.exp(r.engagement_noise * noise[0]), 0.0
        )
        rating = np.where(
            clicked, np.clip(np.rint(1.0 + 4.0 * value + r.rating_noise * noise[1]), 1, 5), 0.0
        )

        # Hidden state transitions.
        d = cfg.dynamics
        c_rows = rows[clicked]
        self.interest[c_rows] += d.filter_bubble_rate * (latent[clicked] - self.interest[c_rows])
        if d.drift_std > 0.0:
            self.interest += d.drift_std * rng.standard_normal(self.interest.shape)
        if d.shift_step >= 0 and d.shift_fraction > 0.0:
            due = self.session_step == d.shift_step
            shifted = rows[due & (rng.random(n) < d.shift_fraction)]
            if shifted.size:
                self.interest[shifted] = self.user_sampler.sample_interest(shifted.size, rng)
        self.interest /= np.maximum(np.linalg.norm(self.interest, axis=1, keepdims=True), 1e-9)

        self.boredom *= d.boredom_decay
        topic = cat.topic[safe_item[clicked]]
        self.boredom[c_rows, topic] += d.boredom_increase * (1.0 - self.boredom[c_rows, topic])

        self.satisfaction[clicked] += d.satisfaction_rate * (value[clicked] - d.value_reference)
        np.clip(self.satisfaction, 0.0, 1.0, out=self.satisfaction)

        churned = rng.random(n) < self.churn_probability()
        self.session_step += 1
        self.clock += 1
        return Responses(
            click_pos=pos,
            clicked_item=item,
            engagement=engagement,
            rating=rating,
            value=value,
            satisfaction=self.satisfaction.copy(),
            churned=churned,
        )
