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


# Per-user tastes the shared model cannot see: user row n clicks with p = 0.5 + 0.3·s_n·(a·e),
# s_n = +1 for the first half of the rows and -1 for the others (the user features are noise), so
# the best candidate of one half is the worst of the other. ``flip_at``: from that round on every
# s_n changes sign (each user's taste moves, as in ``taste-shift``).
def _run_per_user_bandit(policy, seed, rounds=ROUNDS, flip_at=None):
    rng = np.random.default_rng(seed)
    a = _unit(rng, DIM)
    sign = np.where(np.arange(N_USERS) < N_USERS // 2, 1.0, -1.0)
    policy.reset(seed)
    regret, slates = [], []
    for t in range(rounds):
        if flip_at is not None and t == flip_at:
            sign = -sign
        obs, context, _ = _bandit_round(rng, a, a, t)
        emb = obs["candidates"][..., :DIM].astype(np.float64)
        prob = 0.5 + 0.3 * sign[:, None] * (emb @ a)
        slate = policy.act(obs, context)
        chosen = np.take_along_axis(prob, slate, axis=1)[:, 0]
        regret.append((prob.max(axis=1) - chosen).mean())
        slates.append(slate)
        clicked = rng.random(N_USERS) < chosen
        policy.update(obs, slate, {"position": np.where(clicked, 0, -1)})
    return np.array(regret), np.stack(slates)


def test_hybrid_bandits_validate_and_are_named():
    from recsim_llm.agents.specs import make_policy

    for make in (LinUCBPolicy, LinearThompsonPolicy):
        for bad in (0.0, -0.5, 1.5, float("nan"), True):
            with pytest.raises(ValueError, match="user_discount"):
                make(user_discount=bad)
        for bad in (0.0, -1.0, float("nan"), True):
            with pytest.raises(ValueError, match="user_ridge"):
                make(user_discount=0.9, user_ridge=bad)
    assert LinUCBPolicy().name == "linucb"
    assert LinUCBPolicy(user_discount=0.9).name == "linucb-hybrid"
    hybrid = make_policy("thompson-hybrid:0.8")
    assert (hybrid.name, hybrid.user_discount, hybrid.privileged) == ("thompson-hybrid", 0.8, False)
    assert make_policy("linucb-hybrid").user_discount == 0.95
    for bad in ("linucb-hybrid:0", "linucb-hybrid:x", "thompson-hybrid:1.5"):
        with pytest.raises(ValueError, match="discount"):
            make_policy(bad)


@pytest.mark.parametrize("make", [LinUCBPolicy, LinearThompsonPolicy], ids=["linucb", "thompson"])
def test_hybrid_bandits_learn_per_user_tastes_the_shared_model_cannot(make):
    third = ROUNDS // 3
    shared, _ = _run_per_user_bandit(make(), seed=0)
    hybrid, _ = _run_per_user_bandit(make(user_discount=1.0), seed=0)
    forgetting, _ = _run_per_user_bandit(make(user_discount=0.9), seed=0)
    random_regret, _ = _run_per_user_bandit(_RandomLearner(), seed=0)
    late = slice(-third, None)
    # Opposite tastes average out: the shared model stays near random; the per-user one learns
    # (with forgetting it keeps fewer samples, so it learns less but still more than shared).
    assert shared[late].mean() > 0.7 * random_regret[late].mean()
    assert hybrid[late].mean() < 0.4 * random_regret[late].mean()
    assert hybrid[late].mean() < 0.5 * hybrid[:10].mean()
    assert forgetting[late].mean() < 0.7 * shared[late].mean()


def test_hybrid_forgetting_follows_a_taste_that_moves():
    flip, rounds = 60, 120
    after = slice(flip + 20, rounds)
    forgetting, _ = _run_per_user_bandit(
        LinUCBPolicy(user_discount=0.8), seed=1, rounds=rounds, flip_at=flip
    )
    remembering, _ = _run_per_user_bandit(
        LinUCBPolicy(user_discount=1.0), seed=1, rounds=rounds, flip_at=flip
    )
    before = forgetting[flip - 20 : flip].mean()
    assert forgetting[flip : flip + 5].mean() > 1.5 * before  # the flip hurts at first
    assert forgetting[after].mean() < 1.2 * before  # and is followed again
    assert forgetting[after].mean() < 0.6 * remembering[after].mean()


def test_hybrid_bandits_are_deterministic_and_check_the_batch():
    _, slates = _run_per_user_bandit(LinearThompsonPolicy(user_discount=0.9), seed=2, rounds=30)
    _, again = _run_per_user_bandit(LinearThompsonPolicy(user_discount=0.9), seed=2, rounds=30)
    assert np.array_equal(slates, again)
    policy = LinUCBPolicy(user_discount=0.9)
    _run_per_user_bandit(policy, seed=2, rounds=3)
    rng = np.random.default_rng(0)
    obs, context, _ = _bandit_round(rng, _unit(rng, DIM), _unit(rng, DIM), 0)
    half = {k: v[: N_USERS // 2] for k, v in obs.items()}
    with pytest.raises(ValueError, match="user rows"):
        policy.act(half, context)
    policy.reset(0)  # a fresh run may have another batch
    assert policy.act(half, context).shape == (N_USERS // 2, 1)


class _RandomLearner:
    """A uniformly random slate of one, with an update that learns nothing."""

    def reset(self, seed):
        self._rng = np.random.default_rng(seed)

    def act(self, observation, context):
        n, c = observation["candidate_mask"].shape
        return self._rng.integers(c, size=(n, 1))

    def update(self, observation, slate, info):
        pass


def test_hybrid_per_user_models_restart_when_a_new_user_takes_the_row():
    env = SlateVectorEnv(6, config=EnvConfig(encoder="bow", horizon=3))
    policy = LinUCBPolicy(user_discount=0.9)
    obs, _ = env.reset(seed=1)
    policy.reset(1)
    for _ in range(3):
        slate = policy.act(obs, env.sim.context())
        next_obs, _, terminated, truncated, info = env.step(slate)
        policy.update(obs, slate, info)
        ended = np.asarray(terminated) | np.asarray(truncated)
        assert np.array_equal(np.asarray(info.get("_final_obs", np.zeros(6, bool))), ended)
        if ended.any():  # those rows hold new users now: their models are the prior again
            assert np.all(policy._user_beta[ended] == 0.0)
            assert np.all(policy._user_b[ended] == 0.0)
            assert np.allclose(policy._user_a[ended], np.eye(policy._user_a.shape[1]))
        obs = next_obs
    assert ended.all()  # the horizon ended every session at the last step
    assert np.abs(policy._theta).sum() > 0  # the shared model keeps what it learned


def test_hybrid_batch_check_comes_before_any_random_draw():
    policy = LinearThompsonPolicy(user_discount=0.9)
    _run_per_user_bandit(policy, seed=2, rounds=3)
    rng = np.random.default_rng(0)
    obs, context, _ = _bandit_round(rng, _unit(rng, DIM), _unit(rng, DIM), 0)
    half = {k: v[: N_USERS // 2] for k, v in obs.items()}
    state = policy._rng.bit_generator.state
    with pytest.raises(ValueError, match="user rows"):
        policy.act(half, context)
    assert policy._rng.bit_generator.state == state
