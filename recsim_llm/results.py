"""Tidy result files, written atomically.

A run directory holds ``results.csv`` (long format: ``run_id, policy, scenario, seed, step,
metric, value``; ``step = -1`` marks a whole-session metric), ``config.json`` (the full config of
the run), ``system.json`` (versions and machine) and the marker ``.recsim-llm.json``. It is
written by ``recsim_llm.io`` (the one writer): staged in a hidden sibling and swapped in whole.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsim_llm.io import json_text, write_directory

RESULT_COLUMNS = ("run_id", "policy", "scenario", "seed", "step", "metric", "value")
SESSION_STEP = -1
"""``step`` value of rows that summarise a whole session."""


@dataclass(frozen=True)
class ResultRow:
    """One tidy observation."""

    run_id: str
    policy: str
    scenario: str
    seed: int
    step: int
    metric: str
    value: float


def rows_to_csv(rows: Iterable[ResultRow]) -> str:
    """Tidy rows as CSV text with the standard header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for r in rows:
        writer.writerow(
            [r.run_id, r.policy, r.scenario, r.seed, r.step, r.metric, repr(float(r.value))]
        )
    return buffer.getvalue()


def system_info() -> dict[str, Any]:
    """Versions and machine facts recorded beside every run."""
    import numpy

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": numpy.__version__,
    }
    for name in ("gymnasium", "stable_baselines3", "torch", "transformers", "peft"):
        module = sys.modules.get(name)
        if module is not None:
            info[name] = getattr(module, "__version__", "unknown")
    return info


def write_run(
    run_dir: str | Path,
    rows: Iterable[ResultRow],
    config: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    files: Mapping[str, str | bytes] | None = None,
) -> Path:
    """Write a run directory (results.csv, config.json, system.json, extra ``files``: plain
    file names mapped to text or bytes).

    Written through ``recsim_llm.io.output_directory`` (kind ``"run"``): built in a hidden staging
    sibling, marked, and swapped in as a whole, so a reader never sees files of two runs mixed.
    ``run_dir`` must be missing, empty, or a run folder written by recsim-llm (``OutputError``
    otherwise). Returns the path.
    """
    for name in files or {}:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"files: {name!r} must be a plain file name")
    csv_text = rows_to_csv(rows)
    contents = {
        "config.json": json_text(dict(config)),
        "system.json": json_text({**system_info(), **dict(extra or {})}),
        **dict(files or {}),
        "results.csv": csv_text,
    }
    return write_directory(run_dir, contents, "run")


def read_results(path: str | Path) -> list[ResultRow]:
    """Rows of a ``results.csv`` (or of ``run_dir/results.csv``), checking the header."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = tuple(next(reader, ()))
        if header != RESULT_COLUMNS:
            raise ValueError(f"{path}: header must be {','.join(RESULT_COLUMNS)}, got {header}")
        rows = []
        for line_no, rec in enumerate(reader, start=2):
            if len(rec) != len(RESULT_COLUMNS):
                raise ValueError(f"{path}:{line_no}: expected {len(RESULT_COLUMNS)} fields")
            try:
                rows.append(
                    ResultRow(
                        rec[0], rec[1], rec[2], int(rec[3]), int(rec[4]), rec[5], float(rec[6])
                    )
                )
            except ValueError as err:
                raise ValueError(f"{path}:{line_no}: {err}") from None
    return rows
