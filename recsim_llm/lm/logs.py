"""Logged behaviour for fine-tuning: writing it from the synthetic world, reading and splitting it.

A log directory holds

* ``config.json``: how it was made (env config, behaviour policy, seed, world hash);
* ``items.jsonl``: one line per item: ``id``, ``title``, ``text``, ``genres``, ``arrival_step``;
* ``impressions.jsonl``: one line per (user, step): ``user``, ``t`` (session step), ``clock``,
  ``profile``, ``candidates``, ``slate``, ``click_pos`` (-1 none), ``rating`` (0 none),
  ``engagement``, ``history_text`` (the observable history text *before* this slate).

The directory is written by ``recsim_llm.io`` (kind ``"logs"``): staged in a hidden sibling,
marked and swapped in whole; ``--out`` is checked before any work. Other sources (e.g. MovieLens) write the same format.
The behaviour policy is stochastic: Gumbel top-k over true click utilities at a temperature,
mixed with uniformly random slates, so that the logs cover items a myopic policy would not show.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm import text
from recsim_llm.config import EnvConfig, WorldConfig, to_dict
from recsim_llm.io import check_out_dir, json_default, json_text, write_directory

LOG_FORMAT = "recsim-llm-logs/1"


_DEFAULT_MODELS = {"users": "synthetic", "dynamics": "default", "response": "default"}
"""World parts whose ``model`` field is left out of ``world_hash`` when it holds this default."""


_LATER_SWITCHES = (("users", "bot_fraction"), ("choice", "cascade_share"))
"""World fields added after encoders were shipped, left out of ``world_hash`` while they are 0."""


def world_hash(world: WorldConfig) -> str:
    """Stable short hash of a world config (what an encoder was fine-tuned for)."""
    values = to_dict(world)
    # The parts' ``model`` selectors came after encoders were shipped: leave a part's selector out
    # while it names the built-in default, so the hash of an unchanged world stays the same.
    for part, default in _DEFAULT_MODELS.items():
        if values[part].get("model") == default:
            del values[part]["model"]
    # Likewise for later switches while they are off (bots, the logit/cascade mixture).
    for part, field in _LATER_SWITCHES:
        if values[part].get(field) == 0.0:
            del values[part][field]
    # The trend event (added later too): its three fields are left out while it is off (no
    # strength, or no step).
    dyn = values["dynamics"]
    if dyn.get("trend_strength") == 0.0 or dyn.get("trend_step", -1) < 0:
        for field in ("trend_step", "trend_topic", "trend_strength"):
            values["dynamics"].pop(field, None)
    payload = json.dumps(values, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def _jsonl_text(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, default=json_default) + "\n" for row in rows)


def _write_log_directory(
    out_dir: str | os.PathLike[str],
    items: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    meta: dict[str, Any],
) -> Path:
    """One log directory, through ``recsim_llm.io`` (kind ``"logs"``)."""
    files = {
        "items.jsonl": _jsonl_text(items),
        "impressions.jsonl": _jsonl_text(rows),
        "config.json": json_text(meta),
    }
    return write_directory(out_dir, files, "logs")


@dataclass(frozen=True)
class BehaviourPolicy:
    """Stochastic logging policy: Gumbel top-k of utility / temperature, or random w.p. epsilon.

    ``shuffle_order`` (default) shows the chosen items in a uniformly random order: the top-k
    order follows the hidden utility, and with the world's position penalty that order alone
    predicts clicks (per-row AUC 0.65 on the default world), so models trained or evaluated on
    ordered logs learn the logger's ranking through the position instead of the user's taste.
    Randomised presentation keeps position independent of the item, so a position offset is
    identifiable in training and per-row ranking metrics measure the scorer, not the logger.
    """

    temperature: float = 1.0
    epsilon: float = 0.2
    shuffle_order: bool = True

    def __post_init__(self) -> None:
        if not self.temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if not isinstance(self.shuffle_order, bool):
            raise ValueError(f"shuffle_order must be True or False, got {self.shuffle_order!r}")

    def act(self, sim: Any, rng: np.random.Generator) -> np.ndarray:
        utilities = sim.world.item_utilities(sim.candidates) / self.temperature
        explore = rng.random(sim.n_users) < self.epsilon
        utilities[explore] = 0.0
        keys = utilities + rng.gumbel(size=utilities.shape)
        action = np.argsort(-keys, axis=1, kind="stable")[:, : sim.config.slate_size]
        if self.shuffle_order:
            action = rng.permuted(action, axis=1)
        return action


def write_behaviour_logs(
    out_dir: str | os.PathLike[str],
    config: EnvConfig | None = None,
    n_users: int = 256,
    n_steps: int = 40,
    seed: int = 0,
    policy: BehaviourPolicy | None = None,
    history_events: int = 40,
    progress: bool = False,
) -> Path:
    """Run the behaviour policy on ``n_users`` concurrent user slots for ``n_steps`` world steps.

    Users who churn or finish a session are replaced by new users (new ids), so the log holds
    at least ``n_users`` users. Returns the log directory.
    """
    from recsim_llm.encoders import BagOfWordsEncoder
    from recsim_llm.envs.core import SlateSimulator

    check_out_dir(out_dir, "logs")
    config = config or EnvConfig()
    policy = policy or BehaviourPolicy()
    for name, value, low in (("n_users", n_users, 1), ("n_steps", n_steps, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x106]))
    sim = SlateSimulator(config, n_users, encoder=BagOfWordsEncoder(8))
    sim.reset(rng)
    user_id = np.arange(n_users)
    next_id = n_users
    rows: list[dict[str, Any]] = []
    steps = range(n_steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="write-logs", unit="step")
    for _ in steps:
        histories = [
            sim.log.history_text(u, sim.titles, max_clicks=history_events) for u in range(n_users)
        ]
        session_step = sim.world.session_step.copy()
        clock = sim.world.clock
        candidates = sim.candidates.copy()
        action = policy.act(sim, rng)
        slates = np.take_along_axis(candidates, action, axis=1)
        # Hidden truth of the shown items before the step moves the users (no random draws).
        hidden_match = sim.world.match(slates)
        hidden_utility = sim.world.item_utilities(slates)
        hidden_appeal = sim.world.catalog.appeal[slates]
        result = sim.step(action, rng)
        r = result.responses
        for u in range(n_users):
            rows.append(
                {
                    "user": int(user_id[u]),
                    "t": int(session_step[u]),
                    "clock": int(clock),
                    "profile": sim.log.profiles[u],
                    "candidates": candidates[u].tolist(),
                    "slate": slates[u].tolist(),
                    "click_pos": int(r.click_pos[u]),
                    "rating": float(r.rating[u]),
                    "engagement": round(float(r.engagement[u]), 4),
                    "history_text": histories[u],
                    "hidden": {
                        "appeal": np.round(hidden_appeal[u], 5).tolist(),
                        "match": np.round(hidden_match[u], 5).tolist(),
                        "utility": np.round(hidden_utility[u], 5).tolist(),
                    },
                }
            )
        sim.draw_candidates(rng)
        done = np.flatnonzero(result.terminated | result.truncated)
        if done.size:
            sim.reset_users(done, rng)
            sim.draw_candidates(rng, done)
            user_id[done] = next_id + np.arange(done.size)
            next_id += done.size
    catalog = sim.catalog
    items = [
        {
            "id": i,
            "title": catalog.titles[i],
            "text": t,
            "genres": list(catalog.genres[i]),
            "arrival_step": int(catalog.arrival_step[i]),
        }
        for i, t in enumerate(catalog.texts())
    ]
    meta = {
        "format": LOG_FORMAT,
        "source": "synthetic",
        "env_config": to_dict(config),
        "world_hash": world_hash(config.world),
        "behaviour_policy": {
            "temperature": policy.temperature,
            "epsilon": policy.epsilon,
            "shuffle_order": policy.shuffle_order,
        },
        "n_users": n_users,
        "n_steps": n_steps,
        "seed": seed,
        "history_events": history_events,
        "label_fields": {"click": "click_pos >= 0", "liked": "rating >= 4"},
        "hidden_fields": {
            "hidden": "per shown slot: appeal, match (interest cosine), utility (click utility "
            "before position bias); hidden truth for evaluation ceilings, never for training"
        },
        "n_rows": len(rows),
        "n_distinct_users": int(next_id),
    }
    return _write_log_directory(out_dir, items, rows, meta)


# -- reading -------------------------------------------------------------------------------------


@dataclass
class LogData:
    """A loaded log: items and impression rows as arrays (rows sorted by user, then step)."""

    meta: dict[str, Any]
    item_titles: list[str]
    item_texts: list[str]
    item_genres: list[tuple[str, ...]]
    """Observable genre labels per item (empty for logs written before genres were logged)."""
    user: np.ndarray
    t: np.ndarray
    clock: np.ndarray
    profiles: list[str]
    candidates: np.ndarray
    """(n_rows, n_candidates) item ids (-1 padded)."""
    slates: np.ndarray
    """(n_rows, slate_size) item ids."""
    click_pos: np.ndarray
    rating: np.ndarray
    history_text: list[str]

    @property
    def n_rows(self) -> int:
        return int(self.user.shape[0])

    @property
    def n_items(self) -> int:
        return len(self.item_texts)


def load_logs(log_dir: str | os.PathLike[str]) -> LogData:
    """Read a log directory (see the module docstring); clear errors for missing/invalid files."""
    path = Path(log_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"logs directory {str(path)!r} does not exist")
    for name in ("config.json", "items.jsonl", "impressions.jsonl"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"logs directory {str(path)!r} has no {name}")
    meta = json.loads((path / "config.json").read_text())
    if meta.get("format") != LOG_FORMAT:
        raise ValueError(
            f"{path / 'config.json'}: format must be {LOG_FORMAT!r}, got {meta.get('format')!r}"
        )
    items = [json.loads(line) for line in (path / "items.jsonl").open() if line.strip()]
    if [it["id"] for it in items] != list(range(len(items))):
        raise ValueError(f"{path / 'items.jsonl'}: item ids must be 0..n-1 in order")
    rows = [json.loads(line) for line in (path / "impressions.jsonl").open() if line.strip()]
    if not rows:
        raise ValueError(f"{path / 'impressions.jsonl'} holds no rows")
    rows.sort(key=lambda r: (r["user"], r["t"]))
    width = max(len(r["candidates"]) for r in rows)
    candidates = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        candidates[i, : len(r["candidates"])] = r["candidates"]
    return LogData(
        meta=meta,
        item_titles=[it["title"] for it in items],
        item_texts=[it["text"] for it in items],
        item_genres=[tuple(it.get("genres", ())) for it in items],
        user=np.array([r["user"] for r in rows], dtype=np.int64),
        t=np.array([r["t"] for r in rows], dtype=np.int64),
        clock=np.array([r["clock"] for r in rows], dtype=np.int64),
        profiles=[r["profile"] for r in rows],
        candidates=candidates,
        slates=np.array([r["slate"] for r in rows], dtype=np.int64),
        click_pos=np.array([r["click_pos"] for r in rows], dtype=np.int64),
        rating=np.array([r["rating"] for r in rows], dtype=np.float64),
        history_text=[r["history_text"] for r in rows],
    )


def labels(data: LogData, label: str) -> np.ndarray:
    """(n_rows, slate_size) 0/1 response of each shown item: 'click' or 'liked' (rating >= 4)."""
    if label not in ("click", "liked"):
        raise ValueError(f"label must be 'click' or 'liked', got {label!r}")
    y = np.zeros(data.slates.shape, dtype=np.float32)
    rows = np.flatnonzero(data.click_pos >= 0)
    keep = rows if label == "click" else rows[data.rating[rows] >= 4.0]
    y[keep, data.click_pos[keep]] = 1.0
    return y


@dataclass(frozen=True)
class Split:
    """Row indices of train / validation / test, and the held-out (cold-start) items."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    cold_items: np.ndarray
    """Item ids never shown to training (as candidates or inside training histories)."""

    def cold_mask(self, n_items: int) -> np.ndarray:
        """(n_items,) bool: True for the held-out (cold) items."""
        cold = np.zeros(n_items, dtype=bool)
        cold[self.cold_items] = True
        return cold


def split_logs(
    data: LogData,
    by: str = "user",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    cold_item_fraction: float = 0.1,
    seed: int = 0,
) -> Split:
    """Split rows by user (disjoint user sets) or by time (world clock), never leaking test rows.

    By user, every row of a user lands in one split. By time, train rows come before every
    validation row, which come before every test row. Cold items are a seeded random share of
    item ids: training uses no pair with a cold candidate and drops cold items from its histories.
    """
    if by not in ("user", "time"):
        raise ValueError(f"split must be 'user' or 'time', got {by!r}")
    for name, value in (
        ("val_fraction", val_fraction),
        ("test_fraction", test_fraction),
        ("cold_item_fraction", cold_item_fraction),
    ):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError("val_fraction + test_fraction must be < 1")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5B1]))
    if by == "user":
        users = np.unique(data.user)
        order = rng.permutation(users)
        n_test = int(round(test_fraction * users.size))
        n_val = int(round(val_fraction * users.size))
        test_users, val_users = order[:n_test], order[n_test : n_test + n_val]
        test = np.isin(data.user, test_users)
        val = np.isin(data.user, val_users)
    else:
        q_train, q_val = np.quantile(
            data.clock, [1.0 - val_fraction - test_fraction, 1.0 - test_fraction]
        )
        test = data.clock > q_val
        val = (data.clock > q_train) & ~test
    train = ~(test | val)
    n_cold = int(round(cold_item_fraction * data.n_items))
    cold = (
        np.sort(rng.choice(data.n_items, size=n_cold, replace=False))
        if n_cold
        else np.zeros(0, np.int64)
    )
    return Split(
        train=np.flatnonzero(train),
        val=np.flatnonzero(val),
        test=np.flatnonzero(test),
        cold_items=cold.astype(np.int64),
    )


def event_type(clicked: bool, rating: float) -> int:
    """0 liked (clicked, rating >= 4), 1 clicked, 2 skipped (see ``model.N_EVENT_TYPES``)."""
    if not clicked:
        return 2
    return 0 if rating >= 4.0 else 1


class Histories:
    """Structured histories of log rows, rebuilt from each user's earlier rows.

    ``events(row)`` lists (item, clicked, rating, age in steps), most recent first, clicks before
    skips within a step (the order of ``InteractionLog.events``), at most ``max_steps`` steps back.
    """

    def __init__(
        self, data: LogData, max_steps: int = 20, drop_items: np.ndarray | None = None
    ) -> None:
        self.data = data
        self.max_steps = int(max_steps)
        self.drop = set(
            np.asarray(drop_items if drop_items is not None else [], dtype=np.int64).tolist()
        )
        first = np.ones(data.n_rows, dtype=bool)
        first[1:] = data.user[1:] != data.user[:-1]
        self._start = np.maximum.accumulate(np.where(first, np.arange(data.n_rows), 0))

    def events(self, row: int) -> list[tuple[int, bool, float, int]]:
        d = self.data
        out: list[tuple[int, bool, float, int]] = []
        for prev in range(row - 1, int(self._start[row]) - 1, -1):
            age = int(d.t[row] - d.t[prev]) - 1
            if age >= self.max_steps:
                break
            pos = int(d.click_pos[prev])
            slate = d.slates[prev].tolist()
            if pos >= 0 and slate[pos] not in self.drop:
                out.append((slate[pos], True, float(d.rating[prev]), age))
            out.extend(
                (it, False, 0.0, age)
                for j, it in enumerate(slate)
                if j != pos and it not in self.drop
            )
        return out

    def text_events(self, row: int) -> list[text.Event]:
        """``events(row)`` as ``text.Event`` tuples (title, genres, clicked, rating)."""
        d = self.data
        return [
            (d.item_titles[it], d.item_genres[it], clicked, rating if clicked else None)
            for it, clicked, rating, _ in self.events(row)
        ]

    def text(self, row: int, n_tokens: Any = None, budget: int = 0) -> str:
        """History text of ``row`` (``text.render_history``), fit to ``budget`` tokens if given."""
        profile = self.data.profiles[row]
        if n_tokens is not None and budget > 0:
            return text.render_history_within(profile, self.text_events(row), n_tokens, budget)
        return text.render_history(profile, self.text_events(row))

    def arrays(self, rows: np.ndarray, max_events: int) -> tuple[np.ndarray, ...]:
        """Padded (items, types, ages, mask), each (len(rows), max_events), for the fast head."""
        n = len(rows)
        items = np.zeros((n, max_events), dtype=np.int64)
        types = np.zeros((n, max_events), dtype=np.int64)
        ages = np.zeros((n, max_events), dtype=np.int64)
        mask = np.zeros((n, max_events), dtype=bool)
        for i, row in enumerate(rows):
            for j, (it, clicked, rating, age) in enumerate(self.events(int(row))[:max_events]):
                items[i, j], types[i, j], ages[i, j], mask[i, j] = (
                    it,
                    event_type(clicked, rating),
                    age,
                    True,
                )
        return items, types, ages, mask


def write_movielens_logs(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    n_candidates: int = 20,
    history_events: int = 40,
    seed: int = 0,
) -> Path:
    """MovieLens ratings in the log format: one row per rating, in time order per user.

    Each row shows one movie (the one rated: ``click_pos`` 0, its rating); its candidates are
    that movie and ``n_candidates - 1`` movies the user never rated, drawn with a seeded
    generator. Fine-tune with ``label='liked'`` (rating >= 4). Profiles, item texts and
    histories are rendered by ``recsim_llm.text`` exactly as the MovieLens env renders them.
    """
    from recsim_llm.movielens import load_movielens

    check_out_dir(out_dir, "logs")
    ml = load_movielens(data_dir)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x3E1]))
    movies = ml.movies
    # The same item texts and profiles as the MovieLens env (recsim_llm.movielens.world).
    titles = list(movies.titles)
    genres = [text.movie_genres(g) for g in movies.genres]
    texts = [
        text.item_text(title, text.movie_description(int(year), g), genre)
        for title, year, g, genre in zip(
            titles, movies.years.tolist(), movies.genres, genres, strict=True
        )
    ]
    n_items = len(movies)
    order = np.lexsort((ml.timestamp, ml.user))
    rated = np.zeros(n_items, dtype=bool)
    rows: list[dict[str, Any]] = []
    events: list[text.Event] = []
    prev_user = -1
    t = 0
    for idx in order.tolist():
        u = int(ml.user[idx])
        if u != prev_user:
            prev_user, t, events = u, 0, []
            rated[:] = False
            rated[ml.item[ml.user == u]] = True
            users = ml.users
            profile = text.demographic_profile_text(
                int(users.age[u]), users.gender[u], users.occupation[u]
            )
        item = int(ml.item[idx])
        pool = np.flatnonzero(~rated)
        negatives = rng.choice(pool, size=min(n_candidates - 1, pool.size), replace=False)
        candidates = [item] + negatives.tolist()
        rating = float(ml.rating[idx])
        rows.append(
            {
                "user": u,
                "t": t,
                "clock": int(ml.timestamp[idx]),
                "profile": profile,
                "candidates": candidates,
                "slate": [item],
                "click_pos": 0,
                "rating": rating,
                "engagement": 0.0,
                "history_text": text.render_history(profile, events, history_events),
            }
        )
        events.insert(0, (titles[item], genres[item], True, rating))
        t += 1
    items = [
        {
            "id": i,
            "title": titles[i],
            "text": texts[i],
            "genres": list(genres[i]),
            "arrival_step": 0,
        }
        for i in range(n_items)
    ]
    meta = {
        "format": LOG_FORMAT,
        "source": "movielens",
        "data_dir": str(data_dir),
        "layout": ml.layout,
        "n_candidates": n_candidates,
        "seed": seed,
        "history_events": history_events,
        "n_rows": len(rows),
        "n_distinct_users": len(ml.users),
        "world_hash": None,
        "label_fields": {"click": "every row (rated)", "liked": "rating >= 4"},
    }
    return _write_log_directory(out_dir, items, rows, meta)
