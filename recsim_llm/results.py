"""Tidy result files, written atomically.

A run directory holds ``results.csv`` (long format: ``run_id, policy, scenario, seed, step,
metric, value``; ``step = -1`` marks a whole-session metric), ``config.json`` (the full config of
the run) and ``system.json`` (versions and machine). Every file goes to a temp file in the same
directory and is renamed into place, so a reader never sees a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temp file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        share_file_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, content: str) -> None:
    """``content`` as UTF-8 text, atomically."""
    atomic_write_bytes(path, content.encode("utf-8"))


def share_file_mode(path: str | Path, directory: bool = False) -> None:
    """Give a temp file (or directory) the mode a plainly created one would have.

    ``mkstemp`` makes 0600 files and ``mkdtemp`` 0700 directories; results are meant to be shared.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)


def atomic_write_json(path: str | Path, payload: Any) -> None:
    """``payload`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


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
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write a run directory (results.csv, config.json, system.json, extra ``files``).

    The files are written into a temporary sibling directory which then replaces ``run_dir`` as
    a whole, so a reader never sees files of two different runs mixed (a hard kill between the
    two renames of a replacement leaves the previous run in a ``.NAME.old-*`` sibling). Returns
    the path.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"out must be a directory, but {run_dir} is a file")
    csv_text = rows_to_csv(rows)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.", suffix=".tmp"))
    try:
        share_file_mode(staging, directory=True)
        atomic_write_json(staging / "config.json", dict(config))
        atomic_write_json(staging / "system.json", {**system_info(), **dict(extra or {})})
        for name, content in (files or {}).items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"files: {name!r} must be a plain file name")
            atomic_write_text(staging / name, content)
        atomic_write_text(staging / "results.csv", csv_text)
        if run_dir.exists():
            old = run_dir.with_name(f".{run_dir.name}.old-{os.getpid()}")
            os.replace(run_dir, old)
            os.replace(staging, run_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, run_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return run_dir


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
