"""Robustness: each policy's return across scenarios, relative to the default scenario."""

import streamlit as st

from recsim_llm.dashboard import data
from recsim_llm.dashboard.common import selected_table

st.title("Robustness across scenarios")
run, table = selected_table()
if table is not None:
    st.caption("Mean session return per scenario; 'vs default' columns show the relative change.")
    st.dataframe(data.robustness(table))
