"""The one small interface every slate policy implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from recsim_llm.world import World


@dataclass(frozen=True)
class SlateContext:
    """What an env offers a policy at one step, besides the observation.

    ``candidates`` and ``popularity`` are observable. ``world`` is the hidden world: only oracle
    and reference policies (myopic, fixed-mix) read it, and say so in their names.
    """

    candidates: np.ndarray
    """(n_users, n_candidates) item ids offered this step."""
    slate_size: int
    popularity: np.ndarray
    """(n_total_items,) clicks observed so far per item."""
    steps_left: np.ndarray
    """(n_users,) steps until the horizon."""
    world: World
    obs_layout: tuple[int, int, int, int] = (0, 0, 0, 0)
    """Observation layout: (user_dim, n_user_scalars, item_dim, n_item_scalars)."""


@runtime_checkable
class SlatePolicy(Protocol):
    """Chooses, per user, ``slate_size`` distinct candidate indices."""

    name: str

    def reset(self, seed: int) -> None:
        """Start a new evaluation run with its own seeded random generator."""
        ...

    def act(self, observation: np.ndarray, context: SlateContext) -> np.ndarray:
        """(n_users, slate_size) int indices into ``context.candidates``."""
        ...


@runtime_checkable
class LearningSlatePolicy(SlatePolicy, Protocol):
    """A policy that adjusts online from the feedback of the slates it showed."""

    def update(self, observation: np.ndarray, slate: np.ndarray, info: dict) -> None:
        """Learn from one step: the observation acted on, the chosen slate, the step's info."""
        ...
