"""Choice: the utility of each shown item and the model that turns utilities into a click.

The utility functions here are the one copy of the click utility: the world, the baselines and the
MovieLens calibration all call them. A choice model maps per-slot utilities to click
probabilities and samples a click; models are batched over users: ``utilities`` is
(n_users, slate_size) and already includes position bias; ``no_click`` is (n_users,) the utility
of leaving the slate alone. Choice models are registered by name in
``recsim_llm.world_registries`` (``ChoiceConfig.model`` selects one).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from recsim_llm.config import ChoiceConfig


def item_utility(
    config: ChoiceConfig,
    match: np.ndarray,
    appeal: np.ndarray,
    boredom: np.ndarray | None = None,
) -> np.ndarray:
    """Click utility of items before position bias (arrays broadcast together).

    ``match_weight * match + appeal_weight * appeal - boredom_weight * boredom``.

    Args:
        config: the choice weights.
        match: cosine of the user's interest and the item's latent vector.
        appeal: the item's appeal (clickbait level).
        boredom: the user's boredom with the item's topic; ``None`` for a fresh user (no term).
    """
    utility = config.match_weight * match + config.appeal_weight * appeal
    if boredom is not None:
        utility = utility - config.boredom_weight * boredom
    return utility


def no_click_utility(config: ChoiceConfig, satisfaction: np.ndarray) -> np.ndarray:
    """Utility of clicking nothing: dissatisfied users click less."""
    return config.no_click_base + config.no_click_dissatisfaction * (1.0 - satisfaction)


def position_penalty(position_bias: float, slate_size: int) -> np.ndarray:
    """(slate_size,) utility lost by position: ``position_bias * log(1 + j)``."""
    return position_bias * np.log1p(np.arange(slate_size))


class ChoiceModel(Protocol):
    """Maps slot utilities to click probabilities and samples a click."""

    def probabilities(self, utilities: np.ndarray, no_click: np.ndarray) -> np.ndarray:
        """(n_users, slate_size + 1) probabilities; the last column is no click."""
        ...

    def sample(
        self, utilities: np.ndarray, no_click: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(n_users,) clicked position, -1 for no click."""
        ...


def _sample_position(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n,) a draw from each row of (n, k + 1) probabilities: slot index, or -1 for no click."""
    cum = np.cumsum(probs, axis=1)
    draw = rng.random(probs.shape[0]) * cum[:, -1]
    choice = (cum <= draw[:, None]).sum(axis=1)
    k = probs.shape[1] - 1
    return np.where(choice >= k, -1, np.minimum(choice, k - 1))


class MultinomialLogit:
    """Multinomial logit with a no-click option: P(j) = exp(u_j) / (exp(u_0) + sum_k exp(u_k))."""

    @classmethod
    def from_config(cls, config: ChoiceConfig) -> MultinomialLogit:
        """The registry's factory (MNL has no parameters of its own)."""
        return cls()

    def probabilities(self, utilities: np.ndarray, no_click: np.ndarray) -> np.ndarray:
        all_u = np.concatenate([utilities, no_click[:, None]], axis=1)
        all_u = all_u - all_u.max(axis=1, keepdims=True)
        expu = np.exp(all_u)
        return expu / expu.sum(axis=1, keepdims=True)

    def sample(
        self, utilities: np.ndarray, no_click: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        return _sample_position(self.probabilities(utilities, no_click), rng)


class Cascade:
    """Cascade model: the user scans slots in order and clicks the first attractive one.

    Slot j is examined with probability ``continue_prob ** j`` (given no earlier click) and, if
    examined, clicked with probability ``sigmoid(u_j - u_0)``.
    """

    def __init__(self, continue_prob: float) -> None:
        if not 0.0 <= float(continue_prob) <= 1.0:
            raise ValueError(f"continue_prob must be in [0, 1], got {continue_prob}")
        self.continue_prob = float(continue_prob)

    @classmethod
    def from_config(cls, config: ChoiceConfig) -> Cascade:
        """The registry's factory: ``ChoiceConfig.cascade_continue``."""
        return cls(config.cascade_continue)

    def probabilities(self, utilities: np.ndarray, no_click: np.ndarray) -> np.ndarray:
        attract = 1.0 / (1.0 + np.exp(-(utilities - no_click[:, None])))
        n, k = utilities.shape
        probs = np.empty((n, k + 1))
        reach = np.ones(n)  # probability of examining slot j
        stop_unclicked = np.zeros(n)  # probability of leaving without a click before slot j
        for j in range(k):
            probs[:, j] = reach * attract[:, j]
            skipped = reach * (1.0 - attract[:, j])
            if j < k - 1:
                stop_unclicked += skipped * (1.0 - self.continue_prob)
                reach = skipped * self.continue_prob
            else:
                stop_unclicked += skipped
        probs[:, k] = stop_unclicked
        return probs

    def sample(
        self, utilities: np.ndarray, no_click: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        return _sample_position(self.probabilities(utilities, no_click), rng)


class LogitCascadeMixture:
    """A mixture of the multinomial logit and the cascade model (misspecified-choice tests).

    Click probabilities are ``(1 - cascade_share) * P_mnl + cascade_share * P_cascade``; a world
    whose users follow this is misspecified for a policy that assumes either model alone.
    """

    def __init__(self, cascade_share: float, continue_prob: float) -> None:
        if not 0.0 <= float(cascade_share) <= 1.0:
            raise ValueError(f"cascade_share must be in [0, 1], got {cascade_share}")
        self.cascade_share = float(cascade_share)
        self.logit = MultinomialLogit()
        self.cascade = Cascade(continue_prob)

    @classmethod
    def from_config(cls, config: ChoiceConfig) -> LogitCascadeMixture:
        """The registry's factory: ``cascade_share`` and ``cascade_continue``."""
        return cls(config.cascade_share, config.cascade_continue)

    def probabilities(self, utilities: np.ndarray, no_click: np.ndarray) -> np.ndarray:
        w = self.cascade_share
        return (1.0 - w) * self.logit.probabilities(
            utilities, no_click
        ) + w * self.cascade.probabilities(utilities, no_click)

    def sample(
        self, utilities: np.ndarray, no_click: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        return _sample_position(self.probabilities(utilities, no_click), rng)
