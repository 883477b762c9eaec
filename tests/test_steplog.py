"""Per-step logs of sampled users: columns, hidden marking, sampling, Parquet round trip."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_llm.agents.baselines import RandomPolicy
from recsim_llm.evaluation import rollout
from recsim_llm.scenarios import scenario_config
from recsim_llm.steplog import (
    HIDDEN_PREFIX,
    STEPLOG_COLUMNS,
    read_steplog,
    sample_users,
    steplog_frame,
    steplog_parquet,
)


def test_sample_users_is_seeded_and_follows_the_fraction():
    a = sample_users(10_000, 0.1, 3)
    assert np.array_equal(a, sample_users(10_000, 0.1, 3))
    assert not np.array_equal(a, sample_users(10_000, 0.1, 4))
    assert 0.08 < a.mean() < 0.12
    assert sample_users(5, 1.0, 0).all() and not sample_users(5, 0.0, 0).any()
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match="log_fraction"):
            sample_users(5, bad, 0)


def test_logged_steps_match_the_session_and_hidden_columns_are_marked(tmp_path):
    config = scenario_config("default", encoder="bow", horizon=15)
    users = np.zeros(8, dtype=bool)
    users[[1, 5]] = True
    result = rollout(RandomPolicy(), config, 2, 8, log_users=users)
    frame = steplog_frame(result.user_steps, "run", "random", "default", 2)
    assert tuple(frame.columns) == STEPLOG_COLUMNS
    assert set(frame.user) == {1, 5}
    hidden = [c for c in frame.columns if c.startswith(HIDDEN_PREFIX)]
    assert hidden == ["hidden_satisfaction", "hidden_value", "hidden_interest"]
    for user in (1, 5):
        rows = frame[frame.user == user]
        n = int(result.sessions["session_length"][user])
        assert rows.step.tolist() == list(range(n))
        assert rows.click.sum() == result.sessions["clicks"][user]
        np.testing.assert_allclose(rows.watch_time.sum(), result.sessions["return"][user])
    first = frame.iloc[0]
    assert len(first.candidates) == 20 and len(first.slate) == 5
    assert set(first.slate) <= set(first.candidates)
    assert (frame.item[frame.click] >= 0).all() and (frame.item[~frame.click] == -1).all()
    clicked = frame[frame.click]
    assert all(row.item == row.slate[row.position] for row in clicked.itertuples())
    assert first.scores is None  # the random policy has no scores(observation)
    assert len(first.hidden_interest) == 16
    # Recording changes nothing: the same sessions without it.
    plain = rollout(RandomPolicy(), config, 2, 8)
    for key in plain.sessions:
        np.testing.assert_array_equal(plain.sessions[key], result.sessions[key])
    path = tmp_path / "steps.parquet"
    path.write_bytes(steplog_parquet(frame))
    back = read_steplog(path)
    assert back.shape == frame.shape
    assert list(back.iloc[3].slate) == list(frame.iloc[3].slate)


def test_scores_are_logged_when_the_policy_has_them():
    class Scored(RandomPolicy):
        name = "scored"

        def scores(self, observation):
            return observation["candidates"][:, :, 0].astype(np.float64)

    config = scenario_config("default", encoder="bow", horizon=3)
    result = rollout(Scored(), config, 0, 4, log_users=np.ones(4, dtype=bool))
    frame = steplog_frame(result.user_steps, "r", "scored", "default", 0)
    assert all(len(s) == 20 for s in frame.scores)


def test_bad_inputs_are_refused(tmp_path):
    config = scenario_config("default", encoder="bow", horizon=3)
    with pytest.raises(ValueError, match="log_users"):
        rollout(RandomPolicy(), config, 0, 4, log_users=np.ones(3, dtype=bool))
    with pytest.raises(FileNotFoundError, match="step log"):
        read_steplog(tmp_path)
    frame = steplog_frame(None, "r", "p", "s", 0)
    with pytest.raises(ValueError, match="missing columns"):
        steplog_parquet(frame.drop(columns=["slate"]))
