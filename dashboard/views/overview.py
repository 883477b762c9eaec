"""Overview: session return per policy and scenario with 95% bootstrap intervals."""

import streamlit as st

from recsim_llm.dashboard import data
from recsim_llm.dashboard.common import selected_table

st.title("Policy comparison")
run, table = selected_table()
if table is not None:
    st.caption(
        f"Run `{run}`: session return (minutes watched), mean over seeds, 95% bootstrap CI. "
        "One seed gives no interval (empty bounds); with fewer than 5 seeds `reliable` is "
        "false: the interval is close to the range of the seeds."
    )
    summary = data.session_summary(table)
    st.dataframe(summary.round(2), hide_index=True)
    for scenario in summary.scenario.unique():
        st.subheader(f"Scenario: {scenario}")
        st.bar_chart(summary[summary.scenario == scenario].set_index("policy")["mean"])
