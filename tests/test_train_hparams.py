"""`recsim-llm train`'s SB3 hyperparameters: flags, --algo-kwarg, checks, config.json, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsim_llm.cli import main

pytest.importorskip("stable_baselines3")

# 4 users x 32 steps = 128 user-steps per PPO rollout: one rollout.
FAST = ["--encoder", "bow", "--horizon", "30", "--envs", "4", "--eval-seeds", "100,101"]
FAST += ["--eval-users", "4", "--steps", "128", "--eval-every", "0", "--checkpoint-every", "0"]
HPARAMS = ["--n-steps", "32", "--batch-size", "64", "--n-epochs", "2", "--lr", "1e-3"]
HPARAMS += ["--gamma", "0.9", "--ent-coef", "0"]


def _train(out: Path, *extra: str) -> list[str]:
    return ["train", *FAST, *extra, "--out", str(out)]


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_given_hyperparameters_are_recorded_trained_with_and_checked_on_resume(tmp_path, capsys):
    from recsim_llm.agents.sb3 import load_sb3_policy

    out = tmp_path / "run"
    args = _train(out, *HPARAMS, "--algo-kwarg", "vf_coef=0.25")
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    given = {"n_steps": 32, "batch_size": 64, "n_epochs": 2, "learning_rate": 1e-3}
    given |= {"gamma": 0.9, "ent_coef": 0.0, "vf_coef": 0.25}
    assert config["settings"]["hyperparameters"] == given
    assert "algo_kwargs" not in config["settings"]  # recorded once, as hyperparameters
    effective = config["effective_hyperparameters"]
    assert effective == {**effective, **given}
    assert effective["gae_lambda"] == 0.95 and effective["clip_range"] == 0.2  # SB3's defaults
    model = load_sb3_policy(out / "model.zip").model
    assert (model.n_steps, model.batch_size, model.n_epochs) == (32, 64, 2)
    assert model.learning_rate == 1e-3 and model.gamma == 0.9
    assert model.ent_coef == 0.0 and model.vf_coef == 0.25
    assert model.num_timesteps == 128
    capsys.readouterr()

    # Resume with another hyperparameter: refused, naming it; nothing written.
    before = sorted(p.name for p in out.iterdir())
    other = [a if a != "0.9" else "0.95" for a in args]
    assert main([*other, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "settings differ" in err and "hyperparameters.gamma (saved 0.9, given 0.95)" in err
    assert main([*_train(out), "--resume"]) == 2  # defaults are not the run's hyperparameters
    err = capsys.readouterr().err
    assert "hyperparameters.n_steps (saved 32, given 64)" in err
    assert "hyperparameters.vf_coef (saved 0.25, given '<missing>')" in err
    assert sorted(p.name for p in out.iterdir()) == before
    # The same ones: the run is complete.
    assert main([*args, "--resume"]) == 0
    assert "complete" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--gamma", "1.5"], "--gamma must be in (0, 1], got 1.5"),
        (["--gamma", "0"], "--gamma must be in (0, 1]"),
        (["--lr", "0"], "--lr must be > 0"),
        (["--gae-lambda", "1.1"], "--gae-lambda must be in [0, 1]"),
        (["--ent-coef", "-0.1"], "--ent-coef must be >= 0"),
        (["--clip-range", "0"], "--clip-range must be > 0"),
        (["--n-epochs", "0"], "argument --n-epochs: must be >= 1"),
        (["--batch-size", "-2"], "argument --batch-size: must be >= 1"),
        (["--gamma", "high"], "argument --gamma: invalid float value"),
        (
            ["--batch-size", "96"],
            "--batch-size 96 must divide the rollout buffer --n-steps x --envs = 64 x 4 = 256",
        ),
        (["--n-steps", "96"], "--batch-size 256 must divide the rollout buffer"),
        (["--algo-kwarg", "not_a_param=1"], "'not_a_param' is not a hyperparameter of PPO"),
        (["--algo-kwarg", "seed=3"], "'seed' is not a hyperparameter of PPO (it is set by"),
        (["--algo-kwarg", "vf_coef=abc"], "--algo-kwarg vf_coef must be a number, got 'abc'"),
        (["--algo-kwarg", "n_epochs=1.5"], "--algo-kwarg n_epochs must be an integer"),
        (["--algo-kwarg", "gamma=2"], "--algo-kwarg gamma must be in (0, 1]"),
        (["--algo-kwarg", "vf_coef"], "argument --algo-kwarg: expected KEY=VALUE"),
        (["--gamma", "0.9", "--algo-kwarg", "gamma=0.8"], "gamma is already given (--gamma)"),
        (["--algo", "A2C", "--batch-size", "8"], "--batch-size: A2C has no batch_size"),
    ],
)
def test_bad_hyperparameters_are_refused_before_any_output(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    try:
        status = main(_train(out, *extra))
    except SystemExit as exit_info:  # argparse's own checks
        status = exit_info.code
    assert status == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []  # no run folder, no lock left behind


def test_settings_type_sort_and_check_algo_kwargs():
    from recsim_llm.agents.training import TrainSettings

    settings = TrainSettings(algo_kwargs={"target_kl": "none", "gamma": "0.5", "n_epochs": "3"})
    assert settings.algo_kwargs == (("gamma", 0.5), ("n_epochs", 3), ("target_kl", None))
    hash(settings)
    assert TrainSettings(algo_kwargs=(("gamma", 0.5),)) != TrainSettings()
    a2c = TrainSettings(algorithm="A2C", n_envs=3, algo_kwargs={"use_rms_prop": "false"})
    assert a2c.algo_kwargs == (("use_rms_prop", False),)
    with pytest.raises(ValueError, match="batch_size 256 must divide the rollout buffer"):
        TrainSettings(n_envs=6)  # 64 x 6 = 384: a truncated second mini-batch
    # A batch at least the buffer's size trains on the whole buffer: allowed (64 x 2 = 128).
    assert TrainSettings(n_envs=2).n_envs == 2
    with pytest.raises(ValueError, match="'batch_size' is not a hyperparameter of A2C"):
        TrainSettings(algorithm="A2C", algo_kwargs={"batch_size": 8})
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        TrainSettings(algo_kwargs={"learning_rate": -1})
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        TrainSettings(n_envs=1, algo_kwargs={"batch_size": 1})
