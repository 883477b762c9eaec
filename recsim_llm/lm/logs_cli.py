"""``recsim-llm write-logs``: behaviour-policy logs of the synthetic world for fine-tuning."""

from __future__ import annotations

import argparse

HELP = (
    "Write interaction logs of a stochastic behaviour policy on the synthetic world "
    "(or, with --movielens DIR, MovieLens ratings in the same format)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from recsim_llm.scenarios import scenario_names

    parser.add_argument(
        "--out",
        required=True,
        help="log directory to write (new, empty, or a log folder of ours; replaced atomically)",
    )
    parser.add_argument(
        "--scenario",
        choices=scenario_names(),
        default="default",
        help="scenario whose world is logged",
    )
    parser.add_argument("--n-users", type=int, default=256, help="concurrent user slots")
    parser.add_argument("--n-steps", type=int, default=40, help="world steps to run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and the policy")
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="behaviour softmax temperature"
    )
    parser.add_argument(
        "--epsilon", type=float, default=0.2, help="share of uniformly random slates"
    )
    parser.add_argument(
        "--movielens",
        default="",
        metavar="DIR",
        help="convert MovieLens-100K in DIR instead (fine-tune with --label liked); "
        "default: the synthetic world",
    )
    parser.add_argument(
        "--ordered",
        action="store_true",
        help="show each slate in the behaviour policy's utility order instead of a uniformly "
        "random order (BehaviourPolicy.shuffle_order=False; the order then predicts clicks "
        "through the position penalty)",
    )


def run(args: argparse.Namespace) -> int:
    from recsim_llm.io import claim_output

    with claim_output(args.out, "logs"):  # checked and held before any work
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from recsim_llm.lm.logs import (
        BehaviourPolicy,
        load_logs,
        write_behaviour_logs,
        write_movielens_logs,
    )
    from recsim_llm.scenarios import scenario_config

    if args.movielens:
        path = write_movielens_logs(args.movielens, args.out, seed=args.seed)
        data = load_logs(path)
        print(f"wrote {data.n_rows} rows of {len(set(data.user.tolist()))} users to {path}")
        return 0
    path = write_behaviour_logs(
        args.out,
        scenario_config(args.scenario),
        n_users=args.n_users,
        n_steps=args.n_steps,
        seed=args.seed,
        policy=BehaviourPolicy(args.temperature, args.epsilon, shuffle_order=not args.ordered),
        progress=True,
    )
    data = load_logs(path)
    print(f"wrote {data.n_rows} rows of {len(set(data.user.tolist()))} users to {path}")
    return 0
