"""Interest drift: per-step outcomes aligned at the taste shift or trend, recovery, hidden
interest paths."""

import numpy as np
import streamlit as st

from recsim_llm.dashboard import charts, common, data

st.title("Interest drift and satisfaction")
sel = common.select()
if sel is not None:
    table, scenario = sel.table, sel.scenario
    shifts = {r.label: data.shift_step(r.config, scenario) for r in sel.runs}
    shift = next((s for s in shifts.values() if s is not None), None)
    if shift is None:
        with_shift = sorted(
            {
                s
                for r in sel.runs
                for s in r.table[data.COL_SCENARIO].unique()
                if data.shift_step(r.config, s) is not None
            }
        )
        if with_shift:
            st.info(
                f"Scenario `{sel.scenario}` has no taste shift or trend; choose one that has in the "
                f"sidebar: {', '.join(with_shift)}. Curves below are not aligned."
            )
        else:
            common.missing(
                f"a scenario with a taste shift or trend (`world.dynamics.shift_step` or "
                f"`trend_step` in `{data.CONFIG_FILE}`)",
                data.CMD_SHIFT,
            )
    elif len({s for s in shifts.values() if s is not None}) > 1:
        st.warning(f"The selected runs shift at different steps ({shifts}); aligned at each's.")
    x_title = "steps since the shift (steps)" if shift is not None else "step (steps)"
    st.caption(f"Per-step means over running sessions; bands: {data.INTERVAL_NAME}.")
    active = data.active_users(table, scenario)
    if not active.empty:
        active = common.with_series(sel, active)
        active["step"] = active[data.COL_STEP] - active[data.COL_RUN].map(shifts).fillna(0)
    for metric in (data.S_REWARD, data.S_CLICK_RATE, data.S_SATISFACTION, data.S_DRIFT):
        bands = data.step_bands(table, metric, scenario)
        if bands.empty:
            common.missing(f"per-step `{metric}` in scenario `{scenario}`", data.CMD_SHIFT)
            continue
        bands = common.with_series(sel, bands)
        bands["step"] = bands[data.COL_STEP] - bands[data.COL_RUN].map(shifts).fillna(0)
        fig = charts.Figure(
            "bands",
            bands,
            x="step",
            y="mean",
            low="low",
            high="high",
            color="series",
            x_title=x_title,
            y_title=data.title(metric),
            title=f"{data.title(metric)}, {scenario}",
            rule_x=0.0 if shift is not None else None,
            rule_label="taste shift",
            tooltip=["series", "step", "mean", "low", "high", "seeds"],
            lower=active if not active.empty else None,
            lower_title=data.title(data.S_ACTIVE),
        )
        st.subheader(data.title(metric).capitalize())
        common.figure(fig, f"{metric} {scenario}")

    st.subheader("Recovery after the shift")
    present = data.session_metrics(table)
    recovery = [
        m
        for m in (data.M_STEPS_TO_RECOVER, data.M_DRIFT_BEFORE, data.M_DRIFT_AFTER)
        if m in present
    ]
    if not recovery:
        common.missing(
            f"session metrics `{data.M_STEPS_TO_RECOVER}`, `{data.M_DRIFT_BEFORE}`, "
            f"`{data.M_DRIFT_AFTER}`",
            data.CMD_GRID,
        )
    for metric in recovery:
        summary = common.scenario_summary(sel, metric)
        if not summary.empty:
            common.intervals(
                summary,
                f"{metric} {scenario}",
                x_title=data.title(metric),
                title=data.title(metric),
                digits=3,
            )

    st.subheader("Hidden interest of sampled users")
    logged = [r for r in sel.runs if r.step_log is not None]
    if not logged:
        common.missing(
            f"per-step logs ({' or '.join(data.STEP_LOG_FILES)}) with `{data.LOG_INTEREST}`",
            data.CMD_STEP_LOGS,
        )
        st.stop()
    run = logged[0]
    log = common.step_log(run)
    if data.LOG_INTEREST not in log.columns:
        common.missing(f"column `{data.LOG_INTEREST}` in `{run.step_log.name}`", data.CMD_STEP_LOGS)
        st.stop()
    key = common.log_session_picker(log, sel, users=False)
    sessions = data.log_sessions(data.session_log(log, **key))
    most = min(12, len(sessions))
    n = st.slider("Users to sample", 1, most, min(4, most)) if most > 1 else most
    users = list(np.random.default_rng(0).permutation(sessions[data.LOG_USER].to_numpy())[:n])
    left, right = st.columns(2)

    def paths(column: str, space: str, title: str, name: str) -> None:
        """Sampled users' paths through one logged space, on its first two principal components."""
        common.figure(
            charts.Figure(
                "paths",
                data.trajectories(log, column, users, key),
                x="pc1",
                y="pc2",
                color=data.LOG_USER,
                order=data.LOG_STEP,
                x_title=f"{space}, PC 1 (unitless)",
                y_title="PC 2 (unitless)",
                title=title,
            ),
            name,
        )

    with left:
        paths(
            data.LOG_INTEREST, "hidden interest", "hidden interest (truth)", "hidden interest paths"
        )
    with right:
        if data.LOG_STATE in log.columns:
            paths(
                data.LOG_STATE,
                "encoder state",
                "what the encoder state tracked",
                "encoder state paths",
            )
        else:
            st.info(
                f"No column `{data.LOG_STATE}` in `{run.step_log.name}`: a step log written "
                "before `recsim-llm evaluate` recorded the encoder's state. Run it again to "
                f"compare: `{data.CMD_STEP_LOGS}`."
            )
    st.caption(
        "Each space is projected on its own first two principal components (over the sampled "
        "users' steps); compare shapes and timing, not coordinates."
    )
