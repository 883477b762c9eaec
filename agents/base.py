"""The one small interface every slate policy implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from recsim_llm.context import SlateContext

__all__ = ["LearningSlatePolicy", "SlateContext", "SlatePolicy"]


@runtime_checkable
class SlatePolicy(Protocol):
    """Chooses, per user, ``slate_size`` distinct candidate indices.

    ``observation`` is the env's ``Dict`` observation as a batch (``recsim_llm.context``
    names its parts). A policy may set the class attribute ``privileged = True``: it is then a
    reference that reads the hidden world, given to it with ``attach(world)`` by the evaluation
    harness (never by the env); deployable policies have ``privileged = False`` (a missing
    attribute counts as False).
    """

    name: str

    def reset(self, seed: int) -> None:
        """Start a new evaluation run with its own seeded random generator."""
        ...

    def act(self, observation: dict[str, np.ndarray], context: SlateContext) -> np.ndarray:
        """(n_users, slate_size) int indices into ``context.candidates``."""
        ...


@runtime_checkable
class LearningSlatePolicy(SlatePolicy, Protocol):
    """A policy that adjusts online from the feedback of the slates it showed."""

    def update(self, observation: dict[str, np.ndarray], slate: np.ndarray, info: dict) -> None:
        """Learn from one step: the observation acted on, the chosen slate, the step's info."""
        ...
