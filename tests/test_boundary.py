"""The policy/world boundary: deployable policies never receive hidden state.

Every policy in the registry is built and run; what a deployable one receives (the observation
and the ``SlateContext``) must hold no ``world`` attribute and no object of ``recsim_llm.world``
anywhere in its fields. Privileged references get the world only from the evaluation harness.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recsim_llm.agents.baselines import FixedMixPolicy, MyopicPolicy, OraclePolicy, RandomPolicy
from recsim_llm.agents.specs import POLICIES, make_policy
from recsim_llm.config import EnvConfig
from recsim_llm.context import SlateContext, is_privileged
from recsim_llm.envs.vector import SlateVectorEnv
from recsim_llm.evaluation import PRIVILEGED_MARK, evaluate, rollout, summary_table

CONFIG = EnvConfig(encoder="bow", horizon=6)
PRIVILEGED = {"myopic", "oracle", "mix"}


def _hidden_objects(value, path: str, seen: set[int], depth: int = 0) -> list[str]:
    """Paths of objects from ``recsim_llm.world`` reachable from ``value``."""
    if id(value) in seen or depth > 6:
        return []
    seen.add(id(value))
    module = type(value).__module__ or ""
    if module.startswith("recsim_llm.world"):
        return [f"{path}: {type(value).__name__}"]
    found = []
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            for i, item in enumerate(value.ravel().tolist()):
                found += _hidden_objects(item, f"{path}[{i}]", seen, depth + 1)
        return found
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(enumerate(value))
    elif dataclasses.is_dataclass(value):
        items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    elif module.startswith("recsim_llm") and hasattr(value, "__dict__"):
        items = list(vars(value).items())
    else:
        return found
    for key, item in items:
        found += _hidden_objects(item, f"{path}.{key}", seen, depth + 1)
    return found


def _spec(name: str, model_path) -> str:
    return {"model": f"model:{model_path}", "mix": "mix:0.4"}.get(name, name)


def test_every_deployable_policy_receives_no_hidden_state(tmp_path):
    from recsim_llm.agents.sb3 import save_sb3_model, train_sb3

    model_path = tmp_path / "tiny.zip"
    save_sb3_model(train_sb3(CONFIG, "A2C", total_timesteps=16, n_envs=4), model_path, CONFIG)
    privileged, checked = set(), []
    for name in POLICIES.names():
        policy = make_policy(_spec(name, model_path), configs=[CONFIG])
        if is_privileged(policy):
            privileged.add(name)
            continue
        assert policy.privileged is False, name
        received = []
        act = policy.act

        def spy(observation, context, act=act, received=received):
            received.append((observation, context))
            return act(observation, context)

        policy.act = spy
        rollout(policy, CONFIG, seed=0, n_users=4)
        assert received, name
        for observation, context in received:
            assert isinstance(context, SlateContext)
            assert not hasattr(context, "world"), name
            assert set(observation) == {"user", "candidates", "candidate_mask"}
            assert all(
                isinstance(v, np.ndarray) and v.dtype != object for v in observation.values()
            )
            assert _hidden_objects(context, "context", set()) == [], name
        assert _hidden_objects(policy, "policy", set()) == [], name
        checked.append(name)
    assert privileged == PRIVILEGED
    assert {
        "random",
        "popularity",
        "linucb",
        "thompson",
        "linucb-hybrid",
        "thompson-hybrid",
        "model",
    } <= set(checked)


def test_the_walk_finds_a_world():
    env = SlateVectorEnv(2, config=CONFIG)
    assert _hidden_objects({"x": [env.sim]}, "o", set())
    assert not hasattr(env.sim.context(), "world")


@pytest.mark.parametrize("make", [MyopicPolicy, OraclePolicy, lambda: FixedMixPolicy(0.2)])
def test_a_privileged_policy_without_a_world_raises_naming_it(make):
    policy = make()
    env = SlateVectorEnv(2, config=CONFIG)
    obs, _ = env.reset(seed=0)
    with pytest.raises(RuntimeError, match=f"policy '{policy.name}' is a privileged reference"):
        policy.act(obs, env.sim.context())
    policy.attach(env.world)
    assert policy.act(obs, env.sim.context()).shape == (2, 5)


def test_evaluate_attaches_the_world_to_privileged_policies_only_and_marks_them():
    random, myopic = RandomPolicy(), MyopicPolicy()
    summaries, rows = evaluate([random, myopic], CONFIG, [0], 4)
    assert not hasattr(random, "_world") and myopic._world is not None
    assert [s.privileged for s in summaries] == [False, True]
    table = summary_table(summaries)
    assert f"| myopic{PRIVILEGED_MARK} |" in table and "| random |" in table
    assert "privileged reference" in table
    assert {r.policy for r in rows} == {"random", "myopic"}  # result files keep plain names


def test_encoder_greedy_ranks_by_the_encoders_click_score_from_the_observation():
    """The deployable myopic: s·u·v + b(v) read from the observation and the encoder's heads."""
    from dataclasses import replace

    from recsim_llm.agents.baselines import EncoderGreedyPolicy
    from recsim_llm.agents.specs import make_policy
    from recsim_llm.envs.core import SlateSimulator
    from recsim_llm.lm.state import load_bundle
    from recsim_llm.scenarios import scenario_config

    policy = make_policy("encoder-greedy")
    assert isinstance(policy, EncoderGreedyPolicy) and not policy.privileged
    bundle = load_bundle(None)
    assert bundle.click_scale > 0 and np.abs(bundle.item_bias_w).sum() > 0  # the shipped heads
    config = replace(scenario_config("default"), encoder="lm-fast")
    sim = SlateSimulator(config, 8)
    obs = sim.reset(np.random.default_rng(0))
    for _ in range(3):
        ctx = sim.context()
        action = policy.act(obs, ctx)
        sim.step(action, np.random.default_rng(1))
        sim.draw_candidates(np.random.default_rng(2))
        obs = sim.observe()
    d = bundle.dim
    u = sim.states[:, :d]
    v = sim.item_embeddings[sim.candidates]
    want = bundle.click_scale * np.einsum("nd,ncd->nc", u, v) + v @ bundle.item_bias_w
    got = policy.scores(obs)
    np.testing.assert_allclose(got - bundle.item_bias_b, want, rtol=1e-5, atol=1e-5)
    action = policy.act(obs, sim.context())
    best = np.sort(np.argsort(-want, axis=1)[:, : config.slate_size], axis=1)
    np.testing.assert_array_equal(np.sort(action, axis=1), best)
    # A state without the LM dims is refused with a clear message.
    small = {"user": obs["user"][:, :4], "candidates": obs["candidates"][:, :, :4]}
    with pytest.raises(ValueError, match="encoder-greedy needs an LM state"):
        policy.scores(small)
