"""Every read of a run directory for the dashboard, and the summaries its pages draw (no Streamlit).

All file names, column names and metric names the pages rely on are the constants below, so a
change of the evaluation's formats is a change here only. A run that cannot be read whole raises
``RunError`` with one message naming the file (and the row where there is one); pages show that
message and nothing else, never partial numbers.

Safety: runs are only read under the roots the app was started with. ``find_runs`` walks a root
without following symbolic links, and every file is checked to resolve inside its root before it
is opened (``RunError`` otherwise).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsim_llm import stats
from recsim_llm.evaluation import DRIFT_METRICS
from recsim_llm.io import is_hidden
from recsim_llm.results import RESULT_COLUMNS, SESSION_STEP
from recsim_llm.stats import MIN_RELIABLE_RUNS

# -- files ----------------------------------------------------------------------------------------
RESULTS_FILE = "results.csv"
CONFIG_FILE = "config.json"
SYSTEM_FILE = "system.json"
STEP_LOG_FILES = ("steps.parquet",)
"""Per-step logs (one row per user-step, ``recsim_llm.steplog``), the first present wins."""

# -- results.csv columns --------------------------------------------------------------------------
COL_RUN_ID, COL_POLICY, COL_SCENARIO, COL_SEED, COL_STEP, COL_METRIC, COL_VALUE = RESULT_COLUMNS
COL_STRENGTH = "strength"
"""Optional column: the perturbation strength of a robustness scenario."""
COL_BASE = "scenario_base"
"""Optional column: the battery item (scenario name without its strength)."""
COL_RUN = "run"
"""Added on load: the run directory's label in the sidebar (several runs can be overlaid)."""
STRENGTH_SEPARATOR = "@"
"""Without the optional columns, ``obs-noise@0.5`` is battery item ``obs-noise``, strength 0.5
(``recsim-llm evaluate`` keeps the spec as given as the scenario name, ``recsim_llm.scenarios``)."""
CONFIG_STRENGTHS = "scenario_strengths"
"""Optional config.json key: ``{scenario: {"base": item, "strength": x}}``."""
UNPERTURBED = "default"
"""The unperturbed scenario (strength 0) robustness differences are taken against."""

# -- metrics (results.csv ``metric``; written by ``recsim_llm.evaluation`` and ``recsim_llm.grid``)
M_RETURN = "return"
M_SCORE = "normalised_score"
"""Session score, random = 0 and oracle = 1 (``grid.add_reference_scores``, needs both
policies in the grid); the overview sorts by it when present."""
M_REGRET = "regret"
M_CTR = "ctr"
M_CLICKS = "clicks"
M_DRIFT_BEFORE, M_DRIFT_AFTER, M_STEPS_TO_RECOVER = DRIFT_METRICS
"""Shift scenarios only: ``reward_before_shift``, ``reward_after_shift``, ``steps_to_recover``."""
M_FIRST_K_CTR = "ctr_first_k"
M_STEPS_TO_FIRST_CLICK = "steps_to_first_click"
S_REWARD = "reward"
S_CLICK_RATE = "click_rate"
S_SATISFACTION = "true_satisfaction"
S_DRIFT = "true_interest_drift"
S_NEW_ITEM_CLICKS = "new_item_click_rate"
S_ACTIVE = "active_users"

METRIC_TITLES = {
    M_RETURN: "session return (minutes watched)",
    M_SCORE: "normalised score (random = 0, oracle = 1)",
    M_CTR: "CTR (clicks per shown slate)",
    M_CLICKS: "clicks per session",
    "session_length": "session length (steps)",
    "churned": "churned (share of users)",
    "final_satisfaction": "final hidden satisfaction (0-1)",
    "mean_satisfaction": "mean hidden satisfaction over the session (0-1)",
    "diversity": "diversity (1 - mean pairwise cosine in a slate, 0-1)",
    "coverage": "catalog coverage (share of items shown)",
    "novelty": "novelty (mean self-information, bits)",
    "popularity_bias": "popularity bias (shown / catalog mean clicks, ratio)",
    M_REGRET: "regret (oracle return - return, minutes)",
    M_STEPS_TO_RECOVER: "steps to recover after the shift (steps)",
    M_DRIFT_BEFORE: "reward per step before the shift (minutes per step)",
    M_DRIFT_AFTER: "reward per step after the shift (minutes per step)",
    M_FIRST_K_CTR: "CTR over a session's first 10 steps (clicks per step)",
    M_STEPS_TO_FIRST_CLICK: "steps to a new user's first click (steps)",
    S_REWARD: "reward (minutes watched per step)",
    S_CLICK_RATE: "click rate (clicks per user-step)",
    S_SATISFACTION: "hidden satisfaction (0-1)",
    S_DRIFT: "hidden interest drift (1 - cosine to start)",
    S_NEW_ITEM_CLICKS: "clicks on new items (per user-step)",
    S_ACTIVE: "active users (sessions still running)",
}

# -- per-step log columns (``recsim_llm.steplog.STEPLOG_COLUMNS``) --------------------------------
LOG_POLICY, LOG_SCENARIO, LOG_SEED = COL_POLICY, COL_SCENARIO, COL_SEED
LOG_USER = "user"
LOG_STEP = "step"
LOG_CANDIDATES = "candidates"
"""List of candidate item ids offered to the policy."""
LOG_SCORES = "scores"
"""List of the policy's scores aligned with ``candidates``; null when the policy has no
``scores(observation)`` (every built-in policy but ``encoder-greedy``)."""
LOG_SLATE = "slate"
"""List of the shown item ids, in slate order."""
LOG_CLICK = "click"
"""Bool: whether the user clicked."""
LOG_POSITION = "position"
"""Clicked slate position (0-based), -1 for no click."""
LOG_ITEM = "item"
"""Clicked item id, -1 for no click."""
LOG_WATCH = "watch_time"
HIDDEN_PREFIX = "hidden_"
LOG_SATISFACTION = "hidden_satisfaction"
LOG_INTEREST = "hidden_interest"
"""List: the user's hidden interest vector when the slate was shown."""
LOG_STATE = "state"
"""List: the encoder part of ``obs['user']`` the policy acted on (every encoder; optional: step
logs written before it lack it)."""
LOG_EXPLANATION = "explanation"
"""List of one explanation sentence per slate item, null unless the run's encoder is
``lm-fast`` and ``--no-explain`` was not given (optional, as ``LOG_STATE``)."""
REPLAY_COLUMNS = (LOG_USER, LOG_STEP, LOG_CANDIDATES, LOG_SLATE, LOG_POSITION)

# -- commands that produce what a page needs (shown when it is missing) ---------------------------
# Each is a real command line (tests/test_dashboard.py parses every one with the CLI's parser).
CMD_EVALUATE = (
    "recsim-llm evaluate --policies random,popularity,mix:0.2,oracle "
    "--scenarios default,taste-shift,new-items --seeds 0,1,2,3,4 --out runs/NAME"
)
CMD_SHIFT = (
    "recsim-llm evaluate --policies random,popularity,linucb,linucb-hybrid,myopic,oracle "
    "--scenarios default,taste-shift --seeds 0,1,2,3,4 --out runs/NAME"
)
"""taste-shift shifts at step 40: the horizon (default 100) must be longer. ``linucb-hybrid``
(a per-user model that forgets) is the learner that follows the shift (docs/benchmarks.md)."""
CMD_COLD = (
    "recsim-llm evaluate --policies random,popularity,myopic,oracle "
    "--scenarios default,new-items,cold-start --seeds 0,1,2,3,4 --out runs/NAME"
)
CMD_GRID = CMD_EVALUATE
"""``normalised_score`` and ``regret`` need ``random`` and ``oracle`` in the grid."""
CMD_ROBUSTNESS = (
    "recsim-llm evaluate --policies random,popularity,myopic,oracle "
    "--scenarios default,obs-noise@0.5,obs-noise@1.0,obs-noise@2.0 --seeds 0,1,2,3,4 "
    "--out runs/NAME"
)
CMD_STEP_LOGS = (
    "recsim-llm evaluate --policies random,popularity,myopic,oracle "
    "--scenarios default,taste-shift --seeds 0,1,2 --log-fraction 0.1 --out runs/NAME"
)
CMD_BOW_COLD = (
    "recsim-llm evaluate --policies random,popularity,myopic,oracle "
    "--scenarios default,new-items,cold-start --seeds 0,1,2,3,4 --encoder bow --out runs/NAME-bow"
)
"""With ``CMD_COLD`` (the built-in scenarios' encoder is ``lm-fast``), a non-LM run of the same
grid: the cold-start page's LM against non-LM comparison."""
COMMANDS = (
    CMD_EVALUATE,
    CMD_SHIFT,
    CMD_COLD,
    CMD_GRID,
    CMD_ROBUSTNESS,
    CMD_STEP_LOGS,
    CMD_BOW_COLD,
)


class RunError(ValueError):
    """A run directory that cannot be read whole; the message names the file (and row)."""


# -- finding runs ---------------------------------------------------------------------------------
def find_runs(root: str | Path) -> list[Path]:
    """Run directories (holding a results.csv) under ``root``, newest first.

    Hidden folders and everything under them are skipped: a writer's staging (``.NAME.tmp-*``)
    and previous-version (``.NAME.old-*``) siblings are never runs (see ``recsim_llm.io``).
    Symbolic links to folders are not followed; a run whose results.csv leads outside the root
    is listed, and refused when read (``check_inside``).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    runs: dict[Path, float] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not is_hidden(d)]  # never descend into them
        if RESULTS_FILE in filenames:
            run = Path(dirpath)
            try:
                runs[run] = (run / RESULTS_FILE).lstat().st_mtime
            except OSError:  # replaced while we looked
                continue
    return sorted(runs, key=runs.__getitem__, reverse=True)


def run_labels(roots: Sequence[str | Path]) -> dict[str, tuple[Path, Path]]:
    """Label shown in the sidebar -> (root, run directory), for every run under ``roots``."""
    labels: dict[str, tuple[Path, Path]] = {}
    names = [Path(r).resolve().name or str(r) for r in roots]
    for i, root in enumerate(roots):
        root = Path(root)
        prefix = "" if len(roots) == 1 else (names[i] if names.count(names[i]) == 1 else f"{i + 1}")
        for run in find_runs(root):
            rel = run.relative_to(root).as_posix()
            label = rel if not prefix else (prefix if rel == "." else f"{prefix}/{rel}")
            labels[label] = (root, run)
    return labels


def check_inside(path: Path, root: Path) -> Path:
    """``path`` resolved; ``RunError`` when it resolves outside ``root`` (a symlink escape)."""
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(Path(os.path.realpath(root))):
        raise RunError(f"{path}: refused, it leads outside the runs folder {root} (to {real})")
    return real


def stamp(path: Path) -> tuple[float, int]:
    """(mtime, size) of a file, the cache key of its loads ((0, -1) when missing)."""
    try:
        st = path.stat()
    except OSError:
        return 0.0, -1
    return st.st_mtime, st.st_size


# -- results.csv ----------------------------------------------------------------------------------
def _text(path: Path, root: Path | None) -> str:
    if root is not None:
        check_inside(path, root)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RunError(f"{path}: file not found") from None
    except OSError as err:
        raise RunError(f"{path}: cannot be read ({err.strerror})") from None
    if not raw:
        raise RunError(f"{path}: the file is empty (0 bytes)")
    nul = raw.find(b"\0")
    if nul >= 0:
        row = raw[:nul].count(b"\n") + 1
        raise RunError(f"{path} row {row}: binary data (a NUL byte), not a text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        row = raw[: err.start].count(b"\n") + 1
        raise RunError(f"{path} row {row}: not UTF-8 text (byte {err.start})") from None


def _float_text(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _check_fields(text: str, n: int, path: Path) -> None:
    """Every row has ``n`` fields (``RunError`` naming the first row that has not)."""
    lines = text[:-1].split("\n")
    if '"' not in text:
        counts = [line.count(",") + 1 for line in lines]
        if all(c == n for c in counts):
            return
        rows = enumerate(counts, start=1)
    else:
        rows = ((i, len(rec)) for i, rec in enumerate(csv.reader(io.StringIO(text)), start=1))
    for row, count in rows:
        if count != n:
            raise RunError(
                f"{path} row {row}: {count} fields, expected {n} (truncated or malformed row)"
            )


def load_results(run_dir: str | Path, root: str | Path | None = None) -> pd.DataFrame:
    """The tidy table of a run, checked row by row.

    Row numbers in messages are the file's line numbers (the header is row 1). Raises
    ``RunError`` for a missing, empty, binary, truncated or malformed file: wrong header, a row
    with the wrong number of fields, a seed or step that is not an integer, a value that is not a
    finite number, an empty name, or a repeated (policy, scenario, seed, step, metric).
    """
    path = Path(run_dir) / RESULTS_FILE
    text = _text(path, Path(root) if root is not None else None)
    header_line = text.split("\n", 1)[0].rstrip("\r")
    header = next(csv.reader([header_line]), [])
    missing = [c for c in RESULT_COLUMNS if c not in header]
    if missing:
        raise RunError(
            f"{path} row 1: the header lacks {', '.join(missing)} "
            f"(expected {','.join(RESULT_COLUMNS)}, got {header_line[:120]!r})"
        )
    if "\n" not in text or not text.split("\n", 1)[1].strip():
        raise RunError(f"{path}: a header but no rows")
    n_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if not text.endswith("\n"):
        raise RunError(f"{path} row {n_lines}: the last row has no line end (file truncated?)")
    _check_fields(text, len(header), path)
    try:
        table = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise RunError(f"{path}: malformed CSV ({err})") from None
    rows = np.arange(len(table)) + 2
    out = pd.DataFrame({c: table[c] for c in (COL_RUN_ID, COL_POLICY, COL_SCENARIO, COL_METRIC)})
    for col in (COL_POLICY, COL_SCENARIO, COL_METRIC):
        empty = (table[col].str.strip() == "").to_numpy()
        if empty.any():
            raise RunError(f"{path} row {rows[empty.argmax()]}: empty {col}")
    for col in (COL_SEED, COL_STEP):
        num = pd.to_numeric(table[col], errors="coerce")
        bad = (num.isna() | (num != np.floor(num))).to_numpy()
        if bad.any():
            i = bad.argmax()
            raise RunError(f"{path} row {rows[i]}: {col} {table[col].iat[i]!r} is not an integer")
        out[col] = num.astype(np.int64)
    if (out[COL_STEP] < SESSION_STEP).any():
        i = int((out[COL_STEP] < SESSION_STEP).to_numpy().argmax())
        raise RunError(f"{path} row {rows[i]}: step {out[COL_STEP].iat[i]} is below {SESSION_STEP}")
    value = pd.to_numeric(table[COL_VALUE], errors="coerce")
    bad = ~np.isfinite(value.to_numpy(dtype=np.float64))
    if bad.any():
        i = bad.argmax()
        raw = table[COL_VALUE].iat[i]
        what = "is not a number" if _float_text(raw) is None else "is not finite"
        raise RunError(f"{path} row {rows[i]}: value {raw!r} {what}")
    out[COL_VALUE] = value.astype(np.float64)
    if COL_STRENGTH in table.columns:
        strength = pd.to_numeric(table[COL_STRENGTH].replace("", np.nan), errors="coerce")
        bad = (strength.isna() & (table[COL_STRENGTH] != "")).to_numpy()
        if bad.any():
            i = bad.argmax()
            raise RunError(
                f"{path} row {rows[i]}: strength {table[COL_STRENGTH].iat[i]!r} is not a number"
            )
        out[COL_STRENGTH] = strength.astype(np.float64)
    if COL_BASE in table.columns:
        out[COL_BASE] = table[COL_BASE]
    key = [COL_RUN_ID, COL_POLICY, COL_SCENARIO, COL_SEED, COL_STEP, COL_METRIC]
    dup = out.duplicated(subset=key, keep=False).to_numpy()
    if dup.any():
        first = out[dup].groupby(key, sort=False).head(2).index[:2]
        raise RunError(
            f"{path} row {rows[first[1]]}: repeats row {rows[first[0]]} "
            "(same run_id, policy, scenario, seed, step and metric)"
        )
    return out


def load_json(path: Path, root: Path | None = None) -> dict[str, Any] | None:
    """A JSON object file; None when missing, ``RunError`` naming the file when corrupt."""
    if not path.exists() and not path.is_symlink():
        return None
    text = _text(path, root)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise RunError(f"{path} row {err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


@dataclass
class Run:
    """One run directory, read whole."""

    label: str
    path: Path
    table: pd.DataFrame
    config: dict[str, Any] | None = None
    system: dict[str, Any] | None = None
    step_log: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_run(label: str, run_dir: str | Path, root: str | Path) -> Run:
    """results.csv, config.json and system.json of a run (the latter two optional)."""
    run_dir, root = Path(run_dir), Path(root)
    table = load_results(run_dir, root)
    table.insert(0, COL_RUN, label)
    config = load_json(run_dir / CONFIG_FILE, root)
    system = load_json(run_dir / SYSTEM_FILE, root)
    return Run(label, run_dir, table, config, system, step_log_path(run_dir))


def combine(runs: Iterable[Run]) -> pd.DataFrame:
    """The tables of several runs, one below the other (``COL_RUN`` tells them apart)."""
    tables = [r.table for r in runs]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


# -- per-step logs --------------------------------------------------------------------------------
def step_log_path(run_dir: Path) -> Path | None:
    for name in STEP_LOG_FILES:
        if (run_dir / name).exists():
            return run_dir / name
    return None


def load_step_log(path: Path, root: str | Path | None = None) -> pd.DataFrame:
    """The per-step log (Parquet); ``RunError`` naming the file when it cannot be read."""
    if root is not None:
        check_inside(path, Path(root))
    try:
        if path.stat().st_size == 0:
            raise RunError(f"{path}: the file is empty (0 bytes)")
        log = pd.read_parquet(path)
    except RunError:
        raise
    except FileNotFoundError:
        raise RunError(f"{path}: file not found") from None
    except Exception as err:  # pyarrow raises many kinds for a damaged file
        raise RunError(f"{path}: not a readable Parquet file ({type(err).__name__})") from None
    missing = [c for c in (LOG_USER, LOG_STEP) if c not in log.columns]
    if missing:
        raise RunError(f"{path}: missing column(s) {', '.join(missing)}")
    return log


def log_sessions(log: pd.DataFrame) -> pd.DataFrame:
    """The (policy, scenario, seed, user) sessions in a step log, with their step counts."""
    keys = [c for c in (LOG_POLICY, LOG_SCENARIO, LOG_SEED) if c in log.columns] + [LOG_USER]
    return log.groupby(keys, sort=True).size().rename("steps").reset_index()


def session_log(log: pd.DataFrame, **key: Any) -> pd.DataFrame:
    """The rows of one session, sorted by step."""
    mask = np.ones(len(log), dtype=bool)
    for col, value in key.items():
        if col in log.columns:
            mask &= (log[col] == value).to_numpy()
    return log[mask].sort_values(LOG_STEP).reset_index(drop=True)


def _listed(value: Any) -> list | None:
    """A logged list cell as a list (None for a null cell)."""
    if value is None or (np.isscalar(value) and pd.isna(value)):
        return None
    return list(np.asarray(value).tolist())


def has_scores(log: pd.DataFrame) -> bool:
    """Whether any logged step carries the policy's candidate scores."""
    return LOG_SCORES in log.columns and log[LOG_SCORES].map(_listed).notna().any()


def clicked_position(row: pd.Series) -> int:
    """The clicked slate position (0-based) of a logged step, -1 without a click."""
    if LOG_POSITION in row and pd.notna(row[LOG_POSITION]):
        return int(row[LOG_POSITION])
    return -1


def slate_rows(row: pd.Series) -> pd.DataFrame:
    """One logged step as a table: every candidate with its score (NaN when the policy logged
    none; -inf, a masked candidate, as NaN), slate position (1-based) and click; best score
    first, else slate order."""
    candidates = _listed(row[LOG_CANDIDATES]) or []
    scores = _listed(row[LOG_SCORES]) if LOG_SCORES in row else None
    score = np.full(len(candidates), np.nan)
    if scores is not None:
        values = np.asarray(scores, dtype=np.float64)[: len(candidates)]
        score[: values.size] = np.where(np.isfinite(values), values, np.nan)
    slate = [int(x) for x in (_listed(row[LOG_SLATE]) or [])]
    click = clicked_position(row)
    explanations = _listed(row[LOG_EXPLANATION]) or [] if LOG_EXPLANATION in row else []
    out = []
    for i, item in enumerate(candidates):
        pos = slate.index(item) if item in slate else -1
        out.append(
            {
                "item": item,
                "score": score[i],
                "slate position": pos + 1 if pos >= 0 else None,
                "shown": pos >= 0,
                "clicked": pos >= 0 and pos == click,
                "explanation": str(explanations[pos]) if 0 <= pos < len(explanations) else "",
            }
        )
    for pos, item in enumerate(slate):  # a slate item that was not a candidate (repaired slate)
        if item not in candidates:
            out.append(
                {
                    "item": item,
                    "score": np.nan,
                    "slate position": pos + 1,
                    "shown": True,
                    "clicked": pos == click,
                    "explanation": str(explanations[pos]) if pos < len(explanations) else "",
                }
            )
    table = pd.DataFrame(out, columns=SLATE_COLUMNS)
    return table.sort_values(
        ["score", "slate position"], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)


SLATE_COLUMNS = ["item", "score", "slate position", "shown", "clicked", "explanation"]


def pca2(vectors: np.ndarray) -> np.ndarray:
    """2-D principal-component projection of row vectors (centred; zero-padded below rank 2)."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[:2].T
    if proj.shape[1] < 2:
        proj = np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))
    return proj


def trajectories(
    log: pd.DataFrame, column: str, users: Sequence[Any], key: dict[str, Any]
) -> pd.DataFrame:
    """2-D PCA paths of a vector column (hidden interest or encoder state) for ``users``."""
    parts = [session_log(log, **key, **{LOG_USER: u}) for u in users]
    part = pd.concat(parts, ignore_index=True) if parts else log.iloc[:0]
    if part.empty:
        return pd.DataFrame(columns=[LOG_USER, LOG_STEP, "pc1", "pc2"])
    vectors = np.stack([np.asarray(v, dtype=np.float64) for v in part[column]])
    proj = pca2(vectors)
    return pd.DataFrame(
        {
            LOG_USER: part[LOG_USER].astype(str),
            LOG_STEP: part[LOG_STEP],
            "pc1": proj[:, 0],
            "pc2": proj[:, 1],
        }
    )


# -- statistics (``recsim_llm.stats``) -----------------------------------------------------------
N_RESAMPLES = 2000
"""Bootstrap resamples per interval (fixed seed 0, so a page shows the same numbers each time)."""
CONFIDENCE = 0.95


def estimate(values: Sequence[float] | np.ndarray) -> stats.Estimate | None:
    """Mean over seeds with its percentile bootstrap interval (``stats.mean_estimate``): no
    interval with one seed, flagged unreliable under ``MIN_RELIABLE_RUNS`` seeds. None when no
    value is finite."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    return stats.mean_estimate(x, confidence=CONFIDENCE, n_resamples=N_RESAMPLES, rng=0)


def reliability(n: int) -> str:
    """What an interval over ``n`` seeds is worth, as tables show it ("" when reliable)."""
    if n <= 1:
        return "1 seed: no interval"
    if n < MIN_RELIABLE_RUNS:
        return f"{n} seeds: unreliable"
    return ""


def interval(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high) of seeds' values (``estimate``); low and high are NaN with one seed
    (no interval), all NaN without a finite value."""
    est = estimate(values)
    if est is None:
        return math.nan, math.nan, math.nan
    if not est.has_interval:
        return est.point, math.nan, math.nan
    return est.point, float(est.low), float(est.high)


INTERVAL_NAME = (
    f"mean over seeds, {CONFIDENCE:.0%} percentile-bootstrap interval over seeds "
    f"(recsim_llm.stats.mean_estimate); none with 1 seed, unreliable under "
    f"{MIN_RELIABLE_RUNS} seeds"
)


def reliability_caption(frame: pd.DataFrame, n_col: str = "seeds") -> str:
    """One caption line on how many seeds the frame's intervals rest on ("" when every one has
    at least ``MIN_RELIABLE_RUNS``)."""
    if frame.empty or n_col not in frame.columns:
        return ""
    n = int(frame[n_col].min())
    if n <= 1:
        return "Some estimates rest on 1 seed: no interval is shown for them."
    if n < MIN_RELIABLE_RUNS:
        return (
            f"Intervals rest on as few as {n} seeds (fewer than {MIN_RELIABLE_RUNS}): they are "
            "close to the range of the seeds and marked unreliable."
        )
    return ""


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) + P(X = Y) / 2 over all pairs of seeds' values (``stats``, Mann-Whitney)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return math.nan
    return stats.probability_of_improvement(a, b)


# -- summaries ------------------------------------------------------------------------------------
def session_metrics(table: pd.DataFrame) -> list[str]:
    """Session metrics present, ordered as ``METRIC_TITLES`` then by name."""
    present = set(table.loc[table[COL_STEP] == SESSION_STEP, COL_METRIC])
    order = [m for m in METRIC_TITLES if m in present]
    return order + sorted(present - set(order))


def step_metrics(table: pd.DataFrame) -> list[str]:
    present = set(table.loc[table[COL_STEP] >= 0, COL_METRIC])
    order = [m for m in METRIC_TITLES if m in present]
    return order + sorted(present - set(order))


def title(metric: str) -> str:
    return METRIC_TITLES.get(metric, metric)


def session_values(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows of one session metric: run, policy, scenario, seed, value (one per seed)."""
    rows = table[(table[COL_STEP] == SESSION_STEP) & (table[COL_METRIC] == metric)]
    return rows[[COL_RUN, COL_POLICY, COL_SCENARIO, COL_SEED, COL_VALUE]].reset_index(drop=True)


SUMMARY_COLUMNS = ("seeds", "mean", "low", "high", "interval")
"""What ``summarise`` adds per group; ``interval`` is ``reliability(seeds)``."""


def summarise(values: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per group: seeds, mean and interval of ``value`` (``interval``), and the interval's
    reliability note."""
    rows = []
    for keys, group in values.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        centre, low, high = interval(group[COL_VALUE].to_numpy())
        rows.append(
            {
                **dict(zip(by, keys, strict=True)),
                "seeds": len(group),
                "mean": centre,
                "low": low,
                "high": high,
                "interval": reliability(len(group)),
            }
        )
    return pd.DataFrame(rows, columns=[*by, *SUMMARY_COLUMNS])


def session_summary(table: pd.DataFrame, metric: str = M_RETURN) -> pd.DataFrame:
    """Per run, scenario and policy: seeds, mean and interval of a session metric, each
    scenario's policies sorted best first."""
    summary = summarise(session_values(table, metric), [COL_RUN, COL_SCENARIO, COL_POLICY])
    ascending = metric in LOWER_IS_BETTER
    return summary.sort_values(
        [COL_SCENARIO, "mean"], ascending=[True, ascending], kind="stable"
    ).reset_index(drop=True)


LOWER_IS_BETTER = {"regret", "churned", M_STEPS_TO_RECOVER, M_STEPS_TO_FIRST_CLICK}


def improvement_matrix(table: pd.DataFrame, metric: str, scenario: str, run: str) -> pd.DataFrame:
    """Pairwise probability that the row policy beats the column policy (over seeds)."""
    vals = session_values(table, metric)
    vals = vals[(vals[COL_SCENARIO] == scenario) & (vals[COL_RUN] == run)]
    by_policy = {p: g[COL_VALUE].to_numpy() for p, g in vals.groupby(COL_POLICY, sort=False)}
    order = sorted(by_policy, key=lambda p: -np.mean(by_policy[p]))
    if metric in LOWER_IS_BETTER:
        order = order[::-1]
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    pairs = [(a, b) for a in order for b in order if a != b]
    if not pairs:
        return pd.DataFrame(columns=IMPROVEMENT_COLUMNS)
    ests = stats.improvement_probabilities(
        {p: sign * by_policy[p] for p in order},
        pairs,
        confidence=CONFIDENCE,
        n_resamples=N_RESAMPLES,
        rng=0,
    )
    rows = [
        {
            "policy": a,
            "than": b,
            "P(better)": est.point,
            "low": est.low if est.has_interval else math.nan,
            "high": est.high if est.has_interval else math.nan,
            "seeds": est.n,
            "interval": reliability(est.n),
        }
        for (a, b), est in ests.items()
    ]
    return pd.DataFrame(rows, columns=IMPROVEMENT_COLUMNS)


IMPROVEMENT_COLUMNS = ["policy", "than", "P(better)", "low", "high", "seeds", "interval"]


def step_bands(
    table: pd.DataFrame,
    metric: str,
    scenario: str,
    max_step: int | None = None,
) -> pd.DataFrame:
    """Per run, policy and step: seeds, mean and interval over seeds of a per-step metric."""
    rows = table[
        (table[COL_STEP] >= 0) & (table[COL_METRIC] == metric) & (table[COL_SCENARIO] == scenario)
    ]
    if max_step is not None:
        rows = rows[rows[COL_STEP] < max_step]
    out = summarise(rows, [COL_RUN, COL_POLICY, COL_STEP])
    return out.sort_values([COL_RUN, COL_POLICY, COL_STEP]).reset_index(drop=True)


def active_users(table: pd.DataFrame, scenario: str, max_step: int | None = None) -> pd.DataFrame:
    """Mean active users per run, policy and step; empty when it never shrinks."""
    bands = step_bands(table, S_ACTIVE, scenario, max_step)
    if bands.empty or bands["mean"].min() == bands["mean"].max():
        return bands.iloc[:0]
    return bands


# -- config and metadata --------------------------------------------------------------------------
def scenario_config(config: dict[str, Any] | None, scenario: str) -> dict[str, Any] | None:
    """The env config of ``scenario`` in a config.json (evaluate's ``scenarios`` map, or the
    run's single env config)."""
    if not config:
        return None
    scenarios = config.get("scenarios")
    if isinstance(scenarios, dict) and isinstance(scenarios.get(scenario), dict):
        return scenarios[scenario]
    if isinstance(config.get("world"), dict):
        return config
    if isinstance(config.get("env"), dict):
        return config["env"]
    return None


def shift_step(config: dict[str, Any] | None, scenario: str) -> int | None:
    """The step of a scenario's first shift or trend event (``world.dynamics``: ``shift_step``
    with ``shift_fraction`` > 0, ``trend_step`` with ``trend_strength`` > 0), None without one.
    Older run files lack the ``trend_*`` fields (no trend); one without ``shift_fraction``
    counts its ``shift_step`` as given, one with ``shift_fraction`` 0 has no shift."""
    env = scenario_config(config, scenario) or {}
    try:
        dynamics = env["world"]["dynamics"]
        events = [(dynamics["shift_step"], dynamics.get("shift_fraction", 1.0))]
    except (KeyError, TypeError, AttributeError):
        return None
    events.append((dynamics.get("trend_step", -1), dynamics.get("trend_strength", 0.0)))
    steps = [
        int(step)
        for step, size in events
        if isinstance(step, (int, float))
        and step >= 0
        and isinstance(size, (int, float))
        and size > 0
    ]
    return min(steps) if steps else None


def encoder_of(config: dict[str, Any] | None, scenario: str) -> str | None:
    env = scenario_config(config, scenario) or {}
    value = env.get("encoder")
    return str(value) if value else None


def is_lm_encoder(name: str | None) -> bool:
    return bool(name) and str(name).startswith("lm")


def metadata(run: Run) -> pd.DataFrame:
    """What a run is: scenarios, policies, seeds, users, horizon, encoder, versions."""
    table, config, system = run.table, run.config or {}, run.system or {}
    scenarios = sorted(table[COL_SCENARIO].unique())
    facts: list[tuple[str, str]] = [
        ("run", run.label),
        ("scenarios", ", ".join(scenarios)),
        ("policies", ", ".join(sorted(table[COL_POLICY].unique()))),
        ("seeds", ", ".join(str(s) for s in sorted(table[COL_SEED].unique()))),
    ]
    if "users" in config:
        facts.append(("users per seed", str(config["users"])))
    versions = config.get("scenario_versions")
    if isinstance(versions, dict) and versions:
        facts.append(("scenario versions", ", ".join(f"{k} v{v}" for k, v in versions.items())))
    if "log_fraction" in config:
        facts.append(("logged share of users", str(config["log_fraction"])))
    horizons = {
        scenario_config(config, s).get("horizon") for s in scenarios if scenario_config(config, s)
    }
    encoders = {encoder_of(config, s) for s in scenarios} - {None}
    if horizons - {None}:
        facts.append(("horizon (steps)", ", ".join(str(h) for h in sorted(horizons - {None}))))
    if encoders:
        facts.append(("encoder", ", ".join(sorted(encoders))))
    for key in (
        "python",
        "numpy",
        "torch",
        "transformers",
        "stable_baselines3",
        "gymnasium",
        "platform",
    ):
        if key in system:
            facts.append((key, str(system[key])))
    return pd.DataFrame(facts, columns=["field", "value"])


# -- robustness -----------------------------------------------------------------------------------
def split_scenario(name: str) -> tuple[str, float | None]:
    """``"obs-noise@0.5"`` -> ``("obs-noise", 0.5)``; a name without a strength -> (name, None)."""
    base, sep, tail = name.rpartition(STRENGTH_SEPARATOR)
    if sep and base:
        value = _float_text(tail)
        if value is not None and math.isfinite(value):
            return base, value
    return name, None


def default_strength(name: str) -> float | None:
    """The default strength of registered scenario ``name`` (None: unknown, or no strength)."""
    from recsim_llm.scenarios import scenario_info

    try:
        info = scenario_info(name)
    except (ValueError, KeyError, ImportError):
        return None
    return float(info.strength.default) if info.strength is not None else None


def scenario_strengths(table: pd.DataFrame, config: dict[str, Any] | None = None) -> pd.DataFrame:
    """Scenario -> battery item and strength: from the optional columns, else config.json's
    ``scenario_strengths``, else the name's ``@strength`` suffix."""
    mapping = (config or {}).get(CONFIG_STRENGTHS) or {}
    rows = []
    for scenario in table[COL_SCENARIO].unique():
        part = table[table[COL_SCENARIO] == scenario]
        base, strength = split_scenario(scenario)
        if isinstance(mapping.get(scenario), dict):
            base = str(mapping[scenario].get("base", base))
            value = mapping[scenario].get("strength")
            strength = float(value) if isinstance(value, (int, float)) else strength
        if COL_STRENGTH in part.columns and part[COL_STRENGTH].notna().any():
            strength = float(part[COL_STRENGTH].dropna().iloc[0])
        if COL_BASE in part.columns and (part[COL_BASE] != "").any():
            base = str(part.loc[part[COL_BASE] != "", COL_BASE].iloc[0])
        rows.append({COL_SCENARIO: scenario, "item": base, COL_STRENGTH: strength})
    # A bare name (``obs-noise``) beside specs of the same item (``obs-noise@1.0``) is that item
    # at the scenario's default strength (``recsim_llm.scenarios``), so it joins their curve.
    with_strength = {r["item"] for r in rows if r[COL_STRENGTH] is not None}
    for r in rows:
        if r[COL_STRENGTH] is None and r["item"] in with_strength:
            r[COL_STRENGTH] = default_strength(r["item"])
    out = pd.DataFrame(rows, columns=[COL_SCENARIO, "item", COL_STRENGTH])
    out[COL_STRENGTH] = out[COL_STRENGTH].astype(np.float64)
    return out


def robustness_curves(table: pd.DataFrame, metric: str, strengths: pd.DataFrame) -> pd.DataFrame:
    """Per battery item, policy and strength (a number): mean and interval of ``metric``.

    ``UNPERTURBED`` is drawn at strength 0 of each item that has no strength-0 scenario (unless
    config.json's ``scenario_strengths`` gives it a strength of its own in the item).
    """
    vals = session_values(table, metric).merge(strengths, on=COL_SCENARIO)
    perturbed = vals[vals[COL_STRENGTH].notna()]
    items = sorted(perturbed["item"].unique())
    base = vals[vals[COL_SCENARIO] == UNPERTURBED]
    parts = [perturbed]
    for item in items:
        mine = perturbed["item"] == item
        has_base = ((perturbed[COL_SCENARIO] == UNPERTURBED) & mine).any()
        if not has_base and not (mine & (perturbed[COL_STRENGTH] == 0)).any():
            parts.append(base.assign(item=item, **{COL_STRENGTH: 0.0}))
    out = summarise(pd.concat(parts, ignore_index=True), ["item", COL_POLICY, COL_STRENGTH])
    return out.sort_values(["item", COL_POLICY, COL_STRENGTH]).reset_index(drop=True)


def paired_differences(table: pd.DataFrame, metric: str, strengths: pd.DataFrame) -> pd.DataFrame:
    """Per item, strength and policy: the perturbed minus the unperturbed value, paired by seed
    (same policy, seed and run), with its interval; sorted by item, then strength as a number.

    Scenarios without a strength (e.g. ``taste-shift``) are items of their own, strength NaN,
    compared with ``UNPERTURBED``."""
    vals = session_values(table, metric).merge(strengths, on=COL_SCENARIO)
    perturbed = vals[(vals[COL_SCENARIO] != UNPERTURBED) & ~(vals[COL_STRENGTH] == 0)]
    rows = []
    for item, part in perturbed.groupby("item"):
        zero = vals[(vals["item"] == item) & (vals[COL_STRENGTH] == 0)]
        if zero.empty:
            zero = vals[vals[COL_SCENARIO] == UNPERTURBED]
        ref = zero.set_index([COL_RUN, COL_POLICY, COL_SEED])[COL_VALUE]
        ref = ref[~ref.index.duplicated()]
        for (strength, policy), group in part.groupby([COL_STRENGTH, COL_POLICY], dropna=False):
            idx = pd.MultiIndex.from_frame(group[[COL_RUN, COL_POLICY, COL_SEED]])
            base = ref.reindex(idx).to_numpy()
            diff = group[COL_VALUE].to_numpy() - base
            diff = diff[np.isfinite(diff)]
            if diff.size == 0:
                continue
            centre, low, high = interval(diff)
            rows.append(
                {
                    "item": item,
                    COL_STRENGTH: float(strength),
                    COL_POLICY: policy,
                    "pairs": diff.size,
                    "difference": centre,
                    "low": low,
                    "high": high,
                    "interval": reliability(diff.size),
                }
            )
    out = pd.DataFrame(
        rows,
        columns=[
            "item",
            COL_STRENGTH,
            COL_POLICY,
            "pairs",
            "difference",
            "low",
            "high",
            "interval",
        ],
    )
    out = out.sort_values(["item", COL_STRENGTH, COL_POLICY], na_position="first")
    return out.reset_index(drop=True)


# -- cold start -----------------------------------------------------------------------------------
def first_steps_values(table: pd.DataFrame, scenario: str, k: int) -> pd.DataFrame:
    """Per run, policy and seed: the mean click rate over the session's first ``k`` steps."""
    rows = table[
        (table[COL_METRIC] == S_CLICK_RATE)
        & (table[COL_SCENARIO] == scenario)
        & (table[COL_STEP] >= 0)
        & (table[COL_STEP] < k)
    ]
    return rows.groupby([COL_RUN, COL_POLICY, COL_SEED], as_index=False)[COL_VALUE].mean()


def first_steps_summary(table: pd.DataFrame, scenario: str, k: int) -> pd.DataFrame:
    return summarise(first_steps_values(table, scenario, k), [COL_RUN, COL_POLICY])


def encoder_split(runs: Sequence[Run], scenario: str) -> pd.DataFrame:
    """Per run: the encoder of ``scenario`` (from config.json) and whether it is an LM."""
    rows = [
        {COL_RUN: r.label, "encoder": enc, "state": "LM" if is_lm_encoder(enc) else "non-LM"}
        for r in runs
        if (enc := encoder_of(r.config, scenario)) is not None
    ]
    return pd.DataFrame(rows, columns=[COL_RUN, "encoder", "state"])


def encoder_comparison(
    table: pd.DataFrame, scenario: str, k: int, encoders: pd.DataFrame
) -> pd.DataFrame:
    """First-``k``-steps click rate per state kind (LM / non-LM), encoder and policy."""
    values = first_steps_values(table, scenario, k).merge(encoders, on=COL_RUN)
    return summarise(values, ["state", "encoder", COL_POLICY])
