"""The MovieLens-calibrated world: split, fit, world validity, env contract, caching."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from test_movielens_data import REAL_DATA, needs_real_data, write_grouplens

import recsim_llm  # noqa: F401 - registers the env ids
from recsim_llm import calibration as calib
from recsim_llm.calibration import CalibrationConfig, calibrate, time_split
from recsim_llm.config import EnvConfig
from recsim_llm.envs.movielens import MovieLensEnv, MovieLensVectorEnv

FAST = CalibrationConfig(iterations=60, activity_shrink=(0.7,))
SMALL_ENV = EnvConfig(
    slate_size=3, n_candidates=8, n_popular_candidates=2, n_new_candidates=1, horizon=30, encoder="bow"
)


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_grouplens(tmp_path_factory.mktemp("ml-fixture"))


def test_time_split_holds_out_each_users_latest_ratings() -> None:
    user = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2])
    stamp = np.array([5, 1, 4, 2, 3, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 7])
    test = time_split(user, stamp, 0.2)
    assert test[user == 0].sum() == 1 and test[0]  # the latest of five
    assert test[user == 1].sum() == 2 and test[5] and test[6]  # the two latest of ten
    assert not test[user == 2].any()  # a single rating stays in training


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("test_fraction", 0.0),
        ("test_fraction", 1.0),
        ("cold_user_fraction", 1.0),
        ("latent_dim", 16),
        ("latent_dim", 1),
        ("iterations", 0),
        ("learning_rate", 0.0),
        ("logging_slate_size", 0),
        ("boredom_weight", -1.0),
        ("activity_shrink", (1.5,)),
        ("seed", -1),
        ("new_items_per_step", True),
    ],
)
def test_config_rejects_invalid_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"calibration.{field}"):
        CalibrationConfig(**{field: value})


def _check_world(cal: calib.Calibration) -> None:
    cat = cal.catalog
    assert cat.n_topics == cal.world_config.catalog.n_topics == 16
    np.testing.assert_allclose(np.linalg.norm(cat.latent, axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(cal.user_interest, axis=1), 1.0, atol=1e-9)
    assert ((cat.quality >= 0) & (cat.quality <= 1)).all()
    assert ((cat.appeal >= 0) & (cat.appeal <= 1)).all()
    assert cat.topic.max() < cat.n_topics
    n_new = int((~cal.fit.known_item).sum())
    assert (cat.arrival_step[: cat.n_total - n_new] == 0).all()
    assert (cat.arrival_step[cat.n_total - n_new :] > 0).all()
    assert cal.world_config.catalog.n_items == cat.n_total - n_new
    # Item ids map back to the real movies.
    m = cal.movie_of_item[0]
    assert cat.titles[0] == cal.data.movies.titles[m]
    assert cal.item_of_movie[m] == 0


def test_fixture_calibration_builds_a_valid_world(fixture_dir: Path) -> None:
    cal = calibrate(fixture_dir, FAST)
    _check_world(cal)
    assert cal.fit.cold_user.sum() == 4  # 10% of 40 users
    assert len(cal.user_sampler("cold").profiles) == 4
    assert cal.profiles[0].startswith("User aged 18, a man who is a student")
    assert calibrate(fixture_dir, FAST) is cal  # cached in process
    with pytest.raises(ValueError, match="user_pool"):
        cal.user_sampler("everyone")


def test_fixture_env_passes_gymnasium_and_sb3_checks(fixture_dir: Path) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = MovieLensEnv(data_dir=fixture_dir, config=SMALL_ENV, calibration=FAST)
    check_env(env, skip_render_check=True)
    sb3_check_env(MovieLensEnv(data_dir=fixture_dir, config=SMALL_ENV, calibration=FAST))


def test_same_seed_same_trajectory(fixture_dir: Path) -> None:
    def rollout() -> list[float]:
        env = MovieLensEnv(data_dir=fixture_dir, config=SMALL_ENV, calibration=FAST, user_pool="all")
        env.action_space.seed(3)
        obs, _ = env.reset(seed=11)
        out = [float(obs.sum())]
        for _ in range(25):
            obs, reward, term, trunc, info = env.step(env.action_space.sample())
            out += [float(obs.sum()), reward, info["rating"]]
            if term or trunc:
                obs, _ = env.reset()
        return out

    assert rollout() == rollout()


def test_registered_id_and_vector_env(fixture_dir: Path) -> None:
    env = gym.make("RecSimLLM/MovieLens-v0", data_dir=str(fixture_dir), config=SMALL_ENV, calibration=FAST)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    venv = MovieLensVectorEnv(4, data_dir=fixture_dir, config=SMALL_ENV, calibration=FAST)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (4, venv.single_observation_space.shape[0])
    for _ in range(40):  # beyond the horizon: autoreset must bring in new real users
        obs, reward, term, trunc, info = venv.step(venv.action_space.sample())
    assert obs.dtype == np.float32 and reward.shape == (4,)
    with pytest.raises(ValueError, match="data_dir is required"):
        MovieLensEnv()


def test_disk_cache_is_used_instead_of_refitting(
    fixture_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = CalibrationConfig(iterations=20, activity_shrink=(), seed=5)
    first = calibrate(fixture_dir, config, cache_dir=tmp_path)
    files = list(tmp_path.glob("movielens-fit-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    calib.clear_cache()

    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("refitted although the disk cache holds the fit")

    monkeypatch.setattr(calib, "fit_calibration", no_fit)
    second = calibrate(fixture_dir, config, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.fit.user_vec, second.fit.user_vec)
    np.testing.assert_array_equal(first.catalog.latent, second.catalog.latent)
    assert first.world_config == second.world_config
    # A corrupt cache file is refitted, not trusted.
    files[0].write_bytes(b"not an npz")
    calib.clear_cache()
    monkeypatch.undo()
    third = calibrate(fixture_dir, config, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.fit.user_vec, third.fit.user_vec)


# -- the real data ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> calib.Calibration:
    return calibrate(REAL_DATA)


def _auc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    return float((scores_pos[:, None] > scores_neg[None, :]).mean() + 0.5 * (scores_pos[:, None] == scores_neg[None, :]).mean())


@needs_real_data
@pytest.mark.slow
def test_real_calibration_beats_popularity_on_held_out_auc(real: calib.Calibration) -> None:
    data, fit = real.data, real.fit
    _check_world(real)
    assert fit.is_test.mean() == pytest.approx(0.2, abs=0.01)
    rated = np.zeros((len(data.users), len(data.movies)), dtype=bool)
    rated[data.user, data.item] = True
    count = np.bincount(data.item[~fit.is_test], minlength=len(data.movies)).astype(float)
    rng = np.random.default_rng(0)
    pos = fit.is_test & (data.rating >= 4)
    cal_auc, pop_auc = [], []
    for u in np.unique(data.user[pos]):
        p = data.item[pos & (data.user == u)]
        n = rng.choice(np.flatnonzero(~rated[u]), size=100, replace=False)
        s = real.click_logits(np.array([u]), np.concatenate([p, n]))[0]
        cal_auc.append(_auc(s[: p.size], s[p.size :]))
        pop_auc.append(_auc(count[p], count[n]))
    assert np.mean(cal_auc) > np.mean(pop_auc) + 0.03
    cold = fit.cold_user[np.unique(data.user[pos])]
    assert np.mean(np.array(cal_auc)[cold]) > np.mean(np.array(pop_auc)[cold])


@needs_real_data
@pytest.mark.slow
def test_real_env_passes_the_same_checks_as_the_synthetic_one(real: calib.Calibration) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("RecSimLLM/MovieLens-v0", data_dir=str(REAL_DATA), config=EnvConfig(encoder="bow"))
    assert env.unwrapped.calibration is real  # the fit is cached per data directory
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(MovieLensEnv(data_dir=REAL_DATA))
    env.reset(seed=0)
    clicks = 0
    for _ in range(30):
        _, _, term, trunc, info = env.step(env.action_space.sample())
        clicks += info["click"]
        if term or trunc:
            env.reset()
    assert 0 < clicks < 30
    text = env.unwrapped.sim.log.history_text(0, env.unwrapped.sim.titles)
    assert text.startswith("User aged ")


@needs_real_data
@pytest.mark.slow
def test_real_fit_matches_training_behaviour(real: calib.Calibration) -> None:
    sc = real.fit.scalars
    # Simulated activity was tuned on training data only; it lands near the training target.
    assert sc["activity_ks_train"] < 0.25
    # New movies (rated only in the held-out period) exist and arrive during a run.
    assert (~real.fit.known_item).sum() > 10
    assert real.world_config.dynamics.churn_base + real.world_config.dynamics.churn_max <= 1.0
