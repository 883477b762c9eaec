"""Per-step logs of sampled users: columns, hidden marking, sampling, Parquet round trip."""

from __future__ import annotations

import re

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
    # User ids instead of a mask (one out of range) would be cast to a wrong mask: refused.
    with pytest.raises(ValueError, match="log_users must be a bool mask"):
        rollout(RandomPolicy(), config, 0, 4, log_users=np.array([0, 1, 2, 7]))
    for bad in (np.nan, "0.5"):
        with pytest.raises(ValueError, match="log_fraction"):
            sample_users(5, bad, 0)
    with pytest.raises(FileNotFoundError, match="step log"):
        read_steplog(tmp_path)
    frame = steplog_frame(None, "r", "p", "s", 0)
    with pytest.raises(ValueError, match="missing columns"):
        steplog_parquet(frame.drop(columns=["slate"]))


# -- encoder state and explanations ----------------------------------------------------------------
class _Recording(RandomPolicy):
    """The random policy, keeping a copy of every ``obs['user']`` it acts on."""

    def __init__(self):
        super().__init__()
        self.users = []

    def act(self, observation, context):
        self.users.append(np.array(observation["user"], copy=True))
        return super().act(observation, context)


def _lm_rollout(explain=True, horizon=12, policy=None):
    """A short lm-fast rollout of 6 users, 3 of them logged: (step log, env)."""
    from recsim_llm.envs.vector import SlateVectorEnv

    config = scenario_config("default", encoder="lm-fast", horizon=horizon)
    env = SlateVectorEnv(num_envs=6, config=config)
    users = np.zeros(6, dtype=bool)
    users[[0, 3, 4]] = True
    policy = policy or RandomPolicy()
    result = rollout(policy, config, 1, 6, env=env, log_users=users, explain=explain)
    return steplog_frame(result.user_steps, "r", "random", "default", 1), env


def _history_titles(frame, titles, user, step, history_length=20):
    """Titles of the items shown to ``user`` in the log window before ``step``."""
    rows = frame[(frame.user == user) & (frame.step < step) & (frame.step >= step - history_length)]
    return {titles[i] for slate in rows.slate for i in slate}


def test_lm_fast_logs_the_acted_on_state_and_explanations_from_the_history(tmp_path):
    policy = _Recording()
    frame, env = _lm_rollout(policy=policy)
    titles, dim = env.sim.titles, env.sim.encoder.user_dim
    assert dim == 3 * env.sim.encoder.dim + 1
    for row in frame.itertuples():
        assert np.asarray(row.state).dtype == np.float32 and len(row.state) == dim
        np.testing.assert_array_equal(row.state, policy.users[row.step][row.user, :dim])
    named = 0
    for row in frame.itertuples():
        history = _history_titles(frame, titles, row.user, row.step)
        assert len(row.explanation) == len(row.slate) == len(row.explanation_events)
        for sentence, record, item in zip(
            row.explanation, row.explanation_events, row.slate, strict=True
        ):
            assert isinstance(sentence, str) and sentence.startswith("Recommended")
            quoted = re.findall(r'"([^"]+)"', sentence)
            assert set(quoted) <= history, (sentence, row.step)  # only this user's own history
            named += bool(quoted)
            assert record["item"] == item
            # The structured record names the strongest history events: from the history.
            assert {e["title"] for e in record["history"]} <= history
            assert (len(record["history"]) > 0) == (len(history) > 0)
    assert named > 0  # events are named when they carry at least 10% of the strongest reason
    # Parquet keeps the new columns.
    path = tmp_path / "steps.parquet"
    path.write_bytes(steplog_parquet(frame))
    back = read_steplog(path)
    assert list(back.explanation.iloc[5]) == list(frame.explanation.iloc[5])
    np.testing.assert_array_equal(back.state.iloc[5], frame.state.iloc[5])
    assert back.explanation_events.iloc[5][0]["history"][0]["title"] in titles


def test_batched_explanations_are_explain_step_s_exact_split():
    """At a mid-session step: the sentences are ``explain_step``'s, and the logged score is the
    encoder's response logit ``scale * u . v + b(v)`` of the state the policy acted on."""
    from recsim_llm.envs.vector import SlateVectorEnv
    from recsim_llm.lm.explain import Explainer, explain_slates, explain_step

    env = SlateVectorEnv(num_envs=4, config=scenario_config("default", encoder="lm-fast"))
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(8):
        obs, *_ = env.step(np.stack([rng.permutation(20)[:5] for _ in range(4)]))
    sim = env.sim
    explainer = Explainer(bundle=sim.encoder.bundle)
    slates = sim.candidates[:, :5]
    sentences, records = explain_slates(sim, range(4), slates, explainer)
    bundle, d = sim.encoder.bundle, sim.encoder.dim
    for user in range(4):
        full = explain_step(sim, user, slates[user], explainer, word_method="none")
        assert sentences[user] == [r["sentence"] for r in full]
        v = sim.item_embeddings[slates[user]]
        logit = bundle.click_scale * v @ obs["user"][user, :d] + v @ bundle.item_bias_w
        logit += bundle.item_bias_b
        np.testing.assert_allclose([r["score"] for r in records[user]], logit, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose([r["score"] for r in full], logit, rtol=1e-5, atol=1e-5)
    assert explainer.bundle._lm is None  # no LM was loaded to explain


def test_explanations_are_deterministic_and_can_be_turned_off():
    (a, _), (b, _) = _lm_rollout(horizon=6), _lm_rollout(horizon=6)
    assert a.explanation.tolist() == b.explanation.tolist()
    assert a.explanation_events.tolist() == b.explanation_events.tolist()
    off, _ = _lm_rollout(horizon=6, explain=False)
    assert off.explanation.isna().all() and off.explanation_events.isna().all()
    # Explaining changes nothing else.
    for column in ("slate", "click", "watch_time", "state"):
        assert [np.asarray(x).tolist() for x in off[column]] == [
            np.asarray(x).tolist() for x in a[column]
        ]


@pytest.mark.parametrize("encoder", ["bow", "lm-exact"])
def test_encoders_without_an_exact_split_log_their_state_and_no_explanations(encoder):
    """bow has no explanations; lm-exact's u is the LM's user tower on the history text, which
    the fast head's split does not explain."""
    from recsim_llm.envs.vector import SlateVectorEnv

    policy = _Recording()
    config = scenario_config("default", encoder=encoder, horizon=3 if encoder == "bow" else 2)
    env = SlateVectorEnv(num_envs=2, config=config)
    result = rollout(policy, config, 0, 2, env=env, log_users=np.ones(2, dtype=bool))
    frame = steplog_frame(result.user_steps, "r", "random", "default", 0)
    dim = env.sim.encoder.user_dim
    for row in frame.itertuples():
        assert len(row.state) == dim
        np.testing.assert_array_equal(row.state, policy.users[row.step][row.user, :dim])
    assert frame.explanation.isna().all() and frame.explanation_events.isna().all()
