"""Built-in subcommands of ``recsim-llm``: quickstart, simulate, evaluate, train, dashboard.

Each is a ``Command`` (help, ``add_arguments``, ``run``) registered by name in
``recsim_llm.cli.COMMANDS``. Arguments are parsed and checked (policy specs, scenario and encoder
names, the output path) before anything is printed or run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from recsim_llm.agents.specs import make_policies, make_policy, parse_spec, policy_forms
from recsim_llm.cli import Command
from recsim_llm.config import EnvConfig, to_dict
from recsim_llm.encoders import encoder_names
from recsim_llm.io import claim_output
from recsim_llm.results import write_run
from recsim_llm.scenarios import parse_scenario, scenario_config, scenario_names

if TYPE_CHECKING:
    from recsim_llm.agents.training import TrainSettings

TRUST_WARNING = (
    "recsim-llm: note: loading a model zip unpickles code stored in it; load only files you trust"
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be comma-separated integers, got {text!r}"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError("seeds must not be empty")
    if min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be >= 0, got {text!r}")
    return seeds


def _encoder_out(out: Path) -> Path:
    """The encoder folder ``quickstart --finetune`` writes beside ``--out``: ``OUT-encoder``."""
    return out.with_name(out.name + "-encoder")


def _claims_out(
    kind: str | Callable[[argparse.Namespace], str],
) -> Callable[[Callable[[argparse.Namespace], int]], Callable]:
    """Check ``args.out`` and hold it as a ``kind`` output for the whole command.

    The first thing a command does, before any print or work: ``recsim_llm.io.claim_output``
    refuses a path that is not ours (a file, a folder with other files, another kind of output)
    or that another process is writing. ``quickstart --finetune`` also claims ``OUT-encoder``.
    ``kind`` may be a function of the arguments (``train --seeds`` writes another kind).
    """

    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(run)
        def claimed(args: argparse.Namespace) -> int:
            with contextlib.ExitStack() as stack:
                out_kind = kind(args) if callable(kind) else kind
                stack.enter_context(claim_output(args.out, out_kind))
                if getattr(args, "finetune", False):
                    folder = _encoder_out(args.out)
                    stack.enter_context(claim_output(folder, "encoder", option="--finetune"))
                return run(args)

        return claimed

    return wrap


def _policy_spec(text: str) -> str:
    """A policy spec whose name is registered (its argument is checked when it is built)."""
    try:
        parse_spec(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text.strip()


def _policy_specs(text: str) -> list[str]:
    specs = [_policy_spec(p) for p in text.split(",") if p.strip()]
    if not specs:
        raise argparse.ArgumentTypeError("policies must name at least one policy")
    return specs


def _scenario(text: str) -> str:
    """A scenario spec, ``NAME`` or ``NAME@STRENGTH``, checked against the registry."""
    name = text.strip()
    if name.partition("@")[0] not in scenario_names():
        raise argparse.ArgumentTypeError(
            f"unknown scenario {name!r}; choose from {', '.join(scenario_names())}"
        )
    try:
        parse_scenario(name)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return name


def _scenarios(text: str) -> list[str]:
    names = [_scenario(s) for s in text.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError("scenarios must name at least one scenario")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"scenarios must not repeat, got {text!r}")
    return names


def _add_encoder(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "--encoder",
        choices=encoder_names(),
        default=default,
        help="user encoder"
        + ("" if default else " (default: the scenario's encoder, lm-fast for the built-in ones)"),
    )


def _add_scenario(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--scenario",
        type=_scenario,
        default="default",
        metavar="NAME[@STRENGTH]",
        help=f"{help_text}, from: {', '.join(scenario_names())} (`recsim-llm scenarios` lists "
        "them with their strength ranges)",
    )


def _add_seeds(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--seeds", type=_seeds, default=default, help="comma-separated evaluation seeds"
    )


def _add_horizon(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--horizon",
        type=_positive_int,
        default=None,
        help="steps per session (default: the scenario's, 100 for the built-in ones)",
    )


def _env_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The EnvConfig fields set by ``--horizon`` and ``--encoder`` (those given), to apply over
    each scenario's config."""
    overrides: dict[str, object] = {}
    if args.horizon:
        overrides["horizon"] = args.horizon
    if args.encoder:
        overrides["encoder"] = args.encoder
    return overrides


def _warn_if_models(specs: list[str]) -> None:
    if any(spec.startswith("model:") for spec in specs):
        print(TRUST_WARNING, file=sys.stderr)


# -- quickstart -----------------------------------------------------------------------------------
def add_quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    _add_seeds(parser, "0,1,2")
    parser.add_argument("--users", type=_positive_int, default=128, help="sessions per seed")
    parser.add_argument(
        "--ppo-steps",
        type=_non_negative_int,
        default=20_000,
        help="PPO training user-steps; 0 skips PPO",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/quickstart"), help="run directory to write"
    )
    _add_encoder(parser, EnvConfig().encoder)
    parser.add_argument(
        "--finetune",
        action="store_true",
        help="fine-tune a fresh LoRA encoder on the default world first (minutes to tens of "
        "minutes, by core count and load) and use it instead of the shipped one",
    )


QUICKSTART_PPO = {
    "n_steps": 64,
    "batch_size": 512,
    "n_epochs": 10,
    "learning_rate": 1e-3,
    "ent_coef": 0.0,
    "gamma": 0.9,
    "gae_lambda": 0.95,
}
"""PPO settings of the quickstart's candidate scorer (64 concurrent users)."""

QUICKSTART_PRIOR = 4.0
"""The quickstart scorer's encoder-prior gain with an LM state (``train --encoder-prior``):
PPO learns a residual on the encoder's click logit (docs/results.md, policies issue)."""


@_claims_out("run")
def run_quickstart(args: argparse.Namespace) -> int:
    from recsim_llm.agents import baselines
    from recsim_llm.evaluation import evaluate, summary_table

    start = time.perf_counter()
    config = scenario_config("default")
    if args.encoder:
        config = replace(config, encoder=args.encoder)
    if args.finetune:
        from recsim_llm.lm import quickstart_encoder

        if args.encoder and args.encoder not in ("lm-fast", "lm-exact"):
            raise ValueError(f"--finetune needs an LM encoder, got --encoder {args.encoder}")
        t0 = time.perf_counter()
        path = quickstart_encoder(_encoder_out(args.out), train=True)
        encoder = args.encoder or "lm-fast"
        config = replace(config, encoder=encoder, encoder_path=str(path))
        print(f"  fine-tuned a LoRA encoder in {time.perf_counter() - t0:.0f}s: {path}")
    print(
        f"recsim-llm quickstart: default world, encoder={config.encoder!r}, seeds={args.seeds}, "
        f"{args.users} users per seed, horizon {config.horizon}"
    )

    # Pick the best fixed mix on seeds disjoint from the evaluation seeds.
    tuning_seeds = [max(args.seeds) + 1000 + i for i in range(2)]
    grid = baselines.fixed_mix_grid(config.slate_size + 1)
    grid_summary, _ = evaluate(
        grid, config, tuning_seeds, min(args.users, 64), "default", "tune", progress=True
    )
    best = max(grid_summary, key=lambda s: s.per_seed["return"].mean())
    best_mix = float(best.policy.split("-")[1])
    print(f"  best fixed mix on tuning seeds {tuning_seeds}: {best_mix:.2f}")

    from recsim_llm.agents.bandits import LinUCBPolicy
    from recsim_llm.agents.specs import HYBRID_DISCOUNT

    policies = [
        baselines.RandomPolicy(),
        baselines.PopularityPolicy(),
        LinUCBPolicy(),
        # LinUCB with a forgetting per-user model beside the shared one (linucb-hybrid).
        LinUCBPolicy(user_discount=HYBRID_DISCOUNT),
    ]
    if config.encoder in ("lm-fast", "lm-exact"):
        # The deployable myopic: ranks by the fine-tuned encoder's own click score.
        policies.append(baselines.EncoderGreedyPolicy(config.encoder_path))
    policies += [
        baselines.MyopicPolicy(),
        baselines.FixedMixPolicy(best_mix),
        baselines.OraclePolicy(),
    ]
    if args.ppo_steps > 0:
        from recsim_llm.agents.sb3 import SB3Policy, train_sb3

        lm_state = config.encoder in ("lm-fast", "lm-exact")
        t0 = time.perf_counter()
        # The candidate scorer (one shared MLP per candidate, Plackett-Luce slates) on the Dict
        # observation; settings of docs/results.md (policies issue).
        model = train_sb3(
            config,
            "PPO",
            total_timesteps=args.ppo_steps,
            n_envs=64,
            seed=0,
            progress=True,
            policy="scorer",
            encoder_prior=QUICKSTART_PRIOR if lm_state else 0.0,
            **QUICKSTART_PPO,
        )
        print(f"  trained PPO for {args.ppo_steps} user-steps in {time.perf_counter() - t0:.0f}s")
        policies.append(SB3Policy(model, "ppo-scorer+prior" if lm_state else "ppo-scorer"))
    summaries, rows = evaluate(
        policies, config, args.seeds, args.users, "default", "quickstart", progress=True
    )
    table = summary_table(summaries)
    print(table)
    write_run(
        args.out,
        rows,
        {
            "env": to_dict(config),
            "seeds": args.seeds,
            "users": args.users,
            "best_mix": best_mix,
            "ppo_steps": args.ppo_steps,
        },
    )
    print(f"results: {args.out}/results.csv ({time.perf_counter() - start:.0f}s)")
    return 0


# -- simulate -------------------------------------------------------------------------------------
def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        type=_policy_spec,
        default="random",
        metavar="SPEC",
        help=f"policy spec, one of: {', '.join(policy_forms())}",
    )
    parser.add_argument(
        "--mix", type=float, default=0.4, help="clickbait share for a bare --policy mix"
    )
    _add_scenario(parser, "scenario to simulate")
    _add_seeds(parser, "0")
    parser.add_argument("--users", type=_positive_int, default=64, help="sessions per seed")
    _add_horizon(parser)
    _add_encoder(parser)
    parser.add_argument("--out", type=Path, required=True, help="run directory to write")


@_claims_out("run")
def run_simulate(args: argparse.Namespace) -> int:
    from recsim_llm.evaluation import evaluate, summary_table

    spec = f"mix:{args.mix}" if args.policy == "mix" else args.policy
    overrides = _env_overrides(args)
    config: EnvConfig = scenario_config(args.scenario, **overrides)
    _warn_if_models([spec])
    policy = make_policy(spec, configs=[config])
    summaries, rows = evaluate(
        [policy], config, args.seeds, args.users, args.scenario, "simulate", progress=True
    )
    write_run(
        args.out,
        rows,
        {
            "env": to_dict(config),
            "policy": policy.name,
            "scenario": args.scenario,
            "seeds": args.seeds,
            "users": args.users,
        },
    )
    print(summary_table(summaries))
    print(f"results: {args.out}/results.csv")
    return 0


# -- evaluate -------------------------------------------------------------------------------------
def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policies",
        type=_policy_specs,
        default="random,popularity,myopic,mix:0.2,oracle",
        metavar="SPECS",
        help=f"comma-separated policy specs, each one of: {', '.join(policy_forms())} "
        "(SHARE: clickbait share in [0, 1]; PATH: a model zip from `recsim-llm train`). "
        "Names are unique in a run: a second policy of the same name gets '#2'",
    )
    parser.add_argument(
        "--scenarios",
        type=_scenarios,
        default="default",
        metavar="NAMES",
        help=f"comma-separated scenarios, NAME or NAME@STRENGTH, from: "
        f"{', '.join(scenario_names())} (`recsim-llm scenarios` lists them)",
    )
    _add_seeds(parser, "0,1,2")
    parser.add_argument("--users", type=_positive_int, default=64, help="sessions per seed")
    _add_horizon(parser)
    _add_encoder(parser)
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where the grid's tasks (policy x scenario x seed) run: local processes, or Ray "
        '(pip install "recsim-llm[ray]")',
    )
    parser.add_argument(
        "--workers", type=_positive_int, default=1, help="local processes (1: this process)"
    )
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster address for --executor ray ('auto': the running cluster; default: "
        "start a local Ray instance)",
    )
    parser.add_argument(
        "--log-fraction",
        type=float,
        default=0.0,
        help="share of users whose every step is written to steps.parquet (0: none)",
    )
    parser.add_argument(
        "--no-explain",
        dest="explain",
        action="store_false",
        help="leave steps.parquet's explanation columns null (with --encoder lm-fast they hold "
        "one sentence per shown item, from the encoder's exact score split)",
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory to write")


@_claims_out("run")
def run_evaluate(args: argparse.Namespace) -> int:
    from recsim_llm.context import is_privileged
    from recsim_llm.evaluation import PolicySummary, summary_table
    from recsim_llm.grid import add_reference_scores, grid_tasks, make_executor, run_grid
    from recsim_llm.report import write_grid_run
    from recsim_llm.scenarios import scenario_info
    from recsim_llm.steplog import sample_users

    specs, scenarios = args.policies, args.scenarios
    sample_users(1, args.log_fraction, 0)  # checks --log-fraction before any work
    if args.address is not None and args.executor != "ray":
        raise ValueError("--address needs --executor ray")
    overrides = _env_overrides(args)
    env_configs = {name: scenario_config(name, **overrides) for name in scenarios}
    _warn_if_models(specs)
    # Every policy is built (and every model checked against every scenario) before any run.
    policies = make_policies(specs, configs=list(env_configs.values()))
    names = [p.name for p in policies]
    tasks = grid_tasks(
        specs,
        scenarios,
        args.seeds,
        args.users,
        run_id="evaluate",
        overrides=overrides,
        log_fraction=args.log_fraction,
        explain=args.explain,
        names=names,
    )
    if args.executor == "ray":
        executor = make_executor("ray", address=args.address)
    else:
        executor = make_executor("local", workers=args.workers)
    result = run_grid(tasks, executor, progress=True)
    result = type(result)(add_reference_scores(result.table), result.steplog, result.seconds)
    table = result.table
    sessions = table[table.step == -1]
    report = []
    for name in scenarios:
        summaries = []
        for policy in policies:
            here = sessions[(sessions.scenario == name) & (sessions.policy == policy.name)]
            per_seed = {
                m: group.sort_values("seed").value.to_numpy() for m, group in here.groupby("metric")
            }
            summaries.append(PolicySummary(policy.name, per_seed, is_privileged(policy)))
        report += [f"## {name}", "", summary_table(summaries), ""]
    write_grid_run(
        args.out,
        result,
        {
            "scenarios": {name: to_dict(config) for name, config in env_configs.items()},
            "scenario_versions": {
                name: scenario_info(name.partition("@")[0]).version for name in scenarios
            },
            "policies": specs,
            "policy_names": names,
            "seeds": args.seeds,
            "users": args.users,
            "executor": args.executor,
            "workers": args.workers,
            "log_fraction": args.log_fraction,
            "explain": args.explain,
        },
        extra_files={"summary.md": "\n".join(report)},
    )
    print("\n".join(report))
    print(
        f"results: {args.out}/results.csv, results.parquet, report.md "
        f"({len(tasks)} tasks, {sum(result.seconds):.1f}s of task time)"
    )
    return 0


# -- train ----------------------------------------------------------------------------------------
HYPERPARAMETER_FLAGS = {
    "n_steps": "--n-steps",
    "batch_size": "--batch-size",
    "n_epochs": "--n-epochs",
    "learning_rate": "--lr",
    "gamma": "--gamma",
    "gae_lambda": "--gae-lambda",
    "ent_coef": "--ent-coef",
    "clip_range": "--clip-range",
}
"""``train``'s flags for the common SB3 hyperparameters (keyword: flag); others: ``--algo-kwarg``."""


def _algo_kwarg(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _add_hyperparameters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "SB3 hyperparameters",
        "recorded in config.json; a --resume must give the same ones. Unset: the algorithm's "
        "default (ours for PPO's n_steps, batch_size, n_epochs, lr and gamma; SB3's otherwise)",
    )
    for flag, kind, what, default in (
        ("--n-steps", _positive_int, "rollout steps per concurrent user", "64 (PPO), 5 (A2C)"),
        ("--batch-size", _positive_int, "PPO mini-batch size; must divide n-steps x envs", "256"),
        ("--n-epochs", _positive_int, "PPO epochs over each rollout", "4"),
        ("--lr", float, "learning rate (> 0)", "3e-4 (PPO), 7e-4 (A2C)"),
        ("--gamma", float, "discount factor, in (0, 1]", "0.99"),
        ("--gae-lambda", float, "GAE lambda, in [0, 1]", "0.95 (PPO), 1.0 (A2C)"),
        ("--ent-coef", float, "entropy bonus coefficient (>= 0)", "0.0"),
        ("--clip-range", float, "PPO clipping range (> 0)", "0.2"),
    ):
        group.add_argument(flag, type=kind, default=None, help=f"{what} (default: {default})")
    group.add_argument(
        "--algo-kwarg",
        type=_algo_kwarg,
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="any other keyword of the SB3 algorithm's constructor (e.g. vf_coef=0.25, "
        "target_kl=0.02, clip_range_vf=none); repeat for several (default: none)",
    )


def _train_algo_kwargs(args: argparse.Namespace) -> tuple[dict[str, object], dict[str, str]]:
    """The hyperparameters ``train`` was given, and the flag each came from (for messages)."""
    from recsim_llm.agents.sb3 import algorithm_defaults

    kwargs: dict[str, object] = {}
    names = {"n_envs": "--envs", **HYPERPARAMETER_FLAGS}
    for key, flag in HYPERPARAMETER_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is None:
            continue
        if key not in algorithm_defaults(args.algo):
            raise ValueError(f"{flag}: {args.algo} has no {key} (it is a PPO hyperparameter)")
        kwargs[key] = value
    for key, value in args.algo_kwarg or []:
        if key in kwargs:
            raise ValueError(f"--algo-kwarg {key}={value}: {key} is already given ({names[key]})")
        kwargs[key], names[key] = value, f"--algo-kwarg {key}"
    return kwargs, names


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from recsim_llm.agents.sb3 import ALGORITHMS, SB3_POLICIES

    parser.add_argument("--algo", choices=ALGORITHMS, default="PPO", help="SB3 algorithm")
    parser.add_argument(
        "--policy",
        choices=SB3_POLICIES,
        default="scorer",
        help="scorer: one shared network scoring each candidate, Plackett-Luce slates (Dict "
        "observation); MlpPolicy: SB3's MLP on the flat observation; MultiInputPolicy: SB3's "
        "per-key extractor on the Dict observation",
    )
    parser.add_argument("--steps", type=_positive_int, default=50_000, help="user-steps to train")
    parser.add_argument("--envs", type=_positive_int, default=16, help="concurrent users")
    parser.add_argument(
        "--encoder-prior",
        type=_non_negative_float,
        default=0.0,
        metavar="GAIN",
        help="scorer with an LM state only: add the encoder's own click logit, times a learnt "
        "gain starting at GAIN, to every candidate's score (PPO then learns a residual on "
        "encoder-greedy); 0: none (default: 0)",
    )
    _add_scenario(parser, "scenario to train on")
    _add_horizon(parser)
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_non_negative_int, default=0, help="training seed")
    seeds.add_argument(
        "--seeds",
        type=_seeds,
        default=None,
        help="comma-separated training seeds (instead of --seed): one run per seed in "
        "OUT/seed-<S>/, then OUT/summary.csv and summary.md (final evaluation return per seed, "
        "mean with a bootstrap interval)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default=None,
        help="where --seeds runs its seeds: local processes, or Ray (pip install "
        '"recsim-llm[ray]"; a multi-node cluster needs --out on a shared filesystem) '
        "(default: local)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="local processes for --seeds, each with --threads torch threads (default: 1, "
        "this process)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster address for --executor ray ('auto': the running cluster; default: "
        "start a local Ray instance)",
    )
    _add_encoder(parser)
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch threads of the run, set before training (recorded in config.json); with "
        "--seeds, of each seed's worker (Ray reserves this many CPUs per seed)",
    )
    parser.add_argument(
        "--eval-every",
        type=_non_negative_int,
        default=10_000,
        help="evaluate the deterministic policy every this many user-steps and at the end "
        "(eval.csv); 0 never",
    )
    parser.add_argument(
        "--eval-seeds",
        type=_seeds,
        default="1000,1001,1002",
        help="comma-separated evaluation seeds (never the training --seed)",
    )
    parser.add_argument(
        "--eval-users", type=_positive_int, default=32, help="users per evaluation seed"
    )
    parser.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        default=10_000,
        help="checkpoint every this many user-steps (checkpoints/); 0 never",
    )
    parser.add_argument(
        "--keep-checkpoints", type=_positive_int, default=2, help="newest checkpoints kept"
    )
    _add_hyperparameters(parser)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its newest checkpoint (with --seeds: every "
        "unfinished seed); every other option must be the one the run was started with",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="run directory to write: config.json, progress.csv, eval.csv, checkpoints/, and "
        "model.zip (use it as model:OUT/model.zip); with --seeds, one such directory per seed "
        "in OUT/seed-<S>/",
    )


def _train_kind(args: argparse.Namespace) -> str:
    from recsim_llm.agents.training import SEEDS_KIND, TRAIN_KIND

    return SEEDS_KIND if args.seeds is not None else TRAIN_KIND


@_claims_out(_train_kind)
def run_train(args: argparse.Namespace) -> int:
    from recsim_llm.agents.sb3 import check_hyperparameters
    from recsim_llm.agents.training import TrainSettings, train_run

    if args.seeds is None:
        given = [f"--{n}" for n in ("executor", "workers", "address") if getattr(args, n)]
        if given:
            raise ValueError(
                f"{', '.join(given)}: only with --seeds (several training runs, one per seed)"
            )
    elif args.address is not None and args.executor != "ray":
        raise ValueError("--address needs --executor ray")
    if args.out.suffix == ".zip":
        raise ValueError(
            f"--out {args.out}: --out is a run directory now (the model is written to "
            "OUT/model.zip); choose a folder name"
        )
    overrides = _env_overrides(args)
    config = scenario_config(args.scenario, **overrides)
    algo_kwargs, names = _train_algo_kwargs(args)
    check_hyperparameters(args.algo, algo_kwargs, n_envs=args.envs, names=names)
    settings = TrainSettings(
        algorithm=args.algo,
        policy=args.policy,
        steps=args.steps,
        n_envs=args.envs,
        seed=args.seed,
        threads=args.threads,
        eval_every=args.eval_every,
        eval_seeds=tuple(args.eval_seeds),
        eval_users=args.eval_users,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        scenario=args.scenario,
        encoder_prior=args.encoder_prior,
        algo_kwargs=tuple(algo_kwargs.items()),
    )
    if args.encoder_prior and config.encoder not in ("lm-fast", "lm-exact"):
        raise ValueError(
            f"--encoder-prior {args.encoder_prior:g}: needs an LM state (--encoder lm-fast or "
            f"lm-exact), got {config.encoder!r}"
        )
    t0 = time.perf_counter()
    if args.seeds is not None:
        return _train_seeds(args, config, settings, t0)
    model = train_run(args.out, config, settings, resume=args.resume, progress=True)
    print(
        f"trained {args.algo} ({args.policy}) to {model.num_timesteps} user-steps in "
        f"{time.perf_counter() - t0:.0f}s: {args.out}/model.zip"
    )
    return 0


def _train_seeds(
    args: argparse.Namespace, config: EnvConfig, settings: TrainSettings, t0: float
) -> int:
    from recsim_llm.agents.training import SUMMARY, SUMMARY_MD, train_seeds
    from recsim_llm.grid import executor_for

    if args.executor == "ray" and args.workers is not None:
        raise ValueError("--workers is for --executor local (Ray places tasks itself)")
    executor = executor_for(
        args.executor or "local",
        workers=args.workers or 1,
        address=args.address,
        task_cpus=args.threads,
    )
    results = train_seeds(
        args.out, config, settings, args.seeds, executor=executor, resume=args.resume, progress=True
    )
    print((args.out / SUMMARY_MD).read_text(encoding="utf-8"), end="")
    print(
        f"trained {args.algo} ({args.policy}) on {len(results)} seeds in "
        f"{time.perf_counter() - t0:.0f}s: {args.out}/seed-<S>/model.zip, {args.out}/{SUMMARY}"
    )
    return 0


# -- dashboard ------------------------------------------------------------------------------------
def add_dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs",
        type=Path,
        action="append",
        default=None,
        help="a folder of run directories; repeat for several (default: runs). The app reads "
        "only runs under these folders",
    )
    parser.add_argument("--port", type=_positive_int, default=8501, help="port of the web app")
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only)",
    )


def dashboard_command(args: argparse.Namespace) -> list[str]:
    """The streamlit command line of ``recsim-llm dashboard`` (headless, no usage statistics)."""
    import recsim_llm.dashboard

    app = Path(recsim_llm.dashboard.__file__).with_name("app.py")
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless",
        "true",
        "--server.address",
        str(args.address),
        "--server.port",
        str(args.port),
        "--browser.gatherUsageStats",
        "false",
        "--",
    ]
    for root in args.runs or [Path("runs")]:
        command += ["--runs", str(root)]
    return command


def _end_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM if this process dies without cleaning up (e.g. SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_dashboard(args: argparse.Namespace) -> int:
    """Run streamlit as a child; SIGINT/SIGTERM to this process end the child too."""
    import subprocess

    child = subprocess.Popen(
        dashboard_command(args),
        preexec_fn=_end_with_parent if sys.platform.startswith("linux") else None,
    )

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # pragma: no cover - handler replaced above
                forward(signal.SIGINT, None)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


# -- scenarios ------------------------------------------------------------------------------------
def add_scenarios_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options: the list is short


def run_scenarios(args: argparse.Namespace) -> int:
    from recsim_llm.scenarios import scenario_table

    del args
    lines = [
        "| scenario | version | description | strength | default | range |",
        "|---|---:|---|---|---:|---|",
    ]
    for row in scenario_table():
        default = "" if row["default"] is None else f"{row['default']:g}"
        lines.append(
            f"| {row['name']} | {row['version']} | {row['description']} | {row['strength']} "
            f"| {default} | {row['range']} |"
        )
    print("\n".join(lines))
    print("\nSelect a strength with NAME@STRENGTH, e.g. --scenarios obs-noise@0.5,bots@0.1")
    return 0


QUICKSTART = Command(
    "Run the default world with the baselines (and a short PPO) and print a table.",
    add_quickstart_arguments,
    run_quickstart,
)
SIMULATE = Command(
    "Roll out one policy over seeds and write a tidy results file.",
    add_simulate_arguments,
    run_simulate,
)
EVALUATE = Command(
    "Evaluate several policies over scenarios and seeds, with bootstrap intervals.",
    add_evaluate_arguments,
    run_evaluate,
)
TRAIN = Command(
    "Train a Stable-Baselines3 policy on the batched env and save it.",
    add_train_arguments,
    run_train,
)
SCENARIOS = Command(
    "List the named scenarios: version, description, strength parameter and range.",
    add_scenarios_arguments,
    run_scenarios,
)
DASHBOARD = Command(
    "Open the Streamlit dashboard on saved run directories.",
    add_dashboard_arguments,
    run_dashboard,
)
