"""The world of ``recsim_llm.world`` written the way a researcher writes it first: one user at a time.

Same model and equations as ``recsim_llm.world.World`` (MNL with a no-click option and position
bias, or cascade; consumed value; engagement; rating; filter-bubble interest pull, random walk and
taste-shift and trend events; boredom; satisfaction; churn), but a Python loop over users with scalar math
and small per-user NumPy vectors, and no batching across users. It exists only as the reference
point of ``bench_throughput.py``.

Random draws are made user by user, in the same order within a user as the batched world makes
them for the whole batch. So with ``n_users=1`` both worlds consume the same random stream and
give the same trajectory (up to floating-point rounding), which ``check_against_world`` verifies;
with more users the draws interleave differently and trajectories differ, as expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recsim_llm.config import WorldConfig
from recsim_llm.world import Catalog, SyntheticUserSampler, World, generate_catalog


@dataclass
class LoopUser:
    """Hidden state of one user."""

    interest: np.ndarray
    satisfaction: float
    boredom: np.ndarray
    session_step: int = 0


@dataclass
class LoopResponse:
    """One user's response to one slate."""

    click_pos: int
    clicked_item: int
    engagement: float
    rating: float
    value: float
    satisfaction: float
    churned: bool


class LoopWorld:
    """``n_users`` users stepped one by one with the equations of ``World``."""

    def __init__(self, config: WorldConfig, n_users: int, catalog: Catalog | None = None) -> None:
        self.config = config
        self.catalog = catalog if catalog is not None else generate_catalog(config.catalog)
        self.n_users = int(n_users)
        self.sampler = SyntheticUserSampler(config.users, self.catalog.n_topics)
        # Per-item rows and plain Python scalars: what a first implementation would index.
        self.latent = list(self.catalog.latent)
        self.topic = self.catalog.topic.tolist()
        self.quality = self.catalog.quality.tolist()
        self.appeal = self.catalog.appeal.tolist()
        k = self.catalog.n_topics
        self.users = [
            LoopUser(interest=np.zeros(k), satisfaction=0.0, boredom=np.zeros(k))
            for _ in range(self.n_users)
        ]

    def reset_users(self, rows: np.ndarray, rng: np.random.Generator) -> None:
        """New users in ``rows`` (drawn with the same sampler as the batched world)."""
        rows = np.asarray(rows, dtype=np.int64)
        new = self.sampler.sample(rows.size, rng)
        k = self.catalog.n_topics
        for i, row in enumerate(rows.tolist()):
            self.users[row] = LoopUser(
                interest=new.interest[i].copy(),
                satisfaction=float(new.satisfaction[i]),
                boredom=np.zeros(k),
            )

    def click_probabilities(self, row: int, slate: list[int]) -> list[float]:
        """Click probability of each slot, then of no click, for user ``row``."""
        c = self.config.choice
        user = self.users[row]
        utilities = []
        for j, item in enumerate(slate):
            match = float(np.dot(self.latent[item], user.interest))
            utilities.append(
                c.match_weight * match
                + c.appeal_weight * self.appeal[item]
                - c.boredom_weight * float(user.boredom[self.topic[item]])
                - c.position_bias * math.log1p(j)
            )
        no_click = c.no_click_base + c.no_click_dissatisfaction * (1.0 - user.satisfaction)
        if c.model == "mnl":
            top = max(max(utilities), no_click)
            weights = [math.exp(u - top) for u in utilities] + [math.exp(no_click - top)]
            total = sum(weights)
            return [w / total for w in weights]
        probs = []
        reach = 1.0
        for j, u in enumerate(utilities):
            attract = 1.0 / (1.0 + math.exp(-(u - no_click)))
            probs.append(reach * attract)
            reach *= (1.0 - attract) * (c.cascade_continue if j < len(utilities) - 1 else 1.0)
        probs.append(1.0 - sum(probs))
        return probs

    def step_user(self, row: int, slate: list[int], rng: np.random.Generator) -> LoopResponse:
        """One user sees ``slate``, responds, and its hidden state moves."""
        cfg = self.config
        r, d = cfg.response, cfg.dynamics
        user = self.users[row]

        # Choice: inverse-CDF draw over slots then no click.
        probs = self.click_probabilities(row, slate)
        cum = []
        acc = 0.0
        for p in probs:
            acc += p
            cum.append(acc)
        draw = rng.random() * cum[-1]
        choice = sum(1 for x in cum if x <= draw)
        pos = -1 if choice >= len(slate) else choice
        clicked = pos >= 0
        item = slate[pos] if clicked else -1

        # Responses to the consumed item.
        noise = rng.standard_normal(2)
        value = engagement = rating = 0.0
        if clicked:
            latent = self.latent[item]
            match = float(np.dot(latent, user.interest))
            value = self.quality[item] * min(max(match, 0.0), 1.0)
            watch = (
                r.engagement_appeal_weight * self.appeal[item] + r.engagement_value_weight * value
            )
            engagement = r.engagement_scale * watch * math.exp(r.engagement_noise * noise[0])
            rating = float(min(max(round(1.0 + 4.0 * value + r.rating_noise * noise[1]), 1), 5))
            user.interest = user.interest + d.filter_bubble_rate * (latent - user.interest)

        # Hidden state transitions.
        if d.drift_std > 0.0:
            user.interest = user.interest + d.drift_std * rng.standard_normal(user.interest.shape)
        if d.shift_step >= 0 and d.shift_fraction > 0.0:
            if rng.random() < d.shift_fraction and user.session_step == d.shift_step:
                user.interest = self.sampler.sample_interest(1, rng)[0]
        if d.trend_step >= 0 and d.trend_strength > 0.0 and user.session_step == d.trend_step:
            user.interest = user.interest.copy()
            user.interest[d.trend_topic] += d.trend_strength
        user.interest = user.interest / max(float(np.linalg.norm(user.interest)), 1e-9)

        user.boredom = user.boredom * d.boredom_decay
        if clicked:
            t = self.topic[item]
            user.boredom[t] += d.boredom_increase * (1.0 - user.boredom[t])
            user.satisfaction += d.satisfaction_rate * (value - d.value_reference)
        user.satisfaction = min(max(user.satisfaction, 0.0), 1.0)

        z = (d.churn_threshold - user.satisfaction) / d.churn_width
        churn_p = d.churn_base + d.churn_max / (1.0 + math.exp(-z))
        churned = rng.random() < churn_p
        user.session_step += 1
        return LoopResponse(pos, item, engagement, rating, value, user.satisfaction, churned)

    def step(self, slates: np.ndarray, rng: np.random.Generator) -> list[LoopResponse]:
        """Every user sees its row of ``slates`` (n_users, slate_size), one after another."""
        return [self.step_user(row, slate, rng) for row, slate in enumerate(slates.tolist())]


def check_against_world(config: WorldConfig, catalog: Catalog, steps: int = 300) -> str:
    """Run the batched and the loop world with one user on the same seed and compare.

    With one user both worlds draw the same random numbers in the same order, so clicks must
    agree exactly and continuous state up to rounding. Raises ``AssertionError`` otherwise;
    returns a one-line summary.
    """
    world = World(config, 1, catalog)
    loop = LoopWorld(config, 1, catalog)
    rng_w, rng_l = np.random.default_rng(7), np.random.default_rng(7)
    world.reset_users(np.arange(1), rng_w)
    loop.reset_users(np.arange(1), rng_l)
    slate_rng = np.random.default_rng(8)
    n_items, k = catalog.n_total, config.catalog.n_topics
    worst = 0.0
    n_clicks = 0
    for _ in range(steps):
        slate = slate_rng.choice(n_items, 5, replace=False)[None, :]
        probs_w = world.click_probabilities(slate)[0]
        probs_l = np.array(loop.click_probabilities(0, slate[0].tolist()))
        out_w = world.step(slate, rng_w)
        out_l = loop.step(slate, rng_l)[0]
        user = loop.users[0]
        assert int(out_w.click_pos[0]) == out_l.click_pos, "click positions differ"
        assert bool(out_w.churned[0]) == out_l.churned, "churn differs"
        assert float(out_w.rating[0]) == out_l.rating, "ratings differ"
        diffs = [
            np.max(np.abs(probs_w - probs_l)),
            abs(float(out_w.engagement[0]) - out_l.engagement),
            abs(float(out_w.value[0]) - out_l.value),
            abs(float(world.satisfaction[0]) - user.satisfaction),
            np.max(np.abs(world.interest[0] - user.interest)),
            np.max(np.abs(world.boredom[0] - user.boredom)) if k else 0.0,
        ]
        worst = max(worst, *map(float, diffs))
        n_clicks += out_l.click_pos >= 0
    assert worst < 1e-9, f"loop world drifts from the batched world (max abs diff {worst:.3g})"
    return (
        f"loop world == batched world with 1 user over {steps} steps ({n_clicks} clicks): "
        f"same clicks, ratings and churn; max abs diff of continuous values {worst:.1e}"
    )
