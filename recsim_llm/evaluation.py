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

SESSION_METRICS = (
    "return",
    "clicks",
    "session_length",
    "churned",
    "final_satisfaction",
    "ctr",
    "mean_satisfaction",
    "diversity",
    "novelty",
    "popularity_bias",
    "coverage",
    "ctr_first_k",
    "steps_to_first_click",
)
"""Per session (step -1 rows; the mean over a seed's sessions). ``return`` is watch time in
minutes (the reward); ``ctr`` = clicks / session length; ``mean_satisfaction`` the hidden
satisfaction averaged over the session's steps; ``diversity``, ``novelty``,
``popularity_bias`` averaged over the session's slates (definitions in ``recsim_llm.metrics``;
diversity is over the items' hidden latent vectors); ``coverage`` the share of the catalog's
available items shown to any user of the run (one value per run); ``ctr_first_k`` the click
rate over the first ``first_k`` steps (cold start); ``steps_to_first_click`` censored at
length + 1. Scenarios with a shift event add ``DRIFT_METRICS``."""
DRIFT_METRICS = ("reward_before_shift", "reward_after_shift", "steps_to_recover")
"""Shift scenarios: per-step reward of a session before and after the shift step (sessions
that reach it), and the run's steps to recover (``recsim_llm.metrics.steps_to_recover``)."""
STEP_METRICS = (
    "reward",
    "click_rate",
    "new_item_click_rate",
    "true_satisfaction",
    "true_interest_drift",
    "active_users",
    "diversity",
    "novelty",
    "popularity_bias",
    "coverage",
)
"""Per-step means over sessions still running. ``true_interest_drift`` is 1 - cosine between a
user's hidden interest now and at session start; ``new_item_click_rate`` counts clicks on items
that arrived during the run (cold-start items); ``coverage`` is cumulative (items shown so far /
items available); ``active_users`` the number of sessions still running."""


@dataclass(frozen=True)
class Rollout:
    """Per-session outcomes (arrays over user slots) and per-step means over active sessions;
    with ``log_users``, the per-user step records of those users (``recsim_llm.steplog``)."""

    sessions: dict[str, np.ndarray]
    steps: dict[str, np.ndarray]
    user_steps: dict[str, list] | None = None


def _policy_scores(policy: SlatePolicy):  # noqa: ANN202
    """The policy's ``scores(observation)`` if it has one taking an observation, else None."""
    import inspect

    scores = getattr(policy, "scores", None)
    if not callable(scores):
        return None
    try:
        params = list(inspect.signature(scores).parameters)
    except (TypeError, ValueError):
        return None
    return scores if params[:1] == ["observation"] else None


def rollout(
    policy: SlatePolicy,
    config: EnvConfig,
    seed: int,
    n_users: int,
    env: object | None = None,
    log_users: np.ndarray | None = None,
    first_k: int = 10,
    explain: bool = True,
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
        log_users: (n_users,) bool, user slots whose every step is recorded in
            ``Rollout.user_steps`` (``recsim_llm.steplog``); None records none. Recording calls
            the policy's ``scores(observation)`` when it has one; it draws no random number.
        first_k: steps of the cold-start click rate ``ctr_first_k``.
        explain: with ``log_users`` and an ``lm-fast`` encoder, record one explanation per
            shown item (``recsim_llm.lm.explain.explain_slates``); False records nulls.
    """
    from recsim_llm import metrics
    from recsim_llm.envs.vector import SlateVectorEnv

    if isinstance(first_k, bool) or not isinstance(first_k, (int, np.integer)) or first_k < 1:
        raise ValueError(f"first_k must be a positive integer, got {first_k!r}")
    if env is None:
        env = SlateVectorEnv(num_envs=n_users, config=config)
    if not isinstance(env, SlateVectorEnv) or env.num_envs != n_users:
        raise ValueError("env must be a SlateVectorEnv with num_envs == n_users")
    if log_users is not None:
        log_users = np.asarray(log_users)
        if log_users.dtype != bool:
            # An array of user ids would otherwise be cast to a mask, silently recording the
            # wrong users (and ignoring ids out of range).
            raise ValueError(
                f"log_users must be a bool mask over the {n_users} user slots, "
                f"got dtype {log_users.dtype}"
            )
        if log_users.shape != (n_users,):
            raise ValueError(f"log_users must have shape ({n_users},), got {log_users.shape}")
    obs, _ = env.reset(seed=seed)
    attach_world(policy, env.sim.world)
    policy.reset(seed)
    sim = env.sim
    world = sim.world
    catalog = world.catalog
    active = np.ones(n_users, dtype=bool)
    ret = np.zeros(n_users)
    clicks = np.zeros(n_users)
    length = np.zeros(n_users)
    churned = np.zeros(n_users, dtype=bool)
    final_sat = np.zeros(n_users)
    sums = {m: np.zeros(n_users) for m in ("satisfaction", "diversity", "novelty")}
    bias_sum, bias_n = np.zeros(n_users), np.zeros(n_users)
    clicks_first_k = np.zeros(n_users)
    click_trace: list[np.ndarray] = []
    shift_step = config.world.dynamics.event_step  # a taste-shift or trend event; -1: none
    has_shift = shift_step >= 0
    before, after = np.zeros(n_users), np.zeros(n_users)
    n_before, n_after = np.zeros(n_users), np.zeros(n_users)
    shown = np.zeros(catalog.n_total, dtype=bool)
    start_interest = world.interest.copy()
    arrival = catalog.arrival_step
    step_rows: dict[str, list[float]] = {m: [] for m in STEP_METRICS}
    scores_of = _policy_scores(policy) if log_users is not None and log_users.any() else None
    user_steps: dict[str, list] | None = None if log_users is None else {}
    logging = log_users is not None and bool(log_users.any())
    explain_of = _slate_explainer(sim) if explain and logging else None
    for t in range(config.horizon):
        if not active.any():
            break
        acted_on = obs
        context = sim.context()
        scores = scores_of(obs) if scores_of is not None else None
        action = policy.act(obs, context)
        # The items shown (after the env's duplicate repair), read before the step changes them.
        repaired, _ = sim.repair(sim.validate_action(action))
        slates = np.take_along_axis(context.candidates, repaired, axis=1)
        available = arrival <= world.clock
        popularity = sim.log.popularity.copy()
        diversity = metrics.slate_diversity(slates, catalog.latent)
        novelty = metrics.novelty(slates, popularity, available)
        pop_bias = metrics.popularity_bias(slates, popularity, available)
        shown[slates[active].ravel()] = True
        if user_steps is not None:
            record = log_users & active
            rows = np.flatnonzero(record)
            interest_before = world.interest[rows].copy()
            candidates_now = context.candidates[rows].copy()
            # The encoder state the policy acted on (noisy or lagged under those scenarios).
            state_now = np.asarray(acted_on["user"])[rows, : sim.encoder.user_dim]
            # Explained before the step: the state and interaction log the slate was chosen on.
            explained = explain_of(rows, slates[rows]) if explain_of and rows.size else None
        obs, reward, terminated, truncated, info = env.step(action)
        if isinstance(policy, LearningSlatePolicy):
            policy.update(acted_on, np.asarray(action), _observed_info(info, sim))
        n_active = int(active.sum())
        step_rows["active_users"].append(n_active)
        step_rows["reward"].append(float(reward[active].mean()))
        step_rows["click_rate"].append(float(info["click"][active].mean()))
        step_rows["true_satisfaction"].append(float(info["true_satisfaction"][active].mean()))
        clicked_new = (info["item"] >= 0) & (arrival[np.maximum(info["item"], 0)] > 0)
        step_rows["new_item_click_rate"].append(float(clicked_new[active].mean()))
        step_rows["diversity"].append(float(diversity[active].mean()))
        step_rows["novelty"].append(float(novelty[active].mean()))
        finite_bias = active & np.isfinite(pop_bias)
        step_rows["popularity_bias"].append(
            float(pop_bias[finite_bias].mean()) if finite_bias.any() else float("nan")
        )
        step_rows["coverage"].append(float(shown[available].sum() / available.sum()))
        # Read before autoreset replaced finished users: the world's interest is post-step for
        # continuing users; for users that just ended, their slot already holds a new user, so
        # drift is measured on continuing sessions only.
        going_on = active & ~(terminated | truncated)
        cos = np.einsum("nk,nk->n", world.interest, start_interest)
        step_rows["true_interest_drift"].append(
            float((1.0 - cos[going_on]).mean()) if going_on.any() else float("nan")
        )
        if user_steps is not None and rows.size:
            _record_steps(
                user_steps,
                t,
                rows,
                candidates_now,
                slates[rows],
                scores,
                info,
                interest_before,
                state_now,
                explained,
            )
        click = info["click"] & active
        click_trace.append(click)
        ret += np.where(active, reward, 0.0)
        clicks += click
        length += active
        sums["satisfaction"] += np.where(active, info["true_satisfaction"], 0.0)
        sums["diversity"] += np.where(active, diversity, 0.0)
        sums["novelty"] += np.where(active, novelty, 0.0)
        bias_sum += np.where(finite_bias, pop_bias, 0.0)
        bias_n += finite_bias
        if t < first_k:
            clicks_first_k += click
        if has_shift:
            pre = t < shift_step
            before += np.where(active & pre, reward, 0.0)
            n_before += active & pre
            after += np.where(active & ~pre, reward, 0.0)
            n_after += active & ~pre
        done = (terminated | truncated) & active
        churned |= terminated & active
        final_sat = np.where(done, info["true_satisfaction"], final_sat)
        active &= ~done
    available = arrival <= world.clock
    with np.errstate(invalid="ignore", divide="ignore"):
        sessions = {
            "return": ret,
            "clicks": clicks,
            "session_length": length,
            "churned": churned.astype(np.float64),
            "final_satisfaction": final_sat,
            "ctr": clicks / np.maximum(length, 1),
            "mean_satisfaction": sums["satisfaction"] / np.maximum(length, 1),
            "diversity": sums["diversity"] / np.maximum(length, 1),
            "novelty": sums["novelty"] / np.maximum(length, 1),
            "popularity_bias": np.where(bias_n > 0, bias_sum / np.maximum(bias_n, 1), np.nan),
            "coverage": np.full(n_users, shown[available].sum() / available.sum()),
            "ctr_first_k": clicks_first_k / np.maximum(np.minimum(length, first_k), 1),
            "steps_to_first_click": metrics.steps_to_first_click(
                np.asarray(click_trace, dtype=bool).reshape(len(click_trace), n_users), length
            ),
        }
        if has_shift:
            sessions["reward_before_shift"] = np.where(
                n_before > 0, before / np.maximum(n_before, 1), np.nan
            )
            sessions["reward_after_shift"] = np.where(
                n_after > 0, after / np.maximum(n_after, 1), np.nan
            )
            sessions["steps_to_recover"] = np.full(
                n_users, metrics.steps_to_recover(np.asarray(step_rows["reward"]), shift_step)
            )
    return Rollout(
        sessions=sessions,
        steps={k: np.asarray(v) for k, v in step_rows.items()},
        user_steps=user_steps,
    )


def _slate_explainer(sim: object):  # noqa: ANN202
    """``(rows, slates) -> (sentences, events)`` for an ``lm-fast`` simulator, else None.

    ``lm-exact`` gets none: its state is the LM's user tower on the history text, which has no
    exact split into history events (the fast head's split would explain another score).
    """
    encoder = sim.encoder  # type: ignore[attr-defined]
    if getattr(encoder, "name", None) != "lm-fast":
        return None
    from recsim_llm.lm.explain import Explainer, explain_slates
    from recsim_llm.lm.state import LMExactEncoder, LMFastEncoder

    if not isinstance(encoder, LMFastEncoder) or isinstance(encoder, LMExactEncoder):
        return None
    explainer = Explainer(bundle=encoder.bundle)
    return lambda rows, slates: explain_slates(sim, rows, slates, explainer)  # type: ignore[arg-type]


def _observed_info(info: dict, sim: object) -> dict:
    """The step info a learning policy may learn from: clicks lost from the log (scenario
    ``missing-feedback``) are not clicks to it. Unchanged when no feedback is dropped."""
    if sim.config.feedback_drop <= 0.0:  # type: ignore[attr-defined]
        return info
    log = sim.log  # type: ignore[attr-defined]
    logged = log.click_pos[np.arange(log.n_users), log.last_slot()]
    # Users that just ended were reset (their log row is empty): keep what the log held, -1.
    position = np.where(np.asarray(info["position"]) >= 0, logged, -1)
    observed = dict(info)
    observed["position"] = position
    observed["click"] = position >= 0
    observed["item"] = np.where(position >= 0, info["item"], -1)
    observed["engagement"] = np.where(position >= 0, info["engagement"], 0.0)
    observed["rating"] = np.where(position >= 0, info["rating"], 0.0)
    return observed


def _record_steps(
    out: dict[str, list],
    t: int,
    rows: np.ndarray,
    candidates: np.ndarray,
    slates: np.ndarray,
    scores: np.ndarray | None,
    info: dict,
    interest: np.ndarray,
    state: np.ndarray,
    explained: tuple[list, list] | None,
) -> None:
    """Append one step of the recorded users (``recsim_llm.steplog`` defines the columns)."""
    sentences, events = explained if explained is not None else ([None] * rows.size,) * 2
    columns = {
        "user": rows.tolist(),
        "step": [t] * rows.size,
        "candidates": candidates.tolist(),
        "slate": slates.tolist(),
        "scores": (
            np.asarray(scores, dtype=np.float64)[rows].tolist()
            if scores is not None
            else [None] * rows.size
        ),
        "click": np.asarray(info["click"])[rows].astype(bool).tolist(),
        "position": np.asarray(info["position"])[rows].tolist(),
        "item": np.asarray(info["item"])[rows].tolist(),
        "watch_time": np.asarray(info["engagement"], dtype=np.float64)[rows].tolist(),
        "rating": np.asarray(info["rating"], dtype=np.float64)[rows].tolist(),
        "hidden_satisfaction": np.asarray(info["true_satisfaction"])[rows].tolist(),
        "hidden_value": np.asarray(info["true_value"])[rows].tolist(),
        "hidden_interest": interest.tolist(),
        "state": list(np.asarray(state, dtype=np.float32)),
        "explanation": sentences,
        "explanation_events": events,
    }
    for key, values in columns.items():
        out.setdefault(key, []).extend(values)


def _session_mean(values: np.ndarray) -> float:
    """Mean over the sessions where a metric is defined (NaN when it is defined for none)."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def rollout_rows(
    result: Rollout, run_id: str, policy: str, scenario: str, seed: int
) -> list[ResultRow]:
    """Tidy rows of one rollout: session means (step -1) and per-step means.

    A session metric undefined for every session (e.g. popularity bias before any click) has
    no row; otherwise the mean is over the sessions where it is defined.
    """
    rows = []
    for m, v in result.sessions.items():
        mean = _session_mean(v)
        if np.isfinite(mean):
            rows.append(ResultRow(run_id, policy, scenario, seed, SESSION_STEP, m, mean))
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
        per_seed: dict[str, list[float]] = {}
        for seed in seeds:
            bar.set_postfix_str(f"{policy.name} seed {seed}", refresh=False)
            result = rollout(policy, config, int(seed), n_users, env=env)
            bar.update()
            rows.extend(rollout_rows(result, run_id, policy.name, scenario, int(seed)))
            for m, values in result.sessions.items():
                per_seed.setdefault(m, []).append(_session_mean(values))
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
