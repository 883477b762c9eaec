"""The grid through pluggable executors: same numbers everywhere, checked inputs, run folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsim_llm.grid import (
    EXECUTORS,
    LocalExecutor,
    RayExecutor,
    evaluate_grid,
    grid_tasks,
    make_executor,
    run_grid,
)

POLICIES = ["random", "oracle"]
SCENARIOS = ["default", "bots@0.3", "obs-noise"]
SEEDS = [0, 1, 2]
SMALL = {"horizon": 15, "encoder": "bow", "log_fraction": 0.5}


@pytest.fixture(scope="module")
def in_process():
    return evaluate_grid(POLICIES, SCENARIOS, SEEDS, 8, **SMALL)


def test_grid_covers_every_cell_with_reference_scores(in_process):
    table = in_process.table
    sessions = table[table.step == -1]
    cells = sessions[sessions.metric == "return"][["policy", "scenario", "seed"]]
    assert len(cells.drop_duplicates()) == 2 * 3 * 3
    score = sessions[sessions.metric == "normalised_score"]
    assert np.allclose(score[score.policy == "random"].value, 0.0)
    assert np.allclose(score[score.policy == "oracle"].value, 1.0)
    assert len(in_process.seconds) == 18 and all(s > 0 for s in in_process.seconds)
    assert set(in_process.steplog.policy) == set(POLICIES)
    # The same sampled users for every policy of a seed.
    users = in_process.steplog.groupby(["seed", "policy"]).user.agg(lambda u: sorted(set(u)))
    from recsim_llm.steplog import sample_users

    logged = [s for s in SEEDS if sample_users(8, 0.5, s).any()]
    assert set(users.index.get_level_values("seed")) == set(logged) and len(logged) >= 2
    for seed in logged:
        assert users[(seed, "random")] == sorted(np.flatnonzero(sample_users(8, 0.5, seed)))
        assert users[(seed, "random")] == users[(seed, "oracle")]
    assert in_process.steplog.user.dtype == np.int64


def test_same_numbers_with_two_local_processes(in_process):
    pooled = evaluate_grid(POLICIES, SCENARIOS, SEEDS, 8, workers=2, **SMALL)
    pd.testing.assert_frame_equal(pooled.table, in_process.table)
    pd.testing.assert_frame_equal(pooled.steplog, in_process.steplog)


@pytest.mark.slow
def test_same_numbers_through_ray(in_process):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        through_ray = evaluate_grid(POLICIES, SCENARIOS, SEEDS, 8, executor="ray", **SMALL)
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(through_ray.table, in_process.table)
    pd.testing.assert_frame_equal(through_ray.steplog, in_process.steplog)


def test_task_order_does_not_change_the_table(in_process):
    tasks = grid_tasks(
        POLICIES,
        SCENARIOS,
        SEEDS,
        8,
        overrides={"horizon": 15, "encoder": "bow"},
        log_fraction=0.5,
    )

    class Reversed(LocalExecutor):
        def run(self, fn, tasks):
            for i in reversed(range(len(tasks))):
                yield i, fn(tasks[i])

    result = run_grid(tasks, Reversed())
    from recsim_llm.grid import add_reference_scores

    pd.testing.assert_frame_equal(add_reference_scores(result.table), in_process.table)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policies": []}, "policies must be a non-empty"),
        ({"policies": ["random", "random"]}, "policies must not repeat"),
        ({"policies": [object()]}, "policies must be policy specs"),
        ({"policies": ["greedy"]}, "unknown policy|policy must be one of"),
        ({"scenarios": ["mars"]}, "scenario must be one of"),
        ({"scenarios": ["bots@7"]}, r"must be in \[0, 1\]"),
        ({"seeds": []}, "seeds must be a non-empty"),
        ({"seeds": [1, -1]}, "non-negative"),
        ({"n_users": 0}, "n_users"),
        ({"log_fraction": 2.0}, "log_fraction"),
        ({"first_k": 0}, "first_k must be a positive integer"),
        ({"first_k": 2.5}, "first_k must be a positive integer"),
    ],
)
def test_bad_grid_input_is_refused_before_any_task(kwargs, message):
    args = {"policies": ["random"], "scenarios": ["default"], "seeds": [0], "n_users": 4}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        evaluate_grid(args.pop("policies"), args.pop("scenarios"), args.pop("seeds"), **args)


def test_executors_are_registered_and_checked(monkeypatch):
    assert {"local", "ray"} <= set(EXECUTORS.names())
    assert isinstance(make_executor("local", workers=3), LocalExecutor)
    with pytest.raises(ValueError, match="workers"):
        LocalExecutor(0)
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("dask")
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ImportError, match=r'pip install "recsim-llm\[ray\]"'):
        list(RayExecutor().run(lambda t: t, []))


def test_top_level_evaluate_returns_the_tidy_table():
    import recsim_llm

    table = recsim_llm.evaluate(["random"], ["stationary"], [4], 4, horizon=5, encoder="bow")
    assert list(table.columns) == [
        "run_id",
        "policy",
        "scenario",
        "seed",
        "step",
        "metric",
        "value",
    ]
    assert set(table.scenario) == {"stationary"} and set(table.seed) == {4}


def test_cli_evaluate_writes_a_run_the_dashboard_reads(tmp_path, capsys):
    from dashboard.data import find_runs, load_run, session_summary
    from recsim_llm.cli import main
    from recsim_llm.steplog import read_steplog

    out = tmp_path / "runs" / "grid"
    args = [
        "evaluate",
        "--policies",
        "random,oracle",
        "--scenarios",
        "default,bots@0.5",
        "--seeds",
        "0,1",
        "--users",
        "4",
        "--horizon",
        "5",
        "--encoder",
        "bow",
        "--workers",
        "1",
        "--log-fraction",
        "0.5",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    names = {p.name for p in out.iterdir()}
    assert {
        "results.csv",
        "results.parquet",
        "steps.parquet",
        "config.json",
        "system.json",
        "report.md",
        "return.png",
        "reward-default.png",
        "reward-bots_0.5.png",
        "summary.md",
    } <= names
    assert (out / "return.png").read_bytes()[:4] == b"\x89PNG"
    assert find_runs(tmp_path / "runs") == [out]
    table = load_run("grid", out, tmp_path / "runs").table  # what the dashboard's pages read
    parquet = pd.read_parquet(out / "results.parquet")
    assert len(parquet) == len(table)
    summary = session_summary(table, "normalised_score")
    assert set(summary.policy) == {"random", "oracle"}
    config = json.loads((out / "config.json").read_text())
    assert config["scenario_versions"] == {"default": 1, "bots@0.5": 1}
    assert json.loads((out / "system.json").read_text())["timing"]["tasks"] == 8
    assert set(read_steplog(out).scenario) == {"default", "bots@0.5"}
    assert "## bots@0.5" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main([*args[:-2], "--address", "auto", "--out", str(tmp_path / "x")]) == 2
    assert "--address needs --executor ray" in capsys.readouterr().err
