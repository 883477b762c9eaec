"""`recsim-llm train`: the run directory, evaluations, checkpoints and an exact resume after a kill."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from recsim_llm.cli import main

pytest.importorskip("stable_baselines3")

REPO = Path(__file__).resolve().parents[1]
# 4 users x 64 steps = 256 user-steps per PPO rollout.
FAST = ["--encoder", "bow", "--horizon", "30", "--envs", "4", "--eval-seeds", "100,101"]
FAST += ["--eval-users", "4"]


def _train(out: Path, *extra: str) -> list[str]:
    return ["train", *FAST, *extra, "--out", str(out)]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _parameters(path: Path) -> dict[str, np.ndarray]:
    from recsim_llm.agents.sb3 import load_sb3_policy

    model = load_sb3_policy(path).model
    state = {f"policy.{k}": v.numpy().copy() for k, v in model.policy.state_dict().items()}
    optimizer = model.policy.optimizer.state_dict()["state"]
    for index, values in optimizer.items():
        for key, value in values.items():
            state[f"optimizer.{index}.{key}"] = np.asarray(value)
    state["num_timesteps"] = np.asarray(model.num_timesteps)
    return state


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_a_run_directory_holds_config_logs_evaluations_checkpoints_and_the_model(tmp_path):
    from recsim_llm.agents.sb3 import load_sb3_policy
    from recsim_llm.agents.specs import make_policy
    from recsim_llm.config import EnvConfig
    from recsim_llm.io import read_marker

    out = tmp_path / "run"
    args = _train(out, "--steps", "768", "--eval-every", "512", "--checkpoint-every", "256")
    assert main([*args, "--keep-checkpoints", "1"]) == 0
    assert read_marker(out)["kind"] == "train"
    names = sorted(p.name for p in out.iterdir())
    expected = ["checkpoints", "config.json", "eval.csv", "model.json", "model.zip"]
    assert names == sorted([".recsim-llm.json", *expected, "progress.csv"])
    config = json.loads((out / "config.json").read_text())
    settings = config["settings"]
    assert settings["env"]["encoder"] == "bow" and settings["env"]["horizon"] == 30
    assert settings["seed"] == 0 and settings["threads"] == 1 and settings["n_envs"] == 4
    assert settings["policy"] == "scorer" and settings["algorithm"] == "PPO"
    assert settings["hyperparameters"]["n_steps"] == 64
    assert config["torch_threads"] == 1
    assert config["policy_class"].endswith("CandidateScorerPolicy")
    assert set(config["versions"]) == {
        "python",
        "numpy",
        "torch",
        "stable-baselines3",
        "gymnasium",
        "recsim_llm",
    }
    assert [r["time/total_timesteps"] for r in _rows(out / "progress.csv")] == [
        "256",
        "512",
        "768",
    ]
    evals = _rows(out / "eval.csv")
    assert [r["step"] for r in evals] == ["512", "768"]  # every 512 and at the end
    for row in evals:
        returns = [float(row["return_seed_100"]), float(row["return_seed_101"])]
        assert float(row["mean_return"]) == pytest.approx(np.mean(returns))
    # Checkpoints at 256 and 512; only the newest kept.
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-000000512"]
    env = EnvConfig(encoder="bow", horizon=30)
    assert load_sb3_policy(out / "model.zip", env).model.num_timesteps == 768
    assert make_policy(f"model:{out}/model.zip", configs=[env]).name == "ppo:model"
    checkpoint = out / "checkpoints" / "step-000000512" / "model.zip"
    assert load_sb3_policy(checkpoint, env).model.num_timesteps == 512
    # The final model is refused by an env it was not trained for, before unpickling.
    with pytest.raises(ValueError, match="slate_size differs"):
        load_sb3_policy(out / "model.zip", EnvConfig(encoder="bow", slate_size=3))
    with pytest.raises(ValueError, match="encoder differs"):
        load_sb3_policy(out / "model.zip", EnvConfig(encoder="lm-fast"))


def test_resume_after_sigkill_ends_with_the_same_model_as_an_uninterrupted_run(tmp_path):
    steps = ["--steps", "2560", "--eval-every", "512", "--checkpoint-every", "256"]
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "recsim_llm.cli", *_train(killed, *steps)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 300
        while not list((killed / "checkpoints").glob("step-*")):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "model.zip").exists()  # killed mid-run, not after it
    done = sorted(p.name for p in (killed / "checkpoints").iterdir() if p.name[0] != ".")
    assert done and done[-1] < "step-000002560"

    assert main([*_train(killed, *steps), "--resume"]) == 0
    whole = tmp_path / "whole"
    assert main(_train(whole, *steps)) == 0

    resumed, reference = _parameters(killed / "model.zip"), _parameters(whole / "model.zip")
    assert resumed.keys() == reference.keys()
    for name, value in reference.items():
        assert np.array_equal(resumed[name], value), name
    assert int(resumed["num_timesteps"]) == 2560
    # Evaluations are the same rows, and the log continues the step count without repeats.
    assert _rows(killed / "eval.csv") == _rows(whole / "eval.csv")
    logged = [r["time/total_timesteps"] for r in _rows(killed / "progress.csv")]
    assert logged == [str(256 * i) for i in range(1, 11)]
    leftovers = [p.name for p in (killed / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_resume_refuses_other_settings_a_missing_checkpoint_and_a_foreign_out(tmp_path, capsys):
    out = tmp_path / "run"
    args = _train(out, "--steps", "256", "--eval-every", "0", "--checkpoint-every", "0")
    assert main(args) == 0
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()

    # Different settings: every differing key is named, nothing is written.
    other = [*args[:-2], "--seed", "3", "--threads", "2", "--horizon", "20", "--out", str(out)]
    assert main([*other, "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"recsim-llm train: error: cannot resume {out}: settings differ" in err
    for key in ("seed (saved 0, given 3)", "threads (saved 1, given 2)", "env.horizon"):
        assert key in err
    assert sorted(p.name for p in out.iterdir()) == before

    # Same settings on a complete run: nothing to do.
    assert main([*args, "--resume"]) == 0
    assert "complete" in capsys.readouterr().err

    # No checkpoint (or no run at all): refused, naming the folder.
    (out / "model.zip").unlink()
    assert main([*args, "--resume"]) == 2
    assert f"cannot resume {out}: no checkpoint in {out / 'checkpoints'}" in capsys.readouterr().err
    missing = tmp_path / "missing"
    assert main([*args[:-1], str(missing), "--resume"]) == 2
    assert f"cannot resume {missing}: it is not a training run" in capsys.readouterr().err
    assert not missing.exists()

    # A foreign folder or a file as --out: refused before any work.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    for path in (foreign, a_file):
        assert main([*args[:-1], str(path)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and f"error: --out {path}" in captured.err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    assert a_file.read_text() == "mine"
    assert main([*args[:-1], str(tmp_path / "model.zip")]) == 2
    assert "--out is a run directory now" in capsys.readouterr().err


def test_settings_are_checked(tmp_path):
    from recsim_llm.agents.training import TrainSettings

    with pytest.raises(ValueError, match="must not contain the training seed 5"):
        TrainSettings(seed=5, eval_seeds=(4, 5))
    with pytest.raises(ValueError, match="threads must be >= 1"):
        TrainSettings(threads=0)
    with pytest.raises(ValueError, match="policy must be one of"):
        TrainSettings(policy="CnnPolicy")
    with pytest.raises(ValueError, match="encoder_prior must be a finite number >= 0"):
        TrainSettings(encoder_prior=-1.0)
    with pytest.raises(ValueError, match="encoder_prior needs policy 'scorer'"):
        TrainSettings(policy="MlpPolicy", encoder_prior=2.0)
    for bad in (float("nan"), float("inf"), True, "2"):
        with pytest.raises(ValueError, match="encoder_prior must be a finite number >= 0"):
            TrainSettings(encoder_prior=bad)


def test_encoder_prior_is_refused_without_an_lm_state_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train(out, "--steps", "256", "--encoder-prior", "2")) == 2
    assert "--encoder-prior 2: needs an LM state" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):  # argparse: a usage error
        main(_train(out, "--steps", "256", "--encoder-prior", "-1"))
    assert "must be a finite number >= 0" in capsys.readouterr().err
    assert not out.exists()


def test_make_sb3_model_refuses_a_bad_encoder_prior_before_building_the_env(monkeypatch):
    from recsim_llm.agents import sb3
    from recsim_llm.config import EnvConfig

    def no_env(*args, **kwargs):
        raise AssertionError("the env was built before the encoder_prior check")

    monkeypatch.setattr("recsim_llm.envs.vector.SlateVectorEnv", no_env)
    lm = EnvConfig(encoder="lm-fast")
    for value, config, policy, match in (
        (float("nan"), lm, "scorer", "encoder_prior must be a finite number >= 0"),
        (-1.0, lm, "scorer", "encoder_prior must be a finite number >= 0"),
        (2.0, lm, "MlpPolicy", "encoder_prior needs policy 'scorer'"),
        (2.0, EnvConfig(encoder="bow"), "scorer", "encoder_prior needs an LM state"),
    ):
        with pytest.raises(ValueError, match=match):
            sb3.make_sb3_model(config, "PPO", 4, 0, policy=policy, encoder_prior=value)


def test_a_run_recorded_before_encoder_prior_existed_still_resumes(tmp_path):
    from recsim_llm.agents.training import TrainSettings, check_resume
    from recsim_llm.scenarios import scenario_config

    out = tmp_path / "run"
    assert main(_train(out, "--steps", "256", "--eval-every", "0")) == 0
    record = json.loads((out / "config.json").read_text())
    del record["settings"]["encoder_prior"]  # as written before the setting existed
    (out / "config.json").write_text(json.dumps(record))
    config = scenario_config("default", encoder="bow", horizon=30)
    same = dict(steps=256, n_envs=4, eval_every=0, eval_seeds=(100, 101), eval_users=4)
    settings = TrainSettings(**same, scenario="default")
    assert check_resume(out, config, settings) is None  # complete, and the settings match
    with pytest.raises(ValueError, match="encoder_prior"):
        check_resume(out, config, TrainSettings(**same, scenario="default", encoder_prior=1.0))


def test_a_run_recorded_before_trend_events_existed_still_resumes(tmp_path):
    """Env fields added later (the trend event) are missing from older run files: they match
    while the given value is the field's default, and a non-default one is refused by name."""
    from dataclasses import replace

    from recsim_llm.agents.training import TrainSettings, check_resume
    from recsim_llm.scenarios import scenario_config

    out = tmp_path / "run"
    assert main(_train(out, "--steps", "256", "--eval-every", "0")) == 0
    record = json.loads((out / "config.json").read_text())
    dynamics = record["settings"]["env"]["world"]["dynamics"]
    for field in ("trend_step", "trend_topic", "trend_strength"):
        del dynamics[field]  # as written before the trend event existed
    (out / "config.json").write_text(json.dumps(record))
    config = scenario_config("default", encoder="bow", horizon=30)
    same = dict(steps=256, n_envs=4, eval_every=0, eval_seeds=(100, 101), eval_users=4)
    settings = TrainSettings(**same, scenario="default")
    assert check_resume(out, config, settings) is None  # complete, and the settings match
    trend = replace(config.world.dynamics, trend_step=10, trend_topic=2, trend_strength=1.0)
    with pytest.raises(ValueError, match=r"trend_strength \(saved '<missing>', given 1\.0\)"):
        check_resume(out, replace(config, world=replace(config.world, dynamics=trend)), settings)


def test_encoder_prior_run_starts_at_encoder_greedy_and_is_recorded(tmp_path):
    from recsim_llm.agents.baselines import EncoderGreedyPolicy
    from recsim_llm.agents.sb3 import make_sb3_model
    from recsim_llm.config import EnvConfig
    from recsim_llm.lm.state import load_bundle

    config = EnvConfig(encoder="lm-fast", horizon=30)
    model = make_sb3_model(config, "PPO", 4, 0, policy="scorer", encoder_prior=3.0)
    prior = model.policy.encoder_prior
    bundle = load_bundle(None)
    assert prior["gain"] == 3.0 and prior["scale"] == pytest.approx(bundle.click_scale)
    np.testing.assert_allclose(prior["w"], np.asarray(bundle.item_bias_w).reshape(-1), rtol=1e-6)
    # Untrained, its most likely slate is encoder-greedy's, on real env observations.
    env = model.get_env()
    obs = env.reset()
    greedy = EncoderGreedyPolicy()
    for _ in range(3):
        action, _ = model.predict(obs, deterministic=True)
        want = np.argsort(-greedy.scores(obs), axis=1, kind="stable")[:, :5]
        assert (np.sort(action, axis=1) == np.sort(want, axis=1)).mean() > 0.9
        obs, *_ = env.step(action)
    # Through the CLI: recorded in config.json and in the saved policy.
    out = tmp_path / "run"
    lm = ["--encoder", "lm-fast", "--encoder-prior", "3", "--steps", "256", "--eval-every", "0"]
    assert main(["train", *FAST[2:], *lm, "--out", str(out)]) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["settings"]["encoder_prior"] == 3.0
    assert "encoder_prior" in record["policy_kwargs"]
