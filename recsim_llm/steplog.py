"""Per-step logs of sampled users: what was offered, shown and done at every step, as Parquet.

One row per (run, policy, scenario, seed, user slot, step) of a recorded user's first session:

==================== =====================================================================
column               meaning
==================== =====================================================================
run_id, policy,      the rollout (as in the tidy results)
scenario, seed
user                 user slot (0 .. n_users - 1)
step                 session step (0-based)
candidates           item ids offered to the policy (list)
slate                item ids shown, in slate order, after duplicate repair (list)
scores               the policy's per-candidate scores when it has ``scores(observation)``
                     (list, aligned with ``candidates``), else null
click, position,     what the user did: click flag, clicked slot (-1 none), clicked item
item                 (-1 none)
watch_time, rating   the responses (0 without a click)
hidden_satisfaction  hidden truth, after the step
hidden_value         hidden consumed value
hidden_interest      the user's hidden interest vector when the slate was shown (list)
state                the encoder part of ``obs['user']`` the policy acted on (float32 list,
                     ``encoder.user_dim`` entries: ``[u | p | h | w]`` for ``lm-fast`` and
                     ``lm-exact``, the bag-of-words state for ``bow``)
explanation          one sentence per slate item (slate order) saying which parts of the
                     user's observable history drove the encoder's score of the item
                     (``recsim_llm.lm.explain.explain_slates``); null unless the encoder is
                     ``lm-fast`` and explanations are on
explanation_events   per slate item ``{item, score, profile, history: [{item_id, title,
                     response, steps_ago, weight}]}`` (the top 3 history events by absolute
                     weight); null when ``explanation`` is
==================== =====================================================================

Explanations are the exact split of the ``lm-fast`` response logit ``scale * u . v + b(v)`` of
each shown item into the profile, the head's bias, one term per event of the env's interaction
log at that step and older pooled history (``recsim_llm.lm.explain``), with no word
attributions (leave-one-out needs the LM for every item: too slow to run inside evaluation).
They decompose the encoder's state that the log belongs to; under ``obs-noise`` and
``delayed-feedback`` the policy acted on a noised or lagged copy of it (the ``state`` column).
``lm-exact`` has none: its ``u`` is the LM's user tower on the history text, which has no
exact split.

Columns whose names start with ``HIDDEN_PREFIX`` are the world's hidden state: for analysis,
never for a deployable policy. Which users are recorded is a seeded sample
(``sample_users``): the same users for every policy of a seed, so their logs compare.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "HIDDEN_PREFIX",
    "OPTIONAL_COLUMNS",
    "STEPLOG_COLUMNS",
    "read_steplog",
    "sample_users",
    "steplog_frame",
    "steplog_parquet",
]

HIDDEN_PREFIX = "hidden_"
"""Prefix of the columns that hold hidden world state."""
KEY_COLUMNS = ("run_id", "policy", "scenario", "seed")
STEPLOG_COLUMNS = (
    *KEY_COLUMNS,
    "user",
    "step",
    "candidates",
    "slate",
    "scores",
    "click",
    "position",
    "item",
    "watch_time",
    "rating",
    "hidden_satisfaction",
    "hidden_value",
    "hidden_interest",
    "state",
    "explanation",
    "explanation_events",
)
OPTIONAL_COLUMNS = ("state", "explanation", "explanation_events")
"""Columns added later: a step log written before them is read with nulls in their place."""
_SAMPLE_STREAM = 0x57E9
"""Mixed into the seed of the user sample, so it is not the env's own stream."""


def sample_users(n_users: int, fraction: float, seed: int) -> np.ndarray:
    """(n_users,) bool: the user slots recorded for ``seed``, each with probability ``fraction``
    (0: none, 1: all), the same for every policy and scenario of that seed."""
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float, np.integer, np.floating))
        or not 0.0 <= float(fraction) <= 1.0
    ):
        raise ValueError(f"log_fraction must be in [0, 1], got {fraction!r}")
    if fraction >= 1.0:
        return np.ones(n_users, dtype=bool)
    rng = np.random.default_rng([int(seed), _SAMPLE_STREAM])
    return rng.random(n_users) < float(fraction)


def steplog_frame(
    user_steps: dict[str, list] | None, run_id: str, policy: str, scenario: str, seed: int
) -> pd.DataFrame:
    """A rollout's ``user_steps`` as a step-log table (``STEPLOG_COLUMNS``, possibly empty)."""
    import pandas as pd

    data = dict(user_steps or {})
    n = len(data.get("user", []))
    columns: dict[str, object] = {
        "run_id": [run_id] * n,
        "policy": [policy] * n,
        "scenario": [scenario] * n,
        "seed": np.full(n, seed, dtype=np.int64),
    }
    for name in STEPLOG_COLUMNS[len(KEY_COLUMNS) :]:
        values = data.get(name, [])
        dtype = _DTYPES.get(name)
        # Typed even when empty, so tables of several rollouts concatenate without casts.
        columns[name] = (
            np.asarray(values, dtype=dtype) if dtype else pd.Series(values, dtype=object)
        )
    return pd.DataFrame(columns, columns=list(STEPLOG_COLUMNS))


_DTYPES = {
    "user": np.int64,
    "step": np.int64,
    "click": bool,
    "position": np.int64,
    "item": np.int64,
    "watch_time": np.float64,
    "rating": np.float64,
    "hidden_satisfaction": np.float64,
    "hidden_value": np.float64,
}


def steplog_parquet(frame: pd.DataFrame) -> bytes:
    """The table as Parquet bytes (pyarrow), list columns kept as lists."""
    missing = [c for c in STEPLOG_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"step log is missing columns {missing}")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()


def read_steplog(path: str | Path) -> pd.DataFrame:
    """A step log (``steps.parquet`` or a run directory holding one), columns checked."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / "steps.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"step log not found: {path}")
    frame = pd.read_parquet(path, engine="pyarrow")
    missing = [c for c in STEPLOG_COLUMNS if c not in frame.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"{path}: step log is missing columns {missing}")
    for name in OPTIONAL_COLUMNS:
        if name not in frame.columns:
            frame[name] = pd.Series([None] * len(frame), dtype=object)
    return frame
