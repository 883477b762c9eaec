"""Robustness: score against perturbation strength, and paired differences against the
unperturbed scenario."""

import streamlit as st

from recsim_llm.dashboard import charts, common, data

st.title("Robustness across scenarios")
sel = common.select()
if sel is not None:
    table = sel.table
    metrics = data.session_metrics(table)
    default = data.M_SCORE if data.M_SCORE in metrics else data.M_RETURN
    metric = st.selectbox(
        "Metric",
        metrics,
        index=metrics.index(default) if default in metrics else 0,
        format_func=data.title,
    )
    config = next((r.config for r in sel.runs if r.config), None)
    strengths = data.scenario_strengths(table, config)
    battery = strengths[strengths[data.COL_STRENGTH].notna()]
    if battery.empty:
        common.missing(
            "perturbation strengths (a `strength` column, or scenarios named "
            f"`ITEM{data.STRENGTH_SEPARATOR}STRENGTH`)",
            data.CMD_ROBUSTNESS,
        )
    else:
        curves = data.robustness_curves(table, metric, strengths)
        items = sorted(curves["item"].unique())
        for item in items:
            part = curves[curves["item"] == item]
            st.subheader(f"{item}: {data.title(metric)} against strength")
            common.figure(
                charts.Figure(
                    "bands",
                    part,
                    x=data.COL_STRENGTH,
                    y="mean",
                    low="low",
                    high="high",
                    color=data.COL_POLICY,
                    x_title=f"{item} strength (scenario units)",
                    y_title=data.title(metric),
                    title=f"{item}",
                    tooltip=[data.COL_POLICY, data.COL_STRENGTH, "mean", "low", "high", "seeds"],
                ),
                f"robustness {item}",
            )
        st.caption(f"Bands: {data.INTERVAL_NAME}. Strength 0 is `{data.UNPERTURBED}`.")
        common.reliability(curves)

    st.subheader(f"Paired differences against `{data.UNPERTURBED}`")
    diffs = data.paired_differences(table, metric, strengths)
    if diffs.empty:
        common.missing(
            f"scenario `{data.UNPERTURBED}` and another scenario with the same policies and seeds",
            data.CMD_ROBUSTNESS,
        )
    else:
        st.caption(
            f"Scenario minus `{data.UNPERTURBED}`, same policy and seed, {data.title(metric)}; "
            "sorted by item, then strength (numerically)."
        )
        common.reliability(diffs, "pairs")
        shown = diffs.copy()
        shown["case"] = shown["item"] + shown[data.COL_STRENGTH].map(
            lambda s: "" if s != s else f"{data.STRENGTH_SEPARATOR}{s:g}"
        )
        common.figure(
            charts.Figure(
                "intervals",
                shown,
                x="difference",
                y="case",
                low="low",
                high="high",
                color=data.COL_POLICY,
                x_title=f"difference in {data.title(metric)}",
                y_title="scenario",
                title=f"paired differences against {data.UNPERTURBED}",
                tooltip=["case", data.COL_POLICY, "pairs", "difference", "low", "high"],
            ),
            f"paired differences {metric}",
        )
        common.table(diffs.round(4), f"paired differences {metric}")
