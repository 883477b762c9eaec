"""Choice models: which slate position (if any) a user clicks, given per-slot utilities.

Both models are batched over users: ``utilities`` is (n_users, slate_size) and already includes
position bias; ``no_click`` is (n_users,) the utility of leaving the slate alone.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


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
        self.continue_prob = float(continue_prob)

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


def make_choice_model(name: str, cascade_continue: float) -> ChoiceModel:
    """The choice model called ``name`` ('mnl' or 'cascade')."""
    if name == "mnl":
        return MultinomialLogit()
    if name == "cascade":
        return Cascade(cascade_continue)
    raise ValueError(f"choice.model must be 'mnl' or 'cascade', got {name!r}")
