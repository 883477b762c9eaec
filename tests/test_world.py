"""The batched world: purity, finite state, and the dynamics the issue asks for."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsim_llm.config import DynamicsConfig, WorldConfig
from recsim_llm.world import World


def _world(n=64, seed=0, **dynamics):
    world = World(WorldConfig(dynamics=DynamicsConfig(**dynamics)), n)
    rng = np.random.default_rng(seed)
    world.reset_users(np.arange(n), rng)
    return world, rng


def _random_slates(world, rng, k=5):
    avail = world.available_items()
    keys = rng.random((world.n_users, avail.size))
    return avail[np.argsort(keys, axis=1)[:, :k]]


def test_world_module_imports_no_heavy_packages():
    code = (
        "import sys, recsim_llm.world, recsim_llm.world.catalog;"
        "print(sorted(m for m in ('torch','transformers','gymnasium','peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_state_stays_finite_and_bounded_under_random_slates(seed):
    world, rng = _world(n=32, seed=seed, drift_std=0.05, shift_step=10, shift_fraction=0.5)
    for _ in range(300):
        r = world.step(_random_slates(world, rng), rng)
        for arr in (world.interest, world.satisfaction, world.boredom, r.engagement, r.rating):
            assert np.all(np.isfinite(arr))
    assert np.all((world.satisfaction >= 0) & (world.satisfaction <= 1))
    assert np.all((world.boredom >= 0) & (world.boredom <= 1))
    np.testing.assert_allclose(np.linalg.norm(world.interest, axis=1), 1.0)


def test_same_seed_same_trajectory():
    traces = []
    for _ in range(2):
        world, rng = _world(seed=5)
        out = []
        for _ in range(20):
            r = world.step(_random_slates(world, rng), rng)
            out.append(np.concatenate([r.click_pos, r.engagement, r.satisfaction]))
        traces.append(np.stack(out))
    assert np.array_equal(traces[0], traces[1])


def _fixed_class_slates(world, clickbait: bool, k=5):
    ids = np.flatnonzero((world.catalog.clickbait == clickbait) & (world.catalog.arrival_step == 0))
    # Per user, the k items of that class with the best interest match.
    match = world.match(np.broadcast_to(ids, (world.n_users, ids.size)))
    return ids[np.argsort(-match, axis=1)[:, :k]]


def test_clickbait_clicks_more_now_but_lowers_satisfaction():
    results = {}
    for bait in (True, False):
        world, rng = _world(n=400, seed=1, churn_base=0.0, churn_max=0.0)
        clicks, sat0 = 0.0, world.satisfaction.mean()
        for _ in range(30):
            r = world.step(_fixed_class_slates(world, bait), rng)
            clicks += (r.click_pos >= 0).mean()
        results[bait] = (clicks / 30, world.satisfaction.mean() - sat0)
    assert results[True][0] > results[False][0]  # more immediate clicks
    assert results[True][1] < 0 < results[False][1]  # satisfaction falls vs rises


def test_ratings_follow_value_not_appeal():
    world, rng = _world(n=2000, seed=2)
    r_bait = world.step(_fixed_class_slates(world, True), rng)
    world2, rng2 = _world(n=2000, seed=2)
    r_good = world2.step(_fixed_class_slates(world2, False), rng2)
    assert r_good.rating[r_good.rating > 0].mean() > r_bait.rating[r_bait.rating > 0].mean() + 0.5


def test_churn_rises_as_satisfaction_falls():
    world, _ = _world(n=3)
    world.satisfaction[:] = [0.9, 0.35, 0.05]
    p = world.churn_probability()
    assert p[0] < p[1] < p[2]


def test_filter_bubble_moves_interest_toward_consumed_items():
    world, rng = _world(n=200, seed=3, drift_std=0.0)
    target = np.flatnonzero((world.catalog.topic == 0) & (world.catalog.arrival_step == 0))[:5]
    slates = np.tile(target, (world.n_users, 1))
    before = world.interest[:, 0].mean()
    for _ in range(40):
        world.step(slates, rng)
    assert world.interest[:, 0].mean() > before + 0.05


def test_boredom_rises_with_repeated_topic_and_decays():
    world, rng = _world(n=300, seed=4)
    topic0 = np.flatnonzero((world.catalog.topic == 0) & (world.catalog.arrival_step == 0))[:5]
    for _ in range(10):
        world.step(np.tile(topic0, (world.n_users, 1)), rng)
    assert world.boredom[:, 0].mean() > 0.1
    assert world.boredom[:, 0].mean() > world.boredom[:, 1:].mean() * 5
    high = world.boredom[:, 0].mean()
    other = np.flatnonzero((world.catalog.topic == 1) & (world.catalog.arrival_step == 0))[:5]
    for _ in range(10):
        world.step(np.tile(other, (world.n_users, 1)), rng)
    assert world.boredom[:, 0].mean() < high / 2


def test_shift_event_redraws_interest_of_a_fraction_of_users():
    world, rng = _world(
        n=500, seed=6, drift_std=0.0, filter_bubble_rate=0.0, shift_step=3, shift_fraction=0.5
    )
    before = world.interest.copy()
    for _ in range(5):
        world.step(_random_slates(world, rng), rng)
    changed = np.linalg.norm(world.interest - before, axis=1) > 1e-6
    assert 0.4 < changed.mean() < 0.6


def test_new_items_arrive_over_time():
    world, rng = _world(n=4)
    n0 = world.available_items().size
    for _ in range(10):
        world.step(_random_slates(world, rng), rng)
    assert world.available_items().size > n0


BAD_SLATES = [
    (np.zeros((3, 5), dtype=np.int64), "shape"),
    (np.full((64, 5), 10**6), "item ids"),
    (np.full((64, 5), -1), "item ids"),
    (np.zeros((64, 5)), "integer"),
    (np.tile(np.array([0, 1, 2, 3, 3]), (64, 1)), "twice"),
]


@pytest.mark.parametrize(("slates", "message"), BAD_SLATES)
def test_bad_slates_raise_before_state_changes(slates, message):
    world, rng = _world()
    snapshot = (world.interest.copy(), world.satisfaction.copy(), world.clock)
    with pytest.raises(ValueError, match=message):
        world.step(slates, rng)
    assert np.array_equal(world.interest, snapshot[0])
    assert np.array_equal(world.satisfaction, snapshot[1])
    assert world.clock == snapshot[2]


def test_invalid_n_users():
    with pytest.raises(ValueError, match="n_users"):
        World(WorldConfig(), 0)
