"""Helpers shared by the dashboard's pages: where runs are, which run is selected."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from recsim_llm.dashboard import data


def runs_root() -> str:
    """The runs folder: ``--runs`` after ``--`` on the streamlit command line, or the
    ``RECSIM_LLM_RUNS`` environment variable, or ``runs``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", default=os.environ.get("RECSIM_LLM_RUNS", "runs"))
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.runs


@st.cache_data(show_spinner=False)
def _load(run_dir: str, mtime: float) -> pd.DataFrame:  # mtime is part of the cache key
    return data.load_results(run_dir)


def selected_table() -> tuple[Path | None, pd.DataFrame | None]:
    """The run chosen in the sidebar and its tidy table (None, None when there is none)."""
    root = st.sidebar.text_input("Runs folder", value=runs_root())
    runs = data.find_runs(root)
    if not runs:
        st.info(
            f"No run directories with a results.csv under `{root}`. Create one with "
            "`recsim-llm evaluate --out runs/NAME` or `recsim-llm quickstart`."
        )
        return None, None
    labels = [str(p.relative_to(root)) if p != Path(root) else "." for p in runs]
    choice = st.sidebar.selectbox("Run", labels)
    run = runs[labels.index(choice)]
    try:
        return run, _load(str(run), (run / "results.csv").stat().st_mtime)
    except (ValueError, FileNotFoundError) as err:
        st.error(str(err))
        return None, None
