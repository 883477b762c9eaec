"""The dashboard: data summaries, every page through AppTest, corrupt runs, the command's
safety, and a real browser end to end."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsim_llm.agents.baselines import top_k
from recsim_llm.dashboard import charts, data
from recsim_llm.evaluation import evaluate
from recsim_llm.results import write_run
from recsim_llm.scenarios import scenario_config

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PAGES = {
    "views/overview.py": "Policy comparison",
    "views/drift.py": "Interest drift and satisfaction",
    "views/robustness.py": "Robustness across scenarios",
    "views/cold_start.py": "Cold start",
    "views/replay.py": "Episode replay",
}


def step_log(scenario: str, seeds, n_users: int, horizon: int) -> pd.DataFrame:
    """A per-step log in the format the dashboard reads (data.LOG_*), from a scored rollout."""
    from recsim_llm.envs.vector import SlateVectorEnv

    env = SlateVectorEnv(
        num_envs=n_users, config=scenario_config(scenario, encoder="bow", horizon=horizon)
    )
    rows = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        world = env.sim.world
        for t in range(horizon):
            ctx = env.sim.context()
            scores = world.item_utilities(ctx.candidates)
            action = top_k(scores, ctx.slate_size)
            obs, reward, _, _, info = env.step(action)
            for u in range(n_users):
                slate = ctx.candidates[u][action[u]].tolist()
                item = int(info["item"][u])
                position = slate.index(item) if item in slate else -1
                rows.append(
                    {
                        data.LOG_POLICY: "greedy",
                        data.LOG_SCENARIO: scenario,
                        data.LOG_SEED: seed,
                        data.LOG_USER: u,
                        data.LOG_STEP: t,
                        data.LOG_CANDIDATES: ctx.candidates[u].tolist(),
                        data.LOG_SCORES: scores[u].tolist(),
                        data.LOG_SLATE: slate,
                        data.LOG_CLICK: position >= 0,
                        data.LOG_POSITION: position,
                        data.LOG_ITEM: item,
                        data.LOG_WATCH: float(reward[u]),
                        data.LOG_SATISFACTION: float(info["true_satisfaction"][u]),
                        data.LOG_INTEREST: world.interest[u].tolist(),
                        data.LOG_STATE: np.asarray(obs["user"][u], dtype=float).tolist(),
                        data.LOG_EXPLANATION: [f"item {i}: topic match" for i in slate],
                    }
                )
    return pd.DataFrame(rows)


def env_config(name: str, **overrides):
    """A scenario's config; ``text-noise@S`` is a real perturbation of what the encoder reads
    (S percent of topic words in item texts from another topic; the default world has 25), a
    stand-in robustness battery item."""
    from dataclasses import replace

    from recsim_llm.config import CatalogConfig, EnvConfig, WorldConfig

    item, strength = data.split_scenario(name)
    if item == "text-noise":
        world = WorldConfig(catalog=CatalogConfig(text_noise=strength / 100))
        return replace(EnvConfig(world=world), **overrides)
    return scenario_config(name, **overrides)


def make_run(
    out: Path,
    scenarios=("default", "taste-shift"),
    seeds=(0, 1),
    users=16,
    horizon=45,
    logs=True,
    encoder="bow",
    specs=("random", "myopic", "mix:0.2"),
    extra_config=None,
) -> Path:
    from recsim_llm.agents.specs import make_policies
    from recsim_llm.config import to_dict

    rows, configs = [], {}
    for scenario in scenarios:
        config = env_config(scenario, encoder=encoder, horizon=horizon)
        configs[scenario] = to_dict(config)
        policies = make_policies(list(specs), configs=[config])
        _, part = evaluate(policies, config, list(seeds), users, scenario, "dash")
        rows.extend(part)
    meta = {"scenarios": configs, "seeds": list(seeds), "users": users, **(extra_config or {})}
    write_run(out, rows, meta)
    if logs:
        step_log(scenarios[-1], seeds[:1], 4, min(horizon, 45)).to_parquet(out / "steps.parquet")
    return out


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_run(root / "demo", scenarios=("default", "text-noise@50", "text-noise@9", "taste-shift"))
    return root


@pytest.fixture(scope="module")
def table(runs_root):
    return data.load_results(runs_root / "demo")


# -- data ------------------------------------------------------------------------------------------
def test_summaries(table):
    table = table.assign(run="demo")
    summary = data.session_summary(table)
    assert set(summary.policy) == {"random", "myopic", "mix-0.20"}
    assert (summary.low <= summary["mean"]).all() and (summary["mean"] <= summary.high).all()
    for _, part in summary.groupby("scenario", sort=False):
        assert list(part["mean"]) == sorted(part["mean"], reverse=True)  # best first
    bands = data.step_bands(table, "true_satisfaction", "default")
    assert set(bands.policy) == {"random", "myopic", "mix-0.20"}
    assert bands.step.max() < 45


def test_probability_of_improvement_and_interval():
    assert data.probability_of_improvement([3, 4], [1, 2]) == 1.0
    assert data.probability_of_improvement([1, 2], [1, 2]) == 0.5
    # recsim_llm.stats' few-seeds rule: one seed has no interval, under 5 are unreliable
    mean, low, high = data.interval([2.0])
    assert mean == 2.0 and np.isnan(low) and np.isnan(high)
    mean, low, high = data.interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and 1.0 <= low <= mean <= high <= 3.0
    assert data.reliability(1) == "1 seed: no interval"
    assert data.reliability(3) == "3 seeds: unreliable"
    assert data.reliability(5) == ""
    summary = data.summarise(pd.DataFrame({"g": ["a", "b", "b"], "value": [1.0, 2, 3]}), ["g"])
    assert summary.interval.tolist() == ["1 seed: no interval", "2 seeds: unreliable"]


def test_shift_step_reads_taste_shift_and_trend_events_from_run_configs():
    from recsim_llm.config import to_dict
    from recsim_llm.scenarios import scenario_config

    configs = {
        name: {"scenarios": {name: to_dict(scenario_config(name))}}
        for name in ("default", "taste-shift", "trend-shift", "taste-shift@0")
    }
    steps = {name: data.shift_step(c, name) for name, c in configs.items()}
    assert steps == {"default": None, "taste-shift": 40, "trend-shift": 40, "taste-shift@0": None}
    # A run file from before trend events: its shift step as written.
    old = {"world": {"dynamics": {"shift_step": 12}}}
    assert data.shift_step(old, "x") == 12


def test_scenario_strengths_are_numbers():
    assert data.split_scenario("obs-noise@0.5") == ("obs-noise", 0.5)
    assert data.split_scenario("taste-shift") == ("taste-shift", None)
    frame = pd.DataFrame({"scenario": ["x@10", "x@2", "default", "x@0.5"]})
    s = data.scenario_strengths(frame)
    assert s.set_index("scenario").strength.to_dict()["x@10"] == 10.0
    # config.json metadata wins over the suffix, the column over both
    s = data.scenario_strengths(
        frame, {"scenario_strengths": {"default": {"base": "x", "strength": 0}}}
    )
    assert s.set_index("scenario").loc["default"].tolist() == ["x", 0.0]


def _paired(table, scenario, policy):
    """Independently: mean over seeds of (scenario - default) session return for a policy."""
    s = table[(table.step == -1) & (table.metric == "return") & (table.policy == policy)]
    a = s[s.scenario == scenario].set_index("seed").value
    b = s[s.scenario == "default"].set_index("seed").value
    return float((a - b).mean())


def test_paired_differences_sorted_as_numbers(table):
    table = table.assign(run="demo")
    strengths = data.scenario_strengths(table)
    diffs = data.paired_differences(table, "return", strengths)
    noise = diffs[diffs["item"] == "text-noise"]
    assert list(noise.strength.unique()) == [9.0, 50.0]  # 9 before 50, not "50" before "9"
    got = noise[(noise.strength == 50.0) & (noise.policy == "random")].difference.iloc[0]
    assert got == pytest.approx(_paired(table, "text-noise@50", "random"))
    curves = data.robustness_curves(table, "return", strengths)
    assert list(curves[curves["item"] == "text-noise"].strength.unique()) == [0.0, 9.0, 50.0]


# -- corrupt runs ------------------------------------------------------------------------------------
HEADER = "run_id,policy,scenario,seed,step,metric,value\n"
GOOD = "e,random,default,0,-1,return,1.5\n"
CORRUPT = {
    "zero bytes": (b"", "results.csv: the file is empty (0 bytes)"),
    "header only": (HEADER.encode(), "results.csv: a header but no rows"),
    "truncated": ((HEADER + GOOD * 3 + "e,random,def").encode(), "results.csv row 5: the last row"),
    "truncated row": ((HEADER + GOOD + "e,random\n").encode(), "results.csv row 3: 2 fields"),
    "non-numeric": (
        (HEADER + GOOD.replace("0,-1", "1,-1") + "e,random,default,0,-1,return,abc\n").encode(),
        "results.csv row 3: value 'abc' is not a number",
    ),
    "nan": (
        (HEADER + GOOD + "e,random,default,1,-1,return,nan\n").encode(),
        "results.csv row 3: value 'nan' is not finite",
    ),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "results.csv row 3: binary data"),
    "bad header": (b"a,b\n1,2\n", "results.csv row 1: the header lacks"),
    "repeated row": ((HEADER + GOOD + GOOD).encode(), "results.csv row 3: repeats row 2"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_results_are_named(tmp_path, case):
    content, message = CORRUPT[case]
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.csv").write_bytes(content)
    with pytest.raises(data.RunError) as err:
        data.load_results(tmp_path / "r")
    assert message in str(err.value)
    assert str(tmp_path / "r" / "results.csv") in str(err.value)


def test_corrupt_config_and_step_log_are_named(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "results.csv").write_text(HEADER + GOOD)
    (run / "config.json").write_text('{"a": 1,\n "b": }')
    with pytest.raises(data.RunError, match=r"config.json row 2: not valid JSON"):
        data.load_run("r", run, tmp_path)
    (run / "config.json").write_text("{}")
    (run / "steps.parquet").write_bytes(b"PAR1 not really")
    loaded = data.load_run("r", run, tmp_path)
    with pytest.raises(data.RunError, match=r"steps.parquet: not a readable Parquet"):
        data.load_step_log(loaded.step_log, tmp_path)


def test_a_symlink_out_of_the_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "results.csv").write_text(HEADER + GOOD)
    root = tmp_path / "root"
    (root / "sneaky").mkdir(parents=True)
    (root / "sneaky" / "results.csv").symlink_to(outside / "results.csv")
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)
    labels = data.run_labels([root])
    assert list(labels) == ["sneaky"]  # a linked folder is not walked
    with pytest.raises(data.RunError, match="refused, it leads outside"):
        data.load_run("sneaky", root / "sneaky", root)


def test_find_runs_skips_hidden_folders_and_everything_under_them(tmp_path):
    for rel in (
        "a",
        "group/b",
        ".a.tmp-abc123",  # a writer's staging
        ".a.old-abc123/x",  # a previous version between the two renames of a swap
        "group/.hidden/c",
        ".cache/d",
    ):
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "results.csv").write_text(HEADER)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in data.find_runs(tmp_path)) == [
        "a",
        "group/b",
    ]
    assert data.find_runs(tmp_path / "missing") == []


def test_every_figure_kind_renders_a_png(table):
    frame = pd.DataFrame(
        {"x": [0, 1, 2, 0, 1, 2], "y": [1.0, 2, 3, 2, 3, 4], "s": list("aaabbb")}
    ).assign(low=lambda f: f.y - 0.5, high=lambda f: f.y + 0.5)
    for kind in ("bands", "paths"):
        fig = charts.Figure(
            kind,
            frame,
            "x",
            "y",
            "x (steps)",
            "y (units)",
            color="s",
            low="low",
            high="high",
            order="x",
            rule_x=1.0,
        )
        assert charts.to_png(fig)[:4] == b"\x89PNG"
        charts.to_altair(fig).to_dict()
    fig = charts.Figure(
        "intervals", frame, "y", "s", "y (units)", "s", low="low", high="high", facet="x"
    )
    assert charts.to_png(fig)[:4] == b"\x89PNG"
    fig = charts.Figure("heatmap", frame.assign(p=0.5), "x", "s", "x", "s", color="p")
    assert charts.to_png(fig)[:4] == b"\x89PNG"


# -- pages through AppTest ------------------------------------------------------------------------
def _app(roots, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RECSIM_LLM_RUNS", os.pathsep.join(str(r) for r in roots))
    return AppTest.from_file(str(APP), default_timeout=120)


def _texts(at) -> str:
    """Every rendered text and table, as one string to search numbers in."""
    parts = []
    for kind in ("title", "subheader", "caption", "markdown", "info", "error", "warning"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [e.value.to_string() for e in at.dataframe]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(parts)


def _axis_titles(at) -> list[str]:
    """Titles of every chart's quantitative x/y axes on the page."""
    import json

    titles = []

    def walk(node, key=None):
        if isinstance(node, dict):
            if key in ("x", "y") and node.get("type") == "quantitative" and node.get("title"):
                titles.append(node["title"])
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)

    for chart in at.get("vega_lite_chart"):
        walk(json.loads(chart.proto.spec))
    return titles


def test_every_page_renders_with_the_expected_numbers(runs_root, table, monkeypatch):
    at = _app([runs_root], monkeypatch).run()
    assert not at.exception
    assert at.title[0].value == "Policy comparison"
    # independently: mean session return of myopic on default over seeds 0 and 1
    rows = table[(table.step == -1) & (table.metric == "return") & (table.scenario == "default")]
    expected = rows[rows.policy == "myopic"].value.mean()
    summary = at.dataframe[0].value
    got = summary[(summary.policy == "myopic") & (summary.scenario == "default")]["mean"].iloc[0]
    assert got == pytest.approx(round(expected, 4))
    # probability of improvement: myopic vs random, over pairs of seeds
    mine = rows[rows.policy == "myopic"].value.to_numpy()
    other = rows[rows.policy == "random"].value.to_numpy()
    p = np.mean([(a > b) + 0.5 * (a == b) for a in mine for b in other])
    matrix = at.dataframe[1].value
    cell = matrix[(matrix.policy == "myopic") & (matrix.than == "random")]["P(better)"]
    assert cell.iloc[0] == pytest.approx(round(p, 3))
    assert "seeds" in at.dataframe[2].value.field.tolist()
    assert "0, 1" in at.dataframe[2].value.to_string()

    for path, title in PAGES.items():
        at.switch_page(path).run()
        assert not at.exception, path
        assert at.title[0].value == title
        assert not at.error, (path, [e.value for e in at.error])
        titles = _axis_titles(at)
        assert titles, path
        assert all("(" in t for t in titles), (path, titles)  # every value axis has its unit

    at.switch_page("views/robustness.py").run()
    diffs = at.dataframe[0].value
    noise = diffs[diffs["item"] == "text-noise"]
    assert list(noise.strength.unique()) == [9.0, 50.0]
    got = noise[(noise.strength == 50.0) & (noise.policy == "random")].difference.iloc[0]
    assert got == pytest.approx(round(_paired(table, "text-noise@50", "random"), 4))

    at.switch_page("views/cold_start.py").run()
    k = 20
    firsts = table[
        (table.metric == "click_rate")
        & (table.scenario == "default")
        & (table.step < k)
        & (table.step >= 0)
        & (table.policy == "random")
    ]
    per_seed = firsts.groupby("seed").value.mean()
    shown = at.dataframe[2].value  # after the ctr_first_k and steps_to_first_click tables
    assert shown[shown.policy == "random"]["mean"].iloc[0] == pytest.approx(
        round(per_seed.mean(), 4)
    )
    # the cold-start session metrics evaluation writes are found (no "missing" message)
    assert not any("ctr_first_k" in i.value for i in at.info)

    at.switch_page("views/replay.py").run()
    log = pd.read_parquet(runs_root / "demo" / "steps.parquet")
    first = log[(log.seed == 0) & (log.user == 0) & (log.step == 0)].iloc[0]
    slate = at.dataframe[0].value
    assert slate["item"].tolist() == list(first.slate)
    assert f"{first.hidden_satisfaction:.3f}" in _texts(at)
    assert "topic match" in slate.to_string()


# -- a run written by `recsim-llm evaluate` itself ----------------------------------------------
EVALUATE_ARGS = [
    "evaluate",
    "--policies",
    "random,popularity,myopic,oracle",
    "--scenarios",
    "default,taste-shift,obs-noise@0.5,obs-noise@1.0",
    "--seeds",
    "0,1",
    "--users",
    "8",
    "--horizon",
    "45",  # taste-shift shifts at step 40
    "--encoder",
    "bow",
    "--log-fraction",
    "0.5",
]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A run directory written through the CLI's `evaluate` code path, in this process."""
    from recsim_llm.cli import main

    root = tmp_path_factory.mktemp("evaluated")
    assert main([*EVALUATE_ARGS, "--out", str(root / "grid")]) == 0
    return root


def _sessions(run: Path, metric: str, scenario: str) -> pd.DataFrame:
    t = pd.read_csv(run / "results.csv")
    return t[(t.step == -1) & (t.metric == metric) & (t.scenario == scenario)]


def test_every_page_reads_what_evaluate_writes(evaluated, monkeypatch):
    run = evaluated / "grid"
    assert (run / "steps.parquet").exists()

    def check(at, path):
        assert not at.exception, (path, at.exception)
        assert not at.error, (path, [e.value for e in at.error])

    def missing(at):
        return [i.value for i in at.info if "Not in the selected run" in i.value]

    at = _app([evaluated], monkeypatch)
    at.query_params["scenario"] = "taste-shift"
    at.run()
    check(at, "overview")
    assert at.selectbox[0].value == "normalised_score"  # the grid's score is found and preferred
    summary = at.dataframe[0].value
    expect = _sessions(run, "normalised_score", "taste-shift")
    expect = expect[expect.policy == "myopic"].value.mean()
    got = summary[(summary.policy == "myopic") & (summary.scenario == "taste-shift")]["mean"]
    assert got.iloc[0] == pytest.approx(round(expect, 4))
    assert set(summary.interval) == {"2 seeds: unreliable"}  # the few-seeds rule is visible
    assert "fewer than 5" in _texts(at)
    assert not missing(at)

    at.switch_page("views/drift.py").run()
    check(at, "drift")
    assert not missing(at), missing(at)
    assert "steps since the shift" in at.get("vega_lite_chart")[0].proto.spec
    texts = _texts(at)
    # independently: reward per step after the shift of oracle, mean over seeds 0 and 1
    after = _sessions(run, "reward_after_shift", "taste-shift")
    after = after[after.policy == "oracle"].value.mean()
    tables = [d.value for d in at.dataframe]
    shown = [
        t[t.policy == "oracle"]["mean"].iloc[0]
        for t in tables
        if "mean" in t.columns and "policy" in t.columns and (t.policy == "oracle").any()
    ]
    assert any(v == pytest.approx(round(after, 3)) for v in shown), (after, shown)
    assert "hidden interest" in " ".join(str(c.proto.spec) for c in at.get("vega_lite_chart"))
    # evaluate logs the encoder state (bag of words here): its projection is drawn beside.
    assert "what the encoder state tracked" in " ".join(
        str(c.proto.spec) for c in at.get("vega_lite_chart")
    )
    assert f"No column `{data.LOG_STATE}`" not in texts

    at.switch_page("views/robustness.py").run()
    check(at, "robustness")
    assert not missing(at), missing(at)
    assert any(h.value.startswith("obs-noise: ") for h in at.subheader)
    diffs = at.dataframe[0].value
    noise = diffs[diffs["item"] == "obs-noise"]
    assert sorted(noise.strength.unique()) == [0.5, 1.0]
    t = pd.read_csv(run / "results.csv")
    s = t[(t.step == -1) & (t.metric == "normalised_score") & (t.policy == "popularity")]
    a = s[s.scenario == "obs-noise@1.0"].set_index("seed").value
    b = s[s.scenario == "default"].set_index("seed").value
    got = noise[(noise.strength == 1.0) & (noise.policy == "popularity")].difference.iloc[0]
    assert got == pytest.approx(round(float((a - b).mean()), 4))

    at.switch_page("views/cold_start.py").run()
    check(at, "cold start")
    first_k = at.dataframe[0].value  # ctr_first_k of the selected scenario
    expect = _sessions(run, "ctr_first_k", "taste-shift")
    expect = expect[expect.policy == "random"].value.mean()
    assert first_k[first_k.policy == "random"]["mean"].iloc[0] == pytest.approx(round(expect, 4))

    at.switch_page("views/replay.py").run()
    check(at, "replay")
    assert not missing(at), missing(at)
    log = pd.read_parquet(run / "steps.parquet")
    part = log[(log.policy == sorted(log.policy.unique())[0]) & (log.scenario == "taste-shift")]
    part = part[part.seed == part.seed.min()]
    first = part[(part.user == part.user.min()) & (part.step == part.step.min())].iloc[0]
    slate = at.dataframe[0].value
    assert slate["item"].tolist() == list(first.slate)
    assert slate["clicked"].tolist() == [i == first.position for i in range(len(first.slate))]
    assert f"{first.hidden_satisfaction:.3f}" in _texts(at)
    assert "has no `scores(observation)`" in _texts(at)  # the built-in policies log no scores
    assert "No explanations logged at this step" in _texts(at)  # bow: null explanations


def _chart_rows(at, title: str) -> list[dict]:
    """The data rows of the page's chart titled ``title``."""
    import json

    import pyarrow as pa

    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        if title in json.dumps(spec.get("title", "")):
            rows = [r for d in (spec.get("datasets") or {}).values() for r in d]
            for named in chart.proto.datasets:  # Streamlit sends the data as Arrow beside
                table = pa.ipc.open_stream(named.data.data).read_all().to_pandas()
                rows += table.to_dict("records")
            return rows
    return []


def test_replay_and_drift_show_what_an_lm_fast_evaluate_logs(tmp_path, monkeypatch):
    """A tiny lm-fast run through the CLI: the replay page shows the logged explanation of
    every shown item, the drift page the encoder-state projection."""
    from recsim_llm.cli import main

    out = tmp_path / "lm" / "run"
    args = ["evaluate", "--policies", "random", "--scenarios", "default", "--seeds", "0"]
    args += ["--users", "4", "--horizon", "6", "--encoder", "lm-fast", "--log-fraction", "1"]
    assert main([*args, "--out", str(out)]) == 0
    log = pd.read_parquet(out / "steps.parquet")
    assert log.explanation.notna().all() and log.state.notna().all()

    at = _app([tmp_path / "lm"], monkeypatch)
    at.switch_page("views/replay.py").run()
    assert not at.exception and not at.error
    first = log[(log.user == log.user.min()) & (log.step == 0)].iloc[0]
    slate = at.dataframe[0].value
    assert "explanation" in slate.columns
    assert slate["item"].tolist() == list(first.slate)
    assert slate["explanation"].tolist() == list(first.explanation)
    assert all(text.startswith("Recommended") for text in slate["explanation"])

    at.switch_page("views/drift.py").run()
    assert not at.exception and not at.error
    specs = " ".join(str(c.proto.spec) for c in at.get("vega_lite_chart"))
    assert "what the encoder state tracked" in specs and "encoder state, PC 1" in specs
    assert f"No column `{data.LOG_STATE}`" not in _texts(at)
    # The projection drawn is the PCA of the logged states of the sampled users.
    users = sorted(log.user.unique())
    expect = data.trajectories(log, data.LOG_STATE, users, {})
    drawn = _chart_rows(at, "what the encoder state tracked")
    assert len(drawn) == len(log)  # Altair inlines the data in the spec
    got = sorted(abs(round(r["pc1"], 6)) for r in drawn)
    assert got == sorted(abs(round(v, 6)) for v in expect.pc1)


def test_the_commands_named_for_missing_data_are_accepted():
    """Every CMD_* parses with the real CLI parser (each was also run once by hand)."""
    from recsim_llm.cli import build_parser
    from recsim_llm.scenarios import parse_scenario

    parser = build_parser()
    for command in data.COMMANDS:
        argv = shlex.split(command)
        assert argv[0] == "recsim-llm", command
        args = parser.parse_args(argv[1:])
        assert args.command == "evaluate"
        for spec in args.scenarios:
            parse_scenario(spec)
    assert "--log-fraction" in data.CMD_STEP_LOGS


def test_selection_lives_in_the_url_and_across_pages(runs_root, monkeypatch):
    at = _app([runs_root], monkeypatch)
    at.query_params["scenario"] = "taste-shift"
    at.query_params["policy"] = ["myopic", "random"]
    at.run()
    assert not at.exception
    assert at.sidebar.selectbox[0].value == "taste-shift"
    assert set(at.dataframe[0].value.policy) == {"myopic", "random"}
    at.sidebar.selectbox[0].set_value("default").run()
    assert at.query_params["scenario"] in ("default", ["default"])
    at.switch_page("views/drift.py").run()
    assert at.sidebar.selectbox[0].value == "default"
    assert at.sidebar.multiselect[1].value == ["myopic", "random"]
    assert "no taste shift" in _texts(at)
    at.sidebar.selectbox[0].set_value("taste-shift").run()
    assert not at.exception
    assert "no taste shift" not in _texts(at)
    assert "steps since the shift" in at.get("vega_lite_chart")[0].proto.spec


def test_pages_say_what_is_missing(tmp_path, monkeypatch):
    make_run(tmp_path / "bare", scenarios=("default",), seeds=(0,), users=4, horizon=8, logs=False)
    (tmp_path / "bare" / "config.json").unlink()
    at = _app([tmp_path], monkeypatch).run()
    assert not at.exception
    assert any("config.json" in i.value for i in at.info)
    expect = {
        "views/drift.py": "shift_step",
        "views/robustness.py": "perturbation strengths",
        "views/cold_start.py": "LM encoder",
        "views/replay.py": "steps.parquet",
    }
    for path, needle in expect.items():
        at.switch_page(path).run()
        assert not at.exception, path
        assert any(needle in i.value and "recsim-llm" in i.value for i in at.info), path


@pytest.mark.parametrize(
    "case", ["zero bytes", "non-numeric", "truncated", "binary", "nan", "header only"]
)
def test_a_corrupt_run_shows_one_message_on_every_page(tmp_path, monkeypatch, case):
    content, message = CORRUPT[case]
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.csv").write_bytes(content)
    at = _app([tmp_path], monkeypatch).run()
    for path in PAGES:
        at.switch_page(path).run()
        assert not at.exception, path
        assert len(at.error) == 1 and message in at.error[0].value, path
        assert "results.csv" in at.error[0].value
        assert not at.dataframe  # no partial numbers


def test_two_runs_overlay(runs_root, tmp_path, monkeypatch):
    make_run(tmp_path / "other", scenarios=("default",), seeds=(0,), users=4, horizon=8, logs=False)
    at = _app([runs_root, tmp_path], monkeypatch)
    at.run()
    labels = at.sidebar.multiselect[0].options
    assert len(labels) == 2
    at.sidebar.multiselect[0].set_value(labels).run()
    assert not at.exception
    assert set(at.dataframe[0].value.run) == set(labels)


def test_empty_runs_folder_explains_what_to_do(tmp_path, monkeypatch):
    at = _app([tmp_path], monkeypatch).run()
    assert not at.exception
    assert "No run directories" in at.info[0].value


# -- the command ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                raise AssertionError("streamlit did not become healthy") from None
            time.sleep(0.5)


def _children(pid: int) -> list[int]:
    import psutil

    return [c.pid for c in psutil.Process(pid).children(recursive=True)]


def test_dashboard_command_binds_locally_and_sigterm_ends_streamlit(runs_root, tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recsim_llm.cli",
            "dashboard",
            "--runs",
            str(runs_root),
            "--runs",
            str(tmp_path),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_healthy(port, proc)
        children = _children(proc.pid)
        assert children, "no streamlit child process"
        import psutil

        cmd = " ".join(psutil.Process(children[0]).cmdline())
        assert "--server.address 127.0.0.1" in cmd
        assert "--browser.gatherUsageStats false" in cmd
        assert cmd.count("--runs") == 2
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        for pid in children:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- a real browser -------------------------------------------------------------------------------
SHOTS = {
    "overview": ("Overview", "Probability of improvement"),
    "drift": ("Interest drift", "Recovery after the shift"),
    "robustness": ("Robustness", "Paired differences"),
    "cold-start": ("Cold start", "LM against non-LM"),
    "replay": ("Episode replay", "slate and candidate scores"),
}


def browse(
    root: Path,
    shots: Path,
    query: str = "",
    queries: dict[str, str] | None = None,
    height: int = 1000,
) -> dict[str, Path]:
    """Open every page in Debian's chromium; check no error; a full-page screenshot of each.

    Pages are reached by their sidebar links (the selection must survive), or, for a page in
    ``queries``, opened at its own address with that query. Streamlit scrolls its main area
    itself, so a screenshot holds what a window ``height`` pixels tall (1400 wide) shows."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP),
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--",
            "--runs",
            str(root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = {}
    try:
        _wait_healthy(port, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"),
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1400, "height": height})

            def settle():
                page.wait_for_selector(
                    "[data-testid='stApp'][data-test-script-state='notRunning']", timeout=90_000
                )
                page.wait_for_function(
                    "!document.querySelector(\"[data-testid='stSkeleton']\")", timeout=90_000
                )

            page.goto(f"http://127.0.0.1:{port}/{query}")
            settle()
            for slug, (link, marker) in SHOTS.items():
                if queries and slug in queries:
                    path = "" if slug == "overview" else slug  # the default page is "/"
                    page.goto(f"http://127.0.0.1:{port}/{path}{queries[slug]}")
                    settle()
                elif slug != "overview":
                    page.get_by_role("link", name=link).click()
                    settle()
                page.get_by_text(marker).first.wait_for(timeout=60_000)
                page.wait_for_timeout(1500)  # let vega draw
                assert page.locator("[data-testid='stException']").count() == 0, slug
                assert page.locator("[data-testid='stAlertContentError']").count() == 0, slug
                assert page.locator("[data-testid='stVegaLiteChart']").count() > 0, slug
                assert "scenario=" in page.url  # the selection travels in the address
                out[slug] = shots / f"dashboard-{slug}.png"
                page.screenshot(path=str(out[slug]), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    return out


@pytest.mark.slow
def test_dashboard_in_a_real_browser(runs_root, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    shots = browse(runs_root, tmp_path, "?scenario=taste-shift")
    for path in shots.values():
        assert path.stat().st_size > 10_000


def make_demo(root: Path) -> None:
    """The richer demo behind docs/img: default, new-items, taste-shift and a text-noise battery
    (25% = the default world, 50%, 100%), 3 seeds, with the BoW encoder; and new-items again with
    the LM encoder (lm-fast) for the cold-start comparison.

    ``python tests/test_dashboard.py OUT_ROOT [--shots docs/img]`` writes it (and screenshots).
    """
    specs = ("random", "popularity", "linucb", "mix:0.2", "oracle")
    battery = {"scenario_strengths": {"default": {"base": "text-noise", "strength": 25}}}
    make_run(
        root / "bow",
        scenarios=("default", "text-noise@50", "text-noise@100", "new-items", "taste-shift"),
        seeds=(0, 1, 2),
        users=32,
        horizon=100,
        specs=specs,
        extra_config=battery,
    )
    make_run(
        root / "lm",
        scenarios=("new-items",),
        seeds=(0, 1, 2),
        users=32,
        horizon=100,
        specs=specs,
        encoder="lm-fast",
        logs=False,
    )


if __name__ == "__main__":
    target = Path(sys.argv[1])
    if not target.exists():
        make_demo(target)
    if "--shots" in sys.argv:
        both = "?runs=bow&runs=lm"
        pages = {
            "overview": both + "&scenario=default",
            "drift": "?runs=bow&scenario=taste-shift",
            "robustness": "?runs=bow&scenario=default",
            "cold-start": both + "&scenario=new-items",
            "replay": "?runs=bow&scenario=taste-shift",
        }
        shots = Path(sys.argv[sys.argv.index("--shots") + 1])
        print(browse(target, shots, queries=pages, height=1500))
