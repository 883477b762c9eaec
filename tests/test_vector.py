"""The native batched VectorEnv and the SB3 VecEnv adapter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from recsim_llm.config import EnvConfig
from recsim_llm.envs.sb3 import SB3VecEnv
from recsim_llm.envs.vector import SlateVectorEnv

KEYS = ("user", "candidates", "candidate_mask")


def _same(a, b) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in KEYS)


def _trace(env, seed, n_steps, action_seed=0):
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rewards = []
    for _ in range(n_steps):
        obs, reward, term, trunc, info = env.step(rng.integers(20, size=(env.num_envs, 5)))
        out.append(obs)
        rewards.append(reward)
    return {k: np.stack([o[k] for o in out]) for k in KEYS}, np.stack(rewards)


def test_make_vec_uses_the_native_vector_env():
    env = gym.make_vec(
        "RecSimLLM/Slate-v1",
        num_envs=6,
        vectorization_mode="vector_entry_point",
        config=EnvConfig(encoder="bow"),
    )
    assert isinstance(env.unwrapped if hasattr(env, "unwrapped") else env, SlateVectorEnv)
    obs, _ = env.reset(seed=0)
    assert obs["user"].shape == (6, *env.single_observation_space["user"].shape)
    assert obs["candidates"].shape == (6, *env.single_observation_space["candidates"].shape)
    assert env.observation_space.contains(obs)


def test_vector_env_is_deterministic(bow_config):
    a = _trace(SlateVectorEnv(8, config=bow_config), 3, 40)
    b = _trace(SlateVectorEnv(8, config=bow_config), 3, 40)
    assert _same(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = _trace(SlateVectorEnv(8, config=bow_config), 4, 40)
    assert not np.array_equal(a[0]["user"], c[0]["user"])


def test_same_step_autoreset_gives_final_obs_and_new_user():
    config = EnvConfig(encoder="bow", horizon=3)
    env = SlateVectorEnv(4, config=config)
    env.reset(seed=0)
    action = np.tile(np.arange(5), (4, 1))
    for _ in range(2):
        _, _, term, trunc, info = env.step(action)
    obs, _, term, trunc, info = env.step(action)
    done = term | trunc
    assert done.all()  # horizon 3 (or churn earlier for some; those reset earlier)
    assert info["_final_obs"].any()
    for i in np.flatnonzero(info["_final_obs"]):
        final = info["final_obs"][i]
        assert env.single_observation_space.contains(final)
        assert not np.array_equal(final["user"], obs["user"][i])
    assert (env.world.session_step == 0).all()  # every slot holds a new user
    assert (env.sim.log.count == 0).all()


def test_vector_actions_are_validated_before_state_changes(bow_config):
    env = SlateVectorEnv(4, config=bow_config)
    env.reset(seed=0)
    clock = env.world.clock
    for bad in (np.zeros((3, 5), dtype=int), np.full((4, 5), 25), np.full((4, 5), np.nan)):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    assert env.world.clock == clock


def test_vector_env_rejects_bad_arguments(bow_config):
    with pytest.raises(ValueError, match="num_envs"):
        SlateVectorEnv(0, config=bow_config)
    env = SlateVectorEnv(2, config=bow_config)
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=[1, 2])


def test_sb3_adapter_contract(bow_config):
    config = EnvConfig(encoder="bow", horizon=4)
    venv = SB3VecEnv(SlateVectorEnv(5, config=config))
    venv.seed(1)
    obs = venv.reset()
    assert set(obs) == set(KEYS)
    assert obs["user"].shape == (5, *venv.observation_space["user"].shape)
    seen_done = False
    for _ in range(6):
        obs, rewards, dones, infos = venv.step(np.tile(np.arange(5), (5, 1)))
        assert rewards.dtype == np.float32 and dones.dtype == bool and len(infos) == 5
        for i in np.flatnonzero(dones):
            seen_done = True
            terminal = infos[i]["terminal_observation"]
            assert isinstance(terminal, dict) and venv.observation_space.contains(terminal)
            assert isinstance(infos[i]["TimeLimit.truncated"], bool)
    assert seen_done


def test_sb3_adapter_infos_carry_each_users_step_info(bow_config):
    """The per-user info dicts hold that user's entry of every array of the native step info,
    as Python scalars (built column-wise)."""
    config = EnvConfig(encoder="bow", horizon=50)
    native = SlateVectorEnv(4, config=config)
    native.reset(seed=3)
    venv = SB3VecEnv(SlateVectorEnv(4, config=config))
    venv.seed(3)
    venv.reset()
    action = np.tile(np.arange(5), (4, 1))
    *_, info = native.step(action)
    _, _, _, infos = venv.step(action)
    keys = [k for k, v in info.items() if isinstance(v, np.ndarray) and not k.startswith("_")]
    assert keys and len(infos) == 4
    for i in range(4):
        assert set(infos[i]) == set(keys)
        for k in keys:
            assert type(infos[i][k]) is type(info[k][i].item()) and infos[i][k] == info[k][i]


def test_sb3_adapter_flat_view(bow_config):
    from recsim_llm.context import flatten_observation

    config = EnvConfig(encoder="bow", horizon=4)
    flat = SB3VecEnv(SlateVectorEnv(5, config=config), flatten=True)
    plain = SB3VecEnv(SlateVectorEnv(5, config=config))
    flat.seed(1)
    plain.seed(1)
    a, b = flat.reset(), plain.reset()
    assert a.shape == (5, *flat.observation_space.shape) and a.dtype == np.float32
    assert np.array_equal(a, flatten_observation(b))
    for _ in range(5):
        action = np.tile(np.arange(5), (5, 1))
        a, _, dones, infos_a = flat.step(action)
        b, _, _, infos_b = plain.step(action)
        assert np.array_equal(a, flatten_observation(b))
        for i in np.flatnonzero(dones):
            want = flatten_observation(infos_b[i]["terminal_observation"])
            assert np.array_equal(infos_a[i]["terminal_observation"], want)


@pytest.mark.slow
def test_sb3_ppo_trains_on_the_batched_env():
    """Real SB3 training: PPO improves over its own untrained policy on the same seeds."""
    from recsim_llm.agents.sb3 import SB3Policy, train_sb3
    from recsim_llm.evaluation import evaluate

    config = EnvConfig(encoder="bow", horizon=40)
    untrained = train_sb3(config, "PPO", total_timesteps=1, n_envs=16, seed=0)
    trained = train_sb3(config, "PPO", total_timesteps=12_000, n_envs=16, seed=0)
    summaries, _ = evaluate(
        [SB3Policy(untrained, "ppo0"), SB3Policy(trained, "ppo")],
        config,
        seeds=[100, 101],
        n_users=64,
    )
    before, after = (s.per_seed["return"].mean() for s in summaries)
    assert after > before


def test_sb3_model_save_load_round_trip(tmp_path):
    import stable_baselines3 as sb3

    from recsim_llm.agents.sb3 import train_sb3

    config = EnvConfig(encoder="bow", horizon=10)
    model = train_sb3(config, "A2C", total_timesteps=200, n_envs=4, seed=0)
    model.save(tmp_path / "a2c")
    loaded = sb3.A2C.load(tmp_path / "a2c", device="cpu")
    from recsim_llm.context import flatten_observation

    obs = flatten_observation(SlateVectorEnv(4, config=config).reset(seed=0)[0])
    assert np.array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )


_VECTOR_TRACE = """
import hashlib, numpy as np
from recsim_llm.config import EnvConfig
from recsim_llm.envs.vector import SlateVectorEnv
env = SlateVectorEnv(16, config=EnvConfig(encoder="bow", horizon=20))
rng = np.random.default_rng(0)
obs, _ = env.reset(seed=21)
h = hashlib.sha256(obs["user"].tobytes())
for _ in range(50):
    obs, r, te, tr, info = env.step(rng.integers(20, size=(16, 5)))
    for a in (obs["user"], obs["candidates"], r, te, tr, info["engagement"]):
        h.update(np.ascontiguousarray(a).tobytes())
print(h.hexdigest())
"""


def test_vector_env_same_trajectory_across_processes():
    import subprocess
    import sys

    digests = {
        subprocess.run(
            [sys.executable, "-c", _VECTOR_TRACE], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(digests) == 1 and len(next(iter(digests))) == 64


def test_vector_env_pickle_round_trip(bow_config):
    import pickle

    env = SlateVectorEnv(6, config=bow_config)
    env.reset(seed=2)
    clone = pickle.loads(pickle.dumps(env))
    action = np.tile(np.arange(5), (6, 1))
    for _ in range(5):
        a, b = env.step(action), clone.step(action)
        assert _same(a[0], b[0]) and np.array_equal(a[1], b[1])
