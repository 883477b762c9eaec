"""What a slate policy receives from an env: the observation's layout and the step's context.

This module is the boundary between the simulator and the policies. Everything here is what a
deployed recommender could see: the candidates offered, the platform's click counts, the steps
left in the session, and the names of the observation's parts. The hidden world is not here:
privileged reference policies (``privileged = True``) are given it explicitly with
``attach_world``, by whoever builds the simulation (the evaluation harness), never by the env.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

OBS_KEYS = ("user", "candidates", "candidate_mask")
"""Keys of the ``Dict`` observation, in the order the flat view concatenates (the mask is not)."""
USER_SCALARS = (
    "session_progress",
    "history_fill",
    "click_rate",
    "mean_rating",
    "mean_engagement",
    "steps_since_click",
)
"""Observable per-user scalars after the encoder's user state in ``obs['user']``, in order."""
ITEM_SCALARS = ("is_new", "popularity")
"""Observable per-candidate scalars after the item embedding in ``obs['candidates']``."""
N_USER_SCALARS = len(USER_SCALARS)
N_ITEM_SCALARS = len(ITEM_SCALARS)


@dataclass(frozen=True)
class SlateContext:
    """What an env offers a policy at one step, besides the observation (all observable).

    No hidden state: the world is not reachable from here (a test walks the fields).
    """

    candidates: np.ndarray
    """(n_users, n_candidates) item ids offered this step (a seeded shuffle of the sources)."""
    slate_size: int
    popularity: np.ndarray
    """(n_total_items,) clicks observed so far per item."""
    steps_left: np.ndarray
    """(n_users,) steps until the horizon."""


def is_privileged(policy: Any) -> bool:
    """Whether ``policy`` is a privileged reference that reads the hidden world."""
    return bool(getattr(policy, "privileged", False))


def attach_world(policy: Any, world: Any) -> None:
    """Give the hidden ``world`` to a privileged reference policy; deployable ones get nothing."""
    if is_privileged(policy):
        policy.attach(world)


def flatten_observation(observation: dict[str, np.ndarray]) -> np.ndarray:
    """The flat view of a ``Dict`` observation (one or a batch): user, then candidates row-major.

    The candidate mask is dropped. ``(..., user_dim + n_candidates * item_features)`` float32.
    """
    user = np.asarray(observation["user"], dtype=np.float32)
    cands = np.asarray(observation["candidates"], dtype=np.float32)
    lead = user.shape[:-1]
    return np.concatenate([user, cands.reshape(*lead, -1)], axis=-1)
