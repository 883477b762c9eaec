"""Hand-written baselines: random, popularity, myopic greedy, fixed clickbait mix, and oracle.

Random and popularity read only observable data (``privileged = False``). Myopic, fixed-mix and
oracle are privileged references (``privileged = True``): they read the hidden world, which they
get explicitly (``Policy(world=...)`` or ``attach(world)``; the evaluation harness attaches the
world of the simulation it builds). They are references for evaluation, not recommenders one
could deploy, and evaluation tables mark them with a dagger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recsim_llm.context import SlateContext

if TYPE_CHECKING:
    from recsim_llm.world import World


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) column indices of the k largest scores per row, best first."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


class RandomPolicy:
    """Uniformly random distinct candidates."""

    name = "random"
    privileged = False

    def __init__(self, seed: int = 0) -> None:
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, observation: dict[str, np.ndarray], context: SlateContext) -> np.ndarray:
        keys = self._rng.random(context.candidates.shape)
        return top_k(keys, context.slate_size)


class PopularityPolicy:
    """The most clicked candidates so far (observable); ties broken at random."""

    name = "popularity"
    privileged = False

    def __init__(self, seed: int = 0) -> None:
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, observation: dict[str, np.ndarray], context: SlateContext) -> np.ndarray:
        counts = context.popularity[context.candidates].astype(np.float64)
        jitter = self._rng.random(counts.shape) * 1e-3
        return top_k(counts + jitter, context.slate_size)


class PrivilegedPolicy:
    """Base of the references that read the hidden world (``privileged = True``).

    Args:
        world: the hidden world of the simulation the policy will act in; or ``attach`` it later.
    """

    name = "privileged"
    privileged = True

    def __init__(self, world: World | None = None) -> None:
        self._world = world

    def attach(self, world: World) -> None:
        """Read ``world`` (the simulation's hidden world) from now on."""
        self._world = world

    @property
    def world(self) -> World:
        """The attached hidden world; raises ``RuntimeError`` naming the policy without one."""
        if self._world is None:
            raise RuntimeError(
                f"policy {self.name!r} is a privileged reference that reads the hidden world, "
                "and none is attached: pass world= or call attach(world) first "
                "(recsim_llm.evaluation.evaluate does this for the env it builds)"
            )
        return self._world

    def reset(self, seed: int) -> None:
        pass


class MyopicPolicy(PrivilegedPolicy):
    """Greedy on immediate click probability from the true utilities (reads hidden state)."""

    name = "myopic"

    def act(self, observation: dict[str, np.ndarray], context: SlateContext) -> np.ndarray:
        # Under MNL and cascade alike, the slate with the highest click probability puts the
        # highest-utility items first.
        return top_k(self.world.item_utilities(context.candidates), context.slate_size)


def _mixed_slate(world: World, context: SlateContext, n_bait: np.ndarray) -> np.ndarray:
    """Per user, ``n_bait`` high-appeal items and the rest ordinary, best utility first."""
    utilities = world.item_utilities(context.candidates)
    bait = world.catalog.clickbait[context.candidates]
    k = context.slate_size
    n_bait = np.broadcast_to(np.asarray(n_bait), (utilities.shape[0],))
    # Rank inside each class by utility, then take the first n_bait of the bait class and the
    # first k - n_bait of the ordinary class (falling back to the other class when one runs out).
    big = 1e6
    bait_rank = np.argsort(np.argsort(-(utilities + np.where(bait, big, -big)), axis=1), axis=1)
    plain_rank = np.argsort(np.argsort(-(utilities + np.where(bait, -big, big)), axis=1), axis=1)
    n_bait_avail = bait.sum(axis=1)
    n_plain_avail = bait.shape[1] - n_bait_avail
    want_bait = np.minimum(n_bait, n_bait_avail)
    want_bait = np.maximum(want_bait, k - n_plain_avail)
    chosen = (bait & (bait_rank < want_bait[:, None])) | (
        ~bait & (plain_rank < (k - want_bait)[:, None])
    )
    score = np.where(chosen, utilities + 2 * big, utilities)
    return top_k(score, k)


class FixedMixPolicy(PrivilegedPolicy):
    """A fixed share of high-appeal ("clickbait") items per slate (reads hidden item classes)."""

    def __init__(self, mix: float, world: World | None = None) -> None:
        if not 0.0 <= float(mix) <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {mix}")
        super().__init__(world)
        self.mix = float(mix)
        self.name = f"mix-{self.mix:.2f}"

    def act(self, observation: dict[str, np.ndarray], context: SlateContext) -> np.ndarray:
        # Round half up (not to even), so the grid 0, 1/k, ..., 1 maps onto 0..k items.
        n_bait = int(np.floor(self.mix * context.slate_size + 0.5))
        return _mixed_slate(self.world, context, np.asarray(n_bait))


class OraclePolicy(PrivilegedPolicy):
    """Knows the hidden state and prices satisfaction: a one-step lookahead with a value of state.

    For each possible number of high-appeal items (0..slate_size) it builds the slate as
    ``FixedMixPolicy`` would and scores it by expected engagement plus
    ``satisfaction_price * steps_left`` times the expected change in satisfaction, all from
    ``World.expected_response`` (true click probabilities; watch time is the median, noise-free
    one). Near the horizon satisfaction is worth little and it goes
    for clicks; early on it protects the user's satisfaction.
    """

    name = "oracle"

    def __init__(self, satisfaction_price: float = 5.0, world: World | None = None) -> None:
        if not satisfaction_price >= 0.0:
            raise ValueError(f"satisfaction_price must be >= 0, got {satisfaction_price}")
        super().__init__(world)
        self.satisfaction_price = float(satisfaction_price)

    def act(self, observation: dict[str, np.ndarray], context: SlateContext) -> np.ndarray:
        world = self.world
        k = context.slate_size
        price = self.satisfaction_price * context.steps_left
        best_idx = np.zeros((context.candidates.shape[0], k), dtype=np.int64)
        best_score = np.full(context.candidates.shape[0], -np.inf)
        for n_bait in range(k + 1):
            idx = _mixed_slate(world, context, np.asarray(n_bait))
            slate = np.take_along_axis(context.candidates, idx, axis=1)
            expected = world.expected_response(slate)
            probs = expected.click_probabilities[:, :k]
            # The median (noise-free) watch time: the oracle has scored slates with it since it
            # was written, and the recorded oracle results depend on it.
            gain = expected.engagement_median + price[:, None] * expected.satisfaction_delta
            score = (probs * gain).sum(axis=1)
            better = score > best_score
            best_score = np.where(better, score, best_score)
            best_idx = np.where(better[:, None], idx, best_idx)
        return best_idx


def fixed_mix_grid(n: int = 6, world: World | None = None) -> list[FixedMixPolicy]:
    """Fixed-mix policies with shares 0, 1/(n-1), ..., 1."""
    return [FixedMixPolicy(m, world) for m in np.linspace(0.0, 1.0, n)]


class EncoderGreedyPolicy:
    """Deployable myopic: ranks candidates by the LM encoder's own click score ``s·u·v + b(v)``.

    Reads only the observation: the fast user state ``u`` (the first ``dim`` entries of
    ``obs["user"]``) and each candidate's item embedding ``v`` (the first ``dim`` entries of its
    row in ``obs["candidates"]``), with the encoder's scale ``s`` and item bias ``b`` from the
    same encoder directory the env's ``lm-fast``/``lm-exact`` state comes from. The privileged
    ``MyopicPolicy`` ranks by the true utilities; this is what a deployed recommender with the
    fine-tuned encoder can do.
    """

    privileged = False
    name = "encoder-greedy"

    def __init__(self, encoder_path: str = "") -> None:
        from recsim_llm.lm.state import load_bundle

        bundle = load_bundle(encoder_path or None)
        self.dim = bundle.dim
        self.scale = bundle.click_scale
        self.w = bundle.item_bias_w
        self.b = bundle.item_bias_b

    def reset(self, seed: int) -> None:
        pass

    def scores(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(n_users, n_candidates) click logits (masked candidates: -inf)."""
        d = self.dim
        user = np.asarray(observation["user"], dtype=np.float32)
        cands = np.asarray(observation["candidates"], dtype=np.float32)
        if user.shape[-1] < d or cands.shape[-1] < d:
            raise ValueError(
                f"encoder-greedy needs an LM state of dim {d} in the observation (encoder "
                f"'lm-fast' or 'lm-exact' with the same encoder_path), got user "
                f"{user.shape[-1]} and item {cands.shape[-1]} features"
            )
        u, v = user[:, :d], cands[:, :, :d]
        out = self.scale * np.einsum("nd,ncd->nc", u, v) + v @ self.w + self.b
        mask = observation.get("candidate_mask")
        if mask is not None:
            out = np.where(np.asarray(mask) > 0.5, out, -np.inf)
        return out

    def act(self, observation: dict[str, np.ndarray], context: SlateContext) -> np.ndarray:
        return top_k(self.scores(observation), context.slate_size)
