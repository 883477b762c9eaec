"""Off-policy evaluation of slate policies, checked against the simulator's ground truth.

NumPy only: Open Bandit Pipeline (OBP) is not imported; its ``bandit_feedback`` layout is
exported (``to_bandit_feedback``) so that its estimators can be run on our logs.

**Rounds and the estimand.** A *round* is one user slot at one world step: what a recommender
observes (a context vector, the candidates and their features), the slate shown, the click and
its reward. For a target policy ``pi`` the value estimated here is the single-step
contextual-bandit value over the logged rounds::

    V(pi) = 1/n * sum_i  E_{s ~ pi(. | x_i)}  E[R | x_i, s]

the expected reward of one slate shown to the same users, in the same hidden states, with the same
candidates as the logged rounds. The users' states are those the logging policy led them to; the
target's own long-run state distribution is not the estimand. ``R`` is the round's reward: the
watch time of the click in minutes (``reward="watch_time"``, 0 without a click; the env's
reward) or the click indicator (``reward="click"``). Each round's slate, given everything
before it, is drawn from the logging policy ``mu`` and its reward from the world, so
``E[w_i R_i | past] = E_{s ~ pi} E[R | x_i, s]`` with ``w = pi(s_i|x_i) / mu(s_i|x_i)``: IPW is
unbiased for ``V(pi)`` whenever ``mu`` covers ``pi``'s slates.

**The truth** is computed while logging, before each step moves the users, from the hidden world
(``World.expected_response``: click probabilities and mean watch time of a slate, no sampling):
exactly for a policy's greedy slate, by Monte Carlo (``truth_samples`` uniformly random slates
per round, a generator of its own) for its uniform part. Privileged; estimators never see it.

**Policies** are ``EpsilonGreedySlates``: with probability ``1 - epsilon`` the top-``K``
candidates by an observable score (best first; ties go to the lower candidate index, which the
env's candidate shuffle makes random), otherwise a uniformly random ordered slate of ``K``
distinct candidates. The slate probability and the per-position marginals are exact and cheap:
``mu(s) = (1 - eps) [s = greedy] + eps / P(C, K)`` and ``mu_k(a) = (1 - eps) [a = greedy_k] +
eps / C``, ``P(C, K) = C! / (C - K)!``. ``epsilon = 0`` is a deterministic ranker (``popularity``:
the agents' ``PopularityPolicy`` with ties broken by candidate index instead of a seeded jitter),
``epsilon = 1`` is ``RandomPolicy``. Scores: ``popularity`` (clicks so far) and ``affinity``
(the bag-of-words history of the user's clicks dotted with the candidate's embedding).

**Estimators** (per-round terms, averaged; bootstrap intervals resample rounds):

* ``ipw``: ``w R`` with the whole-slate weight ``w = pi(s) / mu(s)``.
* ``snipw``: ``sum(w R) / sum(w)`` (undefined, NaN, when no logged slate has weight).
* ``dm``: ``sum_k sum_a pi_k(a) q(x, a, k)`` with a ridge reward model ``q`` of the reward at
  a position, additive over (context, candidate, position), cross-fitted over rounds.
* ``dr``: ``dm + w (R - sum_k q(x, s_k, k))`` (whole-slate weight).
* ``iips`` (independent IPS, the slate estimator): ``sum_k r_k pi_k(s_k) / mu_k(s_k)``;
  unbiased only when a position's reward depends on that position's item alone, which the
  world's multinomial-logit choice (items compete for one click) breaks.
* ``idr``: the per-position doubly robust estimator, the DR analogue of ``iips`` (what OBP's
  ``DoublyRobust`` computes on the per-position rows, times ``K``).
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recsim_llm.config import EnvConfig
from recsim_llm.context import N_USER_SCALARS
from recsim_llm.io import atomic_write_bytes
from recsim_llm.sizes import check_memory

if TYPE_CHECKING:
    from recsim_llm.world import World

__all__ = [
    "BOW_DIM",
    "CANDIDATE_FEATURES",
    "CONTEXT_FEATURES",
    "ESTIMATE_COLUMNS",
    "ESTIMATORS",
    "FEEDBACK_KEYS",
    "REWARDS",
    "SCORES",
    "SUMMARY_COLUMNS",
    "TARGETS",
    "EpsilonGreedySlates",
    "Estimate",
    "GroundTruth",
    "OPEConfig",
    "SlateLog",
    "SlateRounds",
    "StudyResult",
    "bandit_feedback_bytes",
    "collect_log",
    "cross_fit_rewards",
    "estimate_policy_value",
    "load_bandit_feedback",
    "log_slates",
    "obp_action_dist",
    "obp_estimated_rewards",
    "round_terms",
    "run_study",
    "save_bandit_feedback",
    "summary_markdown",
    "target_policy",
    "to_bandit_feedback",
]

BOW_DIM = 8
"""Dimension of the bag-of-words encoder the log's observations come from."""
CONTEXT_FEATURES = (
    "session_progress",
    "history_fill",
    "click_rate",
    "mean_rating",
    "mean_engagement",
    "steps_since_click",
) + tuple(f"clicked_bow_{j}" for j in range(BOW_DIM))
"""The round's context vector: the observation's user scalars, then the bag-of-words sum of the
user's clicked items (recency-decayed; the ``bow`` encoder's second block)."""
CANDIDATE_FEATURES = tuple(f"bow_{j}" for j in range(BOW_DIM)) + ("is_new", "popularity")
"""A candidate's features: its bag-of-words embedding, is-new flag and log popularity / 10."""
_HISTORY = slice(N_USER_SCALARS, N_USER_SCALARS + BOW_DIM)
"""Where the clicked-history block sits in the context vector."""
_EMBEDDING = slice(0, BOW_DIM)
"""Where the embedding sits in a candidate's features."""

REWARDS = ("watch_time", "click")
"""Reward of a round: the clicked item's watch time in minutes (0 without a click), or a click."""
SCORES = ("popularity", "affinity")
"""Observable scores a policy ranks by."""
ESTIMATORS = ("ipw", "snipw", "dm", "dr", "iips", "idr")
"""Estimators, in table order."""
FEEDBACK_KEYS = (
    "n_rounds",
    "n_actions",
    "action",
    "position",
    "reward",
    "pscore",
    "context",
    "action_context",
)
"""OBP's ``bandit_feedback`` keys; the export adds ``slate_id`` and ``pscore_slate``."""


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _n_slates(n_candidates: int, slate_size: int) -> float:
    """P(C, K) = C! / (C - K)!: the number of ordered slates (a float: it grows fast)."""
    return float(math.perm(n_candidates, slate_size))


# -- rounds and logs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlateRounds:
    """Observable inputs of ``n`` rounds: everything a logging or target policy sees."""

    context: np.ndarray
    """(n, d_x) float64 context vector (``CONTEXT_FEATURES`` for logs of the world)."""
    candidates: np.ndarray
    """(n, C) int64 item ids offered."""
    candidate_features: np.ndarray
    """(n, C, d_a) float64 per-candidate features (``CANDIDATE_FEATURES``)."""
    candidate_popularity: np.ndarray
    """(n, C) float64 clicks each candidate had received before the round (observable)."""
    slate_size: int

    def __post_init__(self) -> None:
        context = np.asarray(self.context, dtype=np.float64)
        candidates = np.asarray(self.candidates)
        features = np.asarray(self.candidate_features, dtype=np.float64)
        popularity = np.asarray(self.candidate_popularity, dtype=np.float64)
        if candidates.ndim != 2 or candidates.shape[0] < 1:
            raise ValueError(
                f"candidates must have shape (n, C) with n >= 1, got {candidates.shape}"
            )
        if not np.issubdtype(candidates.dtype, np.integer):
            raise ValueError(f"candidates must hold integer item ids, got {candidates.dtype}")
        n, c = candidates.shape
        if context.ndim != 2 or context.shape[0] != n:
            raise ValueError(f"context must have shape (n={n}, d), got {context.shape}")
        if features.ndim != 3 or features.shape[:2] != (n, c):
            raise ValueError(
                f"candidate_features must have shape (n={n}, C={c}, d), got {features.shape}"
            )
        if popularity.shape != (n, c):
            raise ValueError(
                f"candidate_popularity must have shape (n={n}, C={c}), got {popularity.shape}"
            )
        _check_int("slate_size", self.slate_size, 1)
        if self.slate_size > c:
            raise ValueError(f"slate_size must be <= C={c}, got {self.slate_size}")
        for name, array in (
            ("context", context),
            ("candidate_features", features),
            ("candidate_popularity", popularity),
        ):
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{name} must be finite")
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "candidates", candidates.astype(np.int64, copy=False))
        object.__setattr__(self, "candidate_features", features)
        object.__setattr__(self, "candidate_popularity", popularity)
        object.__setattr__(self, "slate_size", int(self.slate_size))

    @property
    def n_rounds(self) -> int:
        return int(self.candidates.shape[0])

    @property
    def n_candidates(self) -> int:
        return int(self.candidates.shape[1])

    def take(self, rows: np.ndarray) -> SlateRounds:
        """The rounds ``rows`` (an index array)."""
        return SlateRounds(
            self.context[rows],
            self.candidates[rows],
            self.candidate_features[rows],
            self.candidate_popularity[rows],
            self.slate_size,
        )

    def check_slates(self, slates: np.ndarray) -> np.ndarray:
        """``slates`` (n, K) of distinct candidate indices, as int64; ``ValueError`` otherwise."""
        arr = np.asarray(slates)
        shape = (self.n_rounds, self.slate_size)
        if arr.shape != shape:
            raise ValueError(f"slates must have shape {shape}, got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"slates must hold integer candidate indices, got {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.n_candidates):
            raise ValueError(f"slates must hold candidate indices in [0, {self.n_candidates - 1}]")
        ranked = np.sort(arr, axis=1)
        if (ranked[:, 1:] == ranked[:, :-1]).any():
            raise ValueError("slates must not repeat a candidate within a slate")
        return arr.astype(np.int64, copy=False)


@dataclass(frozen=True)
class EpsilonGreedySlates:
    """Epsilon-greedy slates over an observable score (see the module docstring).

    Args:
        epsilon: probability of a uniformly random ordered slate, in [0, 1].
        score: what the greedy slate ranks by: ``"popularity"`` or ``"affinity"``.
    """

    epsilon: float
    score: str = "popularity"

    def __post_init__(self) -> None:
        eps = self.epsilon
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= eps <= 1.0:
            raise ValueError(f"epsilon must be a number in [0, 1], got {eps!r}")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, got {self.score!r}")
        object.__setattr__(self, "epsilon", float(eps))

    @property
    def name(self) -> str:
        if self.epsilon == 1.0:
            return "random"
        if self.epsilon == 0.0:
            return self.score
        return f"{self.score}-eps{self.epsilon:g}"

    def scores(self, rounds: SlateRounds) -> np.ndarray:
        """(n, C) the observable score of each candidate."""
        if self.score == "popularity":
            return rounds.candidate_popularity
        history = rounds.context[:, _HISTORY]
        embedding = rounds.candidate_features[:, :, _EMBEDDING]
        if history.shape[1] != BOW_DIM or embedding.shape[2] != BOW_DIM:
            raise ValueError(
                "score 'affinity' needs the CONTEXT_FEATURES / CANDIDATE_FEATURES layout"
            )
        return np.einsum("nd,ncd->nc", history, embedding)

    def greedy(self, rounds: SlateRounds) -> np.ndarray:
        """(n, K) candidate indices of the greedy slate, best first (ties: lower index first)."""
        order = np.argsort(-self.scores(rounds), axis=1, kind="stable")
        return order[:, : rounds.slate_size]

    def sample(self, rounds: SlateRounds, rng: np.random.Generator) -> np.ndarray:
        """(n, K) slates drawn from the policy (the same draws whatever ``epsilon`` is)."""
        explore = rng.random(rounds.n_rounds) < self.epsilon
        uniform = np.argsort(rng.random(rounds.candidates.shape), axis=1)[:, : rounds.slate_size]
        if self.epsilon == 1.0:
            return uniform
        return np.where(explore[:, None], uniform, self.greedy(rounds))

    def slate_probability(self, rounds: SlateRounds, slates: np.ndarray) -> np.ndarray:
        """(n,) probability of showing each whole (ordered) slate."""
        slates = rounds.check_slates(slates)
        uniform = self.epsilon / _n_slates(rounds.n_candidates, rounds.slate_size)
        if self.epsilon == 1.0:
            return np.full(rounds.n_rounds, uniform)
        is_greedy = (slates == self.greedy(rounds)).all(axis=1)
        return (1.0 - self.epsilon) * is_greedy + uniform

    def marginal(self, rounds: SlateRounds, slates: np.ndarray) -> np.ndarray:
        """(n, K) probability of each slate's item at its position (a position's marginal)."""
        slates = rounds.check_slates(slates)
        uniform = self.epsilon / rounds.n_candidates
        if self.epsilon == 1.0:
            return np.full(slates.shape, uniform)
        return (1.0 - self.epsilon) * (slates == self.greedy(rounds)) + uniform

    def position_marginals(self, rounds: SlateRounds) -> np.ndarray:
        """(n, K, C) probability of each candidate at each position (rows sum to 1)."""
        n, c, k = rounds.n_rounds, rounds.n_candidates, rounds.slate_size
        out = np.full((n, k, c), self.epsilon / c)
        if self.epsilon < 1.0:
            top = self.greedy(rounds)
            out[np.arange(n)[:, None], np.arange(k)[None, :], top] += 1.0 - self.epsilon
        return out


TARGETS: dict[str, EpsilonGreedySlates] = {
    "popularity": EpsilonGreedySlates(0.0, "popularity"),
    "random": EpsilonGreedySlates(1.0),
    "affinity": EpsilonGreedySlates(0.0, "affinity"),
    "popularity-eps0.5": EpsilonGreedySlates(0.5, "popularity"),
}
"""Target policies by name: ``popularity`` (deterministic, the logger's own ranking),
``random`` (uniform ordered slates), ``affinity`` (deterministic, a ranking the logger's greedy
part rarely matches: whole-slate weights cannot reach it), ``popularity-eps0.5``."""


def target_policy(name: str) -> EpsilonGreedySlates:
    """The target policy called ``name`` (``TARGETS``); ``ValueError`` listing the names."""
    if name not in TARGETS:
        raise ValueError(f"unknown target policy {name!r}; choose from {', '.join(TARGETS)}")
    return TARGETS[name]


@dataclass(frozen=True)
class SlateLog:
    """Logged rounds of a slate policy with the propensities of what it showed."""

    rounds: SlateRounds
    slates: np.ndarray
    """(n, K) int64 candidate indices shown, slot by slot."""
    pscore_position: np.ndarray
    """(n, K) logging probability of each shown item at its position (its marginal)."""
    pscore_slate: np.ndarray
    """(n,) logging probability of the whole ordered slate."""
    click_position: np.ndarray
    """(n,) int64 clicked slot, -1 for none."""
    position_reward: np.ndarray
    """(n, K) reward at each slot: the round's reward at the clicked slot, 0 elsewhere."""
    item_features: np.ndarray
    """(n_items, d) static observable item features (OBP's ``action_context``): the item's
    bag-of-words embedding."""
    reward: str = "watch_time"
    """What ``position_reward`` holds (``REWARDS``)."""
    logger: EpsilonGreedySlates | None = None
    """The logging policy, when known."""

    def __post_init__(self) -> None:
        r = self.rounds
        if not isinstance(r, SlateRounds):
            raise ValueError(f"rounds must be SlateRounds, got {type(r).__name__}")
        n, k = r.n_rounds, r.slate_size
        slates = r.check_slates(self.slates)
        pos = np.asarray(self.pscore_position, dtype=np.float64)
        joint = np.asarray(self.pscore_slate, dtype=np.float64)
        click = np.asarray(self.click_position)
        reward = np.asarray(self.position_reward, dtype=np.float64)
        items = np.asarray(self.item_features, dtype=np.float64)
        if pos.shape != (n, k) or not np.all((pos > 0.0) & (pos <= 1.0)):
            raise ValueError(f"pscore_position must be ({n}, {k}) probabilities in (0, 1]")
        if joint.shape != (n,) or not np.all((joint > 0.0) & (joint <= 1.0)):
            raise ValueError(f"pscore_slate must be ({n},) probabilities in (0, 1]")
        if click.shape != (n,) or not np.issubdtype(click.dtype, np.integer):
            raise ValueError(f"click_position must be ({n},) integers")
        if click.size and (click.min() < -1 or click.max() >= k):
            raise ValueError(f"click_position must be in [-1, {k - 1}]")
        if reward.shape != (n, k) or not np.all(np.isfinite(reward)):
            raise ValueError(f"position_reward must be ({n}, {k}) finite values")
        if items.ndim != 2 or items.shape[0] <= int(r.candidates.max()):
            raise ValueError(
                f"item_features must have one row per item id (> {int(r.candidates.max())}), "
                f"got shape {items.shape}"
            )
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        object.__setattr__(self, "slates", slates)
        object.__setattr__(self, "pscore_position", pos)
        object.__setattr__(self, "pscore_slate", joint)
        object.__setattr__(self, "click_position", click.astype(np.int64, copy=False))
        object.__setattr__(self, "position_reward", reward)
        object.__setattr__(self, "item_features", items)

    @property
    def n_rounds(self) -> int:
        return self.rounds.n_rounds

    @property
    def round_reward(self) -> np.ndarray:
        """(n,) the round's reward ``R`` (sum over slots)."""
        return self.position_reward.sum(axis=1)

    @property
    def slate_items(self) -> np.ndarray:
        """(n, K) item ids shown."""
        return np.take_along_axis(self.rounds.candidates, self.slates, axis=1)

    def take(self, rows: np.ndarray) -> SlateLog:
        """The rounds ``rows`` (an index array)."""
        return replace(
            self,
            rounds=self.rounds.take(rows),
            slates=self.slates[rows],
            pscore_position=self.pscore_position[rows],
            pscore_slate=self.pscore_slate[rows],
            click_position=self.click_position[rows],
            position_reward=self.position_reward[rows],
        )


def log_slates(
    rounds: SlateRounds, logger: EpsilonGreedySlates, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the logging policy's slates; returns (slates, pscore_position, pscore_slate)."""
    slates = logger.sample(rounds, rng)
    return slates, logger.marginal(rounds, slates), logger.slate_probability(rounds, slates)


@dataclass(frozen=True)
class GroundTruth:
    """Per logged round, each target's expected reward under the hidden world (privileged)."""

    targets: tuple[str, ...]
    value: np.ndarray
    """(n, T) ``E_{s ~ pi} E[R | x_i, s]`` per round and target."""
    mc_variance: np.ndarray
    """(n, T) variance of each Monte Carlo per-round value (0 where it is exact)."""

    def take(self, rows: np.ndarray) -> GroundTruth:
        return GroundTruth(self.targets, self.value[rows], self.mc_variance[rows])

    def mean(self, target: str) -> float:
        """The estimand ``V(pi)`` of ``target`` over these rounds."""
        return float(self.value[:, self.targets.index(target)].mean())

    def mc_standard_error(self, target: str) -> float:
        """Standard error of ``mean(target)`` from the Monte Carlo part of the truth."""
        var = self.mc_variance[:, self.targets.index(target)]
        return float(np.sqrt(var.sum()) / var.size)


def _expected_reward(world: World, items: np.ndarray, reward: str) -> np.ndarray:
    expected = world.expected_response(items)
    return expected.watch_time if reward == "watch_time" else expected.click_rate


def collect_log(
    n_rounds: int,
    logger: EpsilonGreedySlates,
    targets: Mapping[str, EpsilonGreedySlates] | Sequence[str] = (),
    *,
    config: EnvConfig | None = None,
    seed: int = 0,
    n_users: int = 1024,
    reward: str = "watch_time",
    truth_samples: int = 16,
) -> tuple[SlateLog, GroundTruth]:
    """Log ``n_rounds`` rounds of ``logger`` on the world of ``config`` and the targets' truth.

    ``n_users`` user slots act together for ``ceil(n_rounds / n_users)`` steps (the last step's
    extra slots are dropped); users who churn or end their session are replaced, as in the env.
    Observations come from the bag-of-words encoder (``BOW_DIM``) whatever ``config.encoder``
    says. Random draws: the world, candidates and logger from ``SeedSequence([seed, 0x0FE])``,
    the truth's uniform slates from a generator of their own, so the log is the same whatever
    ``truth_samples`` and the targets are.

    Returns:
        The log and, for every target, the truth per round (see the module docstring).
    """
    from recsim_llm.encoders import BagOfWordsEncoder
    from recsim_llm.envs.core import SlateSimulator

    n_rounds = _check_int("n_rounds", n_rounds, 1)
    n_users = _check_int("n_users", n_users, 1)
    seed = _check_int("seed", seed, 0)
    truth_samples = _check_int("truth_samples", truth_samples, 2)
    if not isinstance(logger, EpsilonGreedySlates):
        raise ValueError(f"logger must be an EpsilonGreedySlates, got {type(logger).__name__}")
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
    if not isinstance(targets, Mapping):
        targets = {name: target_policy(name) for name in targets}
    config = config if config is not None else EnvConfig()
    if not isinstance(config, EnvConfig):
        raise ValueError(f"config must be an EnvConfig, got {type(config).__name__}")
    c, k = config.n_candidates, config.slate_size
    # Per round: candidates, their features and the truth's temporaries (float64).
    check_memory("n_rounds", float(n_rounds) * (c * (BOW_DIM + 5) + 4 * k + 64) * 8, "the log")
    n_steps = -(-n_rounds // n_users)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x0FE]))
    truth_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x0FE, 1]))
    sim = SlateSimulator(config, n_users, encoder=BagOfWordsEncoder(BOW_DIM, config.history_decay))
    sim.reset(rng)
    world = sim.world
    names = tuple(targets)
    parts: dict[str, list[np.ndarray]] = {
        key: []
        for key in (
            "context",
            "candidates",
            "features",
            "popularity",
            "slates",
            "pscore_position",
            "pscore_slate",
            "click",
            "reward",
            "truth",
            "truth_var",
        )
    }
    for _ in range(n_steps):
        obs = sim.observe()
        user = obs["user"].astype(np.float64)
        scalars = user[:, -N_USER_SCALARS:]
        history = user[:, BOW_DIM : 2 * BOW_DIM]  # the bow state's clicked-items block
        rounds = SlateRounds(
            np.concatenate([scalars, history], axis=1),
            sim.candidates.copy(),
            obs["candidates"].astype(np.float64),
            sim.log.popularity[sim.candidates].astype(np.float64),
            k,
        )
        slates, pscore_position, pscore_slate = log_slates(rounds, logger, rng)

        # The truth, from the hidden state before the step (no draws from ``rng``).
        uniform = np.empty((truth_samples, n_users))
        for m in range(truth_samples):
            order = np.argsort(truth_rng.random((n_users, c)), axis=1)[:, :k]
            items = np.take_along_axis(rounds.candidates, order, axis=1)
            uniform[m] = _expected_reward(world, items, reward)
        uniform_mean = uniform.mean(axis=0)
        uniform_var = uniform.var(axis=0, ddof=1) / truth_samples
        truth = np.empty((n_users, len(names)))
        truth_var = np.zeros((n_users, len(names)))
        for j, name in enumerate(names):
            policy = targets[name]
            eps = policy.epsilon
            value = eps * uniform_mean
            if eps < 1.0:
                greedy = np.take_along_axis(rounds.candidates, policy.greedy(rounds), axis=1)
                value = value + (1.0 - eps) * _expected_reward(world, greedy, reward)
            truth[:, j] = value
            truth_var[:, j] = eps**2 * uniform_var

        result = sim.step(slates, rng)
        responses = result.responses
        click = responses.click_pos
        position_reward = np.zeros((n_users, k))
        clicked = np.flatnonzero(click >= 0)
        gain = responses.engagement if reward == "watch_time" else np.ones(n_users)
        position_reward[clicked, click[clicked]] = gain[clicked]
        for key, value in (
            ("context", rounds.context),
            ("candidates", rounds.candidates),
            ("features", rounds.candidate_features),
            ("popularity", rounds.candidate_popularity),
            ("slates", slates),
            ("pscore_position", pscore_position),
            ("pscore_slate", pscore_slate),
            ("click", click.astype(np.int64)),
            ("reward", position_reward),
            ("truth", truth),
            ("truth_var", truth_var),
        ):
            parts[key].append(value)
        sim.draw_candidates(rng)
        done = np.flatnonzero(result.terminated | result.truncated)
        if done.size:
            sim.reset_users(done, rng)
            sim.draw_candidates(rng, done)
    keep = slice(0, n_rounds)
    joined = {key: np.concatenate(value)[keep] for key, value in parts.items()}
    log = SlateLog(
        rounds=SlateRounds(
            joined["context"],
            joined["candidates"],
            joined["features"],
            joined["popularity"],
            k,
        ),
        slates=joined["slates"],
        pscore_position=joined["pscore_position"],
        pscore_slate=joined["pscore_slate"],
        click_position=joined["click"],
        position_reward=joined["reward"],
        item_features=sim.item_embeddings.astype(np.float64),
        reward=reward,
        logger=logger,
    )
    return log, GroundTruth(names, joined["truth"], joined["truth_var"])


# -- the reward model -----------------------------------------------------------------------------
def _round_design(rounds: SlateRounds) -> np.ndarray:
    """(n, 1 + d_x): intercept and context."""
    return np.concatenate([np.ones((rounds.n_rounds, 1)), rounds.context], axis=1)


def _candidate_design(rounds: SlateRounds, slates: np.ndarray | None = None) -> np.ndarray:
    """(n, C or K, d_a [+ BOW_DIM]): features of every candidate (or of the ``slates`` shown),
    and history x embedding when the rounds have the world's layout."""
    features = rounds.candidate_features
    if slates is not None:
        features = features[np.arange(rounds.n_rounds)[:, None], slates]
    if rounds.context.shape[1] == len(CONTEXT_FEATURES) and features.shape[2] == len(
        CANDIDATE_FEATURES
    ):
        cross = rounds.context[:, None, _HISTORY] * features[:, :, _EMBEDDING]
        return np.concatenate([features, cross], axis=2)
    return features


def _position_design(slate_size: int) -> np.ndarray:
    """(K, K - 1): one-hot of positions 1..K-1 (position 0 is the baseline)."""
    return np.eye(slate_size)[:, 1:]


def _fit_ridge(log: SlateLog, ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge of a slot's reward on (round, shown candidate, position) features."""
    r = log.rounds
    n, k = r.n_rounds, r.slate_size
    round_x = _round_design(r)
    shown = _candidate_design(r, log.slates)  # (n, K, d_c)
    pos_x = _position_design(k)
    design = np.concatenate(
        [
            np.repeat(round_x[:, None, :], k, axis=1),
            shown,
            np.broadcast_to(pos_x[None], (n, k, pos_x.shape[1])),
        ],
        axis=2,
    ).reshape(n * k, -1)
    target = log.position_reward.reshape(-1)
    penalty = np.full(design.shape[1], float(ridge))
    penalty[0] = 0.0  # the intercept is not shrunk
    gram = design.T @ design + np.diag(penalty)
    coef = np.linalg.solve(gram, design.T @ target)
    d_r, d_c = round_x.shape[1], shown.shape[2]
    return coef[:d_r], coef[d_r : d_r + d_c], coef[d_r + d_c :]


def _predict(rounds: SlateRounds, coef: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """(n, C, K) predicted slot reward of every candidate at every position."""
    base = _round_design(rounds) @ coef[0]
    item = _candidate_design(rounds) @ coef[1]
    position = _position_design(rounds.slate_size) @ coef[2]
    return base[:, None, None] + item[:, :, None] + position[None, None, :]


def cross_fit_rewards(
    log: SlateLog, *, ridge: float = 1.0, n_folds: int = 2, seed: int = 0
) -> np.ndarray:
    """(n, C, K) the reward model's prediction for every round, candidate and position.

    A ridge regression (penalty ``ridge``, intercept unpenalised) of the reward at a slot on the
    round's context, the shown candidate's features (with history x embedding) and the slot,
    additive over the three. Each round is predicted by the model fit on the other folds
    (``n_folds`` seeded folds of rounds; ``n_folds=1``: fit and predict on all rounds).
    """
    n_folds = _check_int("n_folds", n_folds, 1)
    if not (isinstance(ridge, (int, float)) and not isinstance(ridge, bool) and ridge >= 0.0):
        raise ValueError(f"ridge must be a number >= 0, got {ridge!r}")
    n = log.n_rounds
    if n_folds > n:
        raise ValueError(f"n_folds must be <= the number of rounds ({n}), got {n_folds}")
    r = log.rounds
    check_memory("the log's rounds", float(n) * r.n_candidates * r.slate_size * 8 * 3, "q_hat")
    if n_folds == 1:
        return _predict(r, _fit_ridge(log, ridge))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF01D]))
    fold = rng.permutation(n) % n_folds
    q_hat = np.empty((n, r.n_candidates, r.slate_size))
    for f in range(n_folds):
        test = np.flatnonzero(fold == f)
        coef = _fit_ridge(log.take(np.flatnonzero(fold != f)), ridge)
        q_hat[test] = _predict(r.take(test), coef)
    return q_hat


# -- estimators -----------------------------------------------------------------------------------
def round_terms(
    log: SlateLog, target: EpsilonGreedySlates, q_hat: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per-round terms whose means are the estimates (``snipw`` needs ``weight`` too).

    Returns ``ipw``, ``weight`` (the whole-slate weight), ``iips`` and, with ``q_hat`` (n, C, K),
    ``dm``, ``dr`` and ``idr``.
    """
    r = log.rounds
    weight = target.slate_probability(r, log.slates) / log.pscore_slate
    position_weight = target.marginal(r, log.slates) / log.pscore_position
    reward = log.round_reward
    terms = {
        "ipw": weight * reward,
        "weight": weight,
        "iips": (position_weight * log.position_reward).sum(axis=1),
    }
    if q_hat is not None:
        shape = (r.n_rounds, r.n_candidates, r.slate_size)
        if q_hat.shape != shape:
            raise ValueError(f"q_hat must have shape {shape}, got {q_hat.shape}")
        marginals = target.position_marginals(r)  # (n, K, C)
        dm_position = np.einsum("nkc,nck->nk", marginals, q_hat)
        k = np.arange(r.slate_size)
        q_shown = q_hat[np.arange(r.n_rounds)[:, None], log.slates, k[None, :]]  # (n, K)
        terms["dm"] = dm_position.sum(axis=1)
        terms["dr"] = terms["dm"] + weight * (reward - q_shown.sum(axis=1))
        terms["idr"] = (dm_position + position_weight * (log.position_reward - q_shown)).sum(axis=1)
    return terms


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its percentile-bootstrap interval (NaN where undefined)."""

    value: float
    low: float
    high: float

    def covers(self, truth: float) -> bool:
        return bool(self.low <= truth <= self.high)


def _bootstrap_sums(
    columns: np.ndarray, n_bootstrap: int, rng: np.random.Generator, chunk: int = 100
) -> np.ndarray:
    """(n_bootstrap, J) column sums over resamples of the rows (with replacement)."""
    n = columns.shape[0]
    out = np.empty((n_bootstrap, columns.shape[1]))
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        draws = rng.integers(n, size=(b, n)) + (np.arange(b) * n)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)
        out[start : start + b] = counts @ columns
    return out


def _term_keys(estimators: Sequence[str]) -> list[str]:
    """The per-round terms ``estimators`` need (``snipw``: ``ipw`` and ``weight``)."""
    need = [e for e in estimators if e != "snipw"]
    if "snipw" in estimators:
        need += ["ipw", "weight"]
    return list(dict.fromkeys(need))


def _from_sums(
    estimators: Sequence[str],
    keys: Sequence[str],
    point: np.ndarray,
    sums: np.ndarray,
    n: int,
    confidence: float,
) -> dict[str, Estimate]:
    """Estimates from the column sums ``point`` (J,) and their bootstrap replicates (B, J)."""
    alpha = (1.0 - confidence) / 2.0
    out: dict[str, Estimate] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in estimators:
            if name == "snipw":
                num, den = keys.index("ipw"), keys.index("weight")
                value = point[num] / point[den] if point[den] > 0 else float("nan")
                samples = np.where(sums[:, den] > 0, sums[:, num] / sums[:, den], np.nan)
            else:
                j = keys.index(name)
                value, samples = point[j] / n, sums[:, j] / n
            # An interval needs nearly every replicate defined (SNIPW: some weight drawn).
            if np.isnan(value) or np.isnan(samples).mean() > alpha:
                out[name] = Estimate(float(value), float("nan"), float("nan"))
                continue
            low, high = np.nanquantile(samples, [alpha, 1.0 - alpha])
            out[name] = Estimate(float(value), float(low), float(high))
    return out


def _estimates(
    terms: Mapping[str, np.ndarray],
    estimators: Sequence[str],
    n_bootstrap: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict[str, Estimate]:
    """Point estimates and bootstrap intervals from per-round terms (one resampling for all)."""
    keys = _term_keys(estimators)
    columns = np.stack([terms[key] for key in keys], axis=1)
    sums = _bootstrap_sums(columns, n_bootstrap, rng)
    return _from_sums(estimators, keys, columns.sum(axis=0), sums, columns.shape[0], confidence)


def _check_estimators(estimators: Sequence[str]) -> tuple[str, ...]:
    names = tuple(estimators)
    if not names:
        raise ValueError("estimators must name at least one estimator")
    for name in names:
        if name not in ESTIMATORS:
            raise ValueError(f"unknown estimator {name!r}; choose from {', '.join(ESTIMATORS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"estimators must not repeat a name, got {list(names)}")
    return names


def _check_bootstrap(n_bootstrap: int, confidence: float) -> None:
    _check_int("n_bootstrap", n_bootstrap, 10)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def estimate_policy_value(
    log: SlateLog,
    target: EpsilonGreedySlates,
    *,
    estimators: Sequence[str] = ESTIMATORS,
    q_hat: np.ndarray | None = None,
    ridge: float = 1.0,
    n_folds: int = 2,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Estimate ``target``'s value from ``log`` with each estimator, with bootstrap intervals.

    The reward model for ``dm``/``dr``/``idr`` is ``cross_fit_rewards(log, ridge=..., n_folds=...,
    seed=seed)`` unless ``q_hat`` is given; intervals resample rounds and hold the fitted model
    fixed (as OBP's ``estimate_interval`` does).
    """
    names = _check_estimators(estimators)
    _check_bootstrap(n_bootstrap, confidence)
    if not isinstance(target, EpsilonGreedySlates):
        raise ValueError(f"target must be an EpsilonGreedySlates, got {type(target).__name__}")
    if q_hat is None and {"dm", "dr", "idr"} & set(names):
        q_hat = cross_fit_rewards(log, ridge=ridge, n_folds=n_folds, seed=seed)
    terms = round_terms(log, target, q_hat)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB007]))
    return _estimates(terms, names, n_bootstrap, confidence, rng)


# -- Open Bandit Pipeline's layout ----------------------------------------------------------------
def to_bandit_feedback(log: SlateLog) -> dict[str, Any]:
    """The log in OBP's ``bandit_feedback`` layout: one row per (round, slot), round-major.

    ``n_rounds`` counts rows (``n * K``, as OBP's Open Bandit Dataset counts impressions);
    ``n_actions`` is the number of catalog items; ``action`` the item id shown; ``position``
    the slot (0-based); ``reward`` the reward at that slot; ``pscore`` the logging policy's
    marginal probability of that item at that slot; ``context`` the round's context (repeated
    per slot); ``action_context`` the static item features (``n_actions, d``). Extra keys:
    ``slate_id`` (the round) and ``pscore_slate`` (the whole slate's logging probability, as
    OBP's slate estimators take it).
    """
    n, k = log.n_rounds, log.rounds.slate_size
    return {
        "n_rounds": int(n * k),
        "n_actions": int(log.item_features.shape[0]),
        "action": log.slate_items.reshape(-1).astype(np.int64),
        "position": np.tile(np.arange(k, dtype=np.int64), n),
        "reward": log.position_reward.reshape(-1).astype(np.float64),
        "pscore": log.pscore_position.reshape(-1).astype(np.float64),
        "context": np.repeat(log.rounds.context, k, axis=0).astype(np.float64),
        "action_context": log.item_features.astype(np.float64),
        "slate_id": np.repeat(np.arange(n, dtype=np.int64), k),
        "pscore_slate": np.repeat(log.pscore_slate, k).astype(np.float64),
    }


def _check_feedback(feedback: Mapping[str, Any], source: str) -> dict[str, Any]:
    missing = [key for key in (*FEEDBACK_KEYS, "slate_id", "pscore_slate") if key not in feedback]
    if missing:
        raise ValueError(f"{source}: missing keys {missing}")
    out = dict(feedback)
    for key in ("n_rounds", "n_actions"):
        value = np.asarray(out[key])
        if value.shape != () or not np.issubdtype(value.dtype, np.integer) or value < 1:
            raise ValueError(f"{source}: {key} must be a positive integer")
        out[key] = int(value)
    rows = out["n_rounds"]
    expect = {
        "action": (np.integer, 1),
        "position": (np.integer, 1),
        "reward": (np.floating, 1),
        "pscore": (np.floating, 1),
        "context": (np.floating, 2),
        "action_context": (np.floating, 2),
        "slate_id": (np.integer, 1),
        "pscore_slate": (np.floating, 1),
    }
    for key, (kind, ndim) in expect.items():
        value = np.asarray(out[key])
        if not np.issubdtype(value.dtype, kind) or value.ndim != ndim:
            raise ValueError(f"{source}: {key} must be a {ndim}-D {kind.__name__} array")
        if key != "action_context" and value.shape[0] != rows:
            raise ValueError(f"{source}: {key} must have n_rounds={rows} rows")
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            raise ValueError(f"{source}: {key} must be finite")
        out[key] = value
    if out["action_context"].shape[0] != out["n_actions"]:
        raise ValueError(f"{source}: action_context must have n_actions rows")
    if out["action"].min() < 0 or out["action"].max() >= out["n_actions"]:
        raise ValueError(f"{source}: action must be in [0, n_actions)")
    for key in ("pscore", "pscore_slate"):
        if not np.all((out[key] > 0.0) & (out[key] <= 1.0)):
            raise ValueError(f"{source}: {key} must be in (0, 1]")
    return out


def bandit_feedback_bytes(feedback: Mapping[str, Any]) -> bytes:
    """``feedback`` as the bytes of an ``.npz`` file (no pickles)."""
    checked = _check_feedback(feedback, "feedback")
    buffer = io.BytesIO()
    np.savez(buffer, **{key: np.asarray(value) for key, value in checked.items()})
    return buffer.getvalue()


def save_bandit_feedback(path: str | Path, feedback: Mapping[str, Any]) -> Path:
    """Write ``feedback`` to the ``.npz`` file ``path`` atomically (``recsim_llm.io``)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path must end in .npz, got {str(path)!r}")
    atomic_write_bytes(path, bandit_feedback_bytes(feedback))
    return path


def load_bandit_feedback(path: str | Path) -> dict[str, Any]:
    """Read a ``bandit_feedback`` ``.npz`` (no pickles), checked: keys, dtypes and shapes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"bandit feedback file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            feedback = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"bandit feedback file {str(path)!r} is not a readable .npz of plain arrays: {error}"
        ) from error
    return _check_feedback(feedback, str(path))


def _dense_per_row(log: SlateLog, values: np.ndarray, what: str) -> np.ndarray:
    """(n * K, n_items, K): per (round, slot) row, ``values`` (n, C, K) scattered on item ids."""
    n, k = log.n_rounds, log.rounds.slate_size
    n_items = log.item_features.shape[0]
    check_memory("the log's rounds", float(n) * k * n_items * k * 8, what)
    dense = np.zeros((n, n_items, k))
    dense[np.arange(n)[:, None], log.rounds.candidates] = values
    return np.repeat(dense, k, axis=0)


def obp_action_dist(log: SlateLog, target: EpsilonGreedySlates) -> np.ndarray:
    """OBP's ``action_dist`` (n * K, n_actions, K) for ``target``: its position marginals.

    Dense over catalog items: meant for small logs (tests, comparisons with OBP).
    """
    marginals = target.position_marginals(log.rounds).transpose(0, 2, 1)  # (n, C, K)
    return _dense_per_row(log, marginals, "action_dist")


def obp_estimated_rewards(log: SlateLog, q_hat: np.ndarray) -> np.ndarray:
    """OBP's ``estimated_rewards_by_reg_model`` (n * K, n_actions, K) from ``q_hat`` (n, C, K)."""
    return _dense_per_row(log, q_hat, "estimated_rewards_by_reg_model")


# -- the study: estimates against the truth over log sizes and repeated logs ----------------------
@dataclass(frozen=True)
class OPEConfig:
    """Settings of ``run_study`` (frozen, checked on construction)."""

    log_sizes: tuple[int, ...] = (1000, 4000, 16000, 64000)
    """Rounds per log; each is a seeded random subset of the rounds of one log of the largest
    size, so every size sees the same kind of rounds."""
    n_logs: int = 20
    """Repeated logs (independent seeds) per size: coverage is counted over them."""
    seed: int = 0
    """Log ``i`` uses seed ``seed + i``."""
    epsilon: float = 0.2
    """The logging policy's share of uniformly random slates."""
    logger_score: str = "popularity"
    """The logging policy's greedy score (``SCORES``)."""
    targets: tuple[str, ...] = ("popularity", "random", "affinity")
    """Target policies (``TARGETS``)."""
    estimators: tuple[str, ...] = ESTIMATORS
    """Estimators (``ESTIMATORS``)."""
    reward: str = "watch_time"
    """``watch_time`` (minutes watched of the click, 0 without one) or ``click``."""
    scenario: str = "default"
    """Scenario whose world is logged."""
    n_users: int = 1024
    """User slots simulated together."""
    truth_samples: int = 16
    """Uniform slates per round for the Monte Carlo part of the truth."""
    n_bootstrap: int = 200
    """Bootstrap resamples per interval."""
    confidence: float = 0.95
    """Interval level."""
    ridge: float = 1.0
    """Ridge penalty of the reward model."""
    n_folds: int = 2
    """Cross-fitting folds of the reward model."""

    def __post_init__(self) -> None:
        sizes = tuple(self.log_sizes)
        if not sizes:
            raise ValueError("log_sizes must name at least one size")
        for size in sizes:
            _check_int("log_sizes", size, 10)
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"log_sizes must not repeat a size, got {list(sizes)}")
        object.__setattr__(self, "log_sizes", tuple(sorted(int(s) for s in sizes)))
        _check_int("n_logs", self.n_logs, 1)
        _check_int("seed", self.seed, 0)
        EpsilonGreedySlates(self.epsilon, self.logger_score)  # checks both
        if not self.targets:
            raise ValueError("targets must name at least one target policy")
        for name in self.targets:
            target_policy(name)
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets must not repeat a name, got {list(self.targets)}")
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "estimators", _check_estimators(self.estimators))
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        from recsim_llm.scenarios import scenario_names

        if self.scenario not in scenario_names():
            raise ValueError(
                f"unknown scenario {self.scenario!r}; choose from {', '.join(scenario_names())}"
            )
        _check_int("n_users", self.n_users, 1)
        _check_int("truth_samples", self.truth_samples, 2)
        _check_bootstrap(self.n_bootstrap, self.confidence)
        if isinstance(self.ridge, bool) or not isinstance(self.ridge, (int, float)):
            raise ValueError(f"ridge must be a number >= 0, got {self.ridge!r}")
        if not self.ridge >= 0.0:
            raise ValueError(f"ridge must be >= 0, got {self.ridge}")
        _check_int("n_folds", self.n_folds, 1)
        if self.n_folds > min(sizes):
            raise ValueError(f"n_folds must be <= the smallest log size ({min(sizes)})")
        check_memory(
            "log_sizes",
            float(max(sizes)) * (20 * (BOW_DIM + 5) + 300) * 8 * 3,
            "the largest log and its reward model",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_sizes": list(self.log_sizes),
            "n_logs": self.n_logs,
            "seed": self.seed,
            "epsilon": self.epsilon,
            "logger_score": self.logger_score,
            "targets": list(self.targets),
            "estimators": list(self.estimators),
            "reward": self.reward,
            "scenario": self.scenario,
            "n_users": self.n_users,
            "truth_samples": self.truth_samples,
            "n_bootstrap": self.n_bootstrap,
            "confidence": self.confidence,
            "ridge": self.ridge,
            "n_folds": self.n_folds,
        }


ESTIMATE_COLUMNS = (
    "log",
    "seed",
    "log_size",
    "target",
    "estimator",
    "estimate",
    "low",
    "high",
    "truth",
    "truth_mc_se",
)
SUMMARY_COLUMNS = (
    "target",
    "log_size",
    "estimator",
    "n_logs",
    "truth",
    "estimate",
    "low",
    "high",
    "bias",
    "bias_se",
    "rmse",
    "coverage",
    "n_undefined",
    "truth_mc_se",
)


@dataclass(frozen=True)
class StudyResult:
    """Per-log estimates, their summary over logs, and the first log at the smallest size."""

    config: OPEConfig
    estimates: list[dict[str, Any]]
    """One row per (log, size, target, estimator): ``ESTIMATE_COLUMNS``."""
    summary: list[dict[str, Any]] = field(default_factory=list)
    """One row per (target, size, estimator): ``SUMMARY_COLUMNS``."""
    example_log: SlateLog | None = None
    """Log 0 at the smallest size (what ``recsim-llm ope`` exports as bandit feedback)."""


def _summarise(config: OPEConfig, estimates: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for target in config.targets:
        for size in config.log_sizes:
            for name in config.estimators:
                rows = [
                    e
                    for e in estimates
                    if e["target"] == target and e["log_size"] == size and e["estimator"] == name
                ]
                value = np.array([r["estimate"] for r in rows])
                truth = np.array([r["truth"] for r in rows])
                low = np.array([r["low"] for r in rows])
                high = np.array([r["high"] for r in rows])
                ok = np.isfinite(value)
                error = value[ok] - truth[ok]
                covered = np.isfinite(low) & (low <= truth) & (truth <= high)
                n_ok = int(ok.sum())
                out.append(
                    {
                        "target": target,
                        "log_size": size,
                        "estimator": name,
                        "n_logs": len(rows),
                        "truth": float(truth.mean()),
                        "estimate": float(value[ok].mean()) if n_ok else float("nan"),
                        "low": float(np.nanmean(low)) if np.isfinite(low).any() else float("nan"),
                        "high": float(np.nanmean(high))
                        if np.isfinite(high).any()
                        else float("nan"),
                        "bias": float(error.mean()) if n_ok else float("nan"),
                        "bias_se": float(error.std(ddof=1) / np.sqrt(n_ok))
                        if n_ok > 1
                        else float("nan"),
                        "rmse": float(np.sqrt((error**2).mean())) if n_ok else float("nan"),
                        "coverage": float(covered.mean()),
                        "n_undefined": len(rows) - n_ok,
                        "truth_mc_se": float(np.mean([r["truth_mc_se"] for r in rows])),
                    }
                )
    return out


def run_study(config: OPEConfig, progress: bool = False) -> StudyResult:
    """Estimates vs the truth for every target, estimator and log size over ``n_logs`` logs.

    Per log ``i`` (seed ``config.seed + i``): one log of the largest size with the targets'
    truth (``collect_log``); per size a seeded random subset of its rounds; per subset one
    cross-fitted reward model, every target's estimates and one bootstrap resampling of the
    rounds shared by all estimators; the truth is the subset's mean of the per-round truth.
    """
    from recsim_llm.scenarios import scenario_config

    if not isinstance(config, OPEConfig):
        raise ValueError(f"config must be an OPEConfig, got {type(config).__name__}")
    env_config = scenario_config(config.scenario)
    logger = EpsilonGreedySlates(config.epsilon, config.logger_score)
    targets = {name: target_policy(name) for name in config.targets}
    biggest = max(config.log_sizes)
    estimates: list[dict[str, Any]] = []
    example: SlateLog | None = None
    logs = range(config.n_logs)
    if progress:
        from tqdm.auto import tqdm

        logs = tqdm(logs, desc="ope", unit="log", leave=False)
    for i in logs:
        seed = config.seed + i
        log, truth = collect_log(
            biggest,
            logger,
            targets,
            config=env_config,
            seed=seed,
            n_users=config.n_users,
            reward=config.reward,
            truth_samples=config.truth_samples,
        )
        for size in config.log_sizes:
            rng = np.random.default_rng(np.random.SeedSequence([seed, size, 0x5E7]))
            rows = np.sort(rng.permutation(log.n_rounds)[:size])
            sub, sub_truth = log.take(rows), truth.take(rows)
            if example is None:
                example = sub
            q_hat = None
            if {"dm", "dr", "idr"} & set(config.estimators):
                q_hat = cross_fit_rewards(
                    sub, ridge=config.ridge, n_folds=config.n_folds, seed=seed
                )
            keys = _term_keys(config.estimators)
            blocks = []
            for target in targets.values():
                terms = round_terms(sub, target, q_hat)
                blocks.append(np.stack([terms[key] for key in keys], axis=1))
            columns = np.concatenate(blocks, axis=1)
            # One resampling of the rounds, shared by every target and estimator.
            boot_rng = np.random.default_rng(np.random.SeedSequence([seed, size, 0xB007]))
            sums = _bootstrap_sums(columns, config.n_bootstrap, boot_rng)
            point = columns.sum(axis=0)
            width = len(keys)
            for j, name in enumerate(targets):
                part = slice(j * width, (j + 1) * width)
                found = _from_sums(
                    config.estimators, keys, point[part], sums[:, part], size, config.confidence
                )
                for estimator, est in found.items():
                    estimates.append(
                        {
                            "log": i,
                            "seed": seed,
                            "log_size": size,
                            "target": name,
                            "estimator": estimator,
                            "estimate": est.value,
                            "low": est.low,
                            "high": est.high,
                            "truth": sub_truth.mean(name),
                            "truth_mc_se": sub_truth.mc_standard_error(name),
                        }
                    )
    return StudyResult(config, estimates, _summarise(config, estimates), example)


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def summary_markdown(summary: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> str:
    """The summary as a markdown table (one row per target, log size and estimator)."""
    level = f"{confidence:.0%}"
    lines = [
        f"| target | rounds | estimator | truth | mean estimate | mean {level} interval "
        f"| bias ± s.e. | RMSE | coverage |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|",
    ]
    for row in summary:
        undefined = f" ({row['n_undefined']} undefined)" if row["n_undefined"] else ""
        lines.append(
            f"| {row['target']} | {row['log_size']:,} | {row['estimator']} | "
            f"{_fmt(row['truth'])} | {_fmt(row['estimate'])} | "
            f"[{_fmt(row['low'])}, {_fmt(row['high'])}] | "
            f"{_fmt(row['bias'])} ± {_fmt(row['bias_se'])} | {_fmt(row['rmse'])} | "
            f"{row['coverage']:.0%}{undefined} |"
        )
    return "\n".join(lines)
