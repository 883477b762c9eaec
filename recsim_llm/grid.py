"""Evaluation grids: policies x scenarios x seeds, run as independent tasks by an executor.

A ``GridTask`` names everything one rollout needs as plain values (policy spec, scenario spec,
seed, users, overrides), so a task runs the same in this process, in a worker process or on a
Ray node: it builds its env and policy from those values, seeds everything from ``seed``, and
returns tidy rows (and a step log of sampled users). Results are put back in task order, so the
table does not depend on the executor, the number of workers or the order tasks finish in.

Executors (``EXECUTORS``, one registry style): ``local`` (``concurrent.futures`` processes,
``workers=1`` runs in this process) and ``ray`` (``pip install "recsim-llm[ray]"``; ``address``
as for ``ray.init``: ``"auto"`` joins a running cluster, None starts a local instance). They run
any picklable module-level function over picklable tasks: ``map_tasks`` is the generic entry
(results in task order, a progress bar over tasks); ``run_grid`` and multi-seed training
(``recsim_llm.agents.training.train_seeds``) both go through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from recsim_llm.registry import Registry
from recsim_llm.results import RESULT_COLUMNS, SESSION_STEP, ResultRow

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EXECUTORS",
    "GridResult",
    "GridTask",
    "LocalExecutor",
    "RayExecutor",
    "TaskResult",
    "add_reference_scores",
    "evaluate_grid",
    "grid_tasks",
    "executor_for",
    "make_executor",
    "map_tasks",
    "run_task",
]

T = TypeVar("T")
R = TypeVar("R")

ORACLE = "oracle"
"""Policy name whose return is the upper reference (regret, normalised score)."""
RANDOM = "random"
"""Policy name whose return is the zero of the normalised score."""


@dataclass(frozen=True)
class GridTask:
    """One rollout of the grid, as plain (picklable) values."""

    run_id: str
    policy: str
    """Policy spec (``name[:arg]``)."""
    name: str
    """The policy's name in results (unique in the grid: ``#2`` suffixes as in make_policies)."""
    scenario: str
    """Scenario spec (``NAME`` or ``NAME@STRENGTH``)."""
    seed: int
    n_users: int
    overrides: tuple[tuple[str, Any], ...] = ()
    """Top-level EnvConfig fields overridden (e.g. ``(("horizon", 50),)``)."""
    log_fraction: float = 0.0
    """Share of user slots whose steps are logged (``recsim_llm.steplog.sample_users``)."""
    first_k: int = 10
    explain: bool = True
    """Logged steps carry explanations (``lm-fast`` encoder only; ``recsim_llm.steplog``)."""


@dataclass(frozen=True)
class TaskResult:
    """What a task returns: tidy rows, the step log of its sampled users, its wall time."""

    task: GridTask
    rows: list[ResultRow]
    steplog: Any = None
    """A ``pandas.DataFrame`` (``recsim_llm.steplog.STEPLOG_COLUMNS``) or None."""
    seconds: float = 0.0


_ENV_CACHE: dict[tuple[Any, int], Any] = {}
"""Per process: the last envs built, reused across tasks (reset with each task's seed; the
catalog and item embeddings are what is kept, exactly as ``evaluation.evaluate`` reuses one)."""
_ENV_CACHE_SIZE = 2


def _env_for(config: Any, n_users: int) -> Any:
    from recsim_llm.envs.vector import SlateVectorEnv

    key = (config, n_users)
    env = _ENV_CACHE.pop(key, None)
    if env is None:
        env = SlateVectorEnv(num_envs=n_users, config=config)
    _ENV_CACHE[key] = env  # most recent last
    while len(_ENV_CACHE) > _ENV_CACHE_SIZE:
        del _ENV_CACHE[next(iter(_ENV_CACHE))]
    return env


def run_task(task: GridTask) -> TaskResult:
    """Run one task: build its env and policy, roll out, return its rows (deterministic)."""
    from recsim_llm.agents.specs import make_policy
    from recsim_llm.evaluation import rollout, rollout_rows
    from recsim_llm.scenarios import scenario_config
    from recsim_llm.steplog import sample_users, steplog_frame

    start = time.perf_counter()
    config = scenario_config(task.scenario, **dict(task.overrides))
    policy = make_policy(task.policy, configs=[config])
    policy.name = task.name
    log_users = (
        sample_users(task.n_users, task.log_fraction, task.seed) if task.log_fraction > 0 else None
    )
    result = rollout(
        policy,
        config,
        task.seed,
        task.n_users,
        env=_env_for(config, task.n_users),
        log_users=log_users,
        first_k=task.first_k,
        explain=task.explain,
    )
    rows = rollout_rows(result, task.run_id, task.name, task.scenario, task.seed)
    steplog = (
        steplog_frame(result.user_steps, task.run_id, task.name, task.scenario, task.seed)
        if log_users is not None
        else None
    )
    return TaskResult(task, rows, steplog, time.perf_counter() - start)


# -- executors -----------------------------------------------------------------------------------
class LocalExecutor:
    """Tasks in worker processes (``concurrent.futures``); ``workers=1`` runs them here.

    Args:
        workers: processes; 1 runs in this process (no pool).
    """

    def __init__(self, workers: int = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.workers = int(workers)

    def run(self, fn: Callable[[T], R], tasks: Sequence[T]) -> Iterator[tuple[int, R]]:
        """(task index, result) pairs, in the order tasks finish.

        ``fn`` and the tasks must pickle (a module-level function, plain values) when
        ``workers > 1``."""
        if self.workers == 1:
            for i, task in enumerate(tasks):
                yield i, fn(task)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: a forked child would inherit torch/BLAS thread pools in an unknown state.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=context) as pool:
            futures = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
            for future in as_completed(futures):
                yield futures[future], future.result()


class RayExecutor:
    """Tasks as Ray remote functions, one CPU each.

    Args:
        address: as for ``ray.init``: ``"auto"`` joins a running cluster, ``"ray://host:10001"``
            a remote one, None starts a local instance (unless Ray is already initialised).
        num_cpus: CPUs of a local instance started here (None: Ray's default).
        task_cpus: CPUs Ray reserves for each task (a training task running N torch threads
            should reserve N).
    """

    def __init__(
        self, address: str | None = None, num_cpus: int | None = None, task_cpus: int = 1
    ) -> None:
        if address is not None and (not isinstance(address, str) or not address):
            raise ValueError(f"address must be a non-empty string or None, got {address!r}")
        if num_cpus is not None and (
            isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1
        ):
            raise ValueError(f"num_cpus must be a positive integer or None, got {num_cpus!r}")
        if isinstance(task_cpus, bool) or not isinstance(task_cpus, int) or task_cpus < 1:
            raise ValueError(f"task_cpus must be a positive integer, got {task_cpus!r}")
        self.address = address
        self.num_cpus = num_cpus
        self.task_cpus = task_cpus

    @staticmethod
    def _ray() -> Any:
        try:
            import ray
        except ImportError:
            raise ImportError(
                "executor 'ray' needs Ray, which is not installed: pip install \"recsim-llm[ray]\""
            ) from None
        return ray

    def run(self, fn: Callable[[T], R], tasks: Sequence[T]) -> Iterator[tuple[int, R]]:
        """(task index, result) pairs, in the order tasks finish."""
        ray = self._ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.num_cpus is not None and self.address is None:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(address=self.address, **kwargs)
        remote = ray.remote(num_cpus=self.task_cpus)(fn)
        pending = {remote.remote(task): i for i, task in enumerate(tasks)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)


EXECUTORS: Registry[Callable[..., Any]] = Registry("executor")
"""Executor name -> class, built as ``cls(**options)``; ``run(fn, tasks)`` yields
``(index, result)`` pairs."""
EXECUTORS.register("local", "recsim_llm.grid:LocalExecutor")
EXECUTORS.register("ray", "recsim_llm.grid:RayExecutor")


def make_executor(name: str = "local", **options: Any) -> Any:
    """The executor registered as ``name``, built with ``options``."""
    return EXECUTORS.make(name, **options)


def executor_for(
    name: str = "local", *, workers: int = 1, address: str | None = None, **options: Any
) -> Any:
    """The executor the CLI options name: ``local`` gets ``workers``, ``ray`` gets ``address``
    (and ``options``, e.g. ``task_cpus``); another registered name gets ``options`` only."""
    if name == "local":
        return make_executor("local", workers=workers)
    if name == "ray":
        return make_executor("ray", address=address, **options)
    return make_executor(name, **options)


def map_tasks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    executor: Any = None,
    *,
    progress: bool = False,
    desc: str = "tasks",
    unit: str = "task",
    label: Callable[[R], str] | None = None,
) -> list[R]:
    """``fn`` over ``tasks`` through ``executor`` (default: local, in this process), results in
    task order whatever order they finish in; a tqdm bar on stderr with ``progress``
    (``label(result)`` as its postfix). ``fn`` must be a module-level function and the tasks
    picklable for an executor with other processes.

    Raises:
        RuntimeError: the executor returned fewer results than tasks.
    """
    from tqdm.auto import tqdm

    executor = executor if executor is not None else LocalExecutor()
    tasks = list(tasks)
    results: list[Any] = [None] * len(tasks)
    done = [False] * len(tasks)
    with tqdm(total=len(tasks), desc=desc, unit=unit, disable=not progress) as bar:
        for i, result in executor.run(fn, tasks):
            results[i], done[i] = result, True
            if label is not None:
                bar.set_postfix_str(label(result), refresh=False)
            bar.update()
    if not all(done):
        raise RuntimeError("the executor returned fewer results than tasks")
    return results


# -- the grid --------------------------------------------------------------------------------------
def _policy_names(specs: Sequence[str]) -> list[str]:
    """Unique result names of ``specs`` as ``make_policies`` gives them (builds each once)."""
    from recsim_llm.agents.specs import make_policies

    return [p.name for p in make_policies(list(specs))]


def check_seeds(seeds: Any) -> list[int]:
    """``seeds`` as a list of distinct non-negative ints; ValueError naming ``seeds`` otherwise."""
    if isinstance(seeds, (str, int)) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {list(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat, got {list(seeds)}")
    return [int(s) for s in seeds]


def grid_tasks(
    policies: Sequence[str],
    scenarios: Sequence[str],
    seeds: Sequence[int],
    n_users: int,
    *,
    run_id: str = "grid",
    overrides: dict[str, Any] | None = None,
    log_fraction: float = 0.0,
    first_k: int = 10,
    explain: bool = True,
    names: Sequence[str] | None = None,
) -> list[GridTask]:
    """The tasks of a grid, checked before any is run (``ValueError`` naming the argument)."""
    from recsim_llm.agents.specs import parse_spec
    from recsim_llm.scenarios import parse_scenario, scenario_config
    from recsim_llm.steplog import sample_users

    if isinstance(policies, str) or not policies:
        raise ValueError(f"policies must be a non-empty list of policy specs, got {policies!r}")
    for spec in policies:
        if not isinstance(spec, str):
            raise ValueError(
                f"policies must be policy specs (strings such as 'random' or 'mix:0.2'), got "
                f"{type(spec).__name__}: a task rebuilds its policy from the spec in its worker"
            )
        parse_spec(spec)
    if len(set(policies)) != len(policies):
        raise ValueError(f"policies must not repeat, got {list(policies)}")
    if isinstance(scenarios, str) or not scenarios:
        raise ValueError(f"scenarios must be a non-empty list of scenario specs, got {scenarios!r}")
    if len(set(scenarios)) != len(scenarios):
        raise ValueError(f"scenarios must not repeat, got {list(scenarios)}")
    for spec in scenarios:
        parse_scenario(spec)
    check_seeds(seeds)
    if isinstance(n_users, bool) or not isinstance(n_users, (int, np.integer)) or n_users < 1:
        raise ValueError(f"n_users must be a positive integer, got {n_users!r}")
    sample_users(1, log_fraction, 0)  # checks log_fraction
    if isinstance(first_k, bool) or not isinstance(first_k, (int, np.integer)) or first_k < 1:
        raise ValueError(f"first_k must be a positive integer, got {first_k!r}")
    overrides = dict(overrides or {})
    for spec in scenarios:
        scenario_config(spec, **overrides)  # every config valid before any task runs
    names = list(names) if names is not None else _policy_names(policies)
    frozen = tuple(sorted(overrides.items()))
    return [
        GridTask(
            run_id,
            spec,
            name,
            scenario,
            int(seed),
            int(n_users),
            frozen,
            float(log_fraction),
            int(first_k),
            bool(explain),
        )
        for scenario in scenarios
        for spec, name in zip(policies, names, strict=True)
        for seed in seeds
    ]


@dataclass(frozen=True)
class GridResult:
    """A grid's tidy table, its step log (or None) and each task's wall time."""

    table: pd.DataFrame
    steplog: pd.DataFrame | None
    seconds: list[float] = field(default_factory=list)
    """Wall time of each task, in task order."""


def run_grid(
    tasks: Sequence[GridTask],
    executor: Any = None,
    progress: bool = False,
    fn: Callable[[GridTask], TaskResult] = run_task,
) -> GridResult:
    """Run ``tasks`` through ``executor`` (default: local, in this process); a tqdm bar on
    stderr with ``progress``. Results are assembled in task order."""
    import pandas as pd

    done = map_tasks(
        fn,
        tasks,
        executor,
        progress=progress,
        desc="grid",
        label=lambda r: f"{r.task.name} {r.task.scenario} seed {r.task.seed}",
    )
    table = pd.DataFrame(
        [tuple(row.__dict__.values()) for r in done for row in r.rows],
        columns=list(RESULT_COLUMNS),
    )
    logs = [r.steplog for r in done if r.steplog is not None]
    steplog = pd.concat(logs, ignore_index=True) if logs else None
    return GridResult(table, steplog, [r.seconds for r in done])


def add_reference_scores(
    table: pd.DataFrame, oracle: str = ORACLE, baseline: str = RANDOM
) -> pd.DataFrame:
    """``table`` with, per scenario and seed, session rows ``regret`` (the ``oracle`` policy's
    return minus each policy's; needs the oracle in the grid) and ``normalised_score``
    (``(return - baseline) / (oracle - baseline)``: baseline 0, oracle 1; needs both)."""
    import pandas as pd

    sessions = table[(table.step == SESSION_STEP) & (table.metric == "return")]
    wide = sessions.pivot_table(
        index=["run_id", "scenario", "seed"], columns="policy", values="value", aggfunc="first"
    )
    if oracle not in wide.columns:
        return table
    extra = []
    for (run_id, scenario, seed), row in wide.iterrows():
        best = row[oracle]
        base = row.get(baseline, np.nan)
        for policy, value in row.items():
            if not np.isfinite(value):
                continue
            extra.append((run_id, policy, scenario, seed, SESSION_STEP, "regret", best - value))
            span = best - base
            if np.isfinite(span) and span != 0.0:
                extra.append(
                    (
                        run_id,
                        policy,
                        scenario,
                        seed,
                        SESSION_STEP,
                        "normalised_score",
                        (value - base) / span,
                    )
                )
    if not extra:
        return table
    added = pd.DataFrame(extra, columns=list(RESULT_COLUMNS)).astype(table.dtypes.to_dict())
    return pd.concat([table, added], ignore_index=True)


def evaluate_grid(
    policies: Sequence[str],
    scenarios: Sequence[str],
    seeds: Sequence[int],
    n_users: int = 64,
    *,
    executor: str | Any = "local",
    workers: int = 1,
    address: str | None = None,
    horizon: int | None = None,
    encoder: str | None = None,
    log_fraction: float = 0.0,
    first_k: int = 10,
    explain: bool = True,
    run_id: str = "grid",
    progress: bool = False,
) -> GridResult:
    """Every policy spec on every scenario spec and seed, through an executor.

    Args:
        policies: policy specs (``"random"``, ``"mix:0.2"``, ``"oracle"``, ``"model:PATH"``).
        scenarios: scenario specs (``"default"``, ``"obs-noise@0.5"``).
        seeds: evaluation seeds (each seeds env and policy of its tasks).
        n_users: concurrent sessions per task.
        executor: ``"local"`` or ``"ray"`` (or an executor object with ``run``).
        workers: processes of the local executor (1: in this process).
        address: Ray address (``"auto"``: a running cluster); ray only.
        horizon, encoder: override every scenario's (None: the scenario's).
        log_fraction: share of users whose steps are logged (``GridResult.steplog``).
        first_k: steps of the cold-start click rate.
        explain: logged steps carry explanations (``lm-fast`` only; ``recsim_llm.steplog``).
        run_id: ``run_id`` column of the rows.
        progress: a progress bar over tasks on stderr.

    Returns:
        ``GridResult``: the tidy table (with ``regret``/``normalised_score`` rows when the grid
        holds ``oracle`` (and ``random``)), the step log, per-task seconds.
    """
    overrides: dict[str, Any] = {}
    if horizon is not None:
        overrides["horizon"] = horizon
    if encoder is not None:
        overrides["encoder"] = encoder
    tasks = grid_tasks(
        policies,
        scenarios,
        seeds,
        n_users,
        run_id=run_id,
        overrides=overrides,
        log_fraction=log_fraction,
        first_k=first_k,
        explain=explain,
    )
    if isinstance(executor, str):
        executor = executor_for(executor, workers=workers, address=address)
    result = run_grid(tasks, executor, progress)
    return GridResult(add_reference_scores(result.table), result.steplog, result.seconds)
