"""``recsim-llm encoder-eval``: held-out AUC / NDCG@10 / HR@10 of encoders and baselines."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Evaluate fine-tuned encoders against zero-shot MiniLM, bag-of-words and popularity."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--logs", required=True, help="log directory the encoders were trained on")
    parser.add_argument("--encoders", nargs="+", required=True, help="encoder directories")
    parser.add_argument("--out", required=True, help="directory for results.json and results.md")
    parser.add_argument("--max-rows", type=int, default=400, help="test rows scored (0 = all)")
    parser.add_argument(
        "--no-baselines", action="store_true", help="skip zero-shot, bag-of-words and popularity"
    )


def run(args: argparse.Namespace) -> int:
    from recsim_llm.io import claim_output

    with claim_output(args.out, "eval"):  # checked and held before any work
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from recsim_llm.lm.evaluate import evaluate_encoders, markdown_table

    if not Path(args.logs).is_dir():
        raise FileNotFoundError(f"--logs: directory {args.logs!r} does not exist")
    for enc in args.encoders:
        if not Path(enc).is_dir():
            raise FileNotFoundError(f"--encoders: directory {enc!r} does not exist")
    if args.max_rows < 0:
        raise ValueError(f"--max-rows must be >= 0, got {args.max_rows}")
    result = evaluate_encoders(
        args.logs, args.encoders, args.out, args.max_rows, not args.no_baselines
    )
    print(markdown_table(result["table"]))
    return 0
