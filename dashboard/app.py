"""recsim_llm dashboard over saved run directories.

Run with ``recsim-llm dashboard --runs ROOT [--runs ROOT2]`` (or ``streamlit run app.py --
--runs ROOT``). The app only reads result files under the roots; it never trains and holds no
live env. Pages: overview, drift, robustness, cold start, episode replay.
"""

from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).with_name("views")

st.set_page_config(page_title="recsim_llm", layout="wide")
st.navigation(
    [
        st.Page(VIEWS / "overview.py", title="Overview", url_path="overview", default=True),
        st.Page(VIEWS / "drift.py", title="Interest drift", url_path="drift"),
        st.Page(VIEWS / "robustness.py", title="Robustness", url_path="robustness"),
        st.Page(VIEWS / "cold_start.py", title="Cold start", url_path="cold-start"),
        st.Page(VIEWS / "replay.py", title="Episode replay", url_path="replay"),
    ]
).run()
