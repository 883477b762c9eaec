"""Evaluation, bootstrap intervals, tidy results and the long-term trade-off."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_llm.agents.baselines import (
    FixedMixPolicy,
    MyopicPolicy,
    OraclePolicy,
    RandomPolicy,
    fixed_mix_grid,
    top_k,
)
from recsim_llm.config import EnvConfig
from recsim_llm.evaluation import (
    PolicySummary,
    bootstrap_ci,
    evaluate,
    rollout,
    rollout_rows,
    summary_table,
)
from recsim_llm.results import RESULT_COLUMNS, read_results, write_run


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_data():
    rng = np.random.default_rng(0)
    small = rng.normal(10, 2, size=10)
    large = rng.normal(10, 2, size=1000)
    m, lo, hi = bootstrap_ci(small)
    assert lo < m < hi
    _, lo2, hi2 = bootstrap_ci(large)
    assert hi2 - lo2 < hi - lo
    assert lo2 < 10 < hi2


@pytest.mark.parametrize("values", [[], [np.nan, 1.0], [[1.0, 2.0]]])
def test_bootstrap_ci_rejects_bad_input(values):
    with pytest.raises(ValueError, match="values"):
        bootstrap_ci(values)


def test_bootstrap_ci_keeps_its_numbers_and_its_one_value_answer():
    values = np.random.default_rng(1).normal(400, 10, size=6)
    estimate = PolicySummary("p", {"return": values}).ci("return")
    assert bootstrap_ci(values) == (estimate.point, estimate.low, estimate.high)
    assert bootstrap_ci([3.0]) == (3.0, 3.0, 3.0)


def _summary(policy: str, returns: list[float]) -> PolicySummary:
    n = len(returns)
    per_seed = {"return": np.asarray(returns), "clicks": np.full(n, 2.0)}
    per_seed |= {"session_length": np.full(n, 10.0), "churned": np.full(n, 0.25)}
    return PolicySummary(policy, per_seed)


def test_summary_table_follows_the_reliability_rule():
    one = _summary("one", [412.3])
    three = _summary("three", [400.0, 410.0, 420.0])
    five = _summary("five", [400.0, 405.0, 410.0, 415.0, 420.0])
    assert not one.ci().has_interval
    assert not three.ci().reliable and five.ci().reliable
    table = summary_table([one, three, five])
    assert "| one | 412.3 | (1 seed: no interval) |" in table
    assert f"| three | 410.0 | {three.ci().format_interval()} |" in table
    assert "(n=3: unreliable)" in table
    row = next(line for line in table.splitlines() if line.startswith("| five |"))
    assert f"| {five.ci().format_interval()} |" in row and "unreliable" not in row
    assert "| 95% CI |" in table.splitlines()[0]
    assert "fewer than 5 seeds" in table
    assert "fewer than 5 seeds" not in summary_table([five])


def test_policy_summary_ci_names_an_unknown_metric():
    with pytest.raises(ValueError, match="metric must be one of"):
        _summary("p", [1.0, 2.0]).ci("reward")


def test_top_k_orders_best_first():
    scores = np.array([[0.1, 0.5, 0.3, 0.9]])
    assert top_k(scores, 3).tolist() == [[3, 1, 2]]


def test_policies_return_distinct_valid_slates(bow_config):
    from recsim_llm.envs.vector import SlateVectorEnv

    env = SlateVectorEnv(32, config=bow_config)
    obs, _ = env.reset(seed=0)
    world = env.world
    privileged = (MyopicPolicy(world), OraclePolicy(world=world), *fixed_mix_grid(6, world))
    for policy in (RandomPolicy(), *privileged):
        slate = policy.act(obs, env.sim.context())
        assert slate.shape == (32, 5)
        assert all(len(set(row)) == 5 for row in slate.tolist())
        assert slate.min() >= 0 and slate.max() < 20


def test_fixed_mix_shows_the_requested_share_of_clickbait(bow_config):
    from recsim_llm.envs.vector import SlateVectorEnv

    env = SlateVectorEnv(64, config=bow_config)
    obs, _ = env.reset(seed=0)
    ctx = env.sim.context()
    bait = env.world.catalog.clickbait
    enough = bait[ctx.candidates].sum(axis=1) >= 5
    for mix, n in ((0.0, 0), (0.4, 2), (1.0, 5)):
        slate = np.take_along_axis(
            ctx.candidates, FixedMixPolicy(mix, env.world).act(obs, ctx), axis=1
        )
        assert (bait[slate].sum(axis=1)[enough] == n).all()


def test_rollout_is_deterministic_and_tidy(bow_config):
    a = rollout(RandomPolicy(), bow_config, seed=3, n_users=16)
    b = rollout(RandomPolicy(), bow_config, seed=3, n_users=16)
    for key in a.sessions:
        assert np.array_equal(a.sessions[key], b.sessions[key])
    rows = rollout_rows(a, "r", "random", "default", 3)
    assert {r.metric for r in rows} >= {"return", "reward", "true_satisfaction"}
    assert all(r.step == -1 for r in rows if r.metric == "return")


def test_write_and_read_run(tmp_path, bow_config):
    summaries, rows = evaluate([RandomPolicy()], bow_config, [0, 1], 8, "default", "t")
    run = write_run(tmp_path / "run", rows, {"horizon": bow_config.horizon})
    assert sorted(p.name for p in run.iterdir()) == [
        ".recsim-llm.json",
        "config.json",
        "results.csv",
        "system.json",
    ]
    back = read_results(run)
    assert len(back) == len(rows)
    assert back[0] == rows[0]
    header = (run / "results.csv").read_text().splitlines()[0]
    assert header == ",".join(RESULT_COLUMNS)
    assert not list(run.glob(".*tmp"))  # no temp files left behind


def test_read_results_errors_name_the_file(tmp_path):
    bad = tmp_path / "results.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="results.csv: header"):
        read_results(bad)
    bad.write_text(",".join(RESULT_COLUMNS) + "\nr,p,s,notanint,0,m,1.0\n")
    with pytest.raises(ValueError, match="results.csv:2"):
        read_results(bad)
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "missing")


def test_write_run_refuses_a_file_as_directory(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match="is an existing file"):
        write_run(target, [], {})
    assert target.read_text() == "x"


@pytest.mark.slow
def test_long_term_tradeoff_is_real():
    """Interior best mix; myopic below it; oracle above it (smaller run than the benchmark)."""
    config = EnvConfig(encoder="bow")
    mixes = fixed_mix_grid(6)
    summaries, _ = evaluate([*mixes, MyopicPolicy(), OraclePolicy()], config, [0, 1, 2], 128)
    means = {s.policy: s.per_seed["return"].mean() for s in summaries}
    best = max((m.name for m in mixes), key=means.get)
    assert best not in ("mix-0.00", "mix-1.00")
    assert means["myopic"] < means[best] * 0.95
    assert means["oracle"] > means[best] * 1.05


def test_result_files_are_shared_readable_and_replace_runs_whole(tmp_path, bow_config):
    import os
    import stat

    _, rows = evaluate([RandomPolicy()], bow_config, [0], 4, "default", "t")
    run = write_run(tmp_path / "run", rows, {"a": 1}, files={"summary.md": "first"})
    mode = stat.S_IMODE(os.stat(run / "results.csv").st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH
    write_run(tmp_path / "run", rows[:3], {"a": 2})
    assert not (run / "summary.md").exists()  # nothing of the first run is left
    assert len(read_results(run)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize(
    ("seeds", "n_users", "message"), [([-1], 4, "seeds"), ([0], 0, "n_users"), ([], 4, "seeds")]
)
def test_evaluate_rejects_bad_arguments(seeds, n_users, message, bow_config):
    with pytest.raises(ValueError, match=message):
        evaluate([RandomPolicy()], bow_config, seeds, n_users)
