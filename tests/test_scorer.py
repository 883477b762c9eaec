"""The candidate-scoring Plackett–Luce policy: the distribution's maths, and SB3 integration."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402
from gymnasium import spaces  # noqa: E402
from stable_baselines3 import A2C, PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from recsim_llm.agents.scorer import (  # noqa: E402
    MASK_VALUE,
    CandidateScorerPolicy,
    PlackettLuceDistribution,
)

torch.set_num_threads(1)


def _numpy_pl_prob(logits: np.ndarray, slate: tuple[int, ...]) -> float:
    """Product of sequential softmaxes over the items not chosen yet (independent of the code)."""
    remaining = list(range(len(logits)))
    prob = 1.0
    for item in slate:
        values = np.exp(logits[remaining] - logits[remaining].max())
        prob *= values[remaining.index(item)] / values.sum()
        remaining.remove(item)
    return prob


def _all_slates(n_items: int, k: int) -> list[tuple[int, ...]]:
    return list(itertools.permutations(range(n_items), k))


def _dist(logits: np.ndarray, k: int) -> PlackettLuceDistribution:
    return PlackettLuceDistribution(k).proba_distribution(torch.as_tensor(logits))


# --- the distribution ---------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3])
def test_log_prob_matches_brute_force_enumeration(k):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=1.5, size=4)
    slates = _all_slates(4, k)
    dist = _dist(np.tile(logits, (len(slates), 1)), k)
    probs = dist.log_prob(torch.tensor(slates)).exp().numpy()
    expected = np.array([_numpy_pl_prob(logits, s) for s in slates])
    assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(probs, expected, rtol=1e-9, atol=1e-12)


def test_log_prob_accepts_float_actions_and_gives_masked_slates_no_mass():
    logits = np.array([0.3, MASK_VALUE, -0.2, 1.0])
    slates = _all_slates(4, 2)
    dist = _dist(np.tile(logits, (len(slates), 1)).astype(np.float32), 2)
    probs = dist.log_prob(torch.tensor(slates, dtype=torch.float32)).exp().numpy()
    with_masked = np.array([1 in s for s in slates])
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert probs[with_masked].max() == 0.0
    valid = np.delete(logits, 1)
    expected = [_numpy_pl_prob(valid, tuple(i - (i > 1) for i in s)) for s in slates if 1 not in s]
    np.testing.assert_allclose(probs[~with_masked], expected, rtol=1e-5)


def test_sample_frequencies_match_probabilities():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=4).astype(np.float32)
    n = 20_000
    dist = _dist(np.tile(logits, (n, 1)), 2)
    samples = dist.sample().numpy()
    slates = _all_slates(4, 2)
    counts = np.array([np.all(samples == s, axis=1).sum() for s in slates])
    assert counts.sum() == n  # every sample is one of the 12 ordered pairs: no repeats
    expected = n * np.array([_numpy_pl_prob(logits.astype(np.float64), s) for s in slates])
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 31.3  # the 99.9% quantile of chi-square with 11 degrees of freedom


def test_samples_and_mode_are_distinct_and_avoid_masked_candidates():
    torch.manual_seed(1)
    rng = np.random.default_rng(2)
    batch, n_items, k = 500, 8, 3
    logits = rng.normal(scale=3.0, size=(batch, n_items)).astype(np.float32)
    masked = np.zeros((batch, n_items), dtype=bool)
    for row in masked:
        row[rng.choice(n_items, 3, replace=False)] = True
    logits[masked] = MASK_VALUE
    dist = _dist(logits, k)
    for actions in (dist.sample().numpy(), dist.mode().numpy()):
        assert actions.shape == (batch, k)
        assert all(len(set(row)) == k for row in actions)
        assert not np.take_along_axis(masked, actions, axis=1).any()


def test_mode_is_top_k_by_logit_in_order():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(16, 7)).astype(np.float32)
    mode = _dist(logits, 3).mode().numpy()
    np.testing.assert_array_equal(mode, np.argsort(-logits, axis=1)[:, :3])


def test_entropy_estimate_is_exact_for_k1_and_unbiased_for_k2():
    torch.manual_seed(2)
    rng = np.random.default_rng(4)
    logits = rng.normal(size=5)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    one = _dist(logits[None], 1).entropy().item()
    assert one == pytest.approx(float(-(probs * np.log(probs)).sum()), rel=1e-9)

    slate_probs = np.array([_numpy_pl_prob(logits, s) for s in _all_slates(5, 2)])
    exact = float(-(slate_probs * np.log(slate_probs)).sum())
    estimates = _dist(np.tile(logits, (20_000, 1)), 2).entropy().numpy()
    assert estimates.min() >= 0.0
    assert estimates.mean() == pytest.approx(exact, abs=4 * estimates.std() / np.sqrt(20_000))


def test_log_prob_and_entropy_gradients_are_finite_with_masking():
    logits = torch.tensor([[0.5, MASK_VALUE, -1.0, 2.0, 0.0]], requires_grad=True)
    dist = PlackettLuceDistribution(3).proba_distribution(logits)
    (dist.log_prob(torch.tensor([[3, 0, 4]])) + dist.entropy()).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad[0, 1].item() == 0.0


# --- a toy candidate env ------------------------------------------------------------------


class ToyCandidateEnv(gym.Env):
    """Each step: a random user vector and C random candidates (some may be padding).

    The reward is the number of slate items whose first ``user_dim`` features have a positive
    dot product with the user vector (padding never counts). Episodes last ``horizon`` steps.
    """

    def __init__(
        self,
        n_candidates: int = 6,
        slate_size: int = 2,
        user_dim: int = 4,
        feat_dim: int = 5,
        horizon: int = 5,
        n_padding: int = 0,
        seed: int = 0,
    ) -> None:
        self.n_candidates, self.slate_size = n_candidates, slate_size
        self.user_dim, self.feat_dim = user_dim, feat_dim
        self.horizon, self.n_padding = horizon, n_padding
        self.observation_space = spaces.Dict(
            {
                "user": spaces.Box(-np.inf, np.inf, (user_dim,), np.float32),
                "candidates": spaces.Box(-np.inf, np.inf, (n_candidates, feat_dim), np.float32),
                "candidate_mask": spaces.Box(0.0, 1.0, (n_candidates,), np.float32),
            }
        )
        self.action_space = spaces.MultiDiscrete([n_candidates] * slate_size)
        self._rng = np.random.default_rng(seed)
        self._t = 0

    def _draw(self) -> None:
        self.user = self._rng.standard_normal(self.user_dim).astype(np.float32)
        self.cands = self._rng.standard_normal((self.n_candidates, self.feat_dim)).astype(
            np.float32
        )
        self.mask = np.ones(self.n_candidates, dtype=np.float32)
        if self.n_padding:
            pad = self._rng.choice(self.n_candidates, self.n_padding, replace=False)
            self.mask[pad] = 0.0
            self.cands[pad] = 0.0

    def _obs(self) -> dict[str, np.ndarray]:
        return {"user": self.user, "candidates": self.cands, "candidate_mask": self.mask}

    def good(self) -> np.ndarray:
        return (self.cands[:, : self.user_dim] @ self.user > 0) & (self.mask > 0)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t = 0
        self._draw()
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        slate = np.asarray(action, dtype=np.int64)
        distinct = len(set(slate.tolist())) == len(slate)
        reward = float(self.good()[slate].sum()) if distinct else 0.0
        self._t += 1
        self._draw()
        return self._obs(), reward, False, self._t >= self.horizon, {"slate": slate}


class FlatToyEnv(gym.ObservationWrapper):
    """The toy env with the flat Box observation ``concat(user, candidates.ravel())``."""

    def __init__(self, env: ToyCandidateEnv) -> None:
        super().__init__(env)
        size = env.user_dim + env.n_candidates * env.feat_dim
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([observation["user"], observation["candidates"].ravel()])


def _mean_reward(act, n_steps: int = 400, seed: int = 123) -> tuple[float, float]:
    """(mean reward of ``act(obs, env)``, mean reward of the best slate) on a fixed stream."""
    env = ToyCandidateEnv(seed=seed)
    obs, _ = env.reset(seed=seed)
    total = best = 0.0
    for _ in range(n_steps):
        best += min(int(env.good().sum()), env.slate_size)
        obs, reward, terminated, truncated, _ = env.step(act(obs, env))
        total += reward
        if terminated or truncated:
            obs, _ = env.reset()
    return total / n_steps, best / n_steps


class _CountSteps(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _on_step(self) -> bool:
        self.calls += 1
        return True


@pytest.fixture(scope="module")
def trained_ppo():
    callback = _CountSteps()
    model = PPO(
        CandidateScorerPolicy,
        ToyCandidateEnv(seed=1),
        n_steps=256,
        batch_size=64,
        n_epochs=4,
        learning_rate=3e-3,
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=[64, 64], value_arch=[64, 64]),
    )
    model.learn(2048, callback=callback)
    return model, callback


def test_ppo_learns_well_above_random(trained_ppo):
    model, callback = trained_ppo
    assert callback.calls == 2048
    rng = np.random.default_rng(7)
    random_reward, best = _mean_reward(
        lambda obs, env: rng.choice(env.n_candidates, env.slate_size, replace=False)
    )
    trained_reward, _ = _mean_reward(lambda obs, env: model.predict(obs, deterministic=True)[0])
    assert trained_reward >= random_reward + 0.3 * (best - random_reward), (
        random_reward,
        trained_reward,
        best,
    )


def test_deterministic_predict_is_distinct_top_k(trained_ppo):
    model, _ = trained_ppo
    env = ToyCandidateEnv(seed=5)
    batch = [env.reset(seed=s)[0] for s in range(32)]
    obs = {key: np.stack([o[key] for o in batch]) for key in batch[0]}
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (32, 2)
    assert all(len(set(row)) == 2 for row in actions.tolist())
    obs_tensor, _ = model.policy.obs_to_tensor(obs)
    with torch.no_grad():
        logits = model.policy.candidate_logits(obs_tensor).numpy()
    np.testing.assert_array_equal(actions, np.argsort(-logits, axis=1)[:, :2])
    single, _ = model.predict(batch[0], deterministic=True)
    np.testing.assert_array_equal(single, actions[0])


def test_save_load_round_trip_gives_identical_actions(trained_ppo, tmp_path):
    model, _ = trained_ppo
    model.save(tmp_path / "scorer.zip")
    loaded = PPO.load(tmp_path / "scorer.zip", device="cpu")
    assert isinstance(loaded.policy, CandidateScorerPolicy)
    assert loaded.policy.value_arch == [64, 64]
    env = ToyCandidateEnv(seed=9)
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        np.testing.assert_array_equal(
            model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
        )


def test_evaluate_actions_takes_buffer_float_actions(trained_ppo):
    model, _ = trained_ppo
    env = ToyCandidateEnv(seed=11)
    obs, _ = env.reset(seed=0)
    obs_tensor, _ = model.policy.obs_to_tensor(obs)
    with torch.no_grad():
        actions, values, log_prob = model.policy(obs_tensor)
        values2, log_prob2, entropy = model.policy.evaluate_actions(obs_tensor, actions.float())
    assert actions.shape == (1, 2) and actions.dtype == torch.int64
    torch.testing.assert_close(values, values2)
    torch.testing.assert_close(log_prob, log_prob2)
    assert entropy is not None and entropy.shape == (1,) and entropy.item() > 0


def test_a2c_trains_on_a_vec_env_with_padding_and_never_picks_masked():
    venv = DummyVecEnv(
        [
            lambda seed=seed: ToyCandidateEnv(n_candidates=8, slate_size=3, n_padding=3, seed=seed)
            for seed in (2, 12)
        ]
    )
    model = A2C(
        CandidateScorerPolicy,
        venv,
        n_steps=8,
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=[32], value_arch=[32], activation_fn=torch.nn.ReLU),
    )
    model.learn(300)
    env = ToyCandidateEnv(n_candidates=8, slate_size=3, n_padding=3, seed=3)
    obs, _ = env.reset(seed=3)
    for _ in range(50):
        for deterministic in (True, False):
            action, _ = model.predict(obs, deterministic=deterministic)
            assert len(set(action.tolist())) == 3
            assert obs["candidate_mask"][action].min() == 1.0
        obs, *_ = env.step(action)


def test_flat_box_layout_matches_dict_policy_and_trains():
    toy = ToyCandidateEnv(seed=4)
    layout = (toy.user_dim, toy.n_candidates, toy.feat_dim)
    flat = PPO(
        CandidateScorerPolicy,
        FlatToyEnv(toy),
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs=dict(layout=layout),
    )
    flat.learn(128)
    dict_model = PPO(
        CandidateScorerPolicy, ToyCandidateEnv(seed=4), n_steps=64, seed=1, device="cpu"
    )
    dict_model.policy.load_state_dict(flat.policy.state_dict())
    env = ToyCandidateEnv(seed=6)
    wrapper = FlatToyEnv(env)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        flat_action = flat.predict(wrapper.observation(obs), deterministic=True)[0]
        np.testing.assert_array_equal(flat_action, dict_model.predict(obs, deterministic=True)[0])
    with pytest.raises(ValueError, match="layout"):
        PPO(CandidateScorerPolicy, FlatToyEnv(toy), device="cpu")


# --- the encoder prior -----------------------------------------------------------------------


def _prior_model(prior: dict | None, seed: int = 0) -> PPO:
    return PPO(
        CandidateScorerPolicy,
        ToyCandidateEnv(seed=7),
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=seed,
        device="cpu",
        policy_kwargs=dict(affinity_dim=4, encoder_prior=prior),
    )


@pytest.mark.parametrize("gain", [None, 2.5])
def test_encoder_prior_makes_the_untrained_policy_rank_by_the_encoder_logit(tmp_path, gain):
    # The toy's "encoder": logit = 3 u·v + w·v + 0.5 over the first 4 features.
    w = [0.3, -0.2, 0.0, 0.1]
    prior = {"scale": 3.0, "w": w, "b": 0.5}
    if gain is not None:
        prior["gain"] = gain
    model = _prior_model(prior)
    env = ToyCandidateEnv(seed=8)
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        v = obs["candidates"][:, :4]
        logit = (gain or 1.0) * (3.0 * v @ obs["user"] + v @ np.asarray(w, dtype=np.float32) + 0.5)
        scores = model.policy.candidate_logits(model.policy.obs_to_tensor(obs)[0])[0]
        # The MLP's residual starts near 0 (score-head gain 0.01): the prior dominates.
        np.testing.assert_allclose(scores.detach().numpy(), logit, atol=0.05)
        action = model.predict(obs, deterministic=True)[0]
        np.testing.assert_array_equal(action, np.argsort(-logit, kind="stable")[:2])
    # The prior survives save/load (constructor parameter + buffers), and its gain learns.
    model.learn(128)
    assert float(model.policy.prior_gain.detach()) != (gain or 1.0)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", device="cpu")
    assert loaded.policy.encoder_prior == {**prior, "gain": gain or 1.0}
    # The learnt gain itself (not just the ranking it leaves) survives save/load.
    assert float(loaded.policy.prior_gain) == float(model.policy.prior_gain)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        np.testing.assert_array_equal(
            loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
        )


@pytest.mark.parametrize(
    ("prior", "affinity", "match"),
    [
        ({"scale": 1.0, "w": [0.0] * 4}, 4, "keys 'scale', 'w', 'b'"),
        ({"scale": 1.0, "w": [0.0] * 3, "b": 0.0}, 4, r"4 finite numbers"),
        ({"scale": float("nan"), "w": [0.0] * 4, "b": 0.0}, 4, "finite"),
        ({"scale": 1.0, "w": [0.0] * 4, "b": 0.0}, 0, "affinity_dim >= 1"),
        ({"scale": 1.0, "w": [0.0] * 4, "b": 0.0, "gain": 0.0}, 4, "gain"),
        ({"scale": 1.0, "w": [0.0] * 4, "b": 0.0, "tau": 1.0}, 4, "optionally 'gain'"),
        (
            {"scale": "big", "w": [0.0] * 4, "b": 0.0},
            4,
            r"encoder_prior\['scale'\] must be a number",
        ),
        ({"scale": 1.0, "w": [0.0] * 4, "b": 0.0, "gain": True}, 4, r"\['gain'\] must be a number"),
        ({"scale": 1.0, "w": "abcd", "b": 0.0}, 4, r"encoder_prior\['w'\] must be 4 numbers"),
    ],
)
def test_bad_encoder_prior_is_refused_with_the_parameter_named(prior, affinity, match):
    with pytest.raises(ValueError, match=match):
        PPO(
            CandidateScorerPolicy,
            ToyCandidateEnv(seed=7),
            device="cpu",
            policy_kwargs=dict(affinity_dim=affinity, encoder_prior=prior),
        )


@pytest.mark.parametrize(
    ("net_arch", "interaction", "affinity", "flat"),
    [
        ([16, 8], 3, 4, False),
        ([], 3, 4, False),
        ([16], 0, 0, False),
        ([16, 8], 3, 0, True),
        ([8], 0, 2, True),
    ],
)
def test_factorised_first_layer_equals_the_concatenated_input(
    net_arch, interaction, affinity, flat
):
    """The scorer applies its first layer's user block once per row; same function as the
    documented ``scorer(concat(user, candidate, affinity, interaction))`` per candidate, for
    Dict and flat observations, with and without the optional inputs, on non-trivial running
    statistics."""
    env = ToyCandidateEnv(n_candidates=7, slate_size=3, user_dim=4, feat_dim=5)
    space = FlatToyEnv(env).observation_space if flat else env.observation_space
    policy = CandidateScorerPolicy(
        space,
        env.action_space,
        lambda _: 1e-3,
        net_arch=net_arch,
        interaction_dim=interaction,
        affinity_dim=affinity,
        layout=(4, 7, 5) if flat else None,
    )
    rng = np.random.default_rng(3)
    user = torch.as_tensor(rng.normal(size=(6, 4)), dtype=torch.float32)
    cands = torch.as_tensor(rng.normal(size=(6, 7, 5)), dtype=torch.float32)
    mask = torch.ones(6, 7, dtype=torch.bool)
    with torch.no_grad():
        policy._update_stats(user * 3.0 + 1.0, cands * 2.0 - 0.5, mask)  # non-trivial stats
        policy.score_head.weight.normal_()  # a non-trivial score (the init gain is 0.01)
        got = policy._logits(user, cands, mask)
        u, c = policy._normalized(user, cands)
        parts = [u.unsqueeze(1).expand(-1, 7, -1), c]
        if affinity:
            parts.append((user[:, None, :affinity] * cands[:, :, :affinity]).sum(-1, keepdim=True))
        if interaction:
            parts.append(policy.user_proj(u).unsqueeze(1) * policy.cand_proj(c))
        expected = policy.score_head(policy.scorer(torch.cat(parts, dim=-1))).squeeze(-1)
    assert got.shape == (6, 7)
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
