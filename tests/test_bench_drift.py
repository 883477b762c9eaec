"""The online-drift benchmark: its frozen wrapper stops every model, its arguments are checked
before any work, and a tiny run writes its tables with the hybrid learners."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from bench_loader import BENCHMARKS, load_benchmark

from recsim_llm.agents.bandits import LinUCBPolicy
from recsim_llm.config import EnvConfig
from recsim_llm.envs.vector import SlateVectorEnv

BENCH = BENCHMARKS / "bench_online_drift.py"


def _load_frozen_at():
    return load_benchmark("bench_online_drift").FrozenAt


def test_frozen_at_stops_the_shared_and_the_per_user_models():
    frozen_at = _load_frozen_at()
    env = SlateVectorEnv(8, config=EnvConfig(encoder="bow", horizon=12))
    policy = frozen_at(LinUCBPolicy(user_discount=0.9), freeze_step=3)
    obs, _ = env.reset(seed=0)
    policy.reset(0)
    snapshots = []
    for _ in range(6):
        slate = policy.act(obs, env.sim.context())
        next_obs, _, _, _, info = env.step(slate)
        policy.update(obs, slate, info)
        inner = policy.policy
        snapshots.append((inner._theta.copy(), inner._user_beta.copy()))
        obs = next_obs
    theta, beta = snapshots[2]
    assert np.abs(beta).sum() > 0  # the per-user models learned before the freeze
    assert not np.array_equal(snapshots[1][0], theta)
    for later_theta, later_beta in snapshots[3:]:
        assert np.array_equal(later_theta, theta)
        assert np.array_equal(later_beta, beta)


def _run(tmp_path, *args):
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )


def test_policies_that_do_not_learn_are_refused_before_any_work(tmp_path):
    out = tmp_path / "out"
    for bad, message in (("random", "does not learn online"), ("greedy", "unknown policy")):
        done = _run(tmp_path, "--policies", bad, "--out", str(out))
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "--policies" in done.stderr
        assert not out.exists()


def test_a_tiny_run_writes_the_hybrid_rows(tmp_path):
    out = tmp_path / "out"
    done = _run(
        tmp_path,
        "--policies",
        "linucb-hybrid:0.9,thompson",
        "--seeds",
        "0,1",
        "--users",
        "4",
        "--encoder",
        "bow",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    summary = (out / "drift_summary.md").read_text()
    # A spec with an argument labels its rows.
    for row in (
        "| taste-shift | linucb-hybrid:0.9 |",
        "| taste-shift | linucb-hybrid:0.9-frozen |",
    ):
        assert row in summary
    assert "| thompson | late (20..end) |" in summary
    assert (out / "drift.png").stat().st_size > 0
    lines = (out / "drift_steps.csv").read_text().splitlines()
    # 2 worlds x 4 runs (2 policies, learning and frozen) x 2 seeds x up to 100 steps
    assert lines[0] == "world,policy,seed,step,reward" and 800 < len(lines) <= 1601


def test_empty_policies_are_refused(tmp_path):
    done = _run(tmp_path, "--policies", ",", "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "--policies must name at least one" in done.stderr
