"""Policy evaluation: roll policies over scenarios and seeds, summarise with bootstrap intervals.

Intervals follow the reliability rule of ``recsim_llm.stats``: one seed gives no interval and
fewer than ``MIN_RELIABLE_RUNS`` (5) seeds an interval flagged unreliable.

One evaluation run of a policy on a seed is ``n_users`` concurrent sessions in the batched env:
every user slot's first session (until churn or the horizon) is measured; later sessions in a
slot (autoreset users) are not counted.

The harness is the one place that hands the hidden world to a policy: it attaches the world of
the env it builds to privileged reference policies (``privileged = True``: myopic, fixed mixes,
oracle) and to no other; tables mark privileged policies with ``PRIVILEGED_MARK``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsim_llm.agents.base import LearningSlatePolicy, SlatePolicy
from recsim_llm.config import EnvConfig
from recsim_llm.context import attach_world, is_privileged
from recsim_llm.results import SESSION_STEP, ResultRow
from recsim_llm.stats import MIN_RELIABLE_RUNS, Estimate, mean_estimate

PRIVILEGED_MARK = "†"
"""Appended to a privileged reference policy's name in summary tables (it reads hidden state)."""

SESSION_METRICS = ("return", "clicks", "session_length", "churned", "final_satisfaction")
STEP_METRICS = (
    "reward",
    "click_rate",
    "new_item_click_rate",
    "true_satisfaction",
    "true_interest_drift",
    "active_users",
)
"""Per-step means over sessions still running. ``true_interest_drift`` is 1 - cosine between a
user's hidden interest now and at session start; ``new_item_click_rate`` counts clicks on items
that arrived during the run (cold-start items)."""


@dataclass(frozen=True)
class Rollout:
    """Per-session outcomes (arrays over user slots) and per-step means over active sessions."""

    sessions: dict[str, np.ndarray]
    steps: dict[str, np.ndarray]


def rollout(
    policy: SlatePolicy,
    config: EnvConfig,
    seed: int,
    n_users: int,
    env: object | None = None,
) -> Rollout:
    """Run ``policy`` for one session per user slot on ``config`` with ``seed``.

    Args:
        policy: the slate policy (``reset(seed)`` is called first; a privileged one is attached
            to the env's hidden world).
        config: environment config.
        seed: seeds the env and the policy.
        n_users: concurrent sessions.
        env: an existing ``SlateVectorEnv`` with ``num_envs == n_users`` to reuse (its
            catalog and encoder embeddings are kept; it is reset with ``seed``).
    """
    from recsim_llm.envs.vector import SlateVectorEnv

    if env is None:
        env = SlateVectorEnv(num_envs=n_users, config=config)
    if not isinstance(env, SlateVectorEnv) or env.num_envs != n_users:
        raise ValueError("env must be a SlateVectorEnv with num_envs == n_users")
    obs, _ = env.reset(seed=seed)
    attach_world(policy, env.sim.world)
    policy.reset(seed)
    active = np.ones(n_users, dtype=bool)
    ret = np.zeros(n_users)
    clicks = np.zeros(n_users)
    length = np.zeros(n_users)
    churned = np.zeros(n_users, dtype=bool)
    final_sat = np.zeros(n_users)
    world = env.sim.world
    start_interest = world.interest.copy()
    arrival = world.catalog.arrival_step
    step_rows: dict[str, list[float]] = {m: [] for m in STEP_METRICS}
    for _ in range(config.horizon):
        if not active.any():
            break
        acted_on = obs
        action = policy.act(obs, env.sim.context())
        obs, reward, terminated, truncated, info = env.step(action)
        if isinstance(policy, LearningSlatePolicy):
            policy.update(acted_on, np.asarray(action), info)
        n_active = int(active.sum())
        step_rows["active_users"].append(n_active)
        step_rows["reward"].append(float(reward[active].mean()))
        step_rows["click_rate"].append(float(info["click"][active].mean()))
        step_rows["true_satisfaction"].append(float(info["true_satisfaction"][active].mean()))
        clicked_new = (info["item"] >= 0) & (arrival[np.maximum(info["item"], 0)] > 0)
        step_rows["new_item_click_rate"].append(float(clicked_new[active].mean()))
        # Read before autoreset replaced finished users: the world's interest is post-step for
        # continuing users; for users that just ended, their slot already holds a new user, so
        # drift is measured on continuing sessions only.
        going_on = active & ~(terminated | truncated)
        cos = np.einsum("nk,nk->n", world.interest, start_interest)
        step_rows["true_interest_drift"].append(
            float((1.0 - cos[going_on]).mean()) if going_on.any() else float("nan")
        )
        ret += np.where(active, reward, 0.0)
        clicks += np.where(active, info["click"], 0.0)
        length += active
        done = (terminated | truncated) & active
        churned |= terminated & active
        final_sat = np.where(done, info["true_satisfaction"], final_sat)
        active &= ~done
    return Rollout(
        sessions={
            "return": ret,
            "clicks": clicks,
            "session_length": length,
            "churned": churned.astype(np.float64),
            "final_satisfaction": final_sat,
        },
        steps={k: np.asarray(v) for k, v in step_rows.items()},
    )


def rollout_rows(
    result: Rollout, run_id: str, policy: str, scenario: str, seed: int
) -> list[ResultRow]:
    """Tidy rows of one rollout: session means (step -1) and per-step means."""
    rows = [
        ResultRow(run_id, policy, scenario, seed, SESSION_STEP, m, float(np.mean(v)))
        for m, v in result.sessions.items()
    ]
    for metric, values in result.steps.items():
        rows.extend(
            ResultRow(run_id, policy, scenario, seed, t, metric, float(v))
            for t, v in enumerate(values)
            if np.isfinite(v)  # undefined at that step (e.g. drift when every session ended)
        )
    return rows


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 5000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval of the mean: (mean, low, high).

    A bare tuple says nothing about how many values it rests on: with one value it is
    ``(v, v, v)`` and with three nearly ``(mean, min, max)``. Prefer
    ``recsim_llm.stats.mean_estimate``, which gives the same numbers in an ``Estimate`` that
    carries the reliability rule.
    """
    estimate = mean_estimate(values, confidence=confidence, n_resamples=n_resamples, rng=seed)
    if not estimate.has_interval:
        return estimate.point, estimate.point, estimate.point  # the tuple API's old answer
    return estimate.point, float(estimate.low), float(estimate.high)


@dataclass(frozen=True)
class PolicySummary:
    """A policy's per-seed session means and their bootstrap interval."""

    policy: str
    per_seed: dict[str, np.ndarray]
    """metric -> (n_seeds,) mean over the seed's sessions."""
    privileged: bool = False
    """Whether the policy is a privileged reference (read the hidden world)."""

    @property
    def label(self) -> str:
        """The name as tables show it: privileged references carry ``PRIVILEGED_MARK``."""
        return f"{self.policy}{PRIVILEGED_MARK}" if self.privileged else self.policy

    def ci(
        self,
        metric: str = "return",
        *,
        confidence: float = 0.95,
        n_resamples: int = 5000,
        seed: int = 0,
    ) -> Estimate:
        """Mean over seeds of ``metric`` with a percentile bootstrap interval over seeds.

        One seed: no interval; fewer than ``MIN_RELIABLE_RUNS`` seeds: flagged unreliable
        (``Estimate.reliable``).
        """
        if metric not in self.per_seed:
            raise ValueError(f"metric must be one of {sorted(self.per_seed)}, got {metric!r}")
        return mean_estimate(
            self.per_seed[metric], confidence=confidence, n_resamples=n_resamples, rng=seed
        )


def evaluate(
    policies: Sequence[SlatePolicy],
    config: EnvConfig,
    seeds: Sequence[int],
    n_users: int,
    scenario: str = "custom",
    run_id: str = "eval",
    progress: bool = False,
) -> tuple[list[PolicySummary], list[ResultRow]]:
    """Every policy on every seed; returns summaries and all tidy rows.

    The env (catalog, item embeddings) is built once and reset per seed, so every policy sees
    the same users and the same first candidates for a given seed. With ``progress`` a bar on
    stderr counts the (policy, seed) rollouts done.
    """
    from recsim_llm.envs.vector import SlateVectorEnv

    if not seeds:
        raise ValueError("seeds must not be empty")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {list(seeds)}")
    if isinstance(n_users, bool) or not isinstance(n_users, (int, np.integer)) or n_users < 1:
        raise ValueError(f"n_users must be a positive integer, got {n_users!r}")
    if not policies:
        raise ValueError("policies must not be empty")
    from tqdm.auto import tqdm

    env = SlateVectorEnv(num_envs=n_users, config=config)
    summaries, rows = [], []
    bar = tqdm(
        total=len(policies) * len(seeds),
        desc=f"{run_id} {scenario}",
        unit="rollout",
        leave=False,
        disable=not progress,
    )
    for policy in policies:
        per_seed: dict[str, list[float]] = {m: [] for m in SESSION_METRICS}
        for seed in seeds:
            bar.set_postfix_str(f"{policy.name} seed {seed}", refresh=False)
            result = rollout(policy, config, int(seed), n_users, env=env)
            bar.update()
            rows.extend(rollout_rows(result, run_id, policy.name, scenario, int(seed)))
            for m in SESSION_METRICS:
                per_seed[m].append(float(np.mean(result.sessions[m])))
        summaries.append(
            PolicySummary(
                policy.name,
                {m: np.asarray(v) for m, v in per_seed.items()},
                privileged=is_privileged(policy),
            )
        )
    bar.close()
    return summaries, rows


def summary_table(summaries: Sequence[PolicySummary]) -> str:
    """A markdown table: return with 95% CI, clicks, session length and churn per policy.

    The interval column follows the reliability rule: with one seed it says there is no
    interval, with fewer than ``MIN_RELIABLE_RUNS`` seeds the interval is marked unreliable
    (and a footnote says why). Privileged references are marked ``name†``, with a footnote.
    """
    lines = [
        "| policy | return (min watched) | 95% CI | clicks per session | session length (steps) "
        "| churned (share of users) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    estimates = [s.ci("return") for s in summaries]
    for s, estimate in zip(summaries, estimates, strict=True):
        lines.append(
            f"| {s.label} | {estimate.point:.1f} | {estimate.format_interval()} | "
            f"{s.per_seed['clicks'].mean():.1f} | {s.per_seed['session_length'].mean():.1f} | "
            f"{s.per_seed['churned'].mean():.1%} |"
        )
    notes = []
    if any(not e.reliable for e in estimates):
        notes.append(
            f"Intervals over fewer than {MIN_RELIABLE_RUNS} seeds are close to the range of the "
            "seed means, not trustworthy 95% intervals; one seed gives none."
        )
    if any(s.privileged for s in summaries):
        notes.append(
            f"{PRIVILEGED_MARK} privileged reference: reads the hidden world, not deployable."
        )
    for note in notes:
        lines += ["", note]
    return "\n".join(lines)
