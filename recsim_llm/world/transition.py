"""User-state transition models: how hidden user state moves after a step, and who churns.

A transition model updates the world's user state in place after the users responded to a
slate: interests drift (a filter bubble toward consumed items plus a random walk, and scheduled
taste-shift events), boredom rises on consumed topics and decays, satisfaction follows consumed
value, and users churn with a probability that rises as satisfaction falls. Transition models
are registered by name in ``recsim_llm.world_registries`` (``DynamicsConfig.model`` selects one)
and built by ``factory(config: DynamicsConfig)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recsim_llm.config import DynamicsConfig
from recsim_llm.world.users import UserSampler


@dataclass(frozen=True)
class UserState:
    """The hidden state of every user slot: the world's own arrays, updated in place."""

    interest: np.ndarray
    """(n, dim) unit interest vectors."""
    satisfaction: np.ndarray
    """(n,) satisfaction in [0, 1]."""
    boredom: np.ndarray
    """(n, n_topics) boredom per topic in [0, 1]."""
    session_step: np.ndarray
    """(n,) int64 steps since the user arrived (before this step's increment)."""


@dataclass(frozen=True)
class Consumption:
    """What each user consumed at this step (rows without a click hold item 0's features)."""

    clicked: np.ndarray
    """(n,) bool: the user clicked an item."""
    latent: np.ndarray
    """(n, dim) latent vector of the consumed item."""
    topic: np.ndarray
    """(n,) topic of the consumed item."""
    value: np.ndarray
    """(n,) consumed value (0 without a click)."""


class TransitionModel(Protocol):
    """Moves hidden user state after a step and draws churn."""

    def step(
        self,
        state: UserState,
        consumption: Consumption,
        user_sampler: UserSampler,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Update ``state`` in place after ``consumption``; returns (n,) bool churned.

        ``user_sampler`` supplies fresh interests for taste-shift events. Does not advance
        ``state.session_step`` (the world does, after the step).
        """
        ...

    def churn_probability(self, satisfaction: np.ndarray) -> np.ndarray:
        """Per-step probability of leaving, given satisfaction."""
        ...

    def satisfaction_delta(self, value: np.ndarray, satisfaction: np.ndarray) -> np.ndarray:
        """Change of satisfaction from consuming an item of ``value``, before satisfaction is
        clipped to [0, 1]; ``satisfaction`` broadcasts against ``value``."""
        ...


class DefaultTransition:
    """The default dynamics (parameters in ``DynamicsConfig``).

    * interest moves ``filter_bubble_rate`` of the way toward a consumed item's latent vector,
      takes a Gaussian random-walk step of ``drift_std``, at session step ``shift_step`` a
      ``shift_fraction`` of users get freshly sampled interests (a per-user taste shift), and at
      session step ``trend_step`` every user's interest in ``trend_topic`` rises by
      ``trend_strength`` (a trend: the same change for the whole population; no random draw);
      then it is renormalised;
    * boredom decays by ``boredom_decay`` and rises by ``boredom_increase * (1 - b)`` on the
      consumed topic;
    * satisfaction moves by ``satisfaction_rate * (value - value_reference)`` on a click, clipped
      to [0, 1];
    * churn probability ``churn_base + churn_max * sigmoid((churn_threshold - s) / churn_width)``.

    Args:
        config: dynamics settings.
    """

    def __init__(self, config: DynamicsConfig) -> None:
        self.config = config

    def step(
        self,
        state: UserState,
        consumption: Consumption,
        user_sampler: UserSampler,
        rng: np.random.Generator,
    ) -> np.ndarray:
        # The order of random draws (drift, shift, churn) is part of the seeded trajectory.
        d = self.config
        interest, boredom, satisfaction = state.interest, state.boredom, state.satisfaction
        n = interest.shape[0]
        rows = np.arange(n)
        clicked = consumption.clicked
        c_rows = rows[clicked]
        interest[c_rows] += d.filter_bubble_rate * (consumption.latent[clicked] - interest[c_rows])
        if d.drift_std > 0.0:
            interest += d.drift_std * rng.standard_normal(interest.shape)
        if d.shift_step >= 0 and d.shift_fraction > 0.0:
            due = state.session_step == d.shift_step
            shifted = rows[due & (rng.random(n) < d.shift_fraction)]
            if shifted.size:
                interest[shifted] = user_sampler.sample_interest(shifted.size, rng)
        if d.trend_step >= 0 and d.trend_strength > 0.0:
            interest[state.session_step == d.trend_step, d.trend_topic] += d.trend_strength
        interest /= np.maximum(np.linalg.norm(interest, axis=1, keepdims=True), 1e-9)

        boredom *= d.boredom_decay
        topic = consumption.topic[clicked]
        boredom[c_rows, topic] += d.boredom_increase * (1.0 - boredom[c_rows, topic])

        satisfaction[clicked] += d.satisfaction_rate * (
            consumption.value[clicked] - d.value_reference
        )
        np.clip(satisfaction, 0.0, 1.0, out=satisfaction)

        return rng.random(n) < self.churn_probability(satisfaction)

    def churn_probability(self, satisfaction: np.ndarray) -> np.ndarray:
        d = self.config
        z = (d.churn_threshold - satisfaction) / d.churn_width
        return d.churn_base + d.churn_max / (1.0 + np.exp(-z))

    def satisfaction_delta(self, value: np.ndarray, satisfaction: np.ndarray) -> np.ndarray:
        d = self.config
        # The default change does not depend on the current satisfaction (only the clip does).
        return d.satisfaction_rate * (value - d.value_reference)
