"""Cold start: new users' first steps, new items' clicks, LM against non-LM state."""

import streamlit as st

from recsim_llm.dashboard import charts, common, data

st.title("Cold start")
sel = common.select()
if sel is not None:
    table, scenario = sel.table, sel.scenario
    present = data.session_metrics(table)
    st.subheader("New users")
    cold = [m for m in (data.M_FIRST_K_CTR, data.M_STEPS_TO_FIRST_CLICK) if m in present]
    if not cold:
        common.missing(
            f"session metrics `{data.M_FIRST_K_CTR}` and `{data.M_STEPS_TO_FIRST_CLICK}`",
            data.CMD_GRID,
        )
    for metric in cold:
        common.intervals(
            common.scenario_summary(sel, metric),
            f"{metric} {scenario}",
            x_title=data.title(metric),
            title=f"{data.title(metric)}, {scenario}",
        )

    horizon = int(table.loc[table[data.COL_STEP] >= 0, data.COL_STEP].max() + 1)
    k = st.slider("First steps of a session", 1, max(2, horizon), min(20, horizon))
    active = data.active_users(table, scenario, k)
    active = common.with_series(sel, active) if not active.empty else None
    for metric, what in (
        (data.S_CLICK_RATE, "new users' first steps"),
        (data.S_NEW_ITEM_CLICKS, "newly arrived items"),
    ):
        bands = data.step_bands(
            table, metric, scenario, None if metric == data.S_NEW_ITEM_CLICKS else k
        )
        if bands.empty:
            common.missing(f"per-step `{metric}` in scenario `{scenario}`", data.CMD_COLD)
            continue
        st.subheader(f"Clicks on {what}")
        common.figure(
            charts.Figure(
                "bands",
                common.with_series(sel, bands),
                x=data.COL_STEP,
                y="mean",
                low="low",
                high="high",
                color="series",
                x_title="step of the session (steps)",
                y_title=data.title(metric),
                title=f"{data.title(metric)}, {scenario}",
                tooltip=["series", data.COL_STEP, "mean", "low", "high", "seeds"],
                lower=active if metric == data.S_CLICK_RATE else None,
                lower_title=data.title(data.S_ACTIVE),
            ),
            f"{metric} {scenario}",
        )
    first_k = data.first_steps_summary(table, scenario, k)
    if not first_k.empty:
        st.caption(f"Mean click rate over steps 0-{k - 1}, per seed, then {data.INTERVAL_NAME}.")
        common.reliability(first_k)
        common.table(first_k.round(4), f"click rate first {k} steps {scenario}")

    st.subheader("LM against non-LM user state")
    encoders = data.encoder_split(sel.runs, scenario)
    kinds = set(encoders["state"]) if not encoders.empty else set()
    if kinds != {"LM", "non-LM"}:
        common.missing(
            f"runs of scenario `{scenario}` with both an LM encoder and a non-LM one "
            f"(found: {', '.join(sorted(kinds)) or 'no encoder in config.json'})",
            data.CMD_COLD,
            data.CMD_BOW_COLD,
        )
    else:
        comparison = data.encoder_comparison(table, scenario, k, encoders)
        common.intervals(
            comparison,
            f"lm vs non-lm {scenario}",
            y=data.COL_POLICY,
            color="state",
            x_title=f"click rate over the first {k} steps (clicks per user-step)",
            title="LM against non-LM state",
            tooltip=["state", "encoder", data.COL_POLICY, "seeds", "mean", "low", "high"],
        )
