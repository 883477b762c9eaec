"""Few-shot cold start on the default world: held-out AUC/NDCG@10 after k = 0, 1, 2, 5, 10 steps.

Usage::

    python benchmarks/bench_fewshot.py --out FEWSHOT_DIR [--encoder DIR] [--users 256]

What it does (see ``recsim_llm.lm.fewshot``):

1. The encoder's training logs are rebuilt from its ``encoder.json`` (same world hash, seed, user
   slots and steps; or ``--train-logs DIR``) and split with its fine-tuning settings: the
   training rows give leak-free popularity and the ``bow`` scorer's weights; its cold items
   (never seen in training) are the ``new items``.
2. Fresh logs of the same world with another seed (``--eval-seed``) hold the new users: none of
   them is in the training logs.
3. Each new user's state after its first k logged steps (env-style replay), frozen, is scored on
   the user's steps ``max(k) .. max(k) + window - 1``; per-row AUC and NDCG@10 with bootstrap
   intervals over users.

Writes ``results.json``, ``results.md`` and ``fewshot.png`` into ``--out`` (an ``eval`` output of
``recsim_llm.io``: new, empty, or an earlier output of this kind) and prints the table. Made to
take a few minutes on 2 CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (eval kind)")
    parser.add_argument("--encoder", default="", help="encoder directory (default: shipped)")
    parser.add_argument("--train-logs", default="", help="the encoder's training logs")
    parser.add_argument("--users", type=int, default=256, help="user slots of the fresh logs")
    parser.add_argument("--steps", type=int, default=40, help="world steps of the fresh logs")
    parser.add_argument("--eval-seed", type=int, default=1, help="seed of the fresh logs")
    parser.add_argument("--ks", default="0,1,2,5,10", help="interaction counts k")
    parser.add_argument("--window", type=int, default=30, help="held-out steps per user")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--no-zero-shot", action="store_true", help="skip zero-shot MiniLM")
    args = parser.parse_args(argv)

    from recsim_llm.config import EnvConfig
    from recsim_llm.io import check_out_dir
    from recsim_llm.lm.fewshot import (
        FewShotData,
        default_methods,
        fewshot_table,
        markdown_table,
        training_popularity,
        write_fewshot,
    )
    from recsim_llm.lm.logs import load_logs, split_logs, world_hash, write_behaviour_logs
    from recsim_llm.lm.model import set_threads
    from recsim_llm.lm.state import shipped_encoder_path
    from recsim_llm.lm.store import read_encoder_config

    check_out_dir(args.out, "eval")  # before any work
    ks = [int(k) for k in args.ks.split(",")]
    encoder = args.encoder or str(shipped_encoder_path())
    enc = read_encoder_config(encoder)
    ft, logs_rec = enc["finetune"], enc["logs"]
    config = EnvConfig()
    start = time.perf_counter()
    set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="recsim-llm-fewshot-") as tmp:
        if args.train_logs:
            train = load_logs(args.train_logs)
        else:
            if logs_rec.get("source") != "synthetic" or logs_rec.get("world_hash") != world_hash(
                config.world
            ):
                raise SystemExit(
                    f"--encoder {encoder}: trained on logs of another world "
                    f"({logs_rec}); pass its logs with --train-logs"
                )
            train = load_logs(
                write_behaviour_logs(
                    Path(tmp) / "train",
                    config,
                    n_users=int(logs_rec["n_users"]),
                    n_steps=int(logs_rec["n_steps"]),
                    seed=int(logs_rec["seed"]),
                )
            )
        if train.n_rows != logs_rec.get("n_rows"):
            raise SystemExit(
                f"training logs have {train.n_rows} rows, the encoder was trained on "
                f"{logs_rec.get('n_rows')}"
            )
        split = split_logs(
            train,
            ft["split"],
            ft["val_fraction"],
            ft["test_fraction"],
            ft["cold_item_fraction"],
            ft["seed"],
        )
        fresh = load_logs(
            write_behaviour_logs(
                Path(tmp) / "eval",
                config,
                n_users=args.users,
                n_steps=args.steps,
                seed=args.eval_seed,
            )
        )
    label = ft["label"]
    setup = FewShotData(
        data=fresh,
        cold_items=split.cold_items,
        popularity=training_popularity(train, split.train, split.cold_items, label),
        label=label,
        history_length=config.history_length,
    )
    methods = default_methods(
        setup,
        encoder,
        train,
        split.train,
        bow_dim=config.encoder_dim,
        bow_decay=config.history_decay,
        zero_shot=not args.no_zero_shot,
        n_threads=args.threads,
    )
    result = fewshot_table(setup, methods, ks, args.window, args.n_boot, progress=True)
    result["setup"].update(
        encoder=str(encoder),
        train_logs=logs_rec,
        eval_logs={"n_users": args.users, "n_steps": args.steps, "seed": args.eval_seed},
        command=" ".join(["python", "benchmarks/bench_fewshot.py", *(argv or sys.argv[1:])]),
        seconds=round(time.perf_counter() - start, 1),
        threads=args.threads,
    )
    write_fewshot(args.out, result, f"few-shot cold start: {Path(encoder).name}")
    print(markdown_table(result))
    print(json.dumps({k: v for k, v in result["setup"].items() if k != "train_logs"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
