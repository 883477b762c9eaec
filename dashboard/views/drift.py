"""Interest drift: how far hidden interests move, and satisfaction, step by step."""

import streamlit as st

from recsim_llm.dashboard import data
from recsim_llm.dashboard.common import selected_table

st.title("Interest drift and satisfaction")
run, table = selected_table()
if table is not None:
    scenarios = sorted(table.scenario.unique())
    scenario = st.selectbox("Scenario", scenarios, index=data.default_index(scenarios))
    st.subheader("Hidden interest drift (1 - cosine to session start)")
    st.line_chart(data.step_curves(table, "true_interest_drift", scenario))
    st.subheader("Hidden satisfaction")
    st.line_chart(data.step_curves(table, "true_satisfaction", scenario))
