"""Named, versioned scenarios, their strengths, and the robustness battery's mechanisms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recsim_llm.agents.baselines import RandomPolicy
from recsim_llm.config import ChoiceConfig, EnvConfig, UserConfig, WorldConfig
from recsim_llm.evaluation import rollout
from recsim_llm.scenarios import (
    BUILTIN_SCENARIOS,
    SCENARIOS,
    Scenario,
    parse_scenario,
    scenario_config,
    scenario_info,
    scenario_names,
    scenario_table,
)

ROBUSTNESS = ("obs-noise", "missing-feedback", "delayed-feedback", "bots", "population-shift")
NEW = (
    "stationary",
    "gradual-drift",
    "trend-shift",
    "filter-bubble",
    "choice-misspec",
    "cold-start",
    *ROBUSTNESS,
)


def _bow(spec: str, **overrides) -> EnvConfig:
    return scenario_config(spec, encoder="bow", **overrides)


def test_every_scenario_is_listed_with_version_and_a_valid_default_strength():
    names = scenario_names()
    assert set(BUILTIN_SCENARIOS) | set(NEW) <= set(names)
    rows = {row["name"]: row for row in scenario_table()}
    assert set(rows) == set(names)
    for name in names:
        info = scenario_info(name)
        assert isinstance(info, Scenario) and info.version >= 1 and info.description
        assert isinstance(scenario_config(name), EnvConfig)
        if info.strength is not None:
            s = info.strength
            assert s.low <= s.default <= s.high
            assert rows[name]["range"] == f"[{s.low:g}, {s.high:g}]"
            # Both ends of the range build a valid config.
            assert isinstance(scenario_config(f"{name}@{s.low:g}"), EnvConfig)
            assert isinstance(scenario_config(f"{name}@{s.high:g}"), EnvConfig)
    for name in ROBUSTNESS:
        assert scenario_info(name).strength is not None, name


def test_the_first_four_scenarios_build_what_they_always_built():
    assert scenario_config("default") == EnvConfig()
    shift = scenario_config("taste-shift").world.dynamics
    assert (shift.shift_step, shift.shift_fraction) == (40, 0.5)
    assert scenario_config("cascade").world.choice.model == "cascade"
    new = scenario_config("new-items")
    assert new.n_new_candidates == 6 and new.world.catalog.n_new_items == 600


def test_every_scenario_reuses_a_catalog_of_the_shipped_encoder_cache():
    cached = {scenario_config(name).world.catalog for name in BUILTIN_SCENARIOS}
    for name in scenario_names():
        assert scenario_config(name).world.catalog in cached, name


@pytest.mark.parametrize(
    ("spec", "field", "value"),
    [
        ("obs-noise@0.25", "observation_noise", 0.25),
        ("missing-feedback@1", "feedback_drop", 1.0),
        ("delayed-feedback@5", "feedback_delay", 5),
    ],
)
def test_strength_after_at_sets_the_parameter(spec, field, value):
    assert getattr(scenario_config(spec), field) == value


def test_strengths_reach_the_world_parts():
    assert scenario_config("bots@0.4").world.users.bot_fraction == 0.4
    assert scenario_config("taste-shift@0.9").world.dynamics.shift_fraction == 0.9
    assert scenario_config("filter-bubble@0.3").world.dynamics.filter_bubble_rate == 0.3
    assert scenario_config("gradual-drift@0.1").world.dynamics.drift_std == 0.1
    stationary = scenario_config("stationary").world.dynamics
    assert stationary.drift_std == 0.0 and stationary.filter_bubble_rate == 0.0
    assert scenario_config("choice-misspec@0.7").world.choice.cascade_share == 0.7
    assert scenario_config("cold-start@0.5").n_new_candidates == 10
    assert scenario_config("population-shift@0").world.users == UserConfig()
    shifted = scenario_config("population-shift@1").world.users
    assert shifted.satisfaction_low == pytest.approx(0.3)
    assert shifted.interest_topics_max == 6
    assert parse_scenario("bots") == ("bots", None)
    assert parse_scenario(" bots@0.5 ") == ("bots", 0.5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "scenario must be one of"),
        ("obs-noise@lots", "must be a number"),
        (
            "obs-noise@11",
            r"strength \(noise std relative to the state's RMS\) must be in \[0, 10\]",
        ),
        ("bots@-0.1", r"must be in \[0, 1\]"),
        ("delayed-feedback@1.5", "whole number"),
        ("default@0.5", "takes no strength"),
        ("", "non-empty"),
    ],
)
def test_bad_scenario_specs_are_refused_naming_the_problem(spec, message):
    with pytest.raises(ValueError, match=message):
        scenario_config(spec)


def test_a_plain_factory_still_registers_as_a_scenario():
    SCENARIOS.register("toy-world", lambda: EnvConfig(horizon=7))
    try:
        assert scenario_config("toy-world").horizon == 7
        assert scenario_info("toy-world").version == 0
        with pytest.raises(ValueError, match="takes no strength"):
            parse_scenario("toy-world@1")
    finally:
        SCENARIOS.unregister("toy-world")


# -- the robustness mechanisms ----------------------------------------------------------------
def _trace(config: EnvConfig, steps: int = 12, n: int = 16, seed: int = 3):
    """Observations and infos of a random-action run (actions drawn from a fixed generator)."""
    from recsim_llm.envs.vector import SlateVectorEnv

    env = SlateVectorEnv(n, config=config)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(99)
    observations, infos = [obs], []
    for _ in range(steps):
        action = np.argsort(rng.random((n, config.n_candidates)), axis=1)[:, : config.slate_size]
        obs, _, _, _, info = env.step(action)
        observations.append(obs)
        infos.append(info)
    return env, observations, infos


def test_observation_noise_changes_only_the_encoder_state_and_not_the_world():
    plain_env, plain, plain_info = _trace(_bow("default", horizon=30))
    noisy_env, noisy, noisy_info = _trace(_bow("obs-noise@0.5", horizon=30))
    dim = plain_env.sim.encoder.user_dim
    for a, b, ia, ib in zip(plain[1:], noisy[1:], plain_info, noisy_info, strict=True):
        assert np.array_equal(ia["item"], ib["item"])  # the same clicks: world untouched
        assert np.array_equal(a["candidates"], b["candidates"])
        assert np.array_equal(a["user"][:, dim:], b["user"][:, dim:])
        diff = b["user"][:, :dim] - a["user"][:, :dim]
        rms = np.sqrt((a["user"][:, :dim].astype(np.float64) ** 2).mean(axis=1))
        ratio = diff.std(axis=1) / rms
        assert 0.4 < ratio.mean() < 0.6  # std = strength x the row's RMS
    # The encoder's own state is clean: noise is only in what the policy sees.
    assert np.array_equal(plain_env.sim.states, noisy_env.sim.states)
    # Same seed, same noise.
    _, again, _ = _trace(_bow("obs-noise@0.5", horizon=30))
    assert np.array_equal(again[-1]["user"], noisy[-1]["user"])


def test_lost_clicks_never_reach_the_log_but_happen_in_the_world():
    env, _, infos = _trace(_bow("missing-feedback@1", horizon=30))
    assert sum(int(i["click"].sum()) for i in infos) > 10
    assert (env.sim.log.click_pos == -1).all()
    assert env.sim.log.popularity.sum() == 0
    env, _, infos = _trace(_bow("missing-feedback@0.5", horizon=30), steps=25, n=64)
    clicks = sum(int(i["click"].sum()) for i in infos)
    logged = int(env.sim.log.popularity.sum())
    assert 0.35 < logged / clicks < 0.65


def test_delayed_feedback_shows_the_user_state_of_d_steps_ago():
    d = 3
    plain_env, plain, _ = _trace(_bow("default", horizon=30))
    late_env, late, _ = _trace(_bow(f"delayed-feedback@{d}", horizon=30))
    dim = plain_env.sim.encoder.user_dim
    assert np.array_equal(plain_env.sim.states, late_env.sim.states)
    steps = late_env.sim.world.session_step
    for t in range(d, len(late)):
        # Users present for at least d steps: the state and log scalars of step t - d.
        same_user = steps >= len(late) - 1 - t + d
        assert same_user.sum() > 4
        lagged = np.delete(late[t]["user"], dim, axis=1)[same_user]
        then = np.delete(plain[t - d]["user"], dim, axis=1)[same_user]
        assert np.array_equal(lagged, then)
        # Session progress stays current.
        assert np.array_equal(late[t]["user"][:, dim], plain[t]["user"][:, dim])
    assert not np.array_equal(late[-1]["user"], plain[-1]["user"])


def test_bots_click_uniformly_whatever_the_slate():
    from recsim_llm.world import World

    world = World(WorldConfig(users=UserConfig(bot_fraction=1.0)), 2000)
    rng = np.random.default_rng(0)
    world.reset_users(np.arange(2000), rng)
    assert world.bot.all()
    slates = np.tile(np.arange(5), (2000, 1))
    np.testing.assert_allclose(world.click_probabilities(slates), 1.0 / 6.0)
    responses = world.step(slates, rng)
    share = np.bincount(responses.click_pos + 1, minlength=6) / 2000
    np.testing.assert_allclose(share, 1.0 / 6.0, atol=0.03)
    half = World(WorldConfig(users=UserConfig(bot_fraction=0.3)), 4000)
    half.reset_users(np.arange(4000), rng)
    assert 0.27 < half.bot.mean() < 0.33
    plain = World(WorldConfig(), 10)
    plain.reset_users(np.arange(10), rng)
    assert not plain.bot.any()


@pytest.mark.parametrize("share", [0.0, 0.4, 1.0])
def test_misspecified_choice_is_the_stated_mixture(share):
    from recsim_llm.world.choice import Cascade, LogitCascadeMixture, MultinomialLogit

    rng = np.random.default_rng(1)
    u, u0 = rng.normal(size=(50, 5)), rng.normal(size=50)
    mix = LogitCascadeMixture.from_config(ChoiceConfig(cascade_share=share))
    expected = (1 - share) * MultinomialLogit().probabilities(u, u0) + share * Cascade(
        0.8
    ).probabilities(u, u0)
    np.testing.assert_allclose(mix.probabilities(u, u0), expected)
    np.testing.assert_allclose(mix.probabilities(u, u0).sum(axis=1), 1.0)


@pytest.mark.parametrize("spec", ["obs-noise@0.5", "missing-feedback@0.3", "bots@0.2"])
def test_same_seed_same_rollout(spec):
    config = _bow(spec, horizon=20)
    a = rollout(RandomPolicy(), config, 5, 16)
    b = rollout(RandomPolicy(), config, 5, 16)
    for key in a.sessions:
        assert np.array_equal(a.sessions[key], b.sessions[key])


def test_strength_moves_the_outcome():
    """More bots: more clicks for a random policy (bots click 5 of 6 times)."""
    few = rollout(RandomPolicy(), _bow("bots@0", horizon=20), 0, 64)
    many = rollout(RandomPolicy(), _bow("bots@1", horizon=20), 0, 64)
    assert many.sessions["clicks"].mean() > few.sessions["clicks"].mean() + 3


def test_cli_lists_scenarios_and_refuses_a_bad_strength(capsys):
    from recsim_llm.cli import main

    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in scenario_names():
        assert f"| {name} | " in out
    assert "| bots | 1 |" in out and "[0, 1]" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--scenarios", "bots@3", "--out", "unused-dir"])
    assert exit_info.value.code == 2
    assert "bots" in capsys.readouterr().err


def test_config_fields_validate_with_their_names():
    with pytest.raises(ValueError, match="observation_noise"):
        EnvConfig(observation_noise=-1.0)
    with pytest.raises(ValueError, match="feedback_drop"):
        EnvConfig(feedback_drop=1.5)
    with pytest.raises(ValueError, match="feedback_delay"):
        EnvConfig(feedback_delay=-1)
    with pytest.raises(ValueError, match="users.bot_fraction"):
        UserConfig(bot_fraction=2.0)
    with pytest.raises(ValueError, match="choice.cascade_share"):
        ChoiceConfig(cascade_share=-0.1)
    assert dataclasses.asdict(EnvConfig())["feedback_delay"] == 0


def test_trend_shift_raises_everyones_interest_in_the_topic_at_the_step_only():
    """The trend event: at session step 40 every active user's interest in topic 0 rises (the
    same change for all, no random draw); before it the trajectory is the default world's."""
    from recsim_llm.envs.vector import SlateVectorEnv

    trend = _bow("trend-shift@2")
    assert trend.world.dynamics.event_step == 40
    assert scenario_config("taste-shift").world.dynamics.event_step == 40
    assert EnvConfig().world.dynamics.event_step == -1
    envs = {
        name: SlateVectorEnv(64, config=cfg)
        for name, cfg in (("trend", trend), ("base", _bow("default")))
    }
    action = np.tile(np.arange(5), (64, 1))
    shares = {}
    for name, env in envs.items():
        env.reset(seed=5)
        world = env.sim.world
        for t in range(42):
            before = world.interest.copy()
            step = world.session_step.copy()
            env.step(action)
            if t == 40:
                shares[name] = (before, world.interest.copy(), step)
    base_before, _, _ = shares["base"]
    before, after, step = shares["trend"]
    # Identical worlds up to the event (no extra draw), then topic 0 jumps for users at step 40.
    np.testing.assert_array_equal(before, base_before)
    at_event = step == 40
    assert at_event.sum() > 40
    rise = after[at_event, 0] - before[at_event, 0]
    assert (rise > 0).all() and after[at_event, 0].min() > 0.8
    assert np.median(before[at_event, 0]) < 0.5  # topic 0 was not everyone's taste before
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-9)


def test_trend_settings_are_checked_naming_the_field():
    from recsim_llm.config import CatalogConfig, DynamicsConfig

    with pytest.raises(ValueError, match=r"dynamics\.trend_topic"):
        WorldConfig(
            catalog=CatalogConfig(n_topics=4),
            dynamics=DynamicsConfig(trend_step=3, trend_topic=4, trend_strength=1.0),
        )
    with pytest.raises(ValueError, match=r"dynamics\.trend_step"):
        EnvConfig(world=WorldConfig(dynamics=DynamicsConfig(trend_step=100, trend_strength=1.0)))
    with pytest.raises(ValueError, match=r"dynamics\.trend_strength"):
        DynamicsConfig(trend_strength=-1.0)
