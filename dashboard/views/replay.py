"""Episode replay: one user's session from the per-step logs, step by step."""

import streamlit as st

from recsim_llm.dashboard import charts, common, data

st.title("Episode replay")
sel = common.select()
if sel is not None:
    logged = [r for r in sel.runs if r.step_log is not None]
    if not logged:
        common.missing(f"per-step logs ({' or '.join(data.STEP_LOG_FILES)})", data.CMD_STEP_LOGS)
        st.stop()
    run = logged[0]
    if len(logged) > 1:
        labels = [r.label for r in logged]
        run = logged[labels.index(st.selectbox("Run", labels))]
    log = common.step_log(run)
    lacking = [c for c in data.REPLAY_COLUMNS if c not in log.columns]
    if lacking:
        common.missing(
            f"column(s) {', '.join(f'`{c}`' for c in lacking)} in `{run.step_log.name}`",
            data.CMD_STEP_LOGS,
        )
        st.stop()
    key = common.log_session_picker(log, sel)
    session = data.session_log(log, **key)
    steps = session[data.LOG_STEP].tolist()
    step = st.select_slider("Step", steps, value=steps[0]) if len(steps) > 1 else steps[0]
    row = session[session[data.LOG_STEP] == step].iloc[0]
    click = data.clicked_position(row)
    facts = st.columns(3)
    facts[0].metric("Clicked slate position", "none" if click < 0 else str(click + 1))
    if data.LOG_WATCH in row:
        facts[1].metric("Watch time (minutes)", f"{float(row[data.LOG_WATCH]):.2f}")
    if data.LOG_SATISFACTION in row:
        facts[2].metric("Hidden satisfaction (0-1)", f"{float(row[data.LOG_SATISFACTION]):.3f}")
    shown = data.slate_rows(row)
    scored = data.has_scores(session)
    st.subheader(f"Step {step}: slate and candidate scores" if scored else f"Step {step}: slate")
    if not scored:
        st.caption(
            f"No `{data.LOG_SCORES}` in this session's log: the policy has no "
            "`scores(observation)` (of the built-in policies only `encoder-greedy` has one). "
            f"{int((~shown['shown']).sum())} candidates were not shown."
        )
    else:
        common.figure(
            charts.Figure(
                "bars",
                shown.assign(
                    item=shown["item"].astype(str),
                    where=shown["shown"].map({True: "in slate", False: "not shown"}),
                ),
                x="item",
                y="score",
                color="where",
                x_title="candidate item (id)",
                y_title="policy score (policy units)",
                title="candidate scores",
                tooltip=["item", "score", "slate position", "clicked", "explanation"],
            ),
            f"scores step {step}",
        )
    slate = shown[shown["shown"]].sort_values("slate position")
    cols = ["slate position", "item", *(["score"] if scored else []), "clicked"]
    if (slate["explanation"] != "").any():
        cols.append("explanation")
    elif data.LOG_EXPLANATION not in log.columns:
        st.caption(f"No `{data.LOG_EXPLANATION}` column in the log: no explanations to show.")
    else:
        st.caption(
            f"No explanations logged at this step: `{data.LOG_EXPLANATION}` is written for runs "
            "with the `lm-fast` encoder without `--no-explain`."
        )
    common.table(slate[cols], f"slate step {step}")
    hidden = [
        c
        for c in session.columns
        if c.startswith(data.HIDDEN_PREFIX)
        and session[c].map(lambda v: isinstance(v, (int, float))).all()
    ]
    series = [c for c in (data.LOG_WATCH, *hidden) if c in session.columns]
    if series:
        st.subheader("The session so far")
        long = session.melt(
            id_vars=[data.LOG_STEP], value_vars=series, var_name="signal", value_name="value"
        )
        long["value"] = long["value"].astype(float)
        long["low"] = long["high"] = long["value"]
        common.figure(
            charts.Figure(
                "bands",
                long,
                x=data.LOG_STEP,
                y="value",
                low="low",
                high="high",
                color="signal",
                x_title="step of the session (steps)",
                y_title="watch time (minutes) / hidden state (0-1)",
                title="watch time and hidden state (one session: no interval)",
                rule_x=float(step),
                rule_label="this step",
                tooltip=["signal", data.LOG_STEP, "value"],
            ),
            "session signals",
        )
