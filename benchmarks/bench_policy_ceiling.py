"""How far can a deployable policy get? Diagnostic references between encoder-greedy and myopic.

The policies issue asks a learned policy (PPO, candidate scorer, LM state) to beat *privileged*
myopic, which ranks by the true click utility: it knows every user's hidden taste. This script
measures what each missing piece of knowledge is worth, with hand-written session learners that
are given some hidden labels (marked †: diagnostics that read hidden state, never deployable) and versions of them that
use observable data only:

* ``topic learner``: per user, a click-through estimate per item *group* learned online from the
  user's own clicks and impressions this session (a Beta-style prior ``prior`` at ``base_ctr``),
  ranking candidates by their group's estimate. The group is the hidden primary topic (†) or a
  k-means cluster of the encoder's item vectors (deployable: computed from item text only).
  ``profile prior``: the user's stated top topic raises that topic's prior (†: read from the
  hidden interest, the profile states it truthfully for most users).
* bait handling: exactly ``n_bait`` high-appeal items per slate (the rest ordinary), and all
  high-appeal items in the last ``late`` steps of the horizon (clickbait is cheap near the end).
  The bait class is hidden (†) or inferred from observable feedback: an item whose mean rating
  over every user's clicks so far is below ``rate_threshold`` (ratings follow consumed value
  only; unrated items count as ordinary).

Session 6 adds rows whose pieces a deployed recommender could compute from text (the policy
reads them off the world's catalog texts here, so the rows still carry †): the item's *text
topic* (the topic whose words dominate its title and description, 94% agreement with the hidden
topic), *bait from text* (a clickbait opener in the title) and a *profile topic* emulating the
profile's stated taste (the hidden top topic for a ``profile_accuracy`` share of users, a random
topic otherwise, as the world writes profiles).

Usage::

    python benchmarks/bench_policy_ceiling.py --seeds 1000 1001 1002 --users 128
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from recsim_llm.agents.baselines import (
    EncoderGreedyPolicy,
    FixedMixPolicy,
    MyopicPolicy,
    PrivilegedPolicy,
    top_k,
)
from recsim_llm.evaluation import evaluate, summary_table
from recsim_llm.scenarios import scenario_config


def capped_slate(scores: np.ndarray, bait: np.ndarray, n_bait: np.ndarray, k: int) -> np.ndarray:
    """Per row, the best ``n_bait`` bait and best ``k - n_bait`` other items (by ``scores``)."""
    big = 1e6
    bait_rank = np.argsort(np.argsort(-(scores + np.where(bait, big, -big)), axis=1), axis=1)
    plain_rank = np.argsort(np.argsort(-(scores + np.where(bait, -big, big)), axis=1), axis=1)
    n_avail = bait.sum(1)
    want = np.maximum(np.minimum(n_bait, n_avail), k - (bait.shape[1] - n_avail))
    chosen = (bait & (bait_rank < want[:, None])) | (~bait & (plain_rank < (k - want)[:, None]))
    return top_k(np.where(chosen, scores + 2 * big, scores), k)


class SessionLearner(PrivilegedPolicy):
    """A per-user group click-rate learner with a bait quota (see the module docstring)."""

    def __init__(
        self,
        name: str,
        groups: np.ndarray | str | None = None,
        bait: str = "hidden",
        n_bait: int = 1,
        late: int = 0,
        profile_prior: bool = False,
        prior: float = 2.0,
        base_ctr: float = 0.1,
        rate_threshold: float = 2.5,
        profile_accuracy: float = 1.0,
    ) -> None:
        super().__init__(None)
        self.name, self.groups, self.bait, self.n_bait, self.late = name, groups, bait, n_bait, late
        self.profile_prior, self.prior, self.base_ctr = profile_prior, prior, base_ctr
        self.rate_threshold = rate_threshold
        self.profile_accuracy = profile_accuracy
        # A diagnostic that reads no hidden label is deployable: say so in the tables.
        # Text rows read the catalog's texts off the world object: marked † as well.
        self.privileged = (
            groups is None or isinstance(groups, str) or bait in ("hidden", "text") or profile_prior
        )

    def attach(self, world) -> None:
        super().attach(world)
        if self.groups is not None and isinstance(self.groups, str):
            self.groups = text_topics(world.catalog)
        if self.bait == "text":
            self.text_bait = text_bait(world.catalog)

    def reset(self, seed: int) -> None:
        self.clicks = self.shows = None
        self.profile_rng = np.random.default_rng(seed)
        n_items = self.world.catalog.n_total if self.groups is None else self.groups.size
        self.rating_sum, self.rating_n = np.zeros(n_items), np.zeros(n_items)

    def _group(self, items: np.ndarray) -> np.ndarray:
        return (self.world.catalog.topic if self.groups is None else self.groups)[items]

    def _prior(self, users: np.ndarray) -> np.ndarray:
        p = np.full((users.size, self.n_groups), self.base_ctr)
        if self.profile_prior:
            top = np.argmax(self.world.interest[users], axis=1)
            if self.profile_accuracy < 1.0:  # emulate the profile's stated taste
                truthful = self.profile_rng.random(users.size) < self.profile_accuracy
                top = np.where(
                    truthful, top, self.profile_rng.integers(self.n_groups, size=users.size)
                )
            p[np.arange(users.size), top] = 0.6
        return p

    def act(self, observation: dict[str, np.ndarray], context) -> np.ndarray:
        n = context.candidates.shape[0]
        if self.clicks is None:
            self.n_groups = int(self._group(np.arange(self.rating_n.size)).max()) + 1
            self.clicks = np.zeros((n, self.n_groups))
            self.shows = np.zeros((n, self.n_groups))
            self.p0 = self._prior(np.arange(n))
        self._cand_group = self._group(context.candidates)
        est = (self.clicks + self.prior * self.p0) / (self.shows + self.prior)
        scores = np.take_along_axis(est, self._cand_group, axis=1)
        if self.bait == "hidden":
            bait = self.world.catalog.clickbait[context.candidates]
        elif self.bait == "text":
            bait = self.text_bait[context.candidates]
        else:
            mean = np.where(self.rating_n > 0, self.rating_sum / np.maximum(self.rating_n, 1), 5.0)
            bait = mean[context.candidates] < self.rate_threshold
        k = context.slate_size
        n_bait = np.where(context.steps_left <= self.late, k, self.n_bait)
        return capped_slate(scores, bait, n_bait, k)

    def update(self, observation: dict[str, np.ndarray], slate: np.ndarray, info: dict) -> None:
        n, k = slate.shape
        shown = np.take_along_axis(self._cand_group, slate, axis=1)
        np.add.at(self.shows, (np.repeat(np.arange(n), k), shown.ravel()), 1.0)
        item = np.asarray(info["item"])
        hit = item >= 0
        # One click counts as k impressions' worth: the estimate is a per-slate click rate.
        np.add.at(self.clicks, (np.flatnonzero(hit), self._group(item[hit])), float(k))
        np.add.at(self.rating_sum, item[hit], np.asarray(info["rating"], dtype=float)[hit])
        np.add.at(self.rating_n, item[hit], 1.0)
        done = np.asarray(info.get("_final_obs", np.zeros(n, dtype=bool)))
        if done.any():  # a new user took the slot
            self.clicks[done] = self.shows[done] = 0.0
            self.p0[done] = self._prior(np.flatnonzero(done))


def text_topics(catalog) -> np.ndarray:
    """Each item's text topic: the topic with most topic words in its title and description."""
    import re

    from recsim_llm import text

    word_topic = {w: t for t, words in enumerate(text.TOPIC_WORDS) for w in words}
    counts = np.zeros((catalog.n_total, len(text.TOPIC_WORDS)))
    for i in range(catalog.n_total):
        for w in re.findall(r"[a-z\-]+", f"{catalog.titles[i]} {catalog.descriptions[i]}".lower()):
            if w in word_topic:
                counts[i, word_topic[w]] += 1.0
    return np.argmax(counts, axis=1)


def text_bait(catalog) -> np.ndarray:
    """Whether each item's title opens with a clickbait phrase."""
    from recsim_llm import text

    phrases = [p.lower() for p in text.CLICKBAIT_PHRASES]
    return np.array([any(t.lower().startswith(p) for p in phrases) for t in catalog.titles])


def item_clusters(config, k: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """k-means groups of the encoder's item vectors (text only) and their ARI vs hidden topics."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from recsim_llm.envs.vector import SlateVectorEnv

    env = SlateVectorEnv(num_envs=2, config=config)
    env.reset(seed=0)
    emb = env.sim.item_embeddings
    x = (emb - emb.mean(0)) / (emb.std(0) + 1e-6)
    labels = KMeans(k, n_init=4, random_state=seed).fit_predict(x)
    return labels, float(adjusted_rand_score(env.sim.world.catalog.topic, labels))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002])
    parser.add_argument("--users", type=int, default=128)
    parser.add_argument("--clusters", type=int, default=16)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    config = replace(scenario_config("default"), encoder="lm-fast")
    groups, ari = item_clusters(config, args.clusters)
    policies = [
        EncoderGreedyPolicy(),
        SessionLearner("hidden topic, hidden bait, 1 bait", n_bait=1),
        SessionLearner(
            "hidden topic, hidden bait, 1 bait, hidden top topic", n_bait=1, profile_prior=True
        ),
        SessionLearner(
            "hidden topic, hidden bait, 2 bait, late 20, hidden top topic",
            n_bait=2,
            late=20,
            profile_prior=True,
        ),
        SessionLearner("hidden topic, bait from ratings, 1 bait", bait="ratings"),
        SessionLearner(f"k-means{args.clusters}, hidden bait, 1 bait", groups=groups),
        SessionLearner(
            f"k-means{args.clusters}, bait from ratings, 1 bait", groups=groups, bait="ratings"
        ),
        SessionLearner(
            f"k-means{args.clusters}, bait from ratings, 2 bait, late 20",
            groups=groups,
            bait="ratings",
            n_bait=2,
            late=20,
        ),
        SessionLearner(
            "text topic, bait from text, 1 bait, late 20, profile topic (70%)",
            groups="text",
            bait="text",
            late=20,
            profile_prior=True,
            profile_accuracy=0.7,
        ),
        SessionLearner(
            "text topic, bait from text, 2 bait, late 20, profile topic (70%)",
            groups="text",
            bait="text",
            n_bait=2,
            late=20,
            profile_prior=True,
            profile_accuracy=0.7,
        ),
        SessionLearner(
            "text topic, bait from text, 1 bait, late 20", groups="text", bait="text", late=20
        ),
        MyopicPolicy(),
        FixedMixPolicy(0.2),
    ]
    summaries, _ = evaluate(policies, config, args.seeds, args.users, "default", "ceiling")
    print(f"k-means{args.clusters} of the lm-fast item vectors vs hidden topics: ARI {ari:.3f}")
    print(summary_table(summaries))
    print(f"\n{len(args.seeds)} seeds x {args.users} users; {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
