"""``recsim-llm fidelity``: calibrate on MovieLens, simulate, compare, write the report.

The ``--out`` folder and the data are checked before the calibration runs: an ``--out`` that is
not ours (``recsim_llm.io.check_out_dir``) and data the report cannot use
(``fidelity.check_report_data``) fail at once with a message naming the path and the reason.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from recsim_llm.io import check_out_dir
from recsim_llm.movielens.cache import calibrate
from recsim_llm.movielens.data import load_movielens
from recsim_llm.movielens.fidelity import check_report_data, compute_fidelity
from recsim_llm.movielens.report import write_report
from recsim_llm.movielens.spec import CalibrationConfig

__all__ = ["HELP", "add_arguments", "run"]

HELP = "Compare a MovieLens-calibrated world with held-out real logs (fidelity report)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recsim-llm fidelity``."""
    add = parser.add_argument
    add("--data-dir", required=True, help="MovieLens-100K directory (GroupLens or RecBole layout)")
    add("--out", required=True, help="output directory for the report")
    add("--seed", type=int, default=0, help="seed of negatives and simulation")
    add("--negatives", type=int, default=100, help="sampled negatives per user for AUC")
    add(
        "--slate-size",
        type=int,
        default=None,
        help="movies shown per simulated step (default: the calibration's logging slate size)",
    )
    add("--max-steps", type=int, default=3000, help="cap on simulated steps per user")
    add("--cache-dir", default=None, help="optional on-disk cache of the calibration fit")
    add("--no-figures", action="store_true", help="skip the PNG figures")


def _command_line(args: argparse.Namespace) -> str:
    """The command as a user would type it (only options that differ from the defaults)."""
    parts = ["recsim-llm", "fidelity", "--data-dir", str(args.data_dir), "--out", str(args.out)]
    for flag, value, default in (
        ("--seed", args.seed, 0),
        ("--negatives", args.negatives, 100),
        ("--slate-size", args.slate_size, None),
        ("--max-steps", args.max_steps, 3000),
        ("--cache-dir", args.cache_dir, None),
    ):
        if value != default:
            parts += [flag, str(value)]
    if args.no_figures:
        parts.append("--no-figures")
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    """``recsim-llm fidelity``: calibrate, simulate, compare, write the report."""
    start = time.perf_counter()
    check_out_dir(args.out, "fidelity")
    config = CalibrationConfig()
    check_report_data(load_movielens(args.data_dir), config)
    calibration = calibrate(args.data_dir, config, cache_dir=args.cache_dir)
    result = compute_fidelity(
        calibration,
        negatives=args.negatives,
        seed=args.seed,
        slate_size=args.slate_size,
        max_steps=args.max_steps,
    )
    seconds = time.perf_counter() - start
    paths = write_report(
        result, args.out, _command_line(args), seconds, figures=not args.no_figures
    )
    print(Path(paths["markdown"]).read_text())
    return 0
