"""The MovieLens-calibrated world: split, fit, world validity, env contract, caching."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from test_movielens_data import REAL_DATA, needs_real_data, write_grouplens

import recsim_llm  # noqa: F401 - registers the env ids
from recsim_llm import movielens as calib
from recsim_llm.config import EnvConfig
from recsim_llm.envs.movielens import MovieLensEnv, MovieLensVectorEnv
from recsim_llm.movielens import CalibrationConfig, calibrate, time_split
from recsim_llm.movielens import cache as ml_cache

FAST = CalibrationConfig(iterations=60, activity_shrink=(0.7,))
SMALL_ENV = EnvConfig(
    slate_size=3,
    n_candidates=8,
    n_popular_candidates=2,
    n_new_candidates=1,
    horizon=30,
    encoder="bow",
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
        env = MovieLensEnv(
            data_dir=fixture_dir, config=SMALL_ENV, calibration=FAST, user_pool="all"
        )
        env.action_space.seed(3)
        obs, _ = env.reset(seed=11)
        out = [float(obs["user"].sum() + obs["candidates"].sum())]
        for _ in range(25):
            obs, reward, term, trunc, info = env.step(env.action_space.sample())
            out += [float(obs["user"].sum() + obs["candidates"].sum()), reward, info["rating"]]
            if term or trunc:
                obs, _ = env.reset()
        return out

    assert rollout() == rollout()


def test_registered_id_and_vector_env(fixture_dir: Path) -> None:
    env = gym.make(
        "RecSimLLM/MovieLens-v3", data_dir=str(fixture_dir), config=SMALL_ENV, calibration=FAST
    )
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    venv = MovieLensVectorEnv(4, data_dir=fixture_dir, config=SMALL_ENV, calibration=FAST)
    obs, _ = venv.reset(seed=0)
    assert obs["user"].shape == (4, *venv.single_observation_space["user"].shape)
    assert venv.observation_space.contains(obs)
    for _ in range(40):  # beyond the horizon: autoreset must bring in new real users
        obs, reward, term, trunc, info = venv.step(venv.action_space.sample())
    assert obs["candidates"].dtype == np.float32 and reward.shape == (4,)
    with pytest.raises(ValueError, match="data_dir is required"):
        MovieLensEnv()


def test_disk_cache_is_used_instead_of_refitting(
    fixture_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = CalibrationConfig(iterations=20, activity_shrink=(), seed=5)
    first = calibrate(fixture_dir, config, cache_dir=tmp_path)
    files = list(tmp_path.glob("movielens-fit-*.fit"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    calib.clear_cache()

    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("refitted although the disk cache holds the fit")

    monkeypatch.setattr(ml_cache, "fit_calibration", no_fit)
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


# -- the on-disk cache is checked before use ----------------------------------------------------


def _flip_a_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _rewrite(change):
    """Rewrite the cache file through ``save_fit`` (consistent hash and metadata) with ``change``."""

    def edit(path: Path, fit: calib.CalibrationFit, key: str) -> None:
        ml_cache.save_fit(path, change(fit), key)

    return edit


def _nan_user_vec(fit: calib.CalibrationFit) -> calib.CalibrationFit:
    user_vec = fit.user_vec.copy()
    user_vec[0, 0] = np.nan
    return replace(fit, user_vec=user_vec)


TAMPERED = [
    pytest.param(
        lambda path, fit, key: _flip_a_byte(path),
        "bytes do not match the hash recorded",
        id="bytes-changed",
    ),
    pytest.param(
        lambda path, fit, key: path.write_bytes(b"not an npz"),
        "not a recsim-llm calibration cache",
        id="not-ours",
    ),
    pytest.param(
        _rewrite(_nan_user_vec), "user_vec holds non-finite values", id="nan-consistent-hash"
    ),
    pytest.param(
        _rewrite(lambda fit: replace(fit, item_vec=fit.item_vec[:-1])),
        r"item_vec is float64\[79, 5\], expected float64\[80, 5\]",
        id="wrong-shape",
    ),
    pytest.param(
        _rewrite(lambda fit: replace(fit, quality=fit.quality.astype(np.float32))),
        "quality is float32",
        id="wrong-dtype",
    ),
    pytest.param(
        _rewrite(lambda fit: replace(fit, scalars={**fit.scalars, "scale": float("inf")})),
        "scalars are not all finite",
        id="infinite-scalar",
    ),
    pytest.param(
        _rewrite(lambda fit: replace(fit, is_test=~fit.is_test)),
        "held-out split is not this data's",
        id="other-split",
    ),
    pytest.param(
        lambda path, fit, key: ml_cache.save_fit(path, fit, "0" * 32),
        "key mismatch",
        id="other-key",
    ),
]


@pytest.mark.parametrize(("tamper", "reason"), TAMPERED)
def test_tampered_cache_is_refitted_never_used(
    fixture_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    tamper,
    reason: str,
) -> None:
    config = CalibrationConfig(iterations=15, latent_dim=5, activity_shrink=(), seed=7)
    first = calibrate(fixture_dir, config, cache_dir=tmp_path)
    key = ml_cache.fingerprint(Path(fixture_dir).resolve(), config)
    path = ml_cache.cache_path(tmp_path, key)
    assert path.is_file()
    tamper(path, first.fit, key)
    calib.clear_cache()
    fits = []
    real_fit = ml_cache.fit_calibration

    def counting_fit(*args, **kwargs):
        fits.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(ml_cache, "fit_calibration", counting_fit)
    second = calibrate(fixture_dir, config, cache_dir=tmp_path)
    assert fits == [1]  # refitted, the cache file was not used
    err = capsys.readouterr().err
    assert f"calibration cache {path} not used" in err and "refitting" in err
    assert re.search(reason, err), err
    np.testing.assert_array_equal(first.fit.user_vec, second.fit.user_vec)
    assert np.isfinite(second.fit.user_vec).all()
    # The refit replaced the bad file: it now loads and passes every check.
    ml_cache.load_fit(path, second.data, config, key)
    calib.clear_cache()


def test_cache_load_refuses_a_plain_npz_without_a_recorded_hash(
    fixture_dir: Path, tmp_path: Path
) -> None:
    config = CalibrationConfig(iterations=5, activity_shrink=())
    cal = calibrate(fixture_dir, config)
    path = tmp_path / "old-format.npz"
    np.savez(path, **{name: getattr(cal.fit, name) for name in ml_cache.FIT_ARRAYS})
    with pytest.raises(ml_cache.CacheError, match="no header with its hash"):
        ml_cache.load_fit(path, cal.data, config, "k")


# -- the package's shape ------------------------------------------------------------------------


def test_no_private_imports_across_modules() -> None:
    """Modules of recsim_llm.movielens (and the env) import only public names of each other."""
    import ast

    root = Path(calib.__file__).parent
    files = sorted(root.glob("*.py")) + [root.parents[1] / "envs" / "movielens.py"]
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("recsim_llm"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{file.name} imports private {private} from {node.module}"
            if file.name == "movielens.py" and isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert not module.startswith("recsim_llm.movielens."), (
                    f"envs/movielens.py imports {module}; use the public recsim_llm.movielens API"
                )


# -- the real data ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> calib.Calibration:
    return calibrate(REAL_DATA)


def _auc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    return float(
        (scores_pos[:, None] > scores_neg[None, :]).mean()
        + 0.5 * (scores_pos[:, None] == scores_neg[None, :]).mean()
    )


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

    env = gym.make(
        "RecSimLLM/MovieLens-v3", data_dir=str(REAL_DATA), config=EnvConfig(encoder="bow")
    )
    assert env.unwrapped.calibration is real  # the fit is cached per data directory
    check_env(env.unwrapped, skip_render_check=True)
    default = MovieLensEnv(data_dir=REAL_DATA)
    # v2: the LM state defaults to the shipped MovieLens encoder, not the synthetic world's.
    from recsim_llm.lm.state import SHIPPED_MOVIELENS_ENCODER

    assert default.config.encoder == "lm-fast"
    assert default.config.encoder_path == str(SHIPPED_MOVIELENS_ENCODER)
    sb3_check_env(default)
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


def test_movielens_logs_and_env_render_the_same_texts(fixture_dir: Path, tmp_path: Path) -> None:
    """Profiles, item texts and histories of MovieLens logs are the MovieLens env's own texts."""
    from recsim_llm import text
    from recsim_llm.lm.logs import Histories, load_logs, write_movielens_logs

    cal = calibrate(fixture_dir, FAST)
    data = load_logs(write_movielens_logs(fixture_dir, tmp_path / "logs", n_candidates=5))
    env_texts = cal.catalog.texts()
    for item, movie in enumerate(cal.movie_of_item.tolist()):
        assert data.item_texts[movie] == env_texts[item]
        assert data.item_genres[movie] == cal.catalog.genres[item]
    for row in range(0, data.n_rows, 11):
        assert data.profiles[row] == cal.profiles[int(data.user[row])]
    # The env's log renders a user's events with the same function the logs used.
    env = MovieLensEnv(data_dir=fixture_dir, config=SMALL_ENV, calibration=FAST)
    env.reset(seed=0)
    for _ in range(6):
        env.step(env.action_space.sample())
    log, titles = env.unwrapped.sim.log, env.unwrapped.sim.titles
    assert log.history_text(0, titles) == text.render_history(
        log.profiles[0], log.events(0, titles)
    )
    assert log.profiles[0] in cal.profiles
    hist = Histories(data, max_steps=data.meta["history_events"])
    rows = np.flatnonzero(data.t >= 3)[:20]
    for row in rows.tolist():
        assert hist.text(row) == data.history_text[row]
