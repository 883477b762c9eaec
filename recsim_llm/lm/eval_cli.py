"""``recsim-llm encoder-eval``: held-out table of encoders vs baselines, intervals over users."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

HELP = (
    "Evaluate fine-tuned encoders on held-out users and items against leak-free popularity, "
    "zero-shot MiniLM, a hashed bag-of-words logistic scorer and the env's bow state "
    "(per-row and pooled AUC, NDCG@10, HR@10, bootstrap intervals over users)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--logs", required=True, help="log directory the encoders were trained on")
    parser.add_argument(
        "--encoders",
        nargs="+",
        required=True,
        help="encoder directories (several fine-tuning seeds are summarised as mean ± spread)",
    )
    parser.add_argument("--out", required=True, help="directory for results.json and results.md")
    parser.add_argument(
        "--max-rows",
        type=int,
        default=2000,
        help="test rows sampled for the 'all' segment (0 = all); every cold-item and first-step "
        "test row is evaluated as well",
    )
    parser.add_argument(
        "--n-boot", type=int, default=1000, help="bootstrap resamples of users (seeded)"
    )
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip popularity, zero-shot MiniLM and the bag-of-words baselines",
    )
    parser.add_argument(
        "--no-exact",
        action="store_true",
        help="skip the exact states (each history text through the LM: the slow part with "
        "--max-rows 0); the fast states and the baselines are still scored",
    )


def run(args: argparse.Namespace) -> int:
    from recsim_llm.io import claim_output

    with claim_output(args.out, "eval"):  # checked and held before any work
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from recsim_llm.lm.evaluate import evaluate_encoders, markdown_report

    if not Path(args.logs).is_dir():
        raise FileNotFoundError(f"--logs: directory {args.logs!r} does not exist")
    for enc in args.encoders:
        if not Path(enc).is_dir():
            raise FileNotFoundError(f"--encoders: directory {enc!r} does not exist")
    if args.max_rows < 0:
        raise ValueError(f"--max-rows must be >= 0, got {args.max_rows}")
    if args.n_boot < 10:
        raise ValueError(f"--n-boot must be >= 10, got {args.n_boot}")
    # The command as it can be rerun (rebuilt from the parsed options, not from sys.argv).
    parts = ["recsim-llm", "encoder-eval", "--logs", args.logs, "--encoders", *args.encoders]
    parts += ["--out", args.out, "--max-rows", str(args.max_rows), "--n-boot", str(args.n_boot)]
    parts += ["--no-baselines"] if args.no_baselines else []
    parts += ["--no-exact"] if args.no_exact else []
    command = " ".join(shlex.quote(p) for p in parts)
    result = evaluate_encoders(
        args.logs,
        args.encoders,
        args.out,
        args.max_rows,
        not args.no_baselines,
        args.n_boot,
        command=command,
        progress=True,
        exact=not args.no_exact,
    )
    print(markdown_report(result))
    return 0
