"""Cold start: new users' first steps and clicks on newly arrived items."""

import streamlit as st

from recsim_llm.dashboard import data
from recsim_llm.dashboard.common import selected_table

st.title("Cold start")
run, table = selected_table()
if table is not None:
    scenarios = sorted(table.scenario.unique())
    scenario = st.selectbox("Scenario", scenarios, index=data.default_index(scenarios))
    steps = st.slider("First steps of a session", 5, 100, 20)
    st.subheader("Click rate of new users over their first steps")
    st.line_chart(data.step_curves(table, "click_rate", scenario, steps))
    st.subheader("Clicks on newly arrived items")
    st.line_chart(data.step_curves(table, "new_item_click_rate", scenario))
