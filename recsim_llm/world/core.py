"""The hidden world: a batch of users reacting to slates, in pure NumPy.

The world owns the truth a recommender never sees: interests, satisfaction, per-topic boredom,
churn and item quality/appeal. It never imports torch, transformers or gymnasium. All arrays are
batched over user slots, shape ``(n_users, ...)``, and every random draw uses the
``np.random.Generator`` passed in.

``World`` wires the parts together, as RecSim splits a simulator:

* a user model (``users.py``) draws new users;
* the click utility (``choice.py``): ``match_weight * <interest, latent_j> + appeal_weight *
  appeal_j - boredom_weight * boredom[topic_j] - position_bias * log(1 + j)``, no-click utility
  ``no_click_base + no_click_dissatisfaction * (1 - satisfaction)``, and a choice model (multinomial
  logit with no-click, or cascade) that turns utilities into a click;
* a response model (``response.py``): consumed value, watch time, rating;
* a transition model (``transition.py``): interest drift, shift events, boredom, satisfaction,
  churn.

Each part is a small object behind a ``Protocol``; the config names the defaults through the
registries (``recsim_llm/world_registries.py``). ``World.expected_response`` gives a slate's expected outcome
without sampling, for the privileged baselines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsim_llm.config import WorldConfig
from recsim_llm.sizes import check_memory
from recsim_llm.world.catalog import Catalog, generate_catalog
from recsim_llm.world.choice import ChoiceModel, item_utility, no_click_utility, position_penalty
from recsim_llm.world.response import ResponseModel
from recsim_llm.world.transition import Consumption, TransitionModel, UserState
from recsim_llm.world.users import UserSampler
from recsim_llm.world_registries import (
    make_choice_model,
    make_response_model,
    make_transition_model,
    make_user_model,
)


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


@dataclass(frozen=True)
class ExpectedResponse:
    """The expected outcome of showing a slate to each user, computed without sampling.

    Per slot values are conditional on that slot being clicked. Hidden truth: for privileged
    references (oracle, myopic, fixed mixes) and for checking the simulator, never for a policy
    one could deploy.
    """

    click_probabilities: np.ndarray
    """(n, k + 1) probability of clicking each slot; the last column is no click."""
    value: np.ndarray
    """(n, k) consumed value of each slot's item if clicked."""
    engagement: np.ndarray
    """(n, k) mean watch time in minutes of each slot's item if clicked."""
    engagement_median: np.ndarray
    """(n, k) median watch time if clicked; for the default response model the noise-free watch
    time ``scale * (appeal_weight * appeal + value_weight * value)``, below the mean by the
    log-normal factor ``exp(engagement_noise**2 / 2)``."""
    satisfaction_delta: np.ndarray
    """(n, k) change of satisfaction if the slot is clicked (before the clip to [0, 1])."""

    @property
    def click_rate(self) -> np.ndarray:
        """(n,) probability of any click."""
        return 1.0 - self.click_probabilities[:, -1]

    @property
    def watch_time(self) -> np.ndarray:
        """(n,) expected watch time of the slate (no click counts 0)."""
        return (self.click_probabilities[:, :-1] * self.engagement).sum(axis=1)

    @property
    def satisfaction_change(self) -> np.ndarray:
        """(n,) expected change of satisfaction (before the clip to [0, 1])."""
        return (self.click_probabilities[:, :-1] * self.satisfaction_delta).sum(axis=1)

    @property
    def mean_value(self) -> np.ndarray:
        """(n,) expected consumed value of the slate (no click counts 0)."""
        return (self.click_probabilities[:, :-1] * self.value).sum(axis=1)


class World:
    """A batch of ``n_users`` user slots over one catalog.

    Args:
        config: world settings; its ``model`` fields name the default parts in the registries.
        n_users: number of user slots (users are replaced in their slot when they leave).
        catalog: the catalog; built from ``config.catalog`` when omitted.
        user_sampler: draws new users; the user model ``config.users.model`` when omitted.
        choice_model: turns utilities into clicks; ``config.choice.model`` when omitted.
        transition_model: moves hidden user state; ``config.dynamics.model`` when omitted.
        response_model: value, watch time and rating; ``config.response.model`` when omitted.
    """

    def __init__(
        self,
        config: WorldConfig,
        n_users: int,
        catalog: Catalog | None = None,
        user_sampler: UserSampler | None = None,
        *,
        choice_model: ChoiceModel | None = None,
        transition_model: TransitionModel | None = None,
        response_model: ResponseModel | None = None,
    ) -> None:
        if isinstance(n_users, bool) or not isinstance(n_users, (int, np.integer)) or n_users < 1:
            raise ValueError(f"n_users must be a positive integer, got {n_users!r}")
        if not isinstance(config, WorldConfig):
            raise ValueError(f"config must be a WorldConfig, got {type(config).__name__}")
        dim = catalog.n_topics if catalog is not None else config.catalog.n_topics
        # User state (interest, boredom, satisfaction, step) and the per-step temporaries
        # (consumed latents, matches, noise): about 6 (n_users, dim) float64 arrays.
        check_memory(
            f"n_users ({int(n_users)})",
            float(n_users) * (6 * dim + 16) * 8,
            "the world's user state",
        )
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
            else make_user_model(config.users.model, config.users, self.catalog.n_topics)
        )
        self.choice_model: ChoiceModel = (
            choice_model
            if choice_model is not None
            else make_choice_model(config.choice.model, config.choice)
        )
        self.transition_model: TransitionModel = (
            transition_model
            if transition_model is not None
            else make_transition_model(config.dynamics.model, config.dynamics)
        )
        self.response_model: ResponseModel = (
            response_model
            if response_model is not None
            else make_response_model(config.response.model, config.response)
        )
        k = self.catalog.n_topics
        self.interest = np.zeros((self.n_users, k))
        self.satisfaction = np.zeros(self.n_users)
        self.boredom = np.zeros((self.n_users, k))
        self.session_step = np.zeros(self.n_users, dtype=np.int64)
        self.bot = np.zeros(self.n_users, dtype=bool)
        """(n,) hidden: the user in the slot is a bot (``UserConfig.bot_fraction``)."""
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
        if self.config.users.bot_fraction > 0.0:
            # Drawn only in bot worlds, so the default world's random stream is unchanged.
            self.bot[rows] = rng.random(rows.size) < self.config.users.bot_fraction
        else:
            self.bot[rows] = False
        return new.profiles

    def available_items(self) -> np.ndarray:
        """Ids of items that have arrived by the current world clock."""
        return self.catalog.available(self.clock)

    @property
    def state(self) -> UserState:
        """The hidden user state, as the transition model sees it (the world's own arrays)."""
        return UserState(
            interest=self.interest,
            satisfaction=self.satisfaction,
            boredom=self.boredom,
            session_step=self.session_step,
        )

    # -- model parts -------------------------------------------------------------------------
    def match(self, items: np.ndarray) -> np.ndarray:
        """(n, m) cosine of each user's interest with items ``items`` (n, m)."""
        return np.einsum("nmk,nk->nm", self.catalog.latent[items], self.interest)

    def item_utilities(self, items: np.ndarray) -> np.ndarray:
        """(n, m) click utility of items ``items`` (n, m) before position bias."""
        cat = self.catalog
        rows = np.arange(self.n_users)[:, None]
        return item_utility(
            self.config.choice,
            self.match(items),
            cat.appeal[items],
            self.boredom[rows, cat.topic[items]],
        )

    def consumed_value(self, items: np.ndarray) -> np.ndarray:
        """(n, m) value of consuming items ``items`` (n, m) (the response model's)."""
        return self.response_model.consumed_value(self.catalog.quality[items], self.match(items))

    def no_click_utility(self) -> np.ndarray:
        """(n,) utility of clicking nothing; dissatisfied users click less."""
        return no_click_utility(self.config.choice, self.satisfaction)

    def position_penalty(self, slate_size: int) -> np.ndarray:
        """(slate_size,) utility lost by position."""
        if self._position_penalty is None or self._position_penalty.shape[0] != slate_size:
            self._position_penalty = position_penalty(self.config.choice.position_bias, slate_size)
        return self._position_penalty

    def click_probabilities(self, slates: np.ndarray) -> np.ndarray:
        """(n, slate_size + 1) click probabilities of each slot (last column: no click)."""
        slates = self._check_slates(slates)
        utilities = self.item_utilities(slates) - self.position_penalty(slates.shape[1])
        probs = self.choice_model.probabilities(utilities, self.no_click_utility())
        if self.bot.any():
            probs = np.where(self.bot[:, None], 1.0 / probs.shape[1], probs)
        return probs

    def churn_probability(self) -> np.ndarray:
        """(n,) probability of leaving at the end of this step, from current satisfaction."""
        return self.transition_model.churn_probability(self.satisfaction)

    def expected_response(self, slates: np.ndarray) -> ExpectedResponse:
        """The expected outcome of showing ``slates`` (n_users, k) of item ids, without sampling.

        Reads the current hidden state and changes nothing; draws no random numbers.
        """
        slates = self._check_slates(slates)
        cat = self.catalog
        value = self.consumed_value(slates)
        appeal = cat.appeal[slates]
        delta = np.asarray(
            self.transition_model.satisfaction_delta(value, self.satisfaction[:, None])
        )
        if delta.shape != value.shape:
            delta = np.broadcast_to(delta, value.shape).copy()
        return ExpectedResponse(
            click_probabilities=self.click_probabilities(slates),
            value=value,
            engagement=self.response_model.expected_engagement(appeal, value),
            engagement_median=self.response_model.median_engagement(appeal, value),
            satisfaction_delta=delta,
        )

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
        """Show ``slates`` (n_users, slate_size) of item ids; users respond and their state moves.

        Random draws, in this order: the click (choice model), the responses (response model),
        the state transition and churn (transition model).
        """
        slates = self._check_slates(slates)
        rows = np.arange(self.n_users)
        cat = self.catalog
        utilities = self.item_utilities(slates) - self.position_penalty(slates.shape[1])
        pos = self.choice_model.sample(utilities, self.no_click_utility(), rng)
        if self.config.users.bot_fraction > 0.0:
            # Bots: each of the k slots and "no click" equally likely, whatever the slate.
            k = slates.shape[1]
            draw = rng.integers(k + 1, size=self.n_users)
            pos = np.where(self.bot, np.where(draw == k, -1, draw), pos)
        clicked = pos >= 0
        item = np.where(clicked, slates[rows, np.maximum(pos, 0)], -1)
        safe_item = np.maximum(item, 0)

        # Responses to the consumed item.
        latent = cat.latent[safe_item]
        match = np.einsum("nk,nk->n", latent, self.interest)
        value = np.where(
            clicked, self.response_model.consumed_value(cat.quality[safe_item], match), 0.0
        )
        engagement, rating = self.response_model.sample(clicked, cat.appeal[safe_item], value, rng)

        # Hidden state transitions.
        consumption = Consumption(
            clicked=clicked, latent=latent, topic=cat.topic[safe_item], value=value
        )
        churned = self.transition_model.step(self.state, consumption, self.user_sampler, rng)
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
