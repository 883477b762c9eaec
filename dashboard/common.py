"""Helpers shared by the dashboard's pages: the runs roots, the selection (sidebar, session and
URL), cached loads, and tables and figures with their download buttons."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from recsim_llm.dashboard import charts, data

ROOTS_ENV = "RECSIM_LLM_RUNS"
"""Runs roots when the command line has none (``os.pathsep``-separated)."""


def runs_roots() -> list[Path]:
    """The runs roots: every ``--runs`` after ``--`` on the streamlit command line, else the
    ``RECSIM_LLM_RUNS`` environment variable, else ``runs``. The sidebar only chooses among
    runs found under them; it takes no free paths."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", action="append", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    roots = args.runs or [r for r in os.environ.get(ROOTS_ENV, "runs").split(os.pathsep) if r]
    return [Path(r) for r in roots]


# -- selection: session state, persisted across pages, mirrored in the URL ------------------------
def _persist(key: str, default: Any, options: Sequence[Any], multi: bool = False) -> None:
    """Seed ``st.session_state[key]`` from the URL (first load) or ``default``; keep it valid."""
    if key in st.session_state:
        value = st.session_state[key]
    elif multi:
        value = st.query_params.get_all(key) or default
    else:
        value = st.query_params.get(key, default)
    if multi:
        value = [v for v in value if v in options] or list(default)
    elif value not in options:
        value = default
    st.session_state[key] = value  # re-assigned so the value outlives a page without the widget


def _to_url(**values: Any) -> None:
    for key, value in values.items():
        if value is None or value == []:
            st.query_params.pop(key, None)
        elif isinstance(value, list):
            if st.query_params.get_all(key) != value:
                st.query_params[key] = value
        elif st.query_params.get(key) != str(value):
            st.query_params[key] = str(value)


@st.cache_data(show_spinner="Reading run ...", max_entries=64)
def _load_run(label: str, run: str, root: str, stamps: tuple) -> data.Run:  # stamps: cache key
    return data.load_run(label, run, root)


def _stamps(run: Path) -> tuple:
    return tuple(
        data.stamp(run / n) for n in (data.RESULTS_FILE, data.CONFIG_FILE, data.SYSTEM_FILE)
    )


def fail(message: str) -> None:
    """Show one error and stop the page (no partial numbers under it)."""
    st.error(message)
    st.stop()


class Selection:
    """What the sidebar selected: runs (loaded whole), their table, scenario and policies."""

    def __init__(self, runs: list[data.Run], scenario: str | None, policies: list[str]):
        self.runs = runs
        self.table = data.combine(runs)
        self.scenario = scenario
        self.policies = policies
        if policies and not self.table.empty:
            self.table = self.table[self.table[data.COL_POLICY].isin(policies)]

    @property
    def several(self) -> bool:
        return len(self.runs) > 1

    def series(self, frame: pd.DataFrame) -> pd.Series:
        """Legend label: the policy, prefixed by the run when several runs are overlaid."""
        if self.several:
            return frame[data.COL_RUN] + " · " + frame[data.COL_POLICY]
        return frame[data.COL_POLICY]


def select() -> Selection | None:
    """The sidebar: runs (among those under the roots), scenario, policies. None (after an
    explanation) when there is nothing to show; a run that cannot be read stops the page."""
    roots = runs_roots()
    labels = data.run_labels(roots)
    if not labels:
        st.info(
            "No run directories with a results.csv under "
            + ", ".join(f"`{r}`" for r in roots)
            + f". Create one with `{data.CMD_EVALUATE}` or `recsim-llm quickstart`."
        )
        return None
    options = list(labels)
    _persist("runs", options[:1], options, multi=True)
    chosen = st.sidebar.multiselect("Runs", options, key="runs", help="several runs are overlaid")
    if not chosen:
        st.info("Choose at least one run in the sidebar.")
        return None
    runs = []
    for label in chosen:
        root, run = labels[label]
        try:
            runs.append(_load_run(label, str(run), str(root), _stamps(run)))
        except data.RunError as err:
            _to_url(runs=chosen)
            fail(f"Run `{label}` cannot be shown: {err}")
    table = data.combine(runs)
    scenarios = sorted(table[data.COL_SCENARIO].unique())
    default = data.UNPERTURBED if data.UNPERTURBED in scenarios else scenarios[0]
    _persist("scenario", default, scenarios)
    scenario = st.sidebar.selectbox("Scenario", scenarios, key="scenario")
    policies = sorted(table[data.COL_POLICY].unique())
    _persist("policy", [], policies, multi=True)
    chosen_policies = st.sidebar.multiselect(
        "Policies", policies, key="policy", help="none chosen: all policies"
    )
    _to_url(runs=chosen, scenario=scenario, policy=chosen_policies)
    st.sidebar.caption("The selection is in the page address: copy it to share this view.")
    return Selection(runs, scenario, chosen_policies)


def missing(what: str, *commands: str) -> None:
    """The one message a page shows when a run lacks what it needs, with the command(s) that
    produce it (``data.CMD_*``)."""
    how = " and ".join(f"`{c}`" for c in commands)
    st.info(f"Not in the selected run(s): {what}. Produced by: {how}")


def reliability(frame: pd.DataFrame, n_col: str = "seeds") -> None:
    """A caption when the frame's intervals rest on too few seeds (``data.reliability_caption``)."""
    text = data.reliability_caption(frame, n_col)
    if text:
        st.caption(text)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "table"


def table(frame: pd.DataFrame, name: str, **kwargs: Any) -> None:
    """A table with a CSV download button."""
    st.dataframe(frame, hide_index=True, **kwargs)
    st.download_button(
        f"Download {name} (CSV)",
        frame.to_csv(index=False).encode("utf-8"),
        file_name=f"{_slug(name)}.csv",
        mime="text/csv",
        key=f"csv-{_slug(name)}",
        on_click="ignore",
    )


def figure(fig: charts.Figure, name: str) -> None:
    """An interactive Altair chart with a PNG download button (drawn on demand)."""
    st.altair_chart(charts.to_altair(fig), width="stretch")
    st.download_button(
        f"Download {name} (PNG)",
        lambda: charts.to_png(fig),
        file_name=f"{_slug(name)}.png",
        mime="image/png",
        key=f"png-{_slug(name)}",
        on_click="ignore",
    )


def with_series(sel: Selection, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["series"] = sel.series(frame) if len(frame) else pd.Series(dtype=str)
    return frame


SUMMARY_TOOLTIP = ["series", "seeds", "mean", "low", "high"]
"""Tooltip of a per-policy summary drawn against its ``series`` (``scenario_summary``)."""


def scenario_summary(sel: Selection, metric: str) -> pd.DataFrame:
    """``data.session_summary`` of one session metric in the selected scenario, with ``series``."""
    summary = data.session_summary(sel.table, metric)
    return with_series(sel, summary[summary[data.COL_SCENARIO] == sel.scenario])


def intervals(
    frame: pd.DataFrame,
    name: str,
    *,
    x_title: str,
    title: str,
    y: str = "series",
    y_title: str = "policy",
    color: str | None = None,
    facet: str | None = None,
    tooltip: Sequence[str] = SUMMARY_TOOLTIP,
    digits: int = 4,
    table_name: str | None = None,
) -> None:
    """The intervals block: ``mean`` with its ``low``..``high`` interval per ``y`` category (a
    figure with its PNG button), the reliability caption, then the same rows as a table (without
    the ``series`` legend column, rounded to ``digits``) with its CSV button. Both are named
    ``name`` unless the table has its own ``table_name``."""
    figure(
        charts.Figure(
            "intervals",
            frame,
            x="mean",
            y=y,
            low="low",
            high="high",
            x_title=x_title,
            y_title=y_title,
            color=color,
            facet=facet,
            title=title,
            tooltip=list(tooltip),
        ),
        name,
    )
    reliability(frame)
    table(frame.drop(columns="series", errors="ignore").round(digits), table_name or name)


# -- per-step logs --------------------------------------------------------------------------------
@st.cache_data(show_spinner="Reading step log ...", max_entries=4)
def _load_step_log(path: str, root: str, stamp: tuple) -> pd.DataFrame:  # stamp: cache key
    return data.load_step_log(Path(path), root)


def step_log(run: data.Run) -> pd.DataFrame:
    """The run's per-step log (cached on path + mtime); a damaged file stops the page."""
    roots = {str(r) for r in runs_roots()}
    root = next((r for r in roots if Path(run.path).is_relative_to(r)), str(run.path))
    try:
        return _load_step_log(str(run.step_log), root, data.stamp(run.step_log))
    except data.RunError as err:
        fail(f"Run `{run.label}`: {err}")
        raise  # unreachable: fail stops the page


def log_session_picker(log: pd.DataFrame, sel: Selection, users: bool = True) -> dict[str, Any]:
    """Select boxes for the logged policy, scenario and seed (and user): the session key."""
    key: dict[str, Any] = {}
    cols = st.columns(4 if users else 3)
    part = log
    for i, (col, wanted) in enumerate(
        ((data.LOG_POLICY, sel.policies), (data.LOG_SCENARIO, [sel.scenario]), (data.LOG_SEED, []))
    ):
        if col not in part.columns:
            continue
        options = sorted(part[col].unique().tolist())
        preferred = next((v for v in wanted if v in options), options[0])
        key[col] = cols[i].selectbox(f"Logged {col}", options, index=options.index(preferred))
        part = part[part[col] == key[col]]
    if users:
        options = sorted(part[data.LOG_USER].unique().tolist())
        key[data.LOG_USER] = cols[3].selectbox("User", options)
    return key
