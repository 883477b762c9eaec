"""Throughput of the simulator in user-steps per second, on one CPU core.

Measured in one run, so that the ratios compare like with like on a noisy machine:

* ``world``: the batched ``recsim_llm.world.World`` alone, ``world.step(slates, rng)`` on
  precomputed random slates of distinct items. Each session starts from freshly reset users
  (reset not timed) and runs ``--steps`` steps; users who churn keep being stepped (this measures
  the transition, not session handling).
* ``vector env (lm-fast)`` and ``vector env (bow)``: ``SlateVectorEnv(num_envs=n,
  EnvConfig(encoder=...))`` with the default encoder (the shipped LM encoder in fast mode: cached
  item/profile embeddings, a NumPy fast head per step) and the bag-of-words baseline; ``env.step``
  on precomputed random actions: validation and repair, world step, log, encoder update,
  candidates, observations and same-step autoreset of churned and timed-out users (new users'
  profile texts included), all timed.
* ``loop world``: ``benchmarks/loop_world.py``, the same model written one user at a time in
  Python (checked against the batched world at the start of every run).
* ``RecSim interest evolution``: ``recsim.environments.interest_evolution`` (PyPI
  ``recsim-no-tf`` and ``six``, the optional ``bench`` extra) with 20 candidates, slates of 5 and
  random slates; one user per env, so user-steps/s = steps/s; episode resets are timed. Skipped
  with a message when recsim is not installed.

Repeats are interleaved round-robin over all cases and the median is reported. The process is
pinned to one CPU and BLAS/OpenMP pools to one thread. Usage::

    python benchmarks/bench_throughput.py [--quick] [--out FILE]
"""

from __future__ import annotations

import os

# One-core figures: these must be set before NumPy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loop_world import LoopWorld, check_against_world  # noqa: E402

from recsim_llm.config import EnvConfig, WorldConfig  # noqa: E402
from recsim_llm.envs.vector import SlateVectorEnv  # noqa: E402
from recsim_llm.world import World, generate_catalog  # noqa: E402

GOAL_USER_STEPS = 1_000_000
GOAL_RATIO_RECSIM = 100.0
GOAL_VECTOR_USER_STEPS = 300_000
"""Vector env with the default encoder (lm-fast) at n_users=1024."""
GOAL_FAST_VS_BOW = 0.9
"""lm-fast keeps at least this share of the bag-of-words env's throughput."""
ENCODERS = ("lm-fast", "bow")
WORLD, LOOP, RECSIM = "world", "loop world", "RecSim interest evolution"


def vector_name(encoder: str) -> str:
    return f"vector env ({encoder})"


SLATE_SIZE = 5
N_CANDIDATES = 20


@dataclass
class Case:
    """One implementation at one batch size.

    ``session(steps)`` runs one timed chunk of ``steps`` batched steps and returns its seconds
    (untimed setup such as resetting users happens inside, outside the clock).
    """

    name: str
    n_users: int
    session: Callable[[int], float]
    sessions: int = 1
    rates: list[float] = field(default_factory=list)

    def run(self, steps: int) -> None:
        seconds = sum(self.session(steps) for _ in range(self.sessions))
        self.rates.append(self.n_users * steps * self.sessions / seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def _distinct_rows(rng: np.random.Generator, pools: int, n: int, high: int, k: int) -> np.ndarray:
    """(pools, n, k) rows of k distinct ints in [0, high), random order."""
    out = np.empty((pools, n, k), dtype=np.int64)
    for p in range(pools):
        out[p] = np.argsort(rng.random((n, high)), axis=1)[:, :k]
    return out


def world_case(cls: type, name: str, n: int, config: WorldConfig, catalog, seed: int) -> Case:
    """The batched world, or the loop world, at ``n`` users."""
    world = cls(config, n, catalog)
    rng = np.random.default_rng(seed)
    # Items present from the start; the world's step needs no candidates.
    pool = _distinct_rows(rng, 8, n, config.catalog.n_items, SLATE_SIZE)

    def session(steps: int) -> float:
        world.reset_users(np.arange(n), rng)
        start = time.perf_counter()
        for i in range(steps):
            world.step(pool[i % len(pool)], rng)
        return time.perf_counter() - start

    return Case(name, n, session)


def vector_case(n: int, catalog, seed: int, encoder: str) -> Case:
    """The native vector env with ``encoder`` at ``n`` users."""
    env = SlateVectorEnv(num_envs=n, config=EnvConfig(encoder=encoder), catalog=catalog)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed + 1)
    pool = _distinct_rows(rng, 8, n, N_CANDIDATES, SLATE_SIZE)

    def session(steps: int) -> float:
        start = time.perf_counter()
        for i in range(steps):
            env.step(pool[i % len(pool)])
        return time.perf_counter() - start

    return Case(vector_name(encoder), n, session)


def recsim_case(seed: int) -> Case | str:
    """RecSim's interest-evolution env with random slates, or why it is skipped."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            from recsim.environments import interest_evolution
    except ImportError as error:
        return (
            f"RecSim skipped: {error}. Install the optional extra: pip install -e '.[bench]' "
            "(recsim-no-tf, six)"
        )
    env = interest_evolution.create_environment(
        {
            "num_candidates": N_CANDIDATES,
            "slate_size": SLATE_SIZE,
            "resample_documents": True,
            "seed": seed,
        }
    )
    env.reset()
    rng = np.random.default_rng(seed)
    pool = _distinct_rows(rng, 1, 256, N_CANDIDATES, SLATE_SIZE)[0]

    def session(steps: int) -> float:
        start = time.perf_counter()
        for i in range(steps):
            done = env.step(pool[i % len(pool)])[2]
            if done:
                env.reset()
        return time.perf_counter() - start

    return Case(RECSIM, 1, session)


def pin_one_cpu() -> str:
    """Pin this process to the first CPU it may use; returns a description."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}×" if x >= 100 else f"{x:,.1f}×" if x >= 1 else f"{x:.3f}×"


def table(cases: list[Case]) -> str:
    recsim = next((c.median for c in cases if c.name == RECSIM), None)
    loop = {c.n_users: c.median for c in cases if c.name == LOOP}
    lines = [
        "| implementation | n_users | user-steps/s | ratio vs RecSim | ratio vs loop |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in cases:
        vs_recsim = c.median / recsim if recsim else None
        vs_loop = c.median / loop[c.n_users] if c.n_users in loop and c.name != RECSIM else None
        lines.append(
            f"| {c.name} | {c.n_users} | {fmt_rate(c.median)} | {fmt_ratio(vs_recsim)} "
            f"| {fmt_ratio(vs_loop)} |"
        )
    return "\n".join(lines)


def goal_line(cases: list[Case]) -> str:
    world = next((c for c in cases if c.name == WORLD and c.n_users == 1024), None)
    recsim = next((c for c in cases if c.name == RECSIM), None)
    if world is None:
        return "Goal not evaluated (no batched-world run at n_users=1024)."
    rate = world.median
    parts = [f"batched world at n_users=1024: {fmt_rate(rate)} user-steps/s"]
    met = rate >= GOAL_USER_STEPS
    if recsim is not None:
        ratio = rate / recsim.median
        parts.append(f"{ratio:,.0f}× RecSim")
        met = met and ratio >= GOAL_RATIO_RECSIM
    verdict = "MET" if met else "NOT MET"
    return (
        f"Goal (≥ {GOAL_USER_STEPS:,} user-steps/s and ≥ {GOAL_RATIO_RECSIM:.0f}× RecSim per "
        f"user-step): {verdict} — " + ", ".join(parts) + "."
    )


def vector_lines(cases: list[Case]) -> list[str]:
    """lm-fast / bow per batch size, and the vector env goals at n_users=1024."""
    rates = {(c.name, c.n_users): c.median for c in cases}
    fast, bow = vector_name("lm-fast"), vector_name("bow")
    lines = []
    for n in sorted({c.n_users for c in cases if c.name == fast}):
        if (bow, n) in rates:
            lines.append(
                f"lm-fast / bow at n_users={n}: {rates[fast, n] / rates[bow, n]:.0%} "
                f"({fmt_rate(rates[fast, n])} vs {fmt_rate(rates[bow, n])} user-steps/s)."
            )
    if (fast, 1024) in rates:
        rate = rates[fast, 1024]
        met = rate >= GOAL_VECTOR_USER_STEPS
        line = (
            f"Goal (vector env with the default encoder lm-fast ≥ {GOAL_VECTOR_USER_STEPS:,} "
            f"user-steps/s at n_users=1024): {'MET' if met else 'NOT MET'} — {fmt_rate(rate)}"
        )
        if (bow, 1024) in rates:
            share = rate / rates[bow, 1024]
            line += (
                f"; lm-fast ≥ {GOAL_FAST_VS_BOW:.0%} of bow: "
                f"{'MET' if share >= GOAL_FAST_VS_BOW else 'NOT MET'} — {share:.0%}"
            )
        if (WORLD, 1024) in rates:
            line += f"; {rate / rates[WORLD, 1024]:.0%} of the world alone"
        lines.append(line + ".")
    return lines


def write_atomic(path: Path, content: str) -> None:
    from recsim_llm.io import atomic_write_text

    atomic_write_text(path, content)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fast smoke run (seconds)")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    parser.add_argument("--n-users", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--repeats", type=int, help="timed repeats per case (default 5; quick 1)")
    parser.add_argument("--steps", type=int, help="steps per session (default 100; quick 5)")
    parser.add_argument(
        "--min-seconds", type=float, help="least time per repeat and case (default 0.5; quick 0)"
    )
    parser.add_argument(
        "--encoders",
        nargs="+",
        default=list(ENCODERS),
        choices=ENCODERS,
        help="vector env encoders to measure (default: lm-fast bow)",
    )
    parser.add_argument("--no-recsim", action="store_true", help="skip RecSim")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 5)
    steps = args.steps or (5 if args.quick else 100)
    min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if args.quick else 0.5)
    if repeats < 1 or steps < 1 or min(args.n_users) < 1:
        parser.error("--repeats, --steps and --n-users must be positive")

    pinned = "not pinned" if args.no_pin else pin_one_cpu()
    config = WorldConfig()
    catalog = generate_catalog(config.catalog)
    check = check_against_world(config, catalog, steps=50 if args.quick else 300)
    print(check, file=sys.stderr)

    cases: list[Case] = []
    notes: list[str] = []
    if not args.no_recsim:
        recsim = recsim_case(args.seed)
        if isinstance(recsim, str):
            notes.append(recsim)
            print(recsim, file=sys.stderr)
        else:
            cases.append(recsim)
    for n in args.n_users:
        cases.append(world_case(World, WORLD, n, config, catalog, args.seed))
        for encoder in args.encoders:
            cases.append(vector_case(n, catalog, args.seed, encoder))
        cases.append(world_case(LoopWorld, LOOP, n, config, catalog, args.seed))

    # Warm-up and calibration: enough sessions per repeat to last min_seconds.
    for case in cases:
        seconds = case.session(steps)
        case.sessions = max(1, math.ceil(min_seconds / max(seconds, 1e-9)))
    started = time.perf_counter()
    for r in range(repeats):
        for case in cases:
            case.run(steps)
        print(f"repeat {r + 1}/{repeats} done", file=sys.stderr)
    elapsed = time.perf_counter() - started

    command = "python " + " ".join(
        [Path(sys.argv[0]).as_posix() if argv is None else "benchmarks/bench_throughput.py"]
        + (sys.argv[1:] if argv is None else argv)
    )
    report = "\n".join(
        [
            table(cases),
            "",
            goal_line(cases),
            *vector_lines(cases),
            "",
            f"Command: `{command}`",
            f"Machine: {cpu_name()}, {pinned}, BLAS/OpenMP threads 1; Python "
            f"{platform.python_version()}, NumPy {np.__version__}.",
            f"Median of {repeats} interleaved repeats; sessions of {steps} steps "
            f"(world and loop world: fresh users per session, churned users keep stepping; "
            f"vector env: autoreset timed); at least {min_seconds:g} s per repeat and case; "
            f"timed part {elapsed:.0f} s.",
            check + ".",
            *notes,
        ]
    )
    print(report)
    if args.out is not None:
        write_atomic(args.out, report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
