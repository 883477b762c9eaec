"""``recsim-llm ope``: off-policy estimates against the simulator's truth (``recsim_llm.ope``).

Writes one marked output folder (kind ``"ope"``) through ``recsim_llm.io``: ``table.md`` (the
summary over repeated logs), ``summary.csv``, ``estimates.csv`` (one row per log, size, target
and estimator), ``bandit_feedback.npz`` (log 0 at the smallest size in Open Bandit Pipeline's
layout), ``ope.png`` (RMSE and coverage against the log size) and ``config.json``. The
settings are checked, and ``--out`` claimed, before any work.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from collections.abc import Mapping, Sequence
from typing import Any

HELP = (
    "Off-policy evaluation against ground truth: log an epsilon-greedy slate policy, estimate "
    "target policies' values (IPW, SNIPW, DM, DR, independent IPS/DR) over log sizes and "
    "repeated logs, compare with the simulator's expected reward."
)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated integers, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("must name at least one value")
    return values


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("must name at least one name")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from recsim_llm.ope import ESTIMATORS, REWARDS, SCORES, TARGETS, OPEConfig
    from recsim_llm.scenarios import scenario_names

    default = OPEConfig.__dataclass_fields__
    parser.add_argument(
        "--out",
        required=True,
        help="output folder (new, empty, or an ope folder of ours; replaced atomically)",
    )
    parser.add_argument(
        "--log-sizes",
        type=_int_list,
        default=",".join(str(s) for s in default["log_sizes"].default),
        help="comma-separated rounds per log (each >= 10)",
    )
    parser.add_argument(
        "--logs",
        type=int,
        default=default["n_logs"].default,
        help="repeated logs (seeds) per size; coverage is counted over them",
    )
    parser.add_argument("--seed", type=int, default=0, help="log i uses seed SEED + i")
    parser.add_argument(
        "--epsilon",
        type=float,
        default=default["epsilon"].default,
        help="the logging policy's share of uniformly random slates",
    )
    parser.add_argument(
        "--logger-score",
        choices=SCORES,
        default=default["logger_score"].default,
        help="what the logging policy's greedy slate ranks by",
    )
    parser.add_argument(
        "--targets",
        type=_names,
        default=",".join(default["targets"].default),
        help=f"comma-separated target policies, from: {', '.join(TARGETS)}",
    )
    parser.add_argument(
        "--estimators",
        type=_names,
        default=",".join(ESTIMATORS),
        help=f"comma-separated estimators, from: {', '.join(ESTIMATORS)}",
    )
    parser.add_argument(
        "--reward",
        choices=REWARDS,
        default=default["reward"].default,
        help="watch_time: minutes watched of the click (0 without one); click: a click",
    )
    parser.add_argument(
        "--scenario", choices=scenario_names(), default="default", help="world to log"
    )
    parser.add_argument(
        "--users",
        type=int,
        default=default["n_users"].default,
        help="user slots simulated together",
    )
    parser.add_argument(
        "--truth-samples",
        type=int,
        default=default["truth_samples"].default,
        help="uniform slates per round for the Monte Carlo part of the truth",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=default["n_bootstrap"].default,
        help="bootstrap resamples per interval",
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=default["confidence"].default,
        help="interval level",
    )
    parser.add_argument(
        "--ridge", type=float, default=default["ridge"].default, help="reward model ridge penalty"
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=default["n_folds"].default,
        help="cross-fitting folds of the reward model",
    )


def _config(args: argparse.Namespace) -> Any:
    from recsim_llm.ope import OPEConfig

    # argparse passes the string defaults through ``type`` too: these are lists.
    return OPEConfig(
        log_sizes=tuple(args.log_sizes),
        n_logs=args.logs,
        seed=args.seed,
        epsilon=args.epsilon,
        logger_score=args.logger_score,
        targets=tuple(args.targets),
        estimators=tuple(args.estimators),
        reward=args.reward,
        scenario=args.scenario,
        n_users=args.users,
        truth_samples=args.truth_samples,
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        ridge=args.ridge,
        n_folds=args.folds,
    )


def run(args: argparse.Namespace) -> int:
    from recsim_llm.io import claim_output

    config = _config(args)  # every setting checked before the output is touched
    with claim_output(args.out, "ope"):  # checked and held before any work
        return _run(args, config)


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [repr(float(row[c])) if isinstance(row[c], float) else row[c] for c in columns]
        )
    return buffer.getvalue()


def _figure(summary: Sequence[Mapping[str, Any]], config: Any) -> bytes:
    """RMSE and interval coverage against the log size, per target (one line per estimator)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(config.targets)
    fig, axes = plt.subplots(
        2, len(targets), figsize=(4.2 * len(targets), 6.4), squeeze=False, sharex=True
    )
    for col, target in enumerate(targets):
        for name in config.estimators:
            rows = [r for r in summary if r["target"] == target and r["estimator"] == name]
            sizes = [r["log_size"] for r in rows]
            axes[0][col].plot(sizes, [r["rmse"] for r in rows], marker="o", label=name)
            axes[1][col].plot(sizes, [r["coverage"] for r in rows], marker="o", label=name)
        axes[0][col].set_title(f"target: {target}")
        axes[0][col].set_xscale("log")
        axes[0][col].set_yscale("log")
        axes[1][col].axhline(config.confidence, color="grey", linestyle="--", linewidth=1)
        axes[1][col].set_ylim(-0.02, 1.02)
        axes[1][col].set_xlabel("rounds in the log")
    axes[0][0].set_ylabel("RMSE over logs (estimate - truth)")
    axes[1][0].set_ylabel(f"coverage of the {config.confidence:.0%} interval")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _run(args: argparse.Namespace, config: Any) -> int:
    from recsim_llm.io import json_text, write_directory
    from recsim_llm.ope import (
        ESTIMATE_COLUMNS,
        SUMMARY_COLUMNS,
        bandit_feedback_bytes,
        run_study,
        summary_markdown,
        to_bandit_feedback,
    )
    from recsim_llm.results import system_info

    start = time.perf_counter()
    result = run_study(config, progress=True)
    seconds = time.perf_counter() - start
    table = summary_markdown(result.summary, config.confidence)
    header = (
        f"Off-policy evaluation on the {config.scenario!r} world: logger epsilon-greedy "
        f"({config.logger_score}, epsilon {config.epsilon:g}), reward {config.reward} per "
        f"round; {config.n_logs} logs per size; truth = mean over the logged rounds of the "
        f"target's expected reward from the hidden world (Monte Carlo s.e. of a log's truth "
        f"at most {max(r['truth_mc_se'] for r in result.summary):.4f}; {seconds:.0f} s)."
    )
    assert result.example_log is not None
    files = {
        "table.md": f"{header}\n\n{table}\n",
        "summary.csv": _csv_text(result.summary, SUMMARY_COLUMNS),
        "estimates.csv": _csv_text(result.estimates, ESTIMATE_COLUMNS),
        "bandit_feedback.npz": bandit_feedback_bytes(to_bandit_feedback(result.example_log)),
        "ope.png": _figure(result.summary, config),
        "config.json": json_text(
            {"ope": config.to_dict(), "seconds": round(seconds, 1), "system": system_info()}
        ),
    }
    path = write_directory(args.out, files, "ope")
    print(header)
    print()
    print(table)
    print(f"\nwrote {path}")
    return 0
