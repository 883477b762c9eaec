"""``SlateMlpPolicy``: SB3's MlpPolicy with the slate distribution computed in one pass trains
to the same parameters as the stock one, bit for bit, and keeps the stock distribution's values."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.distributions import MultiCategoricalDistribution

from recsim_llm.agents.flat import FusedMultiCategoricalDistribution, SlateMlpPolicy
from recsim_llm.agents.sb3 import make_sb3_model, policy_class
from recsim_llm.config import EnvConfig


def test_fused_distribution_matches_the_stock_one():
    gen = th.Generator().manual_seed(0)
    logits = th.randn(64, 5 * 20, generator=gen) * 3
    logits[0, :20] = -1e30  # a slot with extreme logits (clamped in the entropy)
    logits[0, 3] = 0.0
    actions = th.randint(0, 20, (64, 5), generator=gen)
    stock = MultiCategoricalDistribution([20] * 5).proba_distribution(logits)
    fused = FusedMultiCategoricalDistribution([20] * 5).proba_distribution(logits)
    assert th.equal(fused.log_prob(actions), stock.log_prob(actions))
    assert th.equal(fused.entropy(), stock.entropy())
    assert th.equal(fused.mode(), stock.mode())
    th.manual_seed(3)
    a = stock.sample()
    th.manual_seed(3)
    assert th.equal(fused.sample(), a)  # the same random stream
    with pytest.raises(ValueError, match="equal sizes"):
        FusedMultiCategoricalDistribution([20, 10])


def test_policy_class_names_the_fused_mlp_only_for_mlppolicy():
    assert policy_class("MlpPolicy") is SlateMlpPolicy
    assert policy_class("MultiInputPolicy") == "MultiInputPolicy"


@pytest.mark.parametrize("algorithm", ["PPO", "A2C"])
def test_training_is_bit_identical_to_the_stock_mlppolicy(algorithm, monkeypatch):
    import recsim_llm.agents.sb3 as glue

    config = EnvConfig(encoder="bow", horizon=20)
    settings = {"n_steps": 8, "batch_size": 16} if algorithm == "PPO" else {"n_steps": 8}
    fused = make_sb3_model(config, algorithm, n_envs=4, seed=5, **settings)
    assert isinstance(fused.policy, SlateMlpPolicy)
    assert isinstance(fused.policy.action_dist, FusedMultiCategoricalDistribution)
    start = [p.detach().clone() for p in fused.policy.parameters()]
    fused.learn(96)
    # The same construction with SB3's stock MlpPolicy (same env, seed and settings; building a
    # model seeds torch's global generator, which learning draws from, so it comes after).
    monkeypatch.setattr(glue, "policy_class", lambda policy: "MlpPolicy")
    stock = make_sb3_model(config, algorithm, n_envs=4, seed=5, **settings)
    assert type(stock.policy.action_dist) is MultiCategoricalDistribution
    for a, b in zip(start, stock.policy.parameters(), strict=True):
        assert th.equal(a, b)  # the same initial network
    stock.learn(96)
    for (name, a), (_, b) in zip(
        fused.policy.named_parameters(), stock.policy.named_parameters(), strict=True
    ):
        assert th.equal(a, b), name
    assert not all(th.equal(a, b) for a, b in zip(start, fused.policy.parameters(), strict=True))


def test_fused_distribution_refuses_nan_logits_and_bad_actions_like_categorical():
    dist = FusedMultiCategoricalDistribution([4] * 3)
    logits = th.zeros(2, 12)
    with pytest.raises(ValueError, match="NaN"):
        dist.proba_distribution(th.full((2, 12), float("nan")))
    dist.proba_distribution(logits)
    for bad in (th.tensor([[0, 1, 4], [0, 0, 0]]), th.tensor([[0, -1, 2], [1, 1, 1]])):
        with pytest.raises(ValueError, match="indices"):
            dist.log_prob(bad)
    stock = MultiCategoricalDistribution([4] * 3).proba_distribution(logits)
    with pytest.raises(ValueError):
        stock.log_prob(th.tensor([[0, 1, 4], [0, 0, 0]]))  # what the check mirrors


def test_saved_model_loads_with_the_fused_policy_and_same_actions(tmp_path):
    from recsim_llm.agents.sb3 import load_sb3_policy, save_sb3_model, train_sb3
    from recsim_llm.envs.vector import SlateVectorEnv

    config = EnvConfig(encoder="bow", horizon=20)
    model = train_sb3(config, "PPO", total_timesteps=64, n_envs=4, n_steps=8, batch_size=16)
    path = tmp_path / "m.zip"
    save_sb3_model(model, path, config)
    loaded = load_sb3_policy(path, config)
    assert isinstance(loaded.model.policy, SlateMlpPolicy)
    env = SlateVectorEnv(4, config=config)
    obs, _ = env.reset(seed=9)
    from recsim_llm.agents.sb3 import SB3Policy

    ctx = env.sim.context()
    assert np.array_equal(SB3Policy(model).act(obs, ctx), loaded.act(obs, ctx))
