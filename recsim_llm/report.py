"""A grid's run directory: tidy tables (CSV for the dashboard, Parquet), step log, config, system
info, and a markdown report with PNG plots, written as one marked folder by ``recsim_llm.io``."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recsim_llm.results import SESSION_STEP, ResultRow, write_run

if TYPE_CHECKING:
    import pandas as pd

    from recsim_llm.grid import GridResult

__all__ = ["grid_report", "write_grid_run"]

REPORT_METRICS = (
    "return",
    "normalised_score",
    "regret",
    "ctr",
    "churned",
    "mean_satisfaction",
    "diversity",
    "coverage",
    "novelty",
    "ctr_first_k",
    "steps_to_first_click",
)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def grid_report(table: pd.DataFrame, title: str = "Evaluation") -> tuple[str, dict[str, bytes]]:
    """Markdown (mean over seeds of each session metric, per scenario) and PNG plots: mean
    return per policy and scenario, and per-step reward curves per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sessions = table[table.step == SESSION_STEP]
    scenarios = list(dict.fromkeys(table.scenario))
    policies = list(dict.fromkeys(table.policy))
    seeds = sessions.seed.nunique()
    lines = [
        f"# {title}",
        "",
        f"{len(policies)} policies x {len(scenarios)} scenarios x "
        f"{seeds} seeds; means over seeds (metrics: `recsim_llm.evaluation`).",
        "",
    ]
    for scenario in scenarios:
        here = sessions[sessions.scenario == scenario]
        wide = here.pivot_table(index="policy", columns="metric", values="value", aggfunc="mean")
        cols = [m for m in REPORT_METRICS if m in wide.columns]
        lines += [
            f"## {scenario}",
            "",
            "| policy | " + " | ".join(cols) + " |",
            "|---|" + "---:|" * len(cols),
        ]
        for policy in [p for p in policies if p in wide.index]:
            cells = [f"{wide.at[policy, m]:.3g}" for m in cols]
            lines.append(f"| {policy} | " + " | ".join(cells) + " |")
        lines += ["", f"![per-step reward](reward-{_safe(scenario)}.png)", ""]
    lines += ["## Return", "", "![mean return](return.png)", ""]

    plots: dict[str, bytes] = {}
    ret = sessions[sessions.metric == "return"].pivot_table(
        index="scenario", columns="policy", values="value", aggfunc="mean"
    )
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(scenarios) + 2), 3.5))
    width = 0.8 / max(len(policies), 1)
    x = np.arange(len(scenarios))
    for i, policy in enumerate(policies):
        values = [
            ret.at[s, policy] if s in ret.index and policy in ret.columns else np.nan
            for s in scenarios
        ]
        ax.bar(x + i * width, values, width, label=policy)
    ax.set_xticks(x + width * (len(policies) - 1) / 2, scenarios, rotation=30, ha="right")
    ax.set_ylabel("return (min watched)")
    ax.legend(fontsize="small")
    plots["return.png"] = _png(fig)
    plt.close(fig)
    for scenario in scenarios:
        curve = table[(table.scenario == scenario) & (table.metric == "reward") & (table.step >= 0)]
        wide = curve.pivot_table(index="step", columns="policy", values="value", aggfunc="mean")
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for policy in wide.columns:
            ax.plot(wide.index, wide[policy], label=policy)
        ax.set_xlabel("session step")
        ax.set_ylabel("reward per active user")
        ax.set_title(scenario)
        ax.legend(fontsize="small")
        plots[f"reward-{_safe(scenario)}.png"] = _png(fig)
        plt.close(fig)
    return "\n".join(lines), plots


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_grid_run(
    out: str | Path,
    result: GridResult,
    config: Mapping[str, Any],
    extra_files: Mapping[str, str | bytes] | None = None,
    title: str = "Evaluation",
) -> Path:
    """Write ``result`` as a run directory: ``results.csv`` (what the dashboard reads),
    ``results.parquet``, ``steps.parquet`` (when users were logged), ``config.json``,
    ``system.json`` (with the per-task seconds), ``report.md`` and its PNG plots."""
    table = result.table
    rows: Sequence[ResultRow] = [
        ResultRow(r.run_id, r.policy, r.scenario, int(r.seed), int(r.step), r.metric, r.value)
        for r in table.itertuples(index=False)
    ]
    buffer = io.BytesIO()
    table.to_parquet(buffer, engine="pyarrow", index=False)
    files: dict[str, str | bytes] = {"results.parquet": buffer.getvalue()}
    if result.steplog is not None:
        from recsim_llm.steplog import steplog_parquet

        files["steps.parquet"] = steplog_parquet(result.steplog)
    report, plots = grid_report(table, title)
    files["report.md"] = report
    files.update(plots)
    files.update(extra_files or {})
    seconds = np.asarray(result.seconds, dtype=np.float64)
    timing = {
        "tasks": int(seconds.size),
        "task_seconds_mean": float(seconds.mean()) if seconds.size else None,
        "task_seconds_total": float(seconds.sum()),
    }
    return write_run(out, rows, config, extra={"timing": timing}, files=files)
