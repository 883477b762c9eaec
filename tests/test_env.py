"""The Gymnasium envs: checkers, determinism, hidden-state isolation, slates and bad input."""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recsim_llm
from recsim_llm.config import EnvConfig
from recsim_llm.envs.slate import SlateEnv
from recsim_llm.envs.wrappers import TopKSlateWrapper, scores_to_slate
from recsim_llm.testing import assert_same_trace, check_recsim_env, rollout_trace


@pytest.mark.parametrize("env_id", ["RecSimLLM/Slate-v1", "RecSimLLM/SlateScores-v1"])
def test_registered_ids_pass_all_checks(env_id, bow_config):
    check_recsim_env(lambda: gym.make(env_id, config=bow_config), n_steps=40)


def test_every_registered_id_is_listed():
    ours = sorted(k for k in gym.registry if k.startswith("RecSimLLM/"))
    assert set(recsim_llm.ENV_IDS) <= set(ours)


def test_make_with_module_prefix():
    env = gym.make("recsim_llm:RecSimLLM/Slate-v1", config=EnvConfig(encoder="bow"))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


_TRACE_SCRIPT = """
import hashlib, sys, numpy as np, gymnasium as gym, recsim_llm
from recsim_llm.config import EnvConfig
from recsim_llm.testing import rollout_trace
env = gym.make("RecSimLLM/Slate-v1", config=EnvConfig(encoder="bow", horizon=30))
t = rollout_trace(env, seed=11, n_steps=60)
h = hashlib.sha256()
for k in ("user", "candidates", "candidate_mask"):
    h.update(np.ascontiguousarray(t["observations"][k]).tobytes())
for k in ("rewards", "dones"):
    h.update(np.ascontiguousarray(t[k]).tobytes())
print(h.hexdigest())
"""


def test_same_seed_same_trajectory_across_processes():
    digests = {
        subprocess.run(
            [sys.executable, "-c", _TRACE_SCRIPT], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    local = rollout_trace(
        gym.make("RecSimLLM/Slate-v1", config=EnvConfig(encoder="bow", horizon=30)),
        seed=11,
        n_steps=60,
    )
    h = hashlib.sha256()
    for k in ("user", "candidates", "candidate_mask"):
        h.update(np.ascontiguousarray(local["observations"][k]).tobytes())
    for k in ("rewards", "dones"):
        h.update(np.ascontiguousarray(local[k]).tobytes())
    digests.add(h.hexdigest())
    assert len(digests) == 1


def test_different_seeds_differ(bow_config):
    a = rollout_trace(SlateEnv(config=bow_config), seed=1, n_steps=20)
    b = rollout_trace(SlateEnv(config=bow_config), seed=2, n_steps=20)
    assert not np.array_equal(a["observations"]["user"], b["observations"]["user"])


def test_observation_never_contains_hidden_state(bow_config):
    """Perturbing every hidden array leaves the encoder update and the observation unchanged."""
    env = SlateEnv(config=bow_config)
    obs, _ = env.reset(seed=3)
    for _ in range(3):
        obs, *_ = env.step(np.arange(5))
    sim = env.sim
    states = sim.states.copy()
    sim.encoder.update(states, sim.log, sim.item_embeddings, sim.titles)
    expected = (states.copy(), sim.observe())
    world, cat = env.world, env.world.catalog
    hidden = [
        world.interest,
        world.satisfaction,
        world.boredom,
        cat.latent,
        cat.quality,
        cat.appeal,
    ]
    originals = [a.copy() for a in hidden]
    try:
        for a in hidden:
            a[...] = np.random.default_rng(0).random(a.shape)
        cat.clickbait[...] = ~cat.clickbait
        states2 = sim.states.copy()
        sim.encoder.update(states2, sim.log, sim.item_embeddings, sim.titles)
        assert np.array_equal(states2, expected[0])
        again = sim.observe()
        assert all(np.array_equal(again[k], expected[1][k]) for k in expected[1])
    finally:
        for a, o in zip(hidden, originals, strict=True):
            a[...] = o
        cat.clickbait[...] = ~cat.clickbait
    secret = np.concatenate(
        [
            world.interest.ravel(),
            cat.latent[env.candidates].ravel(),
            cat.quality[env.candidates],
            cat.appeal[env.candidates],
        ]
    )
    for part in obs.values():
        assert not np.isin(secret.astype(np.float32), part).any()


def test_terminated_is_churn_and_truncated_is_horizon():
    config = EnvConfig(encoder="bow", horizon=5)
    env = SlateEnv(config=config)
    env.reset(seed=0)
    env.world.satisfaction[:] = 1.0
    steps, truncated, terminated = 0, False, False
    while not (truncated or terminated):
        _, _, terminated, truncated, _ = env.step(np.arange(5))
        steps += 1
    assert steps <= 5
    if not terminated:
        assert truncated and steps == 5
    churned = 0
    for seed in range(30):
        env.reset(seed=seed)
        env.world.satisfaction[:] = 0.0
        _, _, terminated, truncated, info = env.step(np.arange(5))
        churned += terminated
        assert not (terminated and truncated)
    assert churned > 3  # ~30% per step at zero satisfaction


def test_info_holds_plain_numbers(bow_config):
    env = SlateEnv(config=bow_config)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.arange(5))
    for key in ("click", "position", "engagement", "rating", "n_repaired", "true_satisfaction"):
        assert isinstance(info[key], (bool, int, float)), key


def test_repeated_items_are_repaired_to_distinct_slates(bow_config):
    env = SlateEnv(config=bow_config)
    env.reset(seed=0)
    fixed, n_repaired = env.sim.repair(np.array([[3, 3, 3, 0, 0]]))
    assert fixed[0].tolist() == [3, 0, 1, 2, 4]
    assert n_repaired[0] == 4  # slot 3 repeats the 0 that slot 1 was repaired to
    _, _, _, _, info = env.step(np.array([3, 3, 3, 0, 0]))
    assert info["n_repaired"] == 4
    shown = env.sim.log.slates[0, env.sim.log.last_slot()[0]]
    assert len(set(shown.tolist())) == 5


def test_repeated_items_error_policy():
    env = SlateEnv(config=EnvConfig(encoder="bow", duplicate_policy="error"))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="repeats a candidate"):
        env.step(np.array([1, 1, 2, 3, 4]))


BAD_ACTIONS = [
    (np.arange(4), "shape"),
    (np.arange(6), "shape"),
    (np.array([0, 1, 2, 3, 20]), r"candidate indices in \[0, 19\]"),
    (np.array([0, 1, 2, 3, -1]), r"candidate indices in \[0, 19\]"),
    (np.array([0, 1, 2, 3, np.nan]), "NaN"),
    (np.array([0.5, 1, 2, 3, 4]), "integer"),
    (np.array(["a", "b", "c", "d", "e"]), "integer"),
]


@pytest.mark.parametrize(("action", "message"), BAD_ACTIONS)
def test_bad_actions_raise_before_state_changes(action, message, bow_config):
    env = SlateEnv(config=bow_config)
    env.reset(seed=0)
    before = (
        env.world.clock,
        env.world.satisfaction.copy(),
        env.sim.log.count.copy(),
        env.sim.states.copy(),
        env.candidates.copy(),
    )
    with pytest.raises(ValueError, match=message):
        env.step(action)
    assert env.world.clock == before[0]
    assert np.array_equal(env.world.satisfaction, before[1])
    assert np.array_equal(env.sim.log.count, before[2])
    assert np.array_equal(env.sim.states, before[3])
    assert np.array_equal(env.candidates, before[4])


def test_scores_wrapper_takes_top_k_and_rejects_nan(bow_config):
    assert scores_to_slate(np.array([0.1, 0.9, -0.2, 0.9, 0.5]), 3).tolist() == [1, 3, 4]
    env = TopKSlateWrapper(SlateEnv(config=bow_config))
    env.reset(seed=0)
    offered = env.unwrapped.candidates.copy()
    scores = np.linspace(-1, 1, 20).astype(np.float32)  # candidate 19 scores highest
    env.step(scores)
    shown = env.unwrapped.sim.log.slates[0, 0]
    assert shown.tolist() == offered[[19, 18, 17, 16, 15]].tolist()
    bad = scores.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        env.step(bad)


def test_step_before_reset_is_an_error(bow_config):
    with pytest.raises(RuntimeError, match="reset"):
        SlateEnv(config=bow_config).step(np.arange(5))


def test_cold_start_users_have_empty_history(bow_config):
    env = SlateEnv(config=bow_config, render_mode="ansi")
    env.reset(seed=0)
    assert "History: none yet." in env.render()
    env.step(np.arange(5))
    assert "skipped" in env.render() or "watched" in env.render()


def test_pickle_round_trip_keeps_trajectory(bow_config):
    env = SlateEnv(config=bow_config)
    env.reset(seed=4)
    env.step(np.arange(5))
    clone = pickle.loads(pickle.dumps(env))
    a = [env.step(np.arange(5))[0] for _ in range(5)]
    b = [clone.step(np.arange(5))[0] for _ in range(5)]
    for key in a[0]:
        assert np.array_equal(np.stack([o[key] for o in a]), np.stack([o[key] for o in b]))


@pytest.mark.parametrize("scenario", ["default", "taste-shift", "cascade", "new-items"])
def test_scenarios_run(scenario):
    from recsim_llm.scenarios import scenario_config

    env = SlateEnv(config=scenario_config(scenario, encoder="bow", horizon=45))
    trace = rollout_trace(env, seed=0, n_steps=15)
    assert all(np.all(np.isfinite(v)) for v in trace["observations"].values())


def test_unknown_scenario():
    with pytest.raises(ValueError, match="scenario must be one of"):
        SlateEnv(scenario="nope")


def test_same_trace_helper_detects_differences(bow_config):
    a = rollout_trace(SlateEnv(config=bow_config), seed=1, n_steps=5)
    b = {k: v.copy() for k, v in a.items()}
    b["rewards"][0] += 1.0
    with pytest.raises(AssertionError):
        assert_same_trace(a, b)


@settings(max_examples=50, deadline=None)
@given(
    actions=st.lists(st.lists(st.integers(0, 19), min_size=5, max_size=5), min_size=1, max_size=8)
)
def test_repaired_slates_never_repeat_an_item(actions):
    original = np.asarray(actions, dtype=np.int64)
    fixed, n_repaired = _SHARED_ENV.sim.repair(original)
    assert fixed.shape == original.shape
    for row, orig, n in zip(fixed.tolist(), original.tolist(), n_repaired, strict=True):
        assert len(set(row)) == 5
        assert min(row) >= 0 and max(row) < 20
        for j, a in enumerate(orig):
            # A slot keeps its candidate unless an earlier slot of the final slate shows it.
            assert (row[j] == a) == (a not in row[:j])
        assert n == sum(r != a for r, a in zip(row, orig, strict=True))


_SHARED_ENV = SlateEnv(config=EnvConfig(encoder="bow"))
_SHARED_ENV.reset(seed=0)
