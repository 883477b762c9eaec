"""The world's parts: registries, toy extensions through them, expected responses, size checks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from recsim_llm.agents.baselines import OraclePolicy, _mixed_slate
from recsim_llm.config import (
    CatalogConfig,
    ChoiceConfig,
    DynamicsConfig,
    EnvConfig,
    ResponseConfig,
    UserConfig,
    WorldConfig,
)
from recsim_llm.context import SlateContext
from recsim_llm.envs.vector import SlateVectorEnv
from recsim_llm.registry import Registry
from recsim_llm.world import (
    CHOICE_MODELS,
    RESPONSE_MODELS,
    TRANSITION_MODELS,
    USER_MODELS,
    Consumption,
    NewUsers,
    UserState,
    World,
    register_choice_model,
    register_response_model,
    register_transition_model,
    register_user_model,
)

# -- the generic registry ---------------------------------------------------------------------


def test_registry_resolves_lazily_and_makes():
    reg: Registry[object] = Registry("widget")
    reg.register("frac", "fractions:Fraction")
    assert "frac" in reg and reg.names() == ["frac"]
    assert reg.entry_point("frac") == "fractions:Fraction"
    assert reg.make("frac", 1, 3) * 3 == 1
    reg.register("ctor", lambda x: x + 1)
    assert reg.make("ctor", 1) == 2
    reg.register("dotted", "recsim_llm.world.choice:Cascade.from_config")
    assert reg.make("dotted", ChoiceConfig(cascade_continue=0.4)).continue_prob == 0.4


def test_registry_errors_name_the_kind_and_the_known_names():
    reg: Registry[object] = Registry("widget")
    reg.register("a", "fractions:Fraction")
    with pytest.raises(ValueError, match=r"widget must be one of \['a'\], got 'b'"):
        reg.make("b")
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", "fractions:Fraction")
    reg.register("a", "decimal:Decimal", overwrite=True)
    assert reg.make("a", "1.5") == 1.5
    with pytest.raises(ValueError, match=r"field\.x must be one of \['a'\], got 'nope'"):
        reg.check("nope", "field.x")
    reg.unregister("a")
    assert reg.names() == []


@pytest.mark.parametrize(
    ("entry_point", "message"),
    [
        ("a b:c", "must look like 'package.module:attr'"),
        ("1abc", "must look like"),
        ("module:", "must look like"),
    ],
)
def test_registry_rejects_malformed_entry_points_at_registration(entry_point, message):
    with pytest.raises(ValueError, match=message):
        Registry("widget").register("x", entry_point)


@pytest.mark.parametrize(
    ("entry_point", "message"),
    [
        ("recsim_llm.no_such_module:Thing", "cannot import 'recsim_llm.no_such_module'"),
        ("fractions:NoSuchThing", "no attribute 'NoSuchThing'"),
        ("math:pi", "is not callable"),
    ],
)
def test_registry_bad_entry_point_fails_on_use_naming_it(entry_point, message):
    reg: Registry[object] = Registry("widget")
    reg.register("x", entry_point)
    with pytest.raises(ValueError, match=f"widget 'x'.*{message}"):
        reg.make("x")


@pytest.mark.parametrize(
    ("make_config", "field", "names"),
    [
        (lambda: ChoiceConfig(model="nope"), "choice.model", "'cascade', 'mnl', 'mnl-cascade'"),
        (lambda: UserConfig(model="nope"), "users.model", "'synthetic'"),
        (lambda: DynamicsConfig(model="nope"), "dynamics.model", "'default'"),
        (lambda: ResponseConfig(model="nope"), "response.model", "'default'"),
    ],
)
def test_config_model_fields_are_checked_against_the_registries(make_config, field, names):
    with pytest.raises(ValueError, match=rf"{field} must be one of \[{names}\]"):
        make_config()


# -- toy extensions, each added through its registry -------------------------------------------


class FirstSlotChoice:
    """Always clicks the first slot."""

    def __init__(self, config: ChoiceConfig) -> None:
        self.config = config

    def probabilities(self, utilities: np.ndarray, no_click: np.ndarray) -> np.ndarray:
        probs = np.zeros((utilities.shape[0], utilities.shape[1] + 1))
        probs[:, 0] = 1.0
        return probs

    def sample(
        self, utilities: np.ndarray, no_click: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        return np.zeros(utilities.shape[0], dtype=np.int64)


class OneTopicUsers:
    """Every user likes topic 0 only and starts half satisfied."""

    def __init__(self, config: UserConfig, n_topics: int) -> None:
        self.n_topics = n_topics

    def sample_interest(self, n: int, rng: np.random.Generator) -> np.ndarray:
        interest = np.zeros((n, self.n_topics))
        interest[:, 0] = 1.0
        return interest

    def sample(self, n: int, rng: np.random.Generator) -> NewUsers:
        return NewUsers(self.sample_interest(n, rng), np.full(n, 0.5), ("I like topic zero.",) * n)


class FrozenUsers:
    """Hidden state never moves and nobody churns."""

    def __init__(self, config: DynamicsConfig) -> None:
        self.config = config

    def step(
        self,
        state: UserState,
        consumption: Consumption,
        user_sampler: object,
        rng: np.random.Generator,
    ) -> np.ndarray:
        return np.zeros(state.satisfaction.shape[0], dtype=bool)

    def churn_probability(self, satisfaction: np.ndarray) -> np.ndarray:
        return np.zeros_like(satisfaction)

    def satisfaction_delta(self, value: np.ndarray, satisfaction: np.ndarray) -> np.ndarray:
        return np.zeros_like(value)


class FixedResponse:
    """Seven minutes and a 3-star rating for every click."""

    def __init__(self, config: ResponseConfig) -> None:
        self.config = config

    def consumed_value(self, quality: np.ndarray, match: np.ndarray) -> np.ndarray:
        return quality

    def sample(self, clicked, appeal, value, rng):
        return np.where(clicked, 7.0, 0.0), np.where(clicked, 3.0, 0.0)

    def expected_engagement(self, appeal: np.ndarray, value: np.ndarray) -> np.ndarray:
        return np.full(np.shape(appeal), 7.0)

    def median_engagement(self, appeal: np.ndarray, value: np.ndarray) -> np.ndarray:
        return np.full(np.shape(appeal), 7.0)


@pytest.fixture
def toy_models() -> Iterator[None]:
    register_choice_model("toy-first-slot", FirstSlotChoice)
    register_user_model("toy-one-topic", OneTopicUsers)
    register_transition_model("toy-frozen", FrozenUsers)
    register_response_model("toy-fixed", FixedResponse)
    yield
    CHOICE_MODELS.unregister("toy-first-slot")
    USER_MODELS.unregister("toy-one-topic")
    TRANSITION_MODELS.unregister("toy-frozen")
    RESPONSE_MODELS.unregister("toy-fixed")


def _random_slates(world: World, rng: np.random.Generator, k: int = 5) -> np.ndarray:
    avail = world.available_items()
    return avail[np.argsort(rng.random((world.n_users, avail.size)), axis=1)[:, :k]]


def _run(world_config: WorldConfig, steps: int = 5, n: int = 16):
    world = World(world_config, n)
    rng = np.random.default_rng(0)
    world.reset_users(np.arange(n), rng)
    before = (world.interest.copy(), world.satisfaction.copy(), world.boredom.copy())
    out = [world.step(_random_slates(world, rng), rng) for _ in range(steps)]
    return world, before, out


def test_toy_choice_model_through_the_registry(toy_models):
    world, _, out = _run(WorldConfig(choice=ChoiceConfig(model="toy-first-slot")))
    assert isinstance(world.choice_model, FirstSlotChoice)
    assert all((r.click_pos == 0).all() for r in out)


def test_toy_user_model_through_the_registry(toy_models):
    world, before, _ = _run(
        WorldConfig(users=UserConfig(model="toy-one-topic"), dynamics=DynamicsConfig(drift_std=0))
    )
    assert isinstance(world.user_sampler, OneTopicUsers)
    assert np.all(before[0][:, 0] == 1.0) and np.all(before[1] == 0.5)


def test_toy_transition_model_through_the_registry(toy_models):
    world, before, out = _run(WorldConfig(dynamics=DynamicsConfig(model="toy-frozen")), steps=20)
    for now, then in zip((world.interest, world.satisfaction, world.boredom), before, strict=True):
        assert np.array_equal(now, then)
    assert not any(r.churned.any() for r in out)
    assert np.all(world.session_step == 20)  # the world still counts steps


def test_toy_response_model_through_the_registry(toy_models):
    _, _, out = _run(WorldConfig(response=ResponseConfig(model="toy-fixed")), steps=20)
    for r in out:
        clicked = r.click_pos >= 0
        assert np.all(r.engagement[clicked] == 7.0) and np.all(r.rating[clicked] == 3.0)
        assert np.all(r.engagement[~clicked] == 0.0)


def test_env_runs_on_all_toy_parts(toy_models):
    world = WorldConfig(
        choice=ChoiceConfig(model="toy-first-slot"),
        users=UserConfig(model="toy-one-topic"),
        dynamics=DynamicsConfig(model="toy-frozen"),
        response=ResponseConfig(model="toy-fixed"),
    )
    env = SlateVectorEnv(8, config=EnvConfig(world=world, encoder="bow", horizon=5))
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(7):
        _, reward, terminated, _, info = env.step(env.action_space.sample())
        assert (
            np.all(reward == 7.0)
            and info["click"].all()
            and np.all(info["position"] == 0)
            and not terminated.any()
        )
    env.close()


# -- expected responses ------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["mnl", "cascade"])
def test_expected_response_matches_monte_carlo(model):
    """Repeat one step from one state many times: click rates, value, watch time, satisfaction."""
    n, k, reps = 60, 5, 1500
    world = World(WorldConfig(choice=ChoiceConfig(model=model)), n)
    rng = np.random.default_rng(11)
    world.reset_users(np.arange(n), rng)
    for _ in range(3):  # some boredom and drift, so the state is not a fresh one
        world.step(_random_slates(world, rng, k), rng)
    slates = _random_slates(world, rng, k)
    expected = world.expected_response(slates)
    state = [a.copy() for a in (world.interest, world.satisfaction, world.boredom)]
    step, clock = world.session_step.copy(), world.clock

    counts = np.zeros((n, k + 1))
    watch_sum = expected_watch_sum = 0.0
    rows = np.arange(n)
    for _ in range(reps):
        for live, saved in zip(
            (world.interest, world.satisfaction, world.boredom), state, strict=True
        ):
            live[...] = saved
        world.session_step[:] = step
        world.clock = clock
        r = world.step(slates, rng)
        clicked = r.click_pos >= 0
        counts[rows, np.where(clicked, r.click_pos, k)] += 1
        pos = r.click_pos[clicked]
        # Value is deterministic given the click; watch time is noisy around its mean.
        np.testing.assert_allclose(r.value[clicked], expected.value[clicked, pos], rtol=1e-12)
        watch_sum += r.engagement[clicked].sum()
        expected_watch_sum += expected.engagement[clicked, pos].sum()
        inside = clicked & (r.satisfaction > 0.0) & (r.satisfaction < 1.0)
        np.testing.assert_allclose(
            r.satisfaction[inside] - state[1][inside],
            expected.satisfaction_delta[inside, r.click_pos[inside]],
            atol=1e-12,
        )
    freq = counts / reps
    # Binomial standard error is at most sqrt(0.25 / 1500) = 0.013 per cell.
    np.testing.assert_allclose(freq, expected.click_probabilities, atol=0.055)
    np.testing.assert_allclose(
        freq.mean(axis=0), expected.click_probabilities.mean(axis=0), atol=0.01
    )
    # Tens of thousands of clicks: the log-normal noise (sigma 0.2) averages to within 0.5%, and
    # the median watch time (2% below the mean) would fail.
    assert abs(watch_sum / expected_watch_sum - 1.0) < 0.005
    np.testing.assert_allclose(
        expected.watch_time, (expected.click_probabilities[:, :k] * expected.engagement).sum(1)
    )
    np.testing.assert_allclose(expected.click_rate, 1.0 - expected.click_probabilities[:, k])
    ratio = expected.engagement / expected.engagement_median
    np.testing.assert_allclose(ratio, np.exp(0.5 * 0.2**2))


def test_expected_response_draws_nothing_and_changes_nothing():
    world = World(WorldConfig(), 8)
    rng = np.random.default_rng(0)
    world.reset_users(np.arange(8), rng)
    slates = _random_slates(world, rng)
    snapshot = (world.interest.copy(), world.satisfaction.copy(), world.boredom.copy())
    a = world.expected_response(slates)
    b = world.expected_response(slates)
    assert np.array_equal(a.click_probabilities, b.click_probabilities)
    for now, then in zip(
        (world.interest, world.satisfaction, world.boredom), snapshot, strict=True
    ):
        assert np.array_equal(now, then)


def _old_oracle_act(satisfaction_price: float, world: World, context: SlateContext) -> np.ndarray:
    """OraclePolicy.act as it was before the world was split into parts (formulas copied)."""
    cfg = world.config
    k = context.slate_size
    price = satisfaction_price * context.steps_left
    best_idx = np.zeros((context.candidates.shape[0], k), dtype=np.int64)
    best_score = np.full(context.candidates.shape[0], -np.inf)
    for n_bait in range(k + 1):
        idx = _mixed_slate(world, context, np.asarray(n_bait))
        slate = np.take_along_axis(context.candidates, idx, axis=1)
        probs = world.click_probabilities(slate)[:, :k]
        match = np.einsum("nmk,nk->nm", world.catalog.latent[slate], world.interest)
        value = world.catalog.quality[slate] * np.clip(match, 0.0, 1.0)
        r = cfg.response
        engagement = r.engagement_scale * (
            r.engagement_appeal_weight * world.catalog.appeal[slate]
            + r.engagement_value_weight * value
        )
        d_sat = cfg.dynamics.satisfaction_rate * (value - cfg.dynamics.value_reference)
        score = (probs * (engagement + price[:, None] * d_sat)).sum(axis=1)
        better = score > best_score
        best_score = np.where(better, score, best_score)
        best_idx = np.where(better[:, None], idx, best_idx)
    return best_idx


@pytest.mark.parametrize("price", [0.0, 5.0, 50.0])
def test_oracle_slates_unchanged_from_the_copied_formula(price):
    env = SlateVectorEnv(64, config=EnvConfig(encoder="bow", horizon=30))
    obs, _ = env.reset(seed=3)
    oracle = OraclePolicy(price, world=env.world)
    for _ in range(30):
        context = env.sim.context()
        action = oracle.act(obs, context)
        assert np.array_equal(action, _old_oracle_act(price, env.world, context))
        obs, *_ = env.step(action)
    env.close()


# -- sizes checked before allocating -----------------------------------------------------------

HUGE = 10**13

BAD_SIZES = [
    (lambda: World(WorldConfig(), HUGE), "n_users"),
    (lambda: World(WorldConfig(), 2**62), "n_users"),
    (lambda: EnvConfig(history_length=HUGE), "history_length"),
    (lambda: CatalogConfig(n_items=HUGE), "n_items"),
    (lambda: CatalogConfig(n_new_items=HUGE), "n_new_items"),
    (lambda: EnvConfig(horizon=2**31), "horizon"),
    (lambda: EnvConfig(horizon=2**63), "horizon"),
    (
        lambda: SlateVectorEnv(10**5, config=EnvConfig(encoder="bow", history_length=10**8)),
        "history_length",
    ),
]


@pytest.mark.parametrize(("build", "parameter"), BAD_SIZES)
def test_sizes_beyond_memory_or_int64_fail_up_front(build, parameter):
    with pytest.raises(ValueError, match=parameter):
        build()


# -- import weight -----------------------------------------------------------------------------


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_recsim_llm_registers_ids_without_importing_gymnasium():
    code = (
        "import sys, recsim_llm;"
        "print('gymnasium' in sys.modules);"
        "import gymnasium as gym;"
        "print(all(i in gym.registry for i in recsim_llm.ENV_IDS))"
    )
    assert _python(code).split() == ["False", "True"]
    # The other order, and gymnasium's module-prefix form of make.
    code = (
        "import gymnasium as gym, recsim_llm;"
        "print(all(i in gym.registry for i in recsim_llm.ENV_IDS));"
        "env = gym.make('recsim_llm:RecSimLLM/Slate-v1', config=recsim_llm.EnvConfig(encoder='bow'));"
        "print(env.spec.id)"
    )
    assert _python(code).split() == ["True", "RecSimLLM/Slate-v1"]


def test_world_hash_ignores_default_part_selectors_but_not_others(toy_models):
    from recsim_llm.lm.logs import world_hash

    # The shipped encoder's hash was taken before the selectors existed (test_lm_state checks it).
    base = world_hash(WorldConfig())
    for part in (
        WorldConfig(users=UserConfig(model="toy-one-topic")),
        WorldConfig(dynamics=DynamicsConfig(model="toy-frozen")),
        WorldConfig(response=ResponseConfig(model="toy-fixed")),
        WorldConfig(choice=ChoiceConfig(model="toy-first-slot")),
    ):
        assert world_hash(part) != base
