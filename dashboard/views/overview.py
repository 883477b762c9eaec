"""Overview: policies x scenarios with intervals, pairwise probability of improvement, metadata."""

import streamlit as st

from recsim_llm.dashboard import charts, common, data

st.title("Policy comparison")
sel = common.select()
if sel is not None:
    table = sel.table
    metrics = data.session_metrics(table)
    if not metrics:
        common.missing("session metrics (rows with step -1)", data.CMD_EVALUATE)
        st.stop()
    default = data.M_SCORE if data.M_SCORE in metrics else data.M_RETURN
    metric = st.selectbox(
        "Metric",
        metrics,
        index=metrics.index(default) if default in metrics else 0,
        format_func=data.title,
    )
    if data.M_SCORE not in metrics:
        st.caption(
            f"No `{data.M_SCORE}` in these runs: policies are sorted by `{metric}`. "
            f"The normalised score comes from `{data.CMD_GRID}`."
        )
    summary = data.session_summary(table, metric)
    st.caption(f"{data.title(metric)}: {data.INTERVAL_NAME}. Best policy first in each scenario.")
    common.intervals(
        common.with_series(sel, summary),
        f"{metric} by scenario",
        y=data.COL_POLICY,
        color=data.COL_RUN if sel.several else None,
        facet=data.COL_SCENARIO,
        x_title=data.title(metric),
        title=f"{data.title(metric)} by scenario",
        tooltip=[data.COL_RUN, data.COL_SCENARIO, "policy", "seeds", "mean", "low", "high"],
        table_name=f"{metric} summary",
    )

    st.subheader(f"Probability of improvement: {sel.scenario}")
    run = sel.runs[0].label
    if sel.several:
        run = st.selectbox("Run for the pairwise comparison", [r.label for r in sel.runs])
    matrix = data.improvement_matrix(table, metric, sel.scenario, run)
    if matrix.empty:
        st.info(f"Fewer than two policies with `{metric}` in scenario `{sel.scenario}`.")
    else:
        st.caption(
            "P(row policy beats column policy) over pairs of seeds (ties count half); "
            "0.5 means no evidence either way; interval: stratified bootstrap over seeds "
            "(recsim_llm.stats.improvement_probabilities)."
        )
        common.reliability(matrix)
        common.figure(
            charts.Figure(
                "heatmap",
                matrix,
                x="than",
                y="policy",
                color="P(better)",
                x_title="than policy",
                y_title="policy",
                title=f"P(better) on {data.title(metric)}, {sel.scenario}",
            ),
            f"improvement {sel.scenario}",
        )
        common.table(matrix.round(3), f"improvement {sel.scenario}")

    st.subheader("Run metadata")
    for r in sel.runs:
        st.markdown(f"**{r.label}**")
        common.table(data.metadata(r), f"metadata {r.label}")
        if r.config is None:
            common.missing(f"`{data.CONFIG_FILE}` in `{r.label}`", data.CMD_EVALUATE)
        else:
            with st.expander(f"{data.CONFIG_FILE} of {r.label}"):
                st.json(r.config, expanded=False)
