"""Built-in subcommands of ``recsim-llm``: ``quickstart`` and ``simulate``."""

from __future__ import annotations

import argparse
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from recsim_llm.config import EnvConfig, to_dict
from recsim_llm.io import claim_output
from recsim_llm.results import write_run
from recsim_llm.scenarios import SCENARIOS, scenario_config

POLICY_NAMES = ("random", "popularity", "linucb", "myopic", "oracle", "mix")


def make_policy(name: str, mix: float = 0.4, seed: int = 0):  # noqa: ANN201
    """A baseline policy by name ('mix' uses ``mix``)."""
    from recsim_llm.agents import baselines

    if name == "random":
        return baselines.RandomPolicy(seed)
    if name == "popularity":
        return baselines.PopularityPolicy(seed)
    if name == "linucb":
        from recsim_llm.agents.bandits import LinUCBPolicy

        return LinUCBPolicy()
    if name == "myopic":
        return baselines.MyopicPolicy()
    if name == "oracle":
        return baselines.OraclePolicy()
    if name == "mix":
        return baselines.FixedMixPolicy(mix)
    raise ValueError(f"policy must be one of {POLICY_NAMES}, got {name!r}")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
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


def _claims_out(kind: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable]:
    """Check ``args.out`` and hold it as a ``kind`` output for the whole command.

    The first thing a command does, before any print or work: ``recsim_llm.io.claim_output``
    refuses a path that is not ours (a file, a folder with other files, another kind of output)
    or that another process is writing. ``quickstart --finetune`` also claims ``OUT-encoder``.
    """

    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(run)
        def claimed(args: argparse.Namespace) -> int:
            with contextlib.ExitStack() as stack:
                stack.enter_context(claim_output(args.out, kind))
                if getattr(args, "finetune", False):
                    folder = _encoder_out(args.out)
                    stack.enter_context(claim_output(folder, "encoder", option="--finetune"))
                return run(args)

        return claimed

    return wrap


# -- quickstart -----------------------------------------------------------------------------------
def add_quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="evaluation seeds (0,1,2)")
    parser.add_argument("--users", type=_positive_int, default=128, help="sessions per seed (128)")
    parser.add_argument(
        "--ppo-steps", type=int, default=20_000, help="PPO training user-steps; 0 skips PPO (20000)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="run directory")
    parser.add_argument(
        "--encoder", default=None, help="encoder name (default: the env config's default)"
    )
    parser.add_argument(
        "--finetune",
        action="store_true",
        help="fine-tune a fresh LoRA encoder on the default world first (a few minutes) and use "
        "it instead of the shipped one",
    )


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
    grid_summary, _ = evaluate(grid, config, tuning_seeds, min(args.users, 64), "default", "tune")
    best = max(grid_summary, key=lambda s: s.per_seed["return"].mean())
    best_mix = float(best.policy.split("-")[1])
    print(f"  best fixed mix on tuning seeds {tuning_seeds}: {best_mix:.2f}")

    from recsim_llm.agents.bandits import LinUCBPolicy

    policies = [
        baselines.RandomPolicy(),
        baselines.PopularityPolicy(),
        LinUCBPolicy(),
        baselines.MyopicPolicy(),
        baselines.FixedMixPolicy(best_mix),
        baselines.OraclePolicy(),
    ]
    if args.ppo_steps > 0:
        from recsim_llm.agents.sb3 import SB3Policy, train_sb3

        t0 = time.perf_counter()
        model = train_sb3(config, "PPO", total_timesteps=args.ppo_steps, n_envs=16, seed=0)
        print(f"  trained PPO for {args.ppo_steps} user-steps in {time.perf_counter() - t0:.0f}s")
        policies.append(SB3Policy(model, "ppo"))
    summaries, rows = evaluate(policies, config, args.seeds, args.users, "default", "quickstart")
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
    parser.add_argument("--policy", choices=POLICY_NAMES, default="random")
    parser.add_argument("--mix", type=float, default=0.4, help="clickbait share for --policy mix")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="default")
    parser.add_argument("--seeds", type=_seeds, default=[0])
    parser.add_argument("--users", type=_positive_int, default=64)
    parser.add_argument("--horizon", type=_positive_int, default=None)
    parser.add_argument("--encoder", default=None)
    parser.add_argument("--out", type=Path, required=True, help="run directory to write")


@_claims_out("run")
def run_simulate(args: argparse.Namespace) -> int:
    from recsim_llm.evaluation import evaluate, summary_table

    policy = make_policy(args.policy, args.mix)
    overrides: dict[str, object] = {}
    if args.horizon:
        overrides["horizon"] = args.horizon
    if args.encoder:
        overrides["encoder"] = args.encoder
    config: EnvConfig = scenario_config(args.scenario, **overrides)
    summaries, rows = evaluate([policy], config, args.seeds, args.users, args.scenario, "simulate")
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
def parse_policy(spec: str, seed: int = 0):  # noqa: ANN201
    """A policy from a spec: a baseline name, ``mix:SHARE``, or ``model:PATH`` (an SB3 zip)."""
    if spec.startswith("mix:"):
        try:
            share = float(spec[4:])
        except ValueError:
            raise ValueError(f"policy spec {spec!r}: mix share must be a number") from None
        return make_policy("mix", share)
    if spec.startswith("model:"):
        from recsim_llm.agents.sb3 import load_sb3_policy

        return load_sb3_policy(Path(spec[6:]))
    return make_policy(spec, seed=seed)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policies",
        default="random,popularity,myopic,mix:0.2,oracle",
        help="comma-separated: random, popularity, myopic, oracle, mix:SHARE, model:PATH.zip",
    )
    parser.add_argument(
        "--scenarios", default="default", help=f"comma-separated from {sorted(SCENARIOS)}"
    )
    parser.add_argument("--seeds", type=_seeds, default=[0, 1, 2])
    parser.add_argument("--users", type=_positive_int, default=64)
    parser.add_argument("--horizon", type=_positive_int, default=None)
    parser.add_argument("--encoder", default=None)
    parser.add_argument("--out", type=Path, required=True, help="run directory to write")


@_claims_out("run")
def run_evaluate(args: argparse.Namespace) -> int:
    from recsim_llm.evaluation import evaluate, summary_table

    specs = [p.strip() for p in args.policies.split(",") if p.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not specs:
        raise ValueError("policies must name at least one policy")
    for name in scenarios:
        if name not in SCENARIOS:
            raise ValueError(f"scenarios: unknown scenario {name!r}; known: {sorted(SCENARIOS)}")
    policies = [parse_policy(spec) for spec in specs]  # all parsed before anything runs
    overrides: dict[str, object] = {}
    if args.horizon:
        overrides["horizon"] = args.horizon
    if args.encoder:
        overrides["encoder"] = args.encoder
    all_rows, report, configs = [], [], {}
    for name in scenarios:
        config = scenario_config(name, **overrides)
        configs[name] = to_dict(config)
        summaries, rows = evaluate(policies, config, args.seeds, args.users, name, "evaluate")
        all_rows.extend(rows)
        report += [f"## {name}", "", summary_table(summaries), ""]
    write_run(
        args.out,
        all_rows,
        {"scenarios": configs, "policies": specs, "seeds": args.seeds, "users": args.users},
        files={"summary.md": "\n".join(report)},
    )
    print("\n".join(report))
    print(f"results: {args.out}/results.csv")
    return 0


# -- train ----------------------------------------------------------------------------------------
def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algo", choices=("PPO", "A2C"), default="PPO")
    parser.add_argument("--steps", type=_positive_int, default=50_000, help="user-steps")
    parser.add_argument("--envs", type=_positive_int, default=16, help="concurrent users")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default=None)
    parser.add_argument("--out", type=Path, required=True, help="model file to write (.zip)")


@_claims_out("model")
def run_train(args: argparse.Namespace) -> int:
    from recsim_llm.agents.sb3 import save_sb3_model, train_sb3

    overrides: dict[str, object] = {"encoder": args.encoder} if args.encoder else {}
    config = scenario_config(args.scenario, **overrides)
    if args.out.suffix != ".zip":
        raise ValueError(f"out must end in .zip, got {args.out}")
    t0 = time.perf_counter()
    model = train_sb3(config, args.algo, args.steps, args.envs, args.seed)
    save_sb3_model(model, args.out, config)
    print(
        f"trained {args.algo} for {args.steps} user-steps in {time.perf_counter() - t0:.0f}s: "
        f"{args.out}"
    )
    return 0


# -- dashboard ------------------------------------------------------------------------------------
def add_dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder of run directories")
    parser.add_argument("--port", type=int, default=8501)


def run_dashboard(args: argparse.Namespace) -> int:
    import subprocess
    import sys

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
        "--server.port",
        str(args.port),
        "--",
        "--runs",
        str(args.runs),
    ]
    return subprocess.call(command)


BUILTIN: dict[
    str,
    tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]],
] = {
    "quickstart": (
        "Run the default world with the baselines (and a short PPO) and print a table.",
        add_quickstart_arguments,
        run_quickstart,
    ),
    "simulate": (
        "Roll out one policy over seeds and write a tidy results file.",
        add_simulate_arguments,
        run_simulate,
    ),
    "evaluate": (
        "Evaluate several policies over scenarios and seeds, with bootstrap intervals.",
        add_evaluate_arguments,
        run_evaluate,
    ),
    "train": (
        "Train a Stable-Baselines3 policy on the batched env and save it.",
        add_train_arguments,
        run_train,
    ),
    "dashboard": (
        "Open the Streamlit dashboard on saved run directories.",
        add_dashboard_arguments,
        run_dashboard,
    ),
}
