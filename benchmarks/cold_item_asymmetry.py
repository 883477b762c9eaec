"""Does knowing the warm items lower a model's per-row AUC on cold-item rows? (issue 8)

The encoder table's cold-item segment holds the test rows whose clicked item was held out of
training, and ranks that item against every item shown beside it, most of them warm (trained on).
A model that has learnt the warm items (their click rates) but, by construction, not the cold
ones ranks a clicked cold item below well-known warm items more often than a model that knows
no item. This script measures how much with oracles that read the world's hidden truth, so no
learning noise enters: the click utility the world used, with the item appeal term

* known for every item (the hidden full utility),
* known for the warm items shown in training only, the cold ones at the training mean
  (a perfect fit of the warm items, and nothing learnt about new ones), or
* known for no item (every item at the training mean; taste and boredom terms still exact).

Each is scored like ``recsim-llm encoder-eval`` (per-row AUC over the shown items, 95% intervals
from a bootstrap over users): all test rows, the cold-item rows, and the cold-item rows ranked
among the new items only (``evaluate.NEW_METRIC``), beside the paired difference "warm only −
none". The split is the one ``recsim-llm finetune --seed S --cold-item-fraction F`` makes with its
other defaults (by user, 10% validation, 20% test users, label ``click``), and the evaluated rows
those of ``encoder-eval --max-rows 2000`` on an encoder trained so.

    python benchmarks/cold_item_asymmetry.py --logs LOGS [--seeds 0 1 2] [--cold-item-fraction 0.3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

VARIANTS = (
    "appeal known for every item",
    "appeal known for warm items only",
    "appeal known for no item",
)
SEGMENTS = (("all", "row_auc"), ("cold_items", "row_auc"), ("cold_items", "row_auc_among_new"))
"""(segment, metric) columns; the last is ``recsim_llm.lm.evaluate.NEW_METRIC`` (a test checks)."""


def appeal_known(shown: np.ndarray, seen: np.ndarray, cold: np.ndarray) -> dict[str, np.ndarray]:
    """Per variant, (n_rows, slate) True where a shown item's appeal is known: every item; the
    warm items shown in training (``seen`` and not ``cold``); no item."""
    return {
        VARIANTS[0]: np.ones(shown.shape, dtype=bool),
        VARIANTS[1]: seen[shown] & ~cold[shown],
        VARIANTS[2]: np.zeros(shown.shape, dtype=bool),
    }


def oracle_scores(
    utility: np.ndarray,
    appeal: np.ndarray,
    appeal_weight: float,
    known: np.ndarray,
    mean_appeal: float,
) -> np.ndarray:
    """The utility with each shown item's appeal replaced by ``mean_appeal`` where not ``known``."""
    return utility - appeal_weight * appeal * (~known) + appeal_weight * mean_appeal * (~known)


def logged_appeal_weight(logs: str) -> float:
    """The click utility's appeal weight of the world that wrote ``logs`` (its ``config.json``).

    Raises:
        ValueError: ``config.json`` is missing, not JSON, or holds no such weight.
    """
    path = Path(logs) / "config.json"
    try:
        config = json.loads(path.read_text())
        weight = config["env_config"]["world"]["choice"]["appeal_weight"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path}: expected the logs' config with env_config.world.choice.appeal_weight ({err!r})"
        ) from None
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight == weight:
        raise ValueError(f"{path}: appeal_weight must be a number, got {weight!r}")
    return float(weight)


def asymmetry_table(logs: str, seeds: list[int], cold_item_fraction: float) -> list[dict]:
    """One record per (seed, variant): point and interval of every ``SEGMENTS`` metric, and the
    paired difference of the 'warm items only' variant against 'no item'."""
    from recsim_llm.lm import evaluate as E
    from recsim_llm.lm.logs import load_logs, split_logs

    data = load_logs(logs)
    hidden = E.load_hidden(logs, data)
    if hidden is None:
        raise ValueError(
            f"--logs {logs!r}: no hidden fields (write them with recsim-llm write-logs)"
        )
    appeal_weight = logged_appeal_weight(logs)
    out = []
    for seed in seeds:
        split = split_logs(data, "user", 0.1, 0.2, cold_item_fraction, seed)
        cold = split.cold_mask(data.n_items)
        ev = E.build_eval_set(data, split, "click", 2000, seed)
        shown = data.slates[ev.rows]
        train_items = data.slates[split.train].ravel()
        train_appeal = hidden["appeal"][split.train].ravel()
        seen = np.bincount(train_items, minlength=data.n_items) > 0
        mean_appeal = float(train_appeal.mean())
        util, app = hidden["utility"][ev.rows], hidden["appeal"][ev.rows]
        known = appeal_known(shown, seen, cold)
        res = {
            v: E.score_metrics(
                ev, oracle_scores(util, app, appeal_weight, k, mean_appeal), shown_only=True
            )
            for v, k in known.items()
        }
        for v in VARIANTS:
            rec = {"seed": seed, "variant": v}
            for seg, m in SEGMENTS:
                point, boot = res[v][seg][m]
                rec[f"{seg}:{m}"] = [point, *E.interval(boot)]
                if v == VARIANTS[1]:
                    base_point, base_boot = res[VARIANTS[2]][seg][m]
                    rec[f"{seg}:{m}:minus_none"] = [
                        point - base_point,
                        *E.interval(boot - base_boot),
                    ]
            out.append(rec)
    return out


def _cell(v: list[float]) -> str:
    return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", required=True, help="logs from recsim-llm write-logs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--cold-item-fraction",
        type=float,
        default=0.3,
        help="share of items held out as cold (the encoder's split setting; default 0.3)",
    )
    args = parser.parse_args(argv)
    if not 0.0 < args.cold_item_fraction < 1.0:
        parser.error(f"--cold-item-fraction must be in (0, 1), got {args.cold_item_fraction}")
    if any(seed < 0 for seed in args.seeds):
        parser.error(f"--seeds must be non-negative split seeds, got {args.seeds}")
    impressions = Path(args.logs) / "impressions.jsonl"
    if not impressions.is_file():
        parser.error(f"--logs {args.logs!r} is not a logs directory (no impressions.jsonl)")
    with impressions.open() as f:
        if '"hidden"' not in f.readline():
            parser.error(f"--logs {args.logs!r}: no hidden fields (write-logs records them)")
    try:
        logged_appeal_weight(args.logs)
    except ValueError as err:
        parser.error(str(err))
    rows = asymmetry_table(args.logs, args.seeds, args.cold_item_fraction)
    print("| split | appeal term | all rows | cold-item rows | cold-item rows, among new items |")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = [_cell(r[f"{seg}:{m}"]) for seg, m in SEGMENTS]
        print(f"| {r['seed']} | {r['variant']} | " + " | ".join(cells) + " |")
        if r["variant"] == VARIANTS[-1]:
            warm = next(w for w in rows if w["seed"] == r["seed"] and w["variant"] == VARIANTS[1])
            diffs = [_cell(warm[f"{seg}:{m}:minus_none"]) for seg, m in SEGMENTS]
            print(f"| {r['seed']} | *warm only − none* | " + " | ".join(diffs) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
