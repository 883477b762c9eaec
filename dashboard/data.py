"""Loading and summarising run directories for the dashboard (pure pandas, no Streamlit)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from recsim_llm.io import is_hidden
from recsim_llm.results import RESULT_COLUMNS, SESSION_STEP
from recsim_llm.stats import mean_estimate


def find_runs(root: str | Path) -> list[Path]:
    """Run directories (holding a results.csv) under ``root``, newest first.

    Hidden folders and everything under them are skipped: a writer's staging (``.NAME.tmp-*``)
    and previous-version (``.NAME.old-*``) siblings are never runs (see ``recsim_llm.io``).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    runs: dict[Path, float] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not is_hidden(d)]  # never descend into them
        if "results.csv" in filenames:
            run = Path(dirpath)
            try:
                runs[run] = (run / "results.csv").stat().st_mtime
            except OSError:  # replaced while we looked
                continue
    return sorted(runs, key=runs.__getitem__, reverse=True)


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """The tidy table of a run; raises ValueError naming the file if its columns are wrong."""
    path = Path(run_dir) / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    table = pd.read_csv(path)
    if tuple(table.columns) != RESULT_COLUMNS:
        raise ValueError(f"{path}: columns must be {RESULT_COLUMNS}, got {tuple(table.columns)}")
    return table


def session_summary(table: pd.DataFrame, metric: str = "return") -> pd.DataFrame:
    """Per policy and scenario: mean over seeds of a session metric with a 95% bootstrap CI.

    The interval follows ``recsim_llm.stats``' rule: NaN bounds with one seed (no interval),
    ``reliable`` False with fewer than ``MIN_RELIABLE_RUNS`` seeds.
    """
    sessions = table[(table.step == SESSION_STEP) & (table.metric == metric)]
    rows = []
    for (scenario, policy), group in sessions.groupby(["scenario", "policy"], sort=False):
        estimate = mean_estimate(group.value.to_numpy())
        rows.append(
            {
                "scenario": scenario,
                "policy": policy,
                "seeds": estimate.n,
                "mean": estimate.point,
                "ci_low": estimate.low if estimate.has_interval else float("nan"),
                "ci_high": estimate.high if estimate.has_interval else float("nan"),
                "reliable": estimate.reliable,
            }
        )
    columns = ["scenario", "policy", "seeds", "mean", "ci_low", "ci_high", "reliable"]
    return pd.DataFrame(rows, columns=columns)


def step_curves(
    table: pd.DataFrame, metric: str, scenario: str, max_step: int | None = None
) -> pd.DataFrame:
    """Step x policy table of a per-step metric, averaged over seeds."""
    rows = table[(table.step >= 0) & (table.metric == metric) & (table.scenario == scenario)]
    if max_step is not None:
        rows = rows[rows.step < max_step]
    return rows.pivot_table(index="step", columns="policy", values="value", aggfunc="mean")


def robustness(table: pd.DataFrame, baseline: str = "default") -> pd.DataFrame:
    """Policy x scenario mean return, and each scenario's change relative to ``baseline``."""
    summary = session_summary(table)
    wide = summary.pivot_table(index="policy", columns="scenario", values="mean").round(1)
    if baseline in wide.columns:
        for col in list(wide.columns):
            if col != baseline:
                wide[f"{col} vs {baseline}"] = (wide[col] / wide[baseline] - 1.0).map(
                    lambda x: f"{x:+.1%}" if np.isfinite(x) else ""
                )
    return wide


def default_index(scenarios: list[str], preferred: str = "default") -> int:
    """Position of ``preferred`` in ``scenarios`` (0 when absent), for select boxes."""
    return scenarios.index(preferred) if preferred in scenarios else 0
