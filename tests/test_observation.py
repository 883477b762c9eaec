"""The v1 observation: Dict space, flat view, shuffled candidates, observable feedback scalars."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from gymnasium import spaces

from recsim_llm.candidates import CandidateGenerator
from recsim_llm.config import EnvConfig
from recsim_llm.context import N_USER_SCALARS, OBS_KEYS, flatten_observation
from recsim_llm.envs.slate import SlateEnv
from recsim_llm.envs.vector import SlateVectorEnv
from recsim_llm.envs.wrappers import FlattenSlateObservation
from recsim_llm.log import InteractionLog
from recsim_llm.world import generate_catalog

SMALL = EnvConfig(encoder="bow", horizon=6)


def test_dict_space_contains_every_observation():
    env = SlateEnv(config=SMALL)
    space = env.observation_space
    assert isinstance(space, spaces.Dict) and set(space.spaces) == set(OBS_KEYS)
    assert space["candidates"].shape == (20, env.sim.item_obs_dim)
    assert space["user"].shape == (env.sim.encoder.user_dim + N_USER_SCALARS,)
    rng = np.random.default_rng(0)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        assert space.contains(obs)
        done = False
        while not done:
            obs, _, term, trunc, _ = env.step(rng.permutation(20)[:5])
            assert space.contains(obs)
            assert np.array_equal(obs["candidate_mask"], np.ones(20, np.float32))
            done = term or trunc
    venv = SlateVectorEnv(6, config=SMALL)
    obs, _ = venv.reset(seed=0)
    assert venv.observation_space.contains(obs)
    finals = 0
    for _ in range(14):
        obs, _, _, _, info = venv.step(np.tile(np.arange(5), (6, 1)))
        assert venv.observation_space.contains(obs)
        if "final_obs" in info:
            for final in info["final_obs"][info["_final_obs"]]:
                assert venv.single_observation_space.contains(final)
                finals += 1
    assert finals > 0


def test_flatten_wrapper_is_the_concatenation():
    base = SlateEnv(config=SMALL)
    flat = FlattenSlateObservation(SlateEnv(config=SMALL))
    assert flat.observation_space.shape == (base.sim.flat_dim,)
    a, _ = base.reset(seed=5)
    b, _ = flat.reset(seed=5)
    for _ in range(4):
        want = np.concatenate([a["user"], a["candidates"].reshape(-1)])
        assert b.dtype == np.float32 and np.array_equal(b, want)
        assert flat.observation_space.contains(b)
        a = base.step(np.arange(5))[0]
        b = flat.step(np.arange(5))[0]
    batch = SlateVectorEnv(3, config=SMALL).reset(seed=0)[0]
    flat_batch = flatten_observation(batch)
    assert flat_batch.shape == (3, base.sim.flat_dim)
    assert np.array_equal(flat_batch[1], flatten_observation({k: v[1] for k, v in batch.items()}))


def test_gymnasium_env_checker_passes_on_the_single_env():
    from gymnasium.utils.env_checker import check_env

    check_env(SlateEnv(config=SMALL), skip_render_check=True)
    check_env(FlattenSlateObservation(SlateEnv(config=SMALL)), skip_render_check=True)


def _source_columns(generator, n, clock, popularity, seed):
    """Shuffled candidates and, per position, the column it had in source order."""
    rng = np.random.default_rng(seed)
    shuffled = generator.sample(n, clock, popularity, copy.deepcopy(rng))
    by_source = generator.sample_by_source(n, clock, popularity, rng)
    columns = np.argmax(shuffled[:, :, None] == by_source[:, None, :], axis=2)
    assert np.array_equal(np.take_along_axis(by_source, columns, axis=1), shuffled)
    return shuffled, columns


def test_candidates_are_shuffled_yet_deterministic():
    config = EnvConfig(encoder="bow")
    catalog = generate_catalog(config.world.catalog)
    generator = CandidateGenerator(config, catalog)
    popularity = np.arange(catalog.n_total) % 7
    n_pop = config.n_popular_candidates
    seen = np.zeros((config.n_candidates, config.n_candidates), dtype=np.int64)
    for seed in range(5):
        shuffled, columns = _source_columns(generator, 200, 30, popularity, seed)
        again = generator.sample(200, 30, popularity, np.random.default_rng(seed))
        assert np.array_equal(shuffled, again)  # same generator state, same candidates
        np.add.at(seen, (np.arange(config.n_candidates)[None, :].repeat(200, 0), columns), 1)
        # Where the popular pool's draws land differs from row to row.
        popular_positions = {tuple(np.flatnonzero(row < n_pop)) for row in columns}
        assert len(popular_positions) > 100
    # Every position holds every source column sometimes, about equally often (1000 rows).
    assert seen.min() > 20 and seen.max() < 100


def test_env_candidates_change_position_across_steps_and_repeat_per_seed():
    def positions(seed):
        env = SlateVectorEnv(8, config=EnvConfig(encoder="bow", horizon=30))
        env.reset(seed=seed)
        out = []
        for _ in range(10):
            out.append(env.sim.candidates.copy())
            env.step(np.tile(np.arange(5), (8, 1)))
        return np.stack(out)

    a, b = positions(3), positions(3)
    assert np.array_equal(a, b)
    # The most popular item so far is offered to many users, at varying positions.
    firsts = {int(np.argmax(step[0] == step[0].max())) for step in a}
    assert len(firsts) > 3


def test_feedback_scalars_match_a_scripted_history():
    log = InteractionLog(n_users=2, history_length=4, slate_size=2, n_items=10)
    empty = log.feedback()
    assert np.array_equal(empty, [[0, 0, 0, 1], [0, 0, 0, 1]])
    slates = np.array([[1, 2], [3, 4]])
    # (user 0's click position, rating, watch time); user 1 never clicks.
    script = [(0, 4.0, 12.0), (-1, 0.0, 0.0), (1, 2.0, 6.0)]
    for pos, rating, watch in script:
        log.record(slates, np.array([pos, -1]), np.array([rating, 0.0]), np.array([watch, 0.0]))
    # 3 steps kept, 2 clicks: rate 2/3, rating (4+2)/2 / 5, watch (12+6)/2 / 30, last click now.
    np.testing.assert_allclose(log.feedback(), [[2 / 3, 0.6, 0.3, 0.0], [0.0, 0.0, 0.0, 1.0]])
    for _ in range(2):
        log.record(slates, np.array([-1, -1]), np.zeros(2), np.zeros(2))
    # The first click fell out of the 4-step window: 1 click in 4, rating 2/5, watch 6/30,
    # the click was 2 steps before the latest.
    np.testing.assert_allclose(log.feedback(), [[0.25, 0.4, 0.2, 0.5], [0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(log.feedback(np.array([1, 0])), log.feedback()[::-1])
    log.reset_users(np.array([0]), ["new"])
    np.testing.assert_allclose(log.feedback()[0], [0, 0, 0, 1])


def test_env_user_scalars_come_from_the_log():
    env = SlateVectorEnv(16, config=EnvConfig(encoder="bow", horizon=40, history_length=5))
    obs, _ = env.reset(seed=1)
    d = env.sim.encoder.user_dim
    for _ in range(12):
        obs, *_ = env.step(np.tile(np.arange(5), (16, 1)))
        user = obs["user"]
        log = env.sim.log
        assert np.array_equal(user[:, d + 2 :], log.feedback().astype(np.float32))
        np.testing.assert_allclose(user[:, d], env.world.session_step / 40)
        np.testing.assert_allclose(user[:, d + 1], np.minimum(log.count, 5) / 5)
    assert (user[:, d + 2] > 0).any() and (user[:, d + 5] > 0).any()
    assert np.all((user[:, d:] >= 0) & (user[:, d:] <= 1.5))


def test_ppo_multi_input_policy_trains_on_the_dict_vector_env(tmp_path):
    import stable_baselines3 as sb3

    from recsim_llm.agents.sb3 import SB3Policy, load_sb3_policy, save_sb3_model, train_sb3
    from recsim_llm.envs.sb3 import SB3VecEnv

    config = EnvConfig(encoder="bow", horizon=10)
    venv = SB3VecEnv(SlateVectorEnv(4, config=config))
    venv.seed(0)
    model = sb3.PPO(
        "MultiInputPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    env = SlateVectorEnv(4, config=config)
    obs, _ = env.reset(seed=1)
    slate = SB3Policy(model).act(obs, env.sim.context())
    assert slate.shape == (4, 5) and slate.min() >= 0 and slate.max() < 20

    trained = train_sb3(config, "A2C", total_timesteps=64, n_envs=4, policy="MultiInputPolicy")
    assert isinstance(trained.observation_space, spaces.Dict)
    save_sb3_model(trained, tmp_path / "dict.zip", config)
    loaded = load_sb3_policy(tmp_path / "dict.zip", config)
    assert np.array_equal(
        loaded.act(obs, env.sim.context()), SB3Policy(trained).act(obs, env.sim.context())
    )
    with pytest.raises(ValueError, match="policy must be one of"):
        train_sb3(config, "PPO", total_timesteps=8, policy="CnnPolicy")
