"""`recsim-llm train --seeds`: one run per seed through the grid's executors, and a summary."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recsim_llm.cli import main

pytest.importorskip("stable_baselines3")

SEEDS = [0, 1]
# 4 users x 64 steps = 256 user-steps per PPO rollout: 2 rollouts, a checkpoint after the first.
FAST = ["--encoder", "bow", "--horizon", "30", "--envs", "4", "--eval-seeds", "100,101"]
FAST += ["--eval-users", "4", "--steps", "512", "--eval-every", "256"]
FAST += ["--checkpoint-every", "256", "--keep-checkpoints", "1"]


def _train(out: Path, *extra: str) -> list[str]:
    return ["train", *FAST, "--seeds", ",".join(map(str, SEEDS)), *extra, "--out", str(out)]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _actions(model_zip: Path) -> np.ndarray:
    """The saved model's deterministic slates on fixed observations (users of env seed 7)."""
    from recsim_llm.agents.sb3 import load_sb3_policy
    from recsim_llm.config import EnvConfig
    from recsim_llm.envs.sb3 import SB3VecEnv
    from recsim_llm.envs.vector import SlateVectorEnv

    config = EnvConfig(encoder="bow", horizon=30)
    model = load_sb3_policy(model_zip, config).model
    venv = SB3VecEnv(SlateVectorEnv(num_envs=8, config=config))
    venv.seed(7)
    obs = venv.reset()
    slates = [model.predict(obs, deterministic=True)[0]]
    for _ in range(5):
        obs, *_ = venv.step(slates[-1])
        slates.append(model.predict(obs, deterministic=True)[0])
    return np.stack(slates)


def _same_runs(a: Path, b: Path) -> None:
    """Per seed: the same evaluations, the same deterministic actions; the same summary."""
    for seed in SEEDS:
        assert _rows(a / f"seed-{seed}" / "eval.csv") == _rows(b / f"seed-{seed}" / "eval.csv")
        actions_a = _actions(a / f"seed-{seed}" / "model.zip")
        assert np.array_equal(actions_a, _actions(b / f"seed-{seed}" / "model.zip")), seed
    assert (a / "summary.csv").read_text() == (b / "summary.csv").read_text()


@pytest.fixture(autouse=True)
def _restore_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> Path:
    import torch

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("seeds") / "here"
    try:
        assert main(_train(out)) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def test_each_seed_is_a_complete_run_and_the_summary_has_every_seed_and_the_mean(in_process):
    from recsim_llm.io import read_marker
    from recsim_llm.stats import mean_estimate

    out = in_process
    assert read_marker(out)["kind"] == "train-seeds"
    names = sorted(p.name for p in out.iterdir())
    expected = ["config.json", "seed-0", "seed-1", "summary.csv", "summary.md"]
    assert names == [".recsim-llm.json", *expected]  # no lock or staging left behind
    saved = json.loads((out / "config.json").read_text())["settings"]
    assert saved["seeds"] == SEEDS and "seed" not in saved and saved["threads"] == 1
    finals = []
    for seed in SEEDS:
        run = out / f"seed-{seed}"
        assert read_marker(run)["kind"] == "train"
        assert {"config.json", "eval.csv", "progress.csv", "model.zip", "checkpoints"} <= {
            p.name for p in run.iterdir()
        }
        settings = json.loads((run / "config.json").read_text())["settings"]
        assert settings["seed"] == seed and settings["steps"] == 512
        evals = _rows(run / "eval.csv")
        assert [r["step"] for r in evals] == ["256", "512"]
        finals.append(float(evals[-1]["mean_return"]))
    assert finals[0] != finals[1]  # the seeds are different runs

    rows = _rows(out / "summary.csv")
    assert [r["seed"] for r in rows] == ["0", "1", "mean"]
    assert [float(r["final_return"]) for r in rows[:2]] == finals
    assert all(r["steps"] == "512" and r["eval_step"] == "512" for r in rows[:2])
    estimate = mean_estimate(finals)
    mean = rows[-1]
    assert float(mean["final_return"]) == pytest.approx(np.mean(finals))
    assert (float(mean["low"]), float(mean["high"])) == (estimate.low, estimate.high)
    assert mean["n"] == "2" and mean["reliable"] == "False"
    assert "(n=2: unreliable)" in (out / "summary.md").read_text()


def test_two_local_workers_train_the_same_seeds_as_this_process(in_process, tmp_path):
    pooled = tmp_path / "pooled"
    assert main([*_train(pooled), "--workers", "2"]) == 0
    _same_runs(pooled, in_process)


def test_resume_continues_every_unfinished_seed(in_process, tmp_path, capsys):
    out = tmp_path / "killed"
    shutil.copytree(in_process, out)
    (out / "summary.csv").unlink()
    # Seed 0 was killed before its first checkpoint: only its marked folder and config.json.
    first = out / "seed-0"
    for path in first.iterdir():
        if path.name not in (".recsim-llm.json", "config.json"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    # Seed 1 was killed after its checkpoint at 256 user-steps, logs already past it.
    second = out / "seed-1"
    (second / "model.zip").unlink()
    (second / "model.json").unlink()
    assert [p.name for p in (second / "checkpoints").iterdir()] == ["step-000000256"]
    kept = (second / "checkpoints" / "step-000000256" / "state.pkl").stat().st_ino

    assert main([*_train(out), "--resume"]) == 0
    _same_runs(out, in_process)
    # Seed 1 continued from its checkpoint (the folder was not rebuilt); seed 0 started over.
    assert (second / "checkpoints" / "step-000000256" / "state.pkl").stat().st_ino == kept
    assert [p.name for p in (first / "checkpoints").iterdir()] == ["step-000000256"]
    for seed in SEEDS:
        logged = [r["time/total_timesteps"] for r in _rows(out / f"seed-{seed}" / "progress.csv")]
        assert logged == ["256", "512"]
    capsys.readouterr()

    # Everything complete: resuming again reads the runs back and writes the same summary.
    summary = (out / "summary.csv").read_text()
    assert main([*_train(out), "--resume"]) == 0
    assert (out / "summary.csv").read_text() == summary
    capsys.readouterr()

    # Other settings (here another seed list) are refused, naming the key; nothing is written.
    before = sorted(p.name for p in out.iterdir())
    args = [a if a != "0,1" else "0,1,2" for a in _train(out)]
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "seeds (saved [0, 1], given [0, 1, 2])" in err
    assert sorted(p.name for p in out.iterdir()) == before


def test_seed_with_seeds_and_other_bad_inputs_are_refused_before_any_work(
    in_process, tmp_path, capsys
):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([*_train(out), "--seed", "3"])
    assert exit_info.value.code == 2
    assert "argument --seed: not allowed with argument --seeds" in capsys.readouterr().err
    assert not out.exists()

    single = ["train", *FAST, "--out", str(out)]
    for extra, message in [
        (["--workers", "2"], "--workers: only with --seeds"),
        (["--seeds", "0,1", "--address", "auto"], "--address needs --executor ray"),
        (["--seeds", "0,1,0"], "seeds must not repeat"),
        (["--seeds", "0,100"], "must not contain the training seed 100"),
        (["--seeds", "0,1", "--eval-every", "0"], "eval_every must be > 0 with several seeds"),
    ]:
        assert main([*single[:-2], *extra, "--out", str(out)]) == 2
        captured = capsys.readouterr()
        assert message in captured.err and captured.out == ""
        assert not out.exists()

    # A foreign folder, or a single-seed run folder, is not a --seeds output.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for path in (foreign, in_process / "seed-0"):
        before = sorted(p.name for p in path.iterdir())
        assert main(_train(path)) == 2
        assert f"error: --out {path}" in capsys.readouterr().err
        assert sorted(p.name for p in path.iterdir()) == before


@pytest.mark.slow
def test_ray_trains_the_same_seeds_as_this_process(in_process, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        through_ray = tmp_path / "ray"
        assert main([*_train(through_ray), "--executor", "ray"]) == 0
    finally:
        ray.shutdown()
    _same_runs(through_ray, in_process)
