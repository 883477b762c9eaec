"""The dashboard: data summaries, every page through AppTest, and a real browser end to end."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from recsim_llm.agents.baselines import FixedMixPolicy, MyopicPolicy, RandomPolicy
from recsim_llm.dashboard import data
from recsim_llm.evaluation import evaluate
from recsim_llm.results import write_run
from recsim_llm.scenarios import scenario_config

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    rows = []
    for scenario in ("default", "taste-shift"):
        config = scenario_config(scenario, encoder="bow", horizon=45)
        _, part = evaluate(
            [RandomPolicy(), MyopicPolicy(), FixedMixPolicy(0.2)],
            config,
            [0, 1],
            16,
            scenario,
            "dash",
        )
        rows.extend(part)
    write_run(root / "demo", rows, {"test": True})
    return root


def test_summaries(runs_root):
    table = data.load_results(runs_root / "demo")
    summary = data.session_summary(table)
    assert set(summary.policy) == {"random", "myopic", "mix-0.20"}
    assert (summary.ci_low <= summary["mean"]).all() and (summary["mean"] <= summary.ci_high).all()
    assert (summary.seeds == 2).all() and not summary.reliable.any()  # 2 seeds: unreliable
    curves = data.step_curves(table, "true_satisfaction", "default")
    assert list(curves.columns) == sorted(["random", "myopic", "mix-0.20"])
    assert curves.index.max() < 45
    wide = data.robustness(table)
    assert "taste-shift vs default" in wide.columns


def test_session_summary_gives_no_interval_for_one_seed():
    import pandas as pd

    from recsim_llm.results import RESULT_COLUMNS, SESSION_STEP

    rows = [("r", "one", "default", 0, SESSION_STEP, "return", 300.0)]
    rows += [("r", "five", "default", s, SESSION_STEP, "return", 400.0 + s) for s in range(5)]
    summary = data.session_summary(pd.DataFrame(rows, columns=RESULT_COLUMNS)).set_index("policy")
    assert summary.loc["one", "mean"] == 300.0
    assert summary.loc[["one"], ["ci_low", "ci_high"]].isna().all(axis=None)
    assert not summary.loc["one", "reliable"] and summary.loc["five", "reliable"]
    assert summary.loc["five", "ci_low"] < 402.0 < summary.loc["five", "ci_high"]


def test_bad_results_file_is_named(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="results.csv: columns"):
        data.load_results(tmp_path / "r")
    assert data.find_runs(tmp_path / "missing") == []


def _app(runs_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RECSIM_LLM_RUNS", str(runs_root))
    return AppTest.from_file(str(APP), default_timeout=60)


def test_every_page_renders(runs_root, monkeypatch):
    at = _app(runs_root, monkeypatch).run()
    assert not at.exception
    assert at.title[0].value == "Policy comparison"
    assert "myopic" in at.dataframe[0].value.to_string()
    pages = {
        "views/drift.py": "Interest drift and satisfaction",
        "views/robustness.py": "Robustness across scenarios",
        "views/cold_start.py": "Cold start",
    }
    for path, title in pages.items():
        at.switch_page(path).run()
        assert not at.exception, path
        assert at.title[0].value == title
        if path.endswith("robustness.py"):
            assert "taste-shift vs default" in at.dataframe[0].value.columns
        else:
            assert at.main.selectbox[0].options == ["default", "taste-shift"]


def test_empty_runs_folder_explains_what_to_do(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch).run()
    assert not at.exception
    assert "No run directories" in at.info[0].value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dashboard_in_a_real_browser(runs_root, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
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
            "--browser.gatherUsageStats",
            "false",
            "--",
            "--runs",
            str(runs_root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError("streamlit did not become healthy") from None
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page()

            def settle():
                page.wait_for_selector(
                    "[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000
                )
                page.wait_for_function(
                    "!document.querySelector(\"[data-testid='stSkeleton']\")", timeout=60_000
                )

            page.goto(f"http://127.0.0.1:{port}/")
            settle()
            assert page.get_by_text("Policy comparison").first.is_visible()
            page.wait_for_selector("[data-testid='stDataFrame']", timeout=30_000)
            page.get_by_role("link", name="Interest drift").click()
            settle()
            page.get_by_text("Hidden interest drift").first.wait_for(timeout=30_000)
            page.get_by_role("link", name="Cold start").click()
            settle()
            page.get_by_text("Click rate of new users").first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "cold_start.png"))
            assert (tmp_path / "cold_start.png").stat().st_size > 10_000
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_find_runs_skips_hidden_folders_and_everything_under_them(tmp_path):
    header = "run_id,policy,scenario,seed,step,metric,value\n"
    for rel in (
        "a",
        "group/b",
        ".a.tmp-abc123",  # a writer's staging
        ".a.old-abc123/x",  # a previous version between the two renames of a swap
        "group/.hidden/c",
        ".cache/d",
    ):
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "results.csv").write_text(header)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in data.find_runs(tmp_path)) == [
        "a",
        "group/b",
    ]
