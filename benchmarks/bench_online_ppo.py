"""Online adjustment under drift with PPO: a trained policy keeps learning vs the same one frozen.

Each trained PPO model of a ``recsim-llm train --seeds`` folder (``RUNS/seed-S/model.zip``) is
deployed on ``--scenario`` (default ``taste-shift``: half the users' hidden interests are redrawn
at session step 40; ``trend-shift``: everyone's interest in one topic rises there) for
``--steps`` user-steps over ``--users`` concurrent users (a stream: a user whose session ends is
replaced by a new one), twice from the same env seed (10000 + S, never
a training or evaluation seed):

* **learning**: ``model.learn`` continues on the deployment env (PPO updates every rollout, the
  model's own hyperparameters), acting by sampling its Plackett–Luce slates;
* **frozen**: the same model acts by sampling too (``predict(deterministic=False)``), no updates.

Rewards are grouped by the session step at which they were earned. ``drift_ppo.csv`` holds the
tidy per-step means (mode, seed, part, session step, mean reward, count) for the whole online
period (``all``) and its last third (``late``, after most of the learning); ``drift_ppo.md`` the
means before the shift (the 10 steps before it), after it (the 20 steps from it), late in the
session (the rest) and over the whole session (``session_windows``), with paired learning −
frozen differences and 95% bootstrap intervals over the training seeds
(``recsim_llm.stats.paired_difference``); ``drift_ppo.png`` the curves. One marked output
folder (``recsim_llm.io``): a foreign ``--out`` is refused before any work.

    python benchmarks/bench_online_ppo.py --runs RUNS --scenario taste-shift --out OUT
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

PARTS = ("all", "late")


def session_windows(shift: int, horizon: int) -> list[tuple[str, int, int]]:
    """(label, first step, end) of the before / after / late windows around the shift.

    Without a shift (``shift < 0``: e.g. the ``default`` control) the same steps as
    ``taste-shift``'s (shift at 40) are used, so the two tables line up; windows are clipped to
    the horizon and empty ones left out, then the whole session is added.
    """
    ref = shift if shift >= 0 else 40
    tag = "" if shift >= 0 else ", no shift"
    spans = [
        ("before", max(0, ref - 10), min(ref, horizon)),
        ("after", min(ref, horizon), min(ref + 20, horizon)),
        ("late", min(ref + 20, horizon), horizon),
    ]
    out = [(f"{name} ({lo}..{hi - 1}{tag})", lo, hi) for name, lo, hi in spans if hi > lo]
    return [*out, ("whole session", 0, horizon)]


def deploy(model_path: Path, config, env_seed: int, steps: int, users: int, learn: bool):
    """(T, 2, users) array: the session step and the reward of every user at every env step.

    Learning runs whole PPO rollouts (at least ``steps`` user-steps); frozen runs exactly
    ``steps // users`` env steps (give it the learning run's length).
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from recsim_llm.envs.sb3 import SB3VecEnv
    from recsim_llm.envs.vector import SlateVectorEnv

    torch.set_num_threads(1)
    env = SB3VecEnv(SlateVectorEnv(num_envs=users, config=config))
    env.seed(env_seed)
    model = PPO.load(model_path, env=env, device="cpu")
    model.set_random_seed(env_seed)
    count = np.zeros(users, dtype=np.int64)
    rows: list[np.ndarray] = []

    def record(rewards: np.ndarray, dones: np.ndarray) -> None:
        rows.append(np.stack([count.astype(np.float32), rewards.astype(np.float32)]))
        count[:] += 1
        count[np.asarray(dones, dtype=bool)] = 0

    if learn:

        class _Record(BaseCallback):
            def _on_step(self) -> bool:
                record(np.asarray(self.locals["rewards"]), np.asarray(self.locals["dones"]))
                return True

        model.learn(total_timesteps=steps, reset_num_timesteps=False, callback=_Record())
    else:
        obs = env.reset()
        for _ in range(steps // users):
            action, _ = model.predict(obs, deterministic=False)
            obs, reward, done, _ = env.step(action)
            record(reward, done)
    return np.stack(rows)


def session_curve(arr: np.ndarray, part: str, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean reward and count per session step, over the whole period or its last third."""
    start = 0 if part == "all" else 2 * arr.shape[0] // 3
    step = arr[start:, 0].astype(np.int64).ravel()
    reward = arr[start:, 1].astype(np.float64).ravel()
    total = np.bincount(step, reward, minlength=horizon)[:horizon]
    n = np.bincount(step, minlength=horizon)[:horizon]
    return total / np.maximum(n, 1), n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help="a `train --seeds` folder")
    parser.add_argument("--seeds", default="", help="training seeds (default: every seed-S)")
    parser.add_argument("--scenario", default="taste-shift", help="deployment scenario")
    parser.add_argument("--steps", type=int, default=300_032, help="online user-steps per run")
    parser.add_argument("--users", type=int, default=64, help="concurrent users")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from bench_online_drift import save_figure_and_files

    from recsim_llm.agents.sb3 import check_sb3_model
    from recsim_llm.io import check_out_dir
    from recsim_llm.scenarios import scenario_config
    from recsim_llm.stats import paired_difference

    if args.steps < args.users or args.users < 1:
        parser.error(f"--steps ({args.steps}) must be >= --users ({args.users}) >= 1")
    found = sorted(int(p.parent.name[5:]) for p in args.runs.glob("seed-*/model.zip"))
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else found
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    missing = [s for s in seeds if s not in found]
    if not seeds or missing:
        parser.error(f"--runs {args.runs}: no model for seeds {missing or 'any'}")
    check_out_dir(args.out, "eval")  # a foreign or file --out is refused before any work
    models = {s: args.runs / f"seed-{s}" / "model.zip" for s in seeds}
    trained = check_sb3_model(models[seeds[0]])
    base = scenario_config(args.scenario)
    config = replace(base, encoder=trained["encoder"], encoder_path=trained.get("encoder_path", ""))
    for path in models.values():
        check_sb3_model(path, config)  # each model must fit the deployment env (dims, encoder)
    horizon = config.horizon
    start = time.perf_counter()
    curves: dict[tuple[str, str], list[np.ndarray]] = {}
    counts: dict[tuple[str, str], list[np.ndarray]] = {}
    for seed in seeds:
        length = args.steps
        for mode in ("learning", "frozen"):  # frozen as long as learning ran (whole rollouts)
            t0 = time.perf_counter()
            arr = deploy(
                models[seed], config, 10_000 + seed, length, args.users, mode == "learning"
            )
            length = arr.shape[0] * args.users
            for part in PARTS:
                mean, n = session_curve(arr, part, horizon)
                curves.setdefault((mode, part), []).append(mean)
                counts.setdefault((mode, part), []).append(n)
            print(
                f"seed {seed} {mode}: {arr.shape[0] * args.users} user-steps, mean reward "
                f"{arr[:, 1].mean():.3f}, {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    seconds = time.perf_counter() - start
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["mode", "seed", "part", "session_step", "mean_reward", "n"])
    for (mode, part), runs in curves.items():
        for seed, run, n in zip(seeds, runs, counts[(mode, part)], strict=True):
            writer.writerows(
                [mode, seed, part, t, f"{r:.5f}", int(c)]
                for t, (r, c) in enumerate(zip(run, n, strict=True))
            )
    windows = session_windows(config.world.dynamics.event_step, horizon)
    lines = [
        f"`python benchmarks/bench_online_ppo.py --runs {args.runs} --scenario {args.scenario} "
        f"--steps {args.steps} --users {args.users} --out OUT` ({seconds:.0f} s; "
        f"{len(seeds)} training seeds; mean reward per user-step by session step, min watched; "
        "95% bootstrap over seeds)",
        "",
    ]
    for part in PARTS:
        label = "whole online period" if part == "all" else "last third of the online period"
        lines += [
            f"**{label}**",
            "",
            "| mode | " + " | ".join(w[0] for w in windows) + " |",
            "|---|" + "---|" * len(windows),
        ]
        for mode in ("learning", "frozen"):
            arr = np.stack(curves[(mode, part)])
            lines.append(
                f"| {mode} | "
                + " | ".join(f"{arr[:, lo:hi].mean():.3f}" for _, lo, hi in windows)
                + " |"
            )
        diffs = []
        for _, lo, hi in windows:
            a = np.stack(curves[("learning", part)])[:, lo:hi].mean(axis=1)
            b = np.stack(curves[("frozen", part)])[:, lo:hi].mean(axis=1)
            est = paired_difference(
                dict(zip(seeds, a, strict=True)), dict(zip(seeds, b, strict=True))
            )
            diffs.append(
                f"{est.point:+.3f}"
                + (f" [{est.low:+.3f}, {est.high:+.3f}]" if est.low is not None else "")
            )
        lines += ["| learning − frozen | " + " | ".join(diffs) + " |", ""]
    text = "\n".join(lines)
    print(text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = np.arange(horizon)
    for mode in ("learning", "frozen"):
        arr = np.stack(curves[(mode, "late")])
        mean = arr.mean(axis=0)
        half = 1.96 * arr.std(axis=0, ddof=1) / np.sqrt(len(arr)) if len(arr) > 1 else 0 * mean
        ax.plot(steps, mean, label=f"PPO {mode}", linestyle="--" if mode == "frozen" else "-")
        ax.fill_between(steps, mean - half, mean + half, alpha=0.15)
    ax.set_ylabel("mean reward per user-step (min watched)")
    ax.set_title(f"{args.scenario}: PPO learning vs frozen, last third ({len(seeds)} seeds)")
    save_figure_and_files(
        fig,
        ax,
        config.world.dynamics.event_step,
        args.out,
        {"drift_ppo.csv": buffer.getvalue(), "drift_ppo.md": text},
        "drift_ppo.png",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
