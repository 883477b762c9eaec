"""Markdown tables of one or more `recsim-llm evaluate` run folders: a metric per policy and
scenario, mean over evaluation seeds with a bootstrap interval (the few-seeds rule of
`recsim_llm.stats`), with the models of several training seeds of one algorithm pooled into one row.

Usage::

    python benchmarks/grid_table.py RUN [RUN ...] [--metric normalised_score]
        [--pool 'PPO scorer, lm-fast=ppo-lm-fast/'] [--pool 'PPO scorer, bow=ppo-bow/']

``--pool LABEL=PREFIX``: every policy whose ``RUN_FOLDER_NAME/POLICY`` starts with PREFIX (e.g.
``grid-lm/ppo``: the `model:` policies of one `recsim-llm train --seeds` folder in run grid-lm) becomes one row LABEL whose value per evaluation seed is
the mean over those models; its interval is over evaluation seeds, and the spread over training
seeds is a second table (each model's mean over evaluation seeds).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from recsim_llm.evaluation import PRIVILEGED_MARK
from recsim_llm.results import SESSION_STEP
from recsim_llm.stats import mean_estimate

PRIVILEGED = re.compile(r"^(myopic|oracle|mix-[0-9.]+)(#\d+)?$")
"""Names of the built-in privileged references (results files do not record the flag)."""


def load(runs: list[str], metric: str) -> pd.DataFrame:
    frames = []
    for run in runs:
        table = pd.read_csv(Path(run) / "results.csv")
        part = table[(table.step == SESSION_STEP) & (table.metric == metric)]
        frames.append(part.assign(source=Path(run).name + "/" + part.policy))
    return pd.concat(frames, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--metric", default="normalised_score")
    parser.add_argument("--pool", action="append", default=[], metavar="LABEL=PREFIX")
    parser.add_argument("--digits", type=int, default=2)
    parser.add_argument("--drop", action="append", default=[], help="leave out this policy")
    parser.add_argument("--order", default="", help="comma-separated column order (labels)")
    args = parser.parse_args(argv)
    table = load(args.runs, args.metric)
    pools = dict(p.split("=", 1) for p in args.pool)
    label = table.policy.copy()
    for name, prefix in pools.items():
        label[table.source.str.startswith(prefix)] = name
    table = table.assign(label=label)
    # Policies shared by several runs (random, oracle, ...) see the same users per seed: keep one.
    table = table.drop_duplicates(["policy", "scenario", "seed", "label"])
    scenarios = list(dict.fromkeys(table.scenario))
    labels = [lab for lab in dict.fromkeys(table.label) if lab not in args.drop]
    if args.order:
        order = args.order.split(",")
        labels.sort(key=lambda lab: order.index(lab) if lab in order else len(order))
    cells: dict[tuple[str, str], str] = {}
    for lab in labels:
        for sc in scenarios:
            part = table[(table.label == lab) & (table.scenario == sc)]
            if not part.empty:
                est = mean_estimate(part.groupby("seed").value.mean().to_numpy())
                cells[lab, sc] = est.format(f".{args.digits}f").replace(" (n=", " (")
    heads = [f"{lab}{PRIVILEGED_MARK}" if PRIVILEGED.match(lab) else lab for lab in labels]
    print("| scenario | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(labels))
    for sc in scenarios:
        print(f"| {sc} | " + " | ".join(cells.get((lab, sc), "") for lab in labels) + " |")
    for lab in pools:
        part = table[table.label == lab]
        if part.empty:
            continue
        per_model = part.groupby(["scenario", "source"]).value.mean().unstack("source")
        print(f"\n{lab}: per training-seed model, mean over evaluation seeds")
        print("| scenario | " + " | ".join(per_model.columns) + " |")
        print("|---|" + "---:|" * len(per_model.columns))
        for sc in scenarios:
            values = " | ".join(f"{v:.{args.digits}f}" for v in per_model.loc[sc])
            print(f"| {sc} | {values} |")
    n = table.seed.nunique()
    print(f"\n{args.metric}: mean over {n} evaluation seeds [95% bootstrap interval over seeds].")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
