"""The vector env's fast paths against a plain reference of what the policy sees.

``ReferenceVectorEnv`` is the straightforward implementation the env had before its step was
optimised (candidate draws with a stable argsort per redraw round, the observation concatenated
from a per-item table, the encoder updates with fancy-indexed copies, a per-row final-obs copy),
kept here verbatim over the same public parts (``World``, ``InteractionLog``'s arrays, the
encoder's item/profile embeddings). The env must give the same observations, rewards, flags and
infos bit for bit for the same seed and actions: every random draw in the same order.
The reference was extended for v1 of the envs (candidates shuffled per row with
``rng.permuted``, four feedback scalars computed user by user, a ``Dict`` observation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium.utils import seeding

from recsim_llm.config import EnvConfig
from recsim_llm.encoders import BagOfWordsEncoder, hashed_bow, make_encoder
from recsim_llm.envs.vector import SlateVectorEnv
from recsim_llm.log import InteractionLog
from recsim_llm.scenarios import scenario_config
from recsim_llm.world import World


def ref_make_distinct(candidates, available, rng):
    candidates = candidates.copy()
    rows = np.arange(candidates.shape[0])
    sub = candidates
    while True:
        order = np.argsort(sub, axis=1, kind="stable")
        ranked = np.take_along_axis(sub, order, axis=1)
        repeat = np.zeros(sub.shape, dtype=bool)
        repeat[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
        has_repeat = repeat.any(axis=1)
        if not has_repeat.any():
            return candidates
        dup = np.zeros(sub.shape, dtype=bool)
        np.put_along_axis(dup, order, repeat, axis=1)
        sub[dup] = available[rng.integers(available.size, size=int(dup.sum()))]
        if sub is not candidates:
            candidates[rows] = sub
        rows = rows[has_repeat]
        sub = candidates[rows]


def ref_sample(cfg, catalog, n_users, clock, popularity, rng):
    arrival = catalog.arrival_step
    available = np.flatnonzero(arrival <= clock)
    c = cfg.n_candidates
    parts = []
    if cfg.n_popular_candidates:
        keys = popularity[available] + rng.random(available.size) * 0.5
        pool = available[np.argsort(-keys, kind="stable")[: cfg.popular_pool]]
        parts.append(pool[rng.integers(pool.size, size=(n_users, cfg.n_popular_candidates))])
    if cfg.n_new_candidates:
        fresh = available[arrival[available] > max(clock - cfg.new_item_window, 0)]
        pool = fresh if fresh.size else available
        parts.append(pool[rng.integers(pool.size, size=(n_users, cfg.n_new_candidates))])
    n_random = c - cfg.n_popular_candidates - cfg.n_new_candidates
    parts.append(available[rng.integers(available.size, size=(n_users, n_random))])
    distinct = ref_make_distinct(np.concatenate(parts, axis=1), available, rng)
    return rng.permuted(distinct, axis=1)


def ref_feedback(log, row):
    """Click rate, mean rating / 5, mean watch time / 30, steps since click / H, for one user."""
    h = log.history_length
    steps = log.recent_steps(row)  # most recent first
    clicked = [s for s in steps if log.click_pos[row, s] >= 0]
    rate = len(clicked) / len(steps) if steps else 0.0
    if clicked:
        rating = sum(log.rating[row, s] for s in clicked) / len(clicked) / 5.0
        watch = np.where(log.click_pos[row] >= 0, log.engagement[row], 0.0).sum()
        watch = watch / len(clicked) / 30.0
        since = next(i for i, s in enumerate(steps) if log.click_pos[row, s] >= 0) / h
    else:
        rating = watch = 0.0
        since = 1.0
    return [rate, rating, watch, since]


def ref_bow_update(enc, states, log, item_embeddings):
    d = enc.dim
    rows = np.arange(log.n_users)
    slot = (log.count - 1) % log.history_length
    slates = log.slates[rows, slot]
    pos = log.click_pos[rows, slot]
    clicked = pos >= 0
    emb = item_embeddings[slates]
    click_mask = np.zeros(slates.shape, dtype=bool)
    click_mask[rows[clicked], pos[clicked]] = True
    clicked_emb = (emb * click_mask[..., None]).sum(axis=1)
    liked = (log.rating[rows, slot] >= 4.0)[:, None]
    n_skipped = np.maximum((~click_mask).sum(axis=1, keepdims=True), 1)
    skipped_emb = (emb * (~click_mask)[..., None]).sum(axis=1) / n_skipped
    states[:, d:] *= enc.decay
    states[:, d : 2 * d] += clicked_emb
    states[:, 2 * d : 3 * d] += clicked_emb * liked
    states[:, 3 * d :] += skipped_emb


def ref_lm_user(head, p, h):
    u = p @ head["w_profile_t"] + h @ head["w_history_t"] + head["bias"]
    return u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)


def ref_lm_update(enc, states, log, item_embeddings):
    d, head = enc.dim, enc.bundle.head
    rows = np.arange(log.n_users)
    slot = (log.count - 1) % log.history_length
    slates = log.slates[rows, slot]
    pos = log.click_pos[rows, slot]
    types = np.full(slates.shape, 2, dtype=np.int64)
    clicked = pos >= 0
    liked = log.rating[rows, slot] >= 4.0
    types[rows[clicked], pos[clicked]] = np.where(liked[clicked], 0, 1)
    step_sum = np.einsum("nkd,nkd->nd", head["gate"][types], item_embeddings[slates])
    h = states[:, 2 * d : 3 * d]
    w = states[:, 3 * d]
    acc = h * np.maximum(w, 1.0)[:, None]
    acc = head["decay"] * acc + step_sum
    w_new = head["decay"] * w + slates.shape[1]
    states[:, 2 * d : 3 * d] = acc / np.maximum(w_new, 1.0)[:, None]
    states[:, 3 * d] = w_new
    states[:, :d] = ref_lm_user(head, states[:, d : 2 * d], states[:, 2 * d : 3 * d])


def ref_encode_profiles(enc, texts):
    if isinstance(enc, BagOfWordsEncoder):
        states = np.zeros((len(texts), enc.user_dim), dtype=np.float32)
        states[:, : enc.dim] = hashed_bow(texts, enc.dim)
        return states
    d = enc.dim
    p = enc.bundle.profile_embeddings(texts)
    states = np.zeros((len(texts), enc.user_dim), dtype=np.float32)
    states[:, :d] = ref_lm_user(enc.bundle.head, p, states[:, 2 * d : 3 * d])
    states[:, d : 2 * d] = p
    return states


def ref_record(log, slates, click_pos, rating, engagement):
    rows = np.arange(log.n_users)
    slot = log.count % log.history_length
    log.slates[rows, slot] = slates
    log.click_pos[rows, slot] = click_pos
    log.rating[rows, slot] = rating
    log.engagement[rows, slot] = engagement
    log.count += 1
    clicked = click_pos >= 0
    np.add.at(log.popularity, slates[rows[clicked], click_pos[clicked]], 1)


class ReferenceVectorEnv:
    """The vector env's step as it was written before the speed work (same draws, same order)."""

    def __init__(self, n: int, config: EnvConfig) -> None:
        self.n, self.config = n, config
        self.world = World(config.world, n)
        self.catalog = self.world.catalog
        self.encoder = make_encoder(config, self.catalog)
        self.texts = self.catalog.texts()
        self.item_embeddings = np.zeros(
            (self.catalog.n_total, self.encoder.item_dim), dtype=np.float32
        )
        self.encoded = np.zeros(self.catalog.n_total, dtype=bool)
        self.states = np.zeros((n, self.encoder.user_dim), dtype=np.float32)

    def new_log(self) -> InteractionLog:
        c = self.config
        return InteractionLog(self.n, c.history_length, c.slate_size, self.catalog.n_total)

    def encode_arrivals(self) -> None:
        todo = np.flatnonzero((self.catalog.arrival_step <= self.world.clock) & ~self.encoded)
        if todo.size:
            self.item_embeddings[todo] = self.encoder.encode_items([self.texts[i] for i in todo])
            self.encoded[todo] = True

    def reset_users(self, rows, rng) -> None:
        profiles = self.world.reset_users(rows, rng)
        self.log.reset_users(rows, profiles)
        self.states[rows] = ref_encode_profiles(self.encoder, profiles)

    def draw(self, rng, rows=None) -> None:
        args = (self.config, self.catalog)
        if rows is None:
            self.candidates = ref_sample(*args, self.n, self.world.clock, self.log.popularity, rng)
        else:
            self.candidates[rows] = ref_sample(
                *args, len(rows), self.world.clock, self.log.popularity, rng
            )

    def observe(self, rows=None) -> dict[str, np.ndarray]:
        user_rows = np.arange(self.n) if rows is None else np.asarray(rows, dtype=np.int64)
        rows = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)
        cfg, cat = self.config, self.catalog
        candidates = self.candidates[rows]
        n = candidates.shape[0]
        arrival = cat.arrival_step
        is_new = (arrival > 0) & (self.world.clock - arrival < cfg.new_item_window)
        per_item = np.concatenate(
            [
                self.item_embeddings,
                is_new[:, None].astype(np.float32),
                (np.log1p(self.log.popularity) / 10.0)[:, None].astype(np.float32),
            ],
            axis=1,
        )
        user = np.concatenate(
            [
                self.states[rows],
                (self.world.session_step[rows] / cfg.horizon)[:, None].astype(np.float32),
                (np.minimum(self.log.count[rows], cfg.history_length) / cfg.history_length)[
                    :, None
                ].astype(np.float32),
                np.array([ref_feedback(self.log, r) for r in user_rows]).reshape(n, 4),
            ],
            axis=1,
        ).astype(np.float32)
        return {
            "user": user,
            "candidates": per_item[candidates],
            "candidate_mask": np.ones(candidates.shape, dtype=np.float32),
        }

    def reset(self, seed: int) -> np.ndarray:
        self.rng, _ = seeding.np_random(seed)
        self.world.clock = 0
        self.log = self.new_log()
        self.encode_arrivals()
        self.reset_users(np.arange(self.n), self.rng)
        self.draw(self.rng)
        return self.observe()

    def repair(self, action):
        n, k = action.shape
        rows = np.arange(n)
        used = np.zeros((n, self.config.n_candidates), dtype=bool)
        fixed = action.copy()
        n_repaired = np.zeros(n, dtype=np.int64)
        for j in range(k):
            slot = fixed[:, j]
            dup = used[rows, slot]
            if dup.any():
                slot[dup] = np.argmin(used[dup], axis=1)
                n_repaired += dup
            used[rows, slot] = True
        return fixed, n_repaired

    def step(self, action) -> tuple[Any, ...]:
        rng = self.rng
        action, n_repaired = self.repair(np.asarray(action).astype(np.int64))
        slates = np.take_along_axis(self.candidates, action, axis=1)
        r = self.world.step(slates, rng)
        ref_record(self.log, slates, r.click_pos, r.rating, r.engagement)
        self.encode_arrivals()
        if isinstance(self.encoder, BagOfWordsEncoder):
            ref_bow_update(self.encoder, self.states, self.log, self.item_embeddings)
        else:
            ref_lm_update(self.encoder, self.states, self.log, self.item_embeddings)
        terminated = r.churned
        truncated = (self.world.session_step >= self.config.horizon) & ~terminated
        info = {
            "click": r.click_pos >= 0,
            "position": r.click_pos,
            "item": r.clicked_item,
            "engagement": r.engagement,
            "rating": r.rating,
            "n_repaired": n_repaired,
            "true_satisfaction": r.satisfaction,
            "true_value": r.value,
        }
        self.draw(rng)
        obs = self.observe()
        done = terminated | truncated
        if done.any():
            rows = np.flatnonzero(done)
            final_obs = np.full(self.n, None, dtype=object)
            for row in rows:
                final_obs[row] = {k: v[row].copy() for k, v in obs.items()}
            info["final_obs"] = final_obs
            self.reset_users(rows, rng)
            self.draw(rng, rows)
            for k, v in self.observe(rows).items():
                obs[k][rows] = v
        return obs, r.engagement.astype(np.float32), terminated, truncated, info


def _assert_same_obs(obs, r_obs, message: str) -> None:
    assert set(obs) == set(r_obs) == {"user", "candidates", "candidate_mask"}, message
    for key, value in r_obs.items():
        assert obs[key].dtype == np.float32 and obs[key].flags.c_contiguous, message
        assert np.array_equal(obs[key], value), f"{message} ({key})"


def _assert_same_step(got, want, where: str) -> None:
    obs, reward, term, trunc, info = got
    r_obs, r_reward, r_term, r_trunc, r_info = want
    _assert_same_obs(obs, r_obs, f"observations differ {where}")
    assert reward.dtype == r_reward.dtype and np.array_equal(reward, r_reward), where
    assert np.array_equal(term, r_term) and np.array_equal(trunc, r_trunc), where
    for key, value in r_info.items():
        if key == "final_obs":
            mask = np.array([v is not None for v in value])
            assert np.array_equal(info["_final_obs"], mask), where
            for a, b in zip(info[key][mask], value[mask], strict=True):
                _assert_same_obs(a, b, f"final obs {where}")
        else:
            assert np.array_equal(info[key], value), f"info[{key!r}] differs {where}"


@pytest.mark.parametrize(
    ("scenario", "encoder", "n_users", "horizon"),
    [
        ("default", "bow", 48, 25),
        ("default", "lm-fast", 48, 25),
        ("default", "lm-fast", 129, 12),  # the fast head's 64-row blocks, and a merged last row
        ("new-items", "bow", 16, 30),
        ("new-items", "lm-fast", 16, 30),
        ("taste-shift", "lm-fast", 8, 60),
        ("cascade", "bow", 1, 20),
    ],
)
def test_vector_env_matches_the_reference(scenario, encoder, n_users, horizon):
    """Observations, rewards, flags and infos bit for bit, autoresets and repairs included."""
    config = scenario_config(scenario, encoder=encoder, horizon=horizon)
    env = SlateVectorEnv(n_users, config=config)
    ref = ReferenceVectorEnv(n_users, config)
    obs, _ = env.reset(seed=11)
    _assert_same_obs(obs, ref.reset(seed=11), "at reset")
    rng = np.random.default_rng(5)
    n_done = n_repaired = 0
    for t in range(2 * horizon + 7):
        # Random candidate indices: many slates repeat a candidate (the repair path).
        action = rng.integers(config.n_candidates, size=(n_users, config.slate_size))
        got = env.step(action.copy())
        want = ref.step(action)
        _assert_same_step(got, want, f"at step {t}")
        n_done += int((got[2] | got[3]).sum())
        n_repaired += int(got[4]["n_repaired"].sum())
        assert np.array_equal(env.sim.candidates, ref.candidates)
    assert n_done > 0 and n_repaired > 0
    _assert_same_obs(env.sim.observe(), ref.observe(), "at the end")
    rows = np.array([n_users - 1, 0])
    _assert_same_obs(env.sim.observe(rows), ref.observe(rows), "for rows")


def test_returned_observations_are_not_overwritten_by_later_steps():
    """The env may reuse buffers internally, never an array it has handed out."""
    config = EnvConfig(encoder="bow", horizon=5)
    env = SlateVectorEnv(6, config=config)
    first, _ = env.reset(seed=0)
    kept = [{k: v.copy() for k, v in first.items()}]
    outs = [first]
    for _ in range(12):
        obs, *_, info = env.step(np.tile(np.arange(5), (6, 1)))
        outs.append(obs)
        kept.append({k: v.copy() for k, v in obs.items()})
    for a, b in zip(outs, kept, strict=True):
        for key in b:
            assert np.array_equal(a[key], b[key])


@pytest.mark.parametrize("n_available", [20, 23, 60, 1200])
def test_make_distinct_redraws_as_the_reference(n_available):
    from recsim_llm.candidates import _make_distinct

    available = np.sort(np.random.default_rng(n_available).choice(5000, n_available, False))
    for seed in range(5):
        rng = np.random.default_rng(seed)
        cand = available[rng.integers(min(n_available, 30), size=(300, 20))]
        a, b = np.random.default_rng(seed + 100), np.random.default_rng(seed + 100)
        got = _make_distinct(cand, available, a)
        want = ref_make_distinct(cand, available, b)
        assert np.array_equal(got, want)
        assert a.random() == b.random()  # the same number of draws
        assert all(np.unique(row).size == 20 for row in got)


def test_top_stable_is_the_stable_argsort_prefix():
    from recsim_llm.candidates import _top_stable

    rng = np.random.default_rng(0)
    for size, k in [(100, 5), (100, 50), (30, 30), (10, 50), (1200, 50)]:
        for keys in (
            rng.integers(4, size=size).astype(float),  # many ties, at the boundary too
            rng.random(size),
            np.zeros(size),
        ):
            assert np.array_equal(_top_stable(keys, k), np.argsort(-keys, kind="stable")[:k])
