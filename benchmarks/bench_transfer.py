"""Cross-domain transfer curve: the synthetic-world encoder on MovieLens-100K, zero-shot and
fine-tuned on 1%, 10%, 100% of the MovieLens training users, against the pretrained MiniLM
fine-tuned with the same budgets.

Usage::

    python benchmarks/bench_transfer.py --ml-logs ML_LOGS --work ENCODERS_DIR --out TABLE_DIR

``ML_LOGS`` comes from ``recsim-llm write-logs --movielens DATA_DIR --out ML_LOGS`` (label
``liked``: rating >= 4). Users are split once (seeded): 20% held out for the table, the rest in a
seeded order, a share p being the first ``ceil(p * n)`` of them (shares are nested). Every
fine-tune gets the same budget (``--rows`` training rows at most, ``--epochs``, its own 10%
validation users for early stopping, LoRA r=8 like the source encoder) and starts either from
``--source`` (``init_from``) or from the pretrained MiniLM. The held-out table: ``--per-user``
rows with a liked movie per held-out user; per-row AUC of the liked movie against the row's 19
unrated candidates and NDCG@10, with 95% bootstrap intervals over users; popularity (liked counts
of all training users) and zero-shot MiniLM beside. The fine-tuned encoders stay in ``--work``;
``--out`` gets ``results.json``, ``results.md`` and ``transfer.png`` (an ``eval`` output).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ml-logs", required=True, help="MovieLens logs (write-logs --movielens)")
    parser.add_argument("--work", required=True, help="folder for the fine-tuned encoders")
    parser.add_argument("--out", required=True, help="table folder (eval kind)")
    parser.add_argument("--source", default="", help="source encoder (default: shipped)")
    parser.add_argument("--shares", default="0.01,0.1,1", help="shares of training users")
    parser.add_argument(
        "--rows", type=int, default=384, help="training rows per fine-tune (0 = all)"
    )
    parser.add_argument(
        "--epochs", type=int, default=1, help="LM epochs per fine-tune (0 = heads only)"
    )
    parser.add_argument(
        "--fast-rows", type=int, default=192, help="distillation rows of the fast head"
    )
    parser.add_argument(
        "--fast-steps", type=int, default=200, help="optimiser steps of the fast head's fit"
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    parser.add_argument("--per-user", type=int, default=2, help="held-out rows per test user")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0, help="split and sampling seed")
    args = parser.parse_args(argv)

    from recsim_llm.io import atomic_write_bytes, check_out_dir
    from recsim_llm.lm.finetune import FinetuneConfig, finetune
    from recsim_llm.lm.logs import labels, load_logs
    from recsim_llm.lm.model import set_threads
    from recsim_llm.lm.state import shipped_encoder_path
    from recsim_llm.lm.transfer import (
        encoder_scores,
        heldout_rows,
        subset_users,
        user_split,
        zero_shot_scores,
    )

    check_out_dir(args.out, "eval")
    work = Path(args.work)
    shares = [float(s) for s in args.shares.split(",")]
    source = args.source or str(shipped_encoder_path())
    set_threads(args.threads)
    start = time.perf_counter()
    ml = load_logs(args.ml_logs)
    label = "liked"
    train_users, test_users = user_split(ml, 0.2, args.seed)
    rows = heldout_rows(ml, test_users, label, args.per_user, args.seed)
    train_rows = np.flatnonzero(np.isin(ml.user, train_users))
    pop = np.zeros(ml.n_items)
    y = labels(ml, label)[train_rows]
    np.add.at(pop, ml.slates[train_rows][y > 0], 1.0)
    scores = {"popularity": pop[np.maximum(ml.candidates[rows], 0)]}
    print(f"held-out rows {rows.size} of {test_users.size} users", flush=True)
    # Scores are kept in --work (keyed by the held-out rows), so an interrupted run resumes.
    memo = work / f"scores-{args.seed}-{args.per_user}.npz"
    saved = dict(np.load(memo)) if memo.is_file() else {}
    if "rows" in saved and not np.array_equal(saved["rows"], rows):
        saved = {}

    def remember(names: list[str], compute) -> list[np.ndarray]:
        """Saved scores under ``names``, or ``compute()`` (a list in that order), then saved."""
        if not all(n in saved for n in names):
            saved.update(zip(names, compute(), strict=True))
            work.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(memo, _npz({**saved, "rows": rows}))
        return [saved[n] for n in names]

    (scores["MiniLM zero-shot"],) = remember(["zero-shot"], lambda: [zero_shot_scores(ml, rows)])
    exact, fast = remember(
        ["source exact", "source fast"],
        lambda: list(encoder_scores(ml, rows, source, args.threads).values()),
    )
    scores["synthetic encoder zero-shot (exact)"] = exact
    scores["synthetic encoder zero-shot (fast)"] = fast
    runs = []
    order = [
        (s, i)
        for s in sorted(shares, key=lambda s: (s != min(shares), -s))
        for i in ("synthetic", "pretrained")
    ]
    for share, init in order:
        users = train_users[: max(2, math.ceil(share * train_users.size))]
        sub = subset_users(ml, users)
        if True:
            cfg = FinetuneConfig(
                label=label,
                split="user",
                val_fraction=0.1,
                test_fraction=0.0,
                cold_item_fraction=0.0,
                max_train_rows=args.rows,
                max_val_rows=64,
                epochs=args.epochs,
                patience=0,
                lr=args.lr,
                fast_rows=args.fast_rows,
                fast_epochs=args.fast_steps,
                threads=args.threads,
                seed=args.seed,
                init_from=source if init == "synthetic" else "",
            )
            out = work / f"{init}-{share:g}"
            t0 = time.perf_counter()
            done = out / "encoder.json"
            if not (done.is_file() and json.loads(done.read_text())["finetune"] == asdict(cfg)):
                finetune(sub, out, cfg, progress=True)
                for key in [k for k in saved if k.startswith(f"{out.name} ")]:
                    del saved[key]
            seconds = time.perf_counter() - t0
            name = f"from {init}, {share:.0%} users"
            exact, fast = remember(
                [f"{out.name} exact", f"{out.name} fast"],
                lambda o=out: list(encoder_scores(ml, rows, o, args.threads).values()),
            )
            scores[f"{name} (exact)"], scores[f"{name} (fast)"] = exact, fast
            runs.append(
                {
                    "init": init,
                    "share": share,
                    "users": int(users.size),
                    "path": str(out),
                    "train_seconds": round(seconds, 1),
                }
            )
            print(f"{name}: {seconds:.0f} s", flush=True)
            _write(
                args,
                ml,
                rows,
                scores,
                label,
                runs,
                source,
                test_users,
                train_users,
                start,
                shares,
                argv,
            )
    return 0


def _npz(arrays: dict) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _write(
    args, ml, rows, scores, label, runs, source, test_users, train_users, start, shares, argv
) -> None:
    """The table of what is measured so far (rewritten after each fine-tune)."""
    from recsim_llm.io import json_text, write_directory
    from recsim_llm.lm.transfer import score_table

    table = score_table(ml, rows, scores, label, args.n_boot, args.seed)
    result = {
        "table": table,
        "runs": runs,
        "setup": {
            "ml_logs": args.ml_logs,
            "source": source,
            "held_out_users": int(test_users.size),
            "held_out_rows": int(rows.size),
            "train_users": int(train_users.size),
            "budget": {
                "rows": args.rows,
                "epochs": args.epochs,
                "lr": args.lr,
                "fast_rows": args.fast_rows,
                "fast_steps": args.fast_steps,
            },
            "command": " ".join(
                ["python", "benchmarks/bench_transfer.py", *(argv or sys.argv[1:])]
            ),
            "seconds": round(time.perf_counter() - start, 1),
        },
    }
    md = ["| method | per-row AUC [95% CI] | NDCG@10 [95% CI] |", "|---|---|---|"]
    for name, r in table.items():
        md.append(
            f"| {name} | {r['auc']:.3f} [{r['auc_lo']:.3f}, {r['auc_hi']:.3f}] | "
            f"{r['ndcg@10']:.3f} [{r['ndcg@10_lo']:.3f}, {r['ndcg@10_hi']:.3f}] |"
        )
    md.append("")
    md.append(f"{rows.size} held-out rankings of {test_users.size} users")
    write_directory(
        args.out,
        {
            "results.json": json_text(result),
            "results.md": "\n".join(md) + "\n",
            "transfer.png": plot(table, shares),
        },
        "eval",
    )
    print("\n".join(md))
    print(json.dumps(result["setup"]), flush=True)


def plot(table: dict, shares: list[float]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for init, colour in (("synthetic", "tab:blue"), ("pretrained", "tab:orange")):
        for mode, style in (("exact", "-"), ("fast", "--")):
            done = [s for s in shares if f"from {init}, {s:.0%} users ({mode})" in table]
            pts = [table[f"from {init}, {s:.0%} users ({mode})"] for s in done]
            if not pts:
                continue
            ax.errorbar(
                done,
                [p["auc"] for p in pts],
                yerr=[[p["auc"] - p["auc_lo"] for p in pts], [p["auc_hi"] - p["auc"] for p in pts]],
                ls=style,
                marker="o",
                color=colour,
                capsize=3,
                label=f"fine-tuned from {init} ({mode})",
            )
    for name, colour in (
        ("popularity", "tab:purple"),
        ("MiniLM zero-shot", "tab:green"),
        ("synthetic encoder zero-shot (exact)", "tab:red"),
    ):
        ax.axhline(table[name]["auc"], color=colour, ls=":", label=name)
    ax.set_xscale("log")
    ax.set_xticks(shares, [f"{s:.0%}" for s in shares])
    ax.set_xlabel("share of MovieLens training users")
    ax.set_ylabel("held-out per-row AUC (liked vs unrated)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


if __name__ == "__main__":
    raise SystemExit(main())
