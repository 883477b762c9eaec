"""LinUCB and linear Thompson sampling: learn online from clicks on observable features,
deterministically, on the env and on a linear contextual bandit with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_llm.agents.bandits import LinearThompsonPolicy, LinUCBPolicy
from recsim_llm.agents.base import LearningSlatePolicy
from recsim_llm.agents.baselines import RandomPolicy
from recsim_llm.config import EnvConfig
from recsim_llm.context import N_ITEM_SCALARS, N_USER_SCALARS, SlateContext
from recsim_llm.envs.vector import SlateVectorEnv
from recsim_llm.evaluation import evaluate, rollout


def test_linucb_is_a_learning_policy_and_validates():
    assert isinstance(LinUCBPolicy(), LearningSlatePolicy)
    with pytest.raises(ValueError, match="alpha"):
        LinUCBPolicy(alpha=-1.0)
    with pytest.raises(RuntimeError, match="act"):
        LinUCBPolicy().update(np.zeros((1, 10)), np.zeros((1, 5), dtype=int), {"position": [0]})


def test_thompson_is_a_learning_policy_and_validates():
    assert isinstance(LinearThompsonPolicy(), LearningSlatePolicy)
    assert LinearThompsonPolicy.privileged is False
    with pytest.raises(ValueError, match="scale"):
        LinearThompsonPolicy(scale=-1.0)
    with pytest.raises(ValueError, match="ridge"):
        LinearThompsonPolicy(ridge=0.0)


def test_linear_bandits_learn_clicks_and_beat_random():
    config = EnvConfig(encoder="bow", horizon=40)
    policies = [RandomPolicy(), LinUCBPolicy(), LinearThompsonPolicy()]
    summaries, _ = evaluate(policies, config, [0, 1], 64)
    random_clicks, linucb_clicks, thompson_clicks = (s.per_seed["clicks"].mean() for s in summaries)
    assert linucb_clicks > random_clicks * 1.05
    assert thompson_clicks > random_clicks * 1.05


def test_linucb_model_moves_and_is_deterministic():
    config = EnvConfig(encoder="bow", horizon=10)
    policies = [LinUCBPolicy(), LinUCBPolicy()]
    results = [rollout(p, config, seed=5, n_users=16) for p in policies]
    assert np.array_equal(results[0].sessions["return"], results[1].sessions["return"])
    assert np.abs(policies[0]._theta).sum() > 0  # it learned something
    assert np.array_equal(policies[0]._theta, policies[1]._theta)


def test_linucb_slates_are_distinct():
    env = SlateVectorEnv(8, config=EnvConfig(encoder="bow"))
    obs, _ = env.reset(seed=0)
    slate = LinUCBPolicy().act(obs, env.sim.context())
    assert all(len(set(r)) == 5 for r in slate.tolist())


# A stationary linear contextual bandit with a known answer, written without the env: each round
# every user sees C fresh candidates, picks one slot (slate_size 1), and clicks it with the
# probability p = 0.5 + 0.2·(a·e) + 0.2·((u∘e)·b), linear in the bandits' own features
# (embedding, embedding ∘ user, scalars, bias) and inside [0.1, 0.9] for unit u, e, a, b.
DIM, N_CANDIDATES, N_USERS, ROUNDS = 4, 10, 8, 150


def _unit(rng, shape):
    v = rng.normal(size=shape)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _bandit_round(rng, a, b, t, mask=None):
    user, emb = _unit(rng, (N_USERS, DIM)), _unit(rng, (N_USERS, N_CANDIDATES, DIM))
    prob = 0.5 + 0.2 * emb @ a + 0.2 * np.einsum("ncd,nd,d->nc", emb, user, b)
    user_scalars = rng.random((N_USERS, N_USER_SCALARS))
    item_scalars = rng.random((N_USERS, N_CANDIDATES, N_ITEM_SCALARS))
    obs = {
        "user": np.concatenate([user, user_scalars], 1).astype(np.float32),
        "candidates": np.concatenate([emb, item_scalars], 2).astype(np.float32),
        "candidate_mask": np.ones((N_USERS, N_CANDIDATES), np.float32) if mask is None else mask,
    }
    context = SlateContext(
        candidates=np.tile(np.arange(N_CANDIDATES), (N_USERS, 1)),
        slate_size=1,
        popularity=np.zeros(N_CANDIDATES),
        steps_left=np.full(N_USERS, ROUNDS - t),
    )
    return obs, context, prob


def _run_bandit(policy, seed):
    """Per-round expected regret (best p minus chosen p, mean over users) and the slates."""
    rng = np.random.default_rng(seed)
    a, b = _unit(rng, DIM), _unit(rng, DIM)
    policy.reset(seed)
    regret, slates = [], []
    for t in range(ROUNDS):
        obs, context, prob = _bandit_round(rng, a, b, t)
        slate = policy.act(obs, context)
        chosen = np.take_along_axis(prob, slate, axis=1)[:, 0]
        regret.append((prob.max(axis=1) - chosen).mean())
        slates.append(slate)
        clicked = rng.random(N_USERS) < chosen
        if hasattr(policy, "update"):
            policy.update(obs, slate, {"position": np.where(clicked, 0, -1)})
    return np.array(regret), np.stack(slates)


@pytest.mark.parametrize("make", [LinUCBPolicy, LinearThompsonPolicy], ids=["linucb", "thompson"])
@pytest.mark.parametrize("seed", [0, 1])
def test_regret_per_round_falls_on_a_linear_bandit(make, seed):
    regret, _ = _run_bandit(make(), seed)
    random_regret, _ = _run_bandit(RandomPolicy(), seed)
    third = ROUNDS // 3
    first, last = regret[:third].mean(), regret[-third:].mean()
    assert last < 0.6 * first, (first, last)
    assert last < 0.4 * random_regret[-third:].mean(), (last, random_regret[-third:].mean())
    assert first < random_regret[:third].mean()


def test_thompson_same_seed_same_actions_and_reset_reseeds():
    _, slates = _run_bandit(LinearThompsonPolicy(), seed=3)
    _, again = _run_bandit(LinearThompsonPolicy(), seed=3)
    assert np.array_equal(slates, again)
    policy = LinearThompsonPolicy()
    _run_bandit(policy, seed=4)  # a used policy: reset(seed) starts it over
    _, reused = _run_bandit(policy, seed=3)
    assert np.array_equal(slates, reused)
    rng = np.random.default_rng(0)
    obs, context, _ = _bandit_round(rng, _unit(rng, DIM), _unit(rng, DIM), 0)
    draws = []
    for seed in (1, 2):  # the samples come from the policy's generator: seeds differ
        policy.reset(seed)
        policy.act(obs, context)
        draws.append(policy.scores(policy.features(obs)))
    assert not np.array_equal(*draws)


@pytest.mark.parametrize("make", [LinUCBPolicy, LinearThompsonPolicy], ids=["linucb", "thompson"])
def test_linear_bandits_never_pick_masked_candidates(make):
    rng = np.random.default_rng(7)
    a, b = _unit(rng, DIM), _unit(rng, DIM)
    policy = make()
    policy.reset(7)
    for t in range(40):
        mask = (rng.random((N_USERS, N_CANDIDATES)) < 0.5).astype(np.float32)
        mask[:, :3] = 1.0  # at least slate_size real candidates per row
        obs, context, prob = _bandit_round(rng, a, b, t, mask)
        context = SlateContext(context.candidates, 3, context.popularity, context.steps_left)
        slate = policy.act(obs, context)
        assert slate.shape == (N_USERS, 3)
        assert np.all(np.take_along_axis(mask, slate, axis=1) == 1.0)
        assert all(len(set(row)) == 3 for row in slate.tolist())
        clicked = rng.random(N_USERS) < np.take_along_axis(prob, slate[:, :1], axis=1)[:, 0]
        policy.update(obs, slate, {"position": np.where(clicked, 0, -1)})
