"""SB3 PPO training throughput on our env vs on CartPole-v1, with the same PPO settings.

Measured in one run, so that the ratios compare like with like on a noisy machine. Every case
trains PPO from scratch for ``--steps`` env-steps (one env-step = one user-step = one CartPole
step; at least one rollout, ``n_steps`` × the batch, so a large ``--users`` may run more; rates
are per step actually run) with ``n_envs`` concurrent CartPole envs and ``--users`` concurrent users of our
batched env (default: the same number), ``n_steps=64``, ``batch_size=256``,
``n_epochs=4``, ``learning_rate=3e-4``, ``gamma=0.99`` (``train_sb3``'s settings), on the CPU with
one torch thread:

* ``CartPole-v1``: ``make_vec_env("CartPole-v1", n_envs)`` (a ``DummyVecEnv``), ``MlpPolicy``.
* ``recsim ENCODER, MlpPolicy``: ``SB3VecEnv(SlateVectorEnv(n_envs, EnvConfig(encoder=...)),
  flatten=True)``, the flat view of the observation (as ``train_sb3(policy="MlpPolicy")``: SB3's
  ``MlpPolicy`` with the slate's multi-categorical computed in one pass,
  ``recsim_llm.agents.flat.SlateMlpPolicy``; on CartPole's ``Discrete`` action it is the stock
  policy).
* ``recsim ENCODER, scorer``: the ``Dict`` observation with
  ``recsim_llm.agents.scorer.CandidateScorerPolicy`` (as ``train_sb3(policy="scorer")``).

Encoders: ``lm-fast`` (the shipped LM encoder: cached item and profile embeddings, a NumPy head
per step, no LM run at step time) and ``bow``. Building the env and the model is not timed.

The split: ``env step`` is the time inside the VecEnv's ``step_async``/``step_wait``,
``rollout other`` the rest of ``collect_rollouts`` (policy forward passes, the
rollout buffer, callbacks), ``train`` PPO's gradient updates (``PPO.train``); what is left
of the wall time is ``learn``'s setup (the first reset) and logging. Usage::

    python benchmarks/bench_ppo_throughput.py [--steps 20000] [--n-envs 16] [--users 1024] \
        [--out FILE]
"""

from __future__ import annotations

import os

# One-thread figures: these must be set before NumPy and torch are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

PPO_SETTINGS: dict[str, Any] = {
    "n_steps": 64,
    "batch_size": 256,
    "n_epochs": 4,
    "learning_rate": 3e-4,
    "gamma": 0.99,
}
"""The PPO settings of ``recsim_llm.agents.sb3.train_sb3``, used for every case."""


@dataclass
class Case:
    """One training run: how to build its VecEnv and which SB3 policy to train."""

    name: str
    policy: str
    make_env: Callable[[int], Any]


@dataclass
class Timing:
    """Wall-clock seconds of one training run, split by phase."""

    steps: int
    total: float
    env: float
    rollout: float
    train: float

    @property
    def rate(self) -> float:
        return self.steps / self.total


def _timed(obj: Any, attr: str, bucket: list[float]) -> None:
    """Wrap ``obj.attr`` (a bound method) so that its wall time is added to ``bucket[0]``."""
    inner = getattr(obj, attr)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            bucket[0] += time.perf_counter() - start

    setattr(obj, attr, wrapper)


def run_case(case: Case, steps: int, n_envs: int, seed: int) -> Timing:
    """Train PPO on ``case`` for ``steps`` env-steps; the timed phases of ``model.learn``."""
    import stable_baselines3 as sb3
    import torch

    torch.manual_seed(seed)
    venv = case.make_env(n_envs)
    venv.seed(seed)
    from recsim_llm.agents.sb3 import policy_class

    # As train_sb3: "MlpPolicy" is SB3's MlpPolicy with the slate distribution computed in one
    # pass (recsim_llm.agents.flat; for CartPole's Discrete action it is the stock one).
    policy: Any = policy_class(case.policy)
    model = sb3.PPO(policy, venv, seed=seed, verbose=0, device="cpu", **PPO_SETTINGS)
    env_s, rollout_s, train_s = [0.0], [0.0], [0.0]
    for attr in ("step_async", "step_wait"):
        _timed(model.env, attr, env_s)
    _timed(model, "collect_rollouts", rollout_s)
    _timed(model, "train", train_s)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    total = time.perf_counter() - start
    done = model.num_timesteps
    venv.close()
    return Timing(done, total, env_s[0], rollout_s[0] - env_s[0], train_s[0])


def cases(encoders: list[str]) -> list[Case]:
    """CartPole first (the reference), then our env with each encoder and SB3 policy."""
    from stable_baselines3.common.env_util import make_vec_env

    from recsim_llm.config import EnvConfig
    from recsim_llm.envs.sb3 import SB3VecEnv
    from recsim_llm.envs.vector import SlateVectorEnv

    def ours(encoder: str, flatten: bool) -> Callable[[int], Any]:
        config = EnvConfig(encoder=encoder)
        return lambda n: SB3VecEnv(SlateVectorEnv(num_envs=n, config=config), flatten=flatten)

    out = [Case("CartPole-v1", "MlpPolicy", lambda n: make_vec_env("CartPole-v1", n_envs=n))]
    for encoder in encoders:
        out.append(Case(f"recsim {encoder} (flat)", "MlpPolicy", ours(encoder, True)))
        out.append(Case(f"recsim {encoder} (Dict)", "scorer", ours(encoder, False)))
    return out


def report(rows: list[tuple[Case, Timing]], args: argparse.Namespace, command: str) -> str:
    """A markdown table of env-steps/s, the ratio to CartPole and the phase split."""
    import stable_baselines3 as sb3
    import torch

    reference = rows[0][1].rate
    lines = [
        f"`{command}` ({datetime.date.today().isoformat()}; Python {platform.python_version()}, "
        f"SB3 {sb3.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"torch threads {torch.get_num_threads()}; PPO n_envs {args.n_envs} (CartPole), "
        f"{args.users} (ours), "
        f"n_steps {PPO_SETTINGS['n_steps']}, batch {PPO_SETTINGS['batch_size']}, "
        f"n_epochs {PPO_SETTINGS['n_epochs']})",
        "",
        "| env | SB3 policy | env-steps | wall s | env-steps/s | vs CartPole | env step | "
        "rollout other | train |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, t in rows:

        def share(seconds: float, total: float = t.total) -> str:
            return f"{seconds:.2f} s ({100 * seconds / total:.0f}%)"

        lines.append(
            f"| {case.name} | {case.policy} | {t.steps:,} | {t.total:.2f} | {t.rate:,.0f} | "
            f"{t.rate / reference:.2f} | {share(t.env)} | {share(t.rollout)} | {share(t.train)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env-steps per case")
    parser.add_argument("--n-envs", type=int, default=16, help="concurrent CartPole envs")
    parser.add_argument(
        "--users",
        type=int,
        default=None,
        help="concurrent users of our batched env (default: --n-envs); one env-step is one "
        "user-step, so a larger batch spreads the per-step fixed costs",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--encoders", default="lm-fast,bow", help="comma-separated encoders of our env"
    )
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.users is None:
        args.users = args.n_envs
    if args.steps < 1 or args.n_envs < 1 or args.users < 1:
        parser.error("--steps, --n-envs and --users must be >= 1")

    import torch

    torch.set_num_threads(1)
    command = "python benchmarks/bench_ppo_throughput.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    rows = []
    for case in cases([e for e in args.encoders.split(",") if e]):
        n_envs = args.n_envs if case.name.startswith("CartPole") else args.users
        timing = run_case(case, args.steps, n_envs, args.seed)
        print(f"{case.name} {case.policy}: {timing.rate:,.0f} env-steps/s", file=sys.stderr)
        rows.append((case, timing))
    text = report(rows, args, command.strip())
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
