"""LinUCB: learns online from clicks on observable features, deterministically."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_llm.agents.bandits import LinUCBPolicy
from recsim_llm.agents.base import LearningSlatePolicy
from recsim_llm.agents.baselines import RandomPolicy
from recsim_llm.config import EnvConfig
from recsim_llm.envs.vector import SlateVectorEnv
from recsim_llm.evaluation import evaluate, rollout


def test_linucb_is_a_learning_policy_and_validates():
    assert isinstance(LinUCBPolicy(), LearningSlatePolicy)
    with pytest.raises(ValueError, match="alpha"):
        LinUCBPolicy(alpha=-1.0)
    with pytest.raises(RuntimeError, match="act"):
        LinUCBPolicy().update(np.zeros((1, 10)), np.zeros((1, 5), dtype=int), {"position": [0]})


def test_linucb_learns_clicks_and_beats_random():
    config = EnvConfig(encoder="bow", horizon=40)
    summaries, _ = evaluate([RandomPolicy(), LinUCBPolicy()], config, [0, 1], 64)
    random_clicks, linucb_clicks = (s.per_seed["clicks"].mean() for s in summaries)
    assert linucb_clicks > random_clicks * 1.05


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
