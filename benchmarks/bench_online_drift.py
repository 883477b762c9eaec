"""Online adjustment under drift: a policy that keeps learning vs the same policy frozen.

On a scenario with a shift event (``taste-shift``: half the users' hidden interests are redrawn
at ``shift_step``; ``trend-shift``: every user's interest in one topic rises at ``trend_step``),
each online learner (``--policies``: by default LinUCB and linear Thompson sampling, shared
models only, and their hybrid versions with a forgetting per-user model beside the shared one)
runs twice per seed: learning throughout, and frozen at the event (its models stop updating
from that step on; it still acts on the current observation, whose encoder state follows the
user's history). Both also run on a
control world, the same scenario without the event, frozen at the same step: learning − frozen
on the shifted world minus the same on the control (a difference in differences, paired by
seed) is what continued learning earns *because of* the shift, not what more data earns
anyway. Writes tidy per-step rewards (``drift_steps.csv``, both worlds), a summary with
intervals over seeds (``drift_summary.md``) and a plot of the shifted world (``drift.png``) into
``--out``, one marked output folder written through ``recsim_llm.io`` (a foreign ``--out`` is
refused before any work).

    python benchmarks/bench_online_drift.py --seeds 0,1,2,3,4 --users 128 --out /tmp/drift
    python benchmarks/bench_online_drift.py --scenario trend-shift --seeds 0,1,2,3,4,5,6,7,8,9 \
        --users 256 --out /tmp/trend
    python benchmarks/bench_online_drift.py --policies linucb-hybrid:0.8,linucb-hybrid:0.95 \
        --seeds 0,1,2,3,4 --out /tmp/discount

"Recovery" is the first step after the shift at which the 5-step moving mean of the reward is
back at the pre-shift level (the mean of the 10 steps before the shift), or "not within the
horizon".
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path
from typing import Any

import numpy as np


class FrozenAt:
    """Wraps a learning policy; its model stops updating from ``freeze_step`` on."""

    privileged = False

    def __init__(self, policy: Any, freeze_step: int) -> None:
        self.policy = policy
        self.freeze_step = int(freeze_step)
        self.name = f"{policy.name}-frozen@{freeze_step}"
        self._step = 0

    def reset(self, seed: int) -> None:
        self.policy.reset(seed)
        self._step = 0

    def act(self, observation: Any, context: Any) -> np.ndarray:
        return self.policy.act(observation, context)

    def update(self, observation: Any, slate: np.ndarray, info: dict) -> None:
        if self._step < self.freeze_step:
            self.policy.update(observation, slate, info)
        self._step += 1


def recovery_step(reward: np.ndarray, shift: int, window: int = 5) -> int | None:
    """Steps after ``shift`` until the moving mean is back at the 10-step pre-shift mean."""
    before = reward[max(0, shift - 10) : shift].mean()
    for t in range(shift, reward.size - window + 1):
        if reward[t : t + window].mean() >= before:
            return t - shift
    return None


def interval(values: np.ndarray, seed: int = 0, n_boot: int = 2000) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean over seeds."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(values.size, size=(n_boot, values.size))
    means = values[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--users", type=int, default=128)
    parser.add_argument("--encoder", default="lm-fast")
    parser.add_argument(
        "--scenario",
        default="taste-shift",
        help="a scenario with a shift or trend event (taste-shift, trend-shift, NAME@STRENGTH)",
    )
    parser.add_argument(
        "--policies",
        default="linucb,thompson,linucb-hybrid,thompson-hybrid",
        help="comma-separated specs of learning policies (each also runs frozen)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from dataclasses import replace

    from recsim_llm.io import check_out_dir

    try:
        seeds = [int(x) for x in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        parser.error(f"--seeds must be distinct non-negative integers, got {args.seeds!r}")
    if args.users < 1:
        parser.error(f"--users must be >= 1, got {args.users}")
    from recsim_llm.agents.base import LearningSlatePolicy
    from recsim_llm.agents.specs import make_policies, make_policy

    specs = [x.strip() for x in args.policies.split(",") if x.strip()]
    if not specs:
        parser.error(f"--policies must name at least one learning policy, got {args.policies!r}")
    try:
        probes = make_policies(specs)
    except ValueError as exc:
        parser.error(f"--policies: {exc}")
    for spec, probe in zip(specs, probes, strict=True):
        if not isinstance(probe, LearningSlatePolicy):
            parser.error(
                f"--policies: {spec!r} does not learn online (no update()), nothing to freeze"
            )
    # A spec with an argument is its own label (two discounts of one learner stay apart).
    names = [spec if ":" in spec else probe.name for spec, probe in zip(specs, probes, strict=True)]
    check_out_dir(args.out, "eval")  # a foreign or file --out is refused before any work

    from recsim_llm.envs.vector import SlateVectorEnv
    from recsim_llm.evaluation import rollout
    from recsim_llm.scenarios import scenario_config

    try:
        config = scenario_config(args.scenario, encoder=args.encoder)
    except ValueError as exc:
        parser.error(f"--scenario: {exc}")
    dynamics = config.world.dynamics
    shift = dynamics.event_step
    if shift < 0:
        parser.error(f"--scenario {args.scenario!r} has no shift or trend event")
    if shift < 10 or shift + 20 >= config.horizon:
        parser.error(
            f"the event of --scenario {args.scenario!r} is at step {shift}: the tables need 10 "
            f"steps before it and more than 20 after it (horizon {config.horizon})"
        )
    # The control: the same world without the shift event (the policies are frozen at the
    # same step), so that learning - frozen on the shifted world can be set against what
    # continued learning earns anyway (difference in differences).
    control = replace(
        config,
        world=replace(
            config.world,
            dynamics=replace(dynamics, shift_step=-1, shift_fraction=0.0, trend_strength=0.0),
        ),
    )
    makers: dict[str, Any] = {}
    for spec, name in zip(specs, names, strict=True):
        makers[name] = lambda spec=spec: make_policy(spec)
        makers[name + "-frozen"] = lambda spec=spec: FrozenAt(make_policy(spec), shift)
    worlds = {args.scenario: config, "control (no shift)": control}
    all_curves: dict[str, dict[str, list[np.ndarray]]] = {}
    start = time.perf_counter()
    for world, world_config in worlds.items():
        env = SlateVectorEnv(num_envs=args.users, config=world_config)
        all_curves[world] = {name: [] for name in makers}
        for seed in seeds:
            for name, make in makers.items():
                result = rollout(make(), world_config, seed, args.users, env=env)
                all_curves[world][name].append(result.steps["reward"])
    seconds = time.perf_counter() - start
    curves = all_curves[args.scenario]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["world", "policy", "seed", "step", "reward"])
    for world, world_curves in all_curves.items():
        for name, runs in world_curves.items():
            for seed, run in zip(seeds, runs, strict=True):
                writer.writerows([world, name, seed, t, f"{r:.5f}"] for t, r in enumerate(run))
    horizon = min(min(r.size for r in runs) for wc in all_curves.values() for runs in wc.values())
    lines = [
        f"`python benchmarks/bench_online_drift.py --seeds {args.seeds} --users {args.users} "
        f"--encoder {args.encoder} --scenario {args.scenario} --policies {','.join(specs)} "
        f"--out OUT` ({seconds:.0f} s; "
        f"{args.scenario}: event at step {shift}, "
        f"{len(seeds)} seeds; mean reward per step of active users, min watched; 95% bootstrap "
        "over seeds)",
        "",
        "| world | policy | steps before the shift (-10..-1) | after (0..19) | late (20..end) | "
        "recovery (steps; seeds recovered) |",
        "|---|---|---|---|---|---|",
    ]
    periods = {
        "before (-10..-1)": (shift - 10, shift),
        "after (0..19)": (shift, shift + 20),
        "late (20..end)": (shift + 20, horizon),
    }
    for world, world_curves in all_curves.items():
        for name, runs in world_curves.items():
            arr = np.stack([r[:horizon] for r in runs])
            cells = []
            for lo, hi in periods.values():
                v = arr[:, lo:hi].mean(axis=1)
                a, b = interval(v)
                cells.append(f"{v.mean():.3f} [{a:.3f}, {b:.3f}]")
            rec = [recovery_step(r, shift) for r in arr]
            got = [x for x in rec if x is not None]
            rec_text = (
                f"{np.mean(got):.1f}; {len(got)}/{len(rec)}" if got else f"none; 0/{len(rec)}"
            )
            lines.append(f"| {world} | {name} | " + " | ".join(cells) + f" | {rec_text} |")
    diff_lines = [
        "",
        "Paired by seed, learning − frozen (mean reward per step of the period), on the shifted "
        "world, on the control, and their difference (what learning earns *because of* the shift):",
        "",
        "| policy | period | shifted world | control (no shift) | difference in differences |",
        "|---|---|---|---|---|",
    ]
    for base in names:
        for period, (lo, hi) in periods.items():
            cells = []
            diffs = []
            for world in worlds:
                wc = all_curves[world]
                a = np.array([r[lo:hi].mean() for r in wc[base]])
                b = np.array([r[lo:hi].mean() for r in wc[base + "-frozen"]])
                diffs.append(a - b)
            diffs.append(diffs[0] - diffs[1])
            for d in diffs:
                d_lo, d_hi = interval(d)
                cells.append(f"{d.mean():+.3f} [{d_lo:+.3f}, {d_hi:+.3f}]")
            diff_lines.append(f"| {base} | {period} | " + " | ".join(cells) + " |")
    text = "\n".join(lines + diff_lines) + "\n"
    print(text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, runs in curves.items():
        arr = np.stack([r[:horizon] for r in runs])
        mean = arr.mean(axis=0)
        sd = arr.std(axis=0, ddof=1) / np.sqrt(arr.shape[0]) if arr.shape[0] > 1 else 0 * mean
        steps = np.arange(horizon)
        ax.plot(steps, mean, label=name, linestyle="--" if "frozen" in name else "-")
        ax.fill_between(steps, mean - 1.96 * sd, mean + 1.96 * sd, alpha=0.15)
    ax.set_ylabel("mean reward per active user (min watched)")
    ax.set_title(f"{args.scenario} at step {shift}: learning vs frozen ({len(seeds)} seeds)")
    save_figure_and_files(
        fig,
        ax,
        shift,
        args.out,
        {"drift_steps.csv": buffer.getvalue(), "drift_summary.md": text},
        "drift.png",
    )


def save_figure_and_files(fig, ax, shift: int, out: Path, texts: dict[str, str], png: str) -> None:
    """Finish a per-session-step plot (shift line, labels) and write it with ``texts`` into one
    marked output folder, staged and swapped in whole (``recsim_llm.io``)."""
    from recsim_llm.io import output_directory

    if shift >= 0:
        ax.axvline(shift, color="k", linewidth=0.8)
    ax.set_xlabel("session step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    data = io.BytesIO()
    fig.savefig(data, format="png", dpi=120)
    with output_directory(out, "eval") as staging:
        for name, value in texts.items():
            (staging / name).write_text(value)
        (staging / png).write_bytes(data.getvalue())


if __name__ == "__main__":
    main()
