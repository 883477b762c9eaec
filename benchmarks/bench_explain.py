"""Faithfulness of the encoder's explanations (``recsim_llm.lm.explain``), measured.

Usage::

    python benchmarks/bench_explain.py [--encoder DIR] [--users 144] [--out FILE]

Rolls the default world (``lm-fast`` with the encoder; slates by ``--policy``, default the best
fixed mix) and, at steps 3, 8, 13 and 18, takes each user slot's *recommended item*: the
candidate with the highest encoder score ``u . v`` (plus the item bias, if the encoder has
one). For every (user, recommended item) pair with at least two history events and two content
words:

* **history**: the score drop when the top-attributed event (largest positive exact share) is
  removed from the history (the state recomputed without it: its weight leaves the normaliser
  too) vs when a random other event is removed; the same for the top 3 vs 3 random events;
* **words**: the score drop when the top word is deleted from the item text and the item is
  re-encoded, vs a random other word. With leave-one-out attribution the single-word test holds
  by construction (the weight *is* that drop), so the top 3 vs 3 random words deleted together
  is the informative figure; gradient x input (``word_method='grad'``) is measured on the same
  deletions.

Reported: mean drops, the fraction of pairs where the top drop exceeds the random one, and 95%
bootstrap intervals over user slots (pairs of one slot resampled together). Every random choice
comes from a seeded generator. One thread of torch unless ``--threads``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _cluster_bootstrap(
    values: np.ndarray, clusters: np.ndarray, seed: int, n: int = 2000
) -> tuple[float, float, float]:
    """Mean and 95% percentile interval, resampling clusters (user slots) with replacement."""
    ids, inverse = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=ids.size)
    counts = np.bincount(inverse, minlength=ids.size).astype(np.float64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB007]))
    draw = rng.integers(ids.size, size=(n, ids.size))
    means = sums[draw].sum(1) / counts[draw].sum(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def _summary(top: np.ndarray, rand: np.ndarray, clusters: np.ndarray, seed: int) -> dict:
    win = (top > rand).astype(np.float64) + 0.5 * (top == rand)
    return {
        "n_pairs": int(top.size),
        "mean_drop_top": _cluster_bootstrap(top, clusters, seed),
        "mean_drop_random": _cluster_bootstrap(rand, clusters, seed),
        "mean_drop_difference": _cluster_bootstrap(top - rand, clusters, seed),
        "fraction_top_greater": _cluster_bootstrap(win, clusters, seed),
    }


def collect_pairs(encoder: str, n_users: int, steps: list[int], policy_spec: str, seed: int):
    """(sim snapshots as pair records) from one rollout: the state each recommendation used."""
    from recsim_llm.agents.base import LearningSlatePolicy
    from recsim_llm.agents.specs import make_policy
    from recsim_llm.config import EnvConfig
    from recsim_llm.context import attach_world
    from recsim_llm.envs.vector import SlateVectorEnv
    from recsim_llm.lm.explain import Explainer, events_from_interaction_log

    config = EnvConfig(encoder="lm-fast", encoder_path=encoder)
    env = SlateVectorEnv(num_envs=n_users, config=config)
    policy = make_policy(policy_spec, seed=seed, configs=[config])
    obs, _ = env.reset(seed=seed)
    attach_world(policy, env.sim.world)  # privileged references only
    policy.reset(seed)
    sim = env.sim
    d = sim.encoder.dim
    texts = sim._texts
    # The encoder's ranking score: u . v plus its item bias when it has one.
    item_bias = Explainer(bundle=sim.encoder.bundle).item_bias(sim.item_embeddings)
    pairs = []
    for t in range(max(steps) + 1):
        if t in steps:
            for user in range(n_users):
                events = events_from_interaction_log(sim.log, user, sim.titles, texts)
                if len(events) < 2:
                    continue
                cands = sim.candidates[user]
                state = sim.states[user].astype(np.float64)
                scores = sim.item_embeddings[cands] @ sim.states[user, :d] + item_bias[cands]
                item = int(cands[int(np.argmax(scores))])
                pairs.append(
                    {
                        "user": user,
                        "step": t,
                        "state": state,
                        "events": events,
                        "event_vecs": sim.item_embeddings[[e.item_id for e in events]].copy(),
                        "item": item,
                        "item_vec": sim.item_embeddings[item].copy(),
                        "item_text": texts[item],
                        "item_title": sim.titles[item],
                    }
                )
        action = np.asarray(policy.act(obs, sim.context()))
        new_obs, _, _, _, info = env.step(action)
        if isinstance(policy, LearningSlatePolicy):
            policy.update(obs, action, info)
        obs = new_obs
    return sim, pairs


def measure(args: argparse.Namespace) -> dict:
    from recsim_llm.lm.explain import (
        Explainer,
        content_words,
        decompose,
        fast_score,
        render_sentence,
        without_word,
    )
    from recsim_llm.lm.model import set_threads

    set_threads(args.threads)
    rng = np.random.default_rng(np.random.SeedSequence([args.seed, 0xE4A1]))
    start = time.perf_counter()
    sim, pairs = collect_pairs(args.encoder, args.users, [3, 8, 13, 18], args.policy, args.seed)
    model = Explainer(bundle=sim.encoder.bundle)
    _ = model.lm  # loaded now (it sets its own thread count), then our thread count
    set_threads(args.threads)
    head, d = model.head, model.dim
    gate, decay = np.asarray(head["gate"], np.float64), float(head["decay"])
    rollout_s = time.perf_counter() - start
    hist: dict[str, list[float]] = {k: [] for k in ("top", "rand", "top3", "rand3", "full")}
    words: dict[str, list[float]] = {
        k: [] for k in ("loo_top", "rand", "loo_top3", "rand3", "grad_top", "grad_top3")
    }
    h_clusters, w_clusters = [], []
    sums, n_events, examples = [], [], []
    shares: dict[str, list[float]] = {k: [] for k in ("profile", "bias", "history", "older")}
    explain_s = word_s = 0.0
    for pair in pairs:
        state, events = pair["state"], pair["events"]
        p, h, w = state[d : 2 * d], state[2 * d : 3 * d], float(state[3 * d])
        t0 = time.perf_counter()
        ex = model.explain_vectors(
            p,
            events,
            pair["event_vecs"],
            pair["item_vec"],
            pair["item_text"],
            pair["item_title"],
            pair["item"],
            word_method="none",
            total_weight=w,
            pooled=h,
        )
        explain_s += time.perf_counter() - t0
        sums.append(abs(ex.parts_sum() - ex.score))
        n_events.append(len(events))
        # How much of the score each part carries (|part| / sum of |parts|).
        hist_total = sum(e.weight for e in ex.history)
        mags = np.abs([ex.profile, ex.bias + ex.item_bias, hist_total, ex.older_history])
        for key, m in zip(shares, mags / max(mags.sum(), 1e-12), strict=True):
            shares[key].append(float(m))
        # Per-event weights in event order (the explanation orders them by |weight|).
        types = np.array([e.type for e in events])
        ages = np.array([e.age for e in events], np.float64)
        weights = decay**ages
        acc = weights[:, None] * gate[types] * pair["event_vecs"]
        older_acc = h * max(w, 1.0) - acc.sum(0)
        older_w = w - weights.sum()

        def score_without(
            drop: np.ndarray, pair=pair, types=types, older_acc=older_acc, older_w=older_w
        ) -> float:
            keep = np.ones(len(pair["events"]), bool)
            keep[drop] = False
            return float(
                fast_score(
                    head,
                    pair["state"][d : 2 * d],
                    pair["event_vecs"],
                    types,
                    [e.age for e in pair["events"]],
                    pair["item_vec"][None],
                    keep,
                    older_acc,
                    older_w,
                )[0]
            )

        full = score_without(np.zeros(0, np.int64))
        hist["full"].append(full)
        parts = decompose(head, p, pair["event_vecs"], types, ages, pair["item_vec"], w, h)[3]
        order = np.argsort(-parts, kind="stable")
        top = order[0]
        others = np.setdiff1d(np.arange(len(events)), [top])
        rand = int(rng.choice(others))
        hist["top"].append(full - score_without(np.array([top])))
        hist["rand"].append(full - score_without(np.array([rand])))
        k = min(3, len(events) - 1)
        hist["top3"].append(full - score_without(order[:k]))
        hist["rand3"].append(full - score_without(rng.choice(len(events), k, replace=False)))
        h_clusters.append(pair["user"])
        # Words: every single-word deletion (the LOO weights) and the joint top-3 deletions.
        text = pair["item_text"]
        vocab = content_words(text)
        if len(vocab) < 2 or args.no_words:
            continue
        t0 = time.perf_counter()
        u = state[:d]
        loo_weights = model.word_weights(u, text, "loo")
        drop = {w_.word: w_.weight for w_ in loo_weights}
        if len(examples) < 3:
            examples.append(render_sentence(ex.profile, ex.history, loo_weights))
        grad = model.word_weights(u, text, "grad")
        g_order = [w_.word for w_ in sorted(grad, key=lambda w_: -w_.weight)]
        l_order = [w_ for w_, _ in sorted(drop.items(), key=lambda kv: -kv[1])]
        k = min(3, len(vocab) - 1)
        rand_word = str(rng.choice([x for x in vocab if x != l_order[0]]))
        rand3 = [str(x) for x in rng.choice(vocab, k, replace=False)]

        def cut(ws: list[str], text=text) -> str:
            for x in ws:
                text = without_word(text, x)
            return text

        vecs = model._encode_exact([text, cut(l_order[:k]), cut(rand3), cut(g_order[:k])])
        s = model.scale * (vecs @ u) + model.item_bias(vecs)
        words["loo_top"].append(drop[l_order[0]])
        words["rand"].append(drop[rand_word])
        words["grad_top"].append(drop[g_order[0]])
        words["loo_top3"].append(float(s[0] - s[1]))
        words["rand3"].append(float(s[0] - s[2]))
        words["grad_top3"].append(float(s[0] - s[3]))
        w_clusters.append(pair["user"])
        word_s += time.perf_counter() - t0
    hc, wc = np.array(h_clusters), np.array(w_clusters)
    H = {k: np.array(v) for k, v in hist.items()}
    W = {k: np.array(v) for k, v in words.items()}
    out = {
        "encoder": str(model.bundle.path),
        "policy": args.policy,
        "users": args.users,
        "seed": args.seed,
        "n_pairs": len(pairs),
        "mean_events_per_pair": float(np.mean(n_events)),
        "max_abs_sum_error": float(np.max(sums)),
        "history_top1": _summary(H["top"], H["rand"], hc, args.seed),
        "history_top3": _summary(H["top3"], H["rand3"], hc, args.seed),
        "examples": examples,
        "mean_part_share": {k: float(np.mean(v)) for k, v in shares.items()},
        "mean_abs_score": float(np.mean([abs(x) for x in H["full"]])),
        "seconds": {"rollout": rollout_s, "history": explain_s, "words": word_s},
    }
    if W["loo_top"].size:
        out.update(
            {
                "words_loo_top1": _summary(W["loo_top"], W["rand"], wc, args.seed),
                "words_loo_top3": _summary(W["loo_top3"], W["rand3"], wc, args.seed),
                "words_grad_top1": _summary(W["grad_top"], W["rand"], wc, args.seed),
                "words_grad_top3": _summary(W["grad_top3"], W["rand3"], wc, args.seed),
            }
        )
    out["seconds"]["total"] = time.perf_counter() - start
    out["machine"] = {"platform": platform.platform(), "python": sys.version.split()[0]}
    return out


def markdown(result: dict) -> str:
    """The faithfulness table."""

    def cell(x: tuple[float, float, float], digits: int = 4) -> str:
        return f"{x[0]:.{digits}f} [{x[1]:.{digits}f}, {x[2]:.{digits}f}]"

    lines = [
        "| removed | attribution | pairs | mean drop, top | mean drop, random | "
        "top − random | share top > random |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [
        ("top history event vs random event", "exact split", "history_top1"),
        ("top 3 history events vs random 3", "exact split", "history_top3"),
        ("top word vs random word", "leave-one-out", "words_loo_top1"),
        ("top 3 words vs random 3 (together)", "leave-one-out", "words_loo_top3"),
        ("top word vs random word", "gradient × input", "words_grad_top1"),
        ("top 3 words vs random 3 (together)", "gradient × input", "words_grad_top3"),
    ]
    for what, how, key in rows:
        if key not in result:
            continue
        r = result[key]
        lines.append(
            f"| {what} | {how} | {r['n_pairs']} | {cell(r['mean_drop_top'])} | "
            f"{cell(r['mean_drop_random'])} | {cell(r['mean_drop_difference'])} | "
            f"{cell(r['fraction_top_greater'], 3)} |"
        )
    secs = result["seconds"]
    share = result["mean_part_share"]
    lines += [
        "",
        "Mean share of the score's parts (|part| / sum of |parts|): profile "
        f"{share['profile']:.3f}, bias {share['bias']:.3f}, history events {share['history']:.3f}"
        f", older history {share['older']:.3f}; mean |score| {result['mean_abs_score']:.3f}.",
        "",
        f"{result['n_pairs']} (user, recommended item) pairs, {result['mean_events_per_pair']:.1f} "
        f"history events per pair on average; largest |sum of parts − score| "
        f"{result['max_abs_sum_error']:.1e}. Time: rollout {secs['rollout']:.0f} s, history "
        f"attribution and removals {secs['history']:.1f} s, words {secs['words']:.0f} s, total "
        f"{secs['total']:.0f} s.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="", help="encoder directory ('' = shipped)")
    parser.add_argument("--users", type=int, default=144, help="user slots rolled together")
    parser.add_argument("--policy", default="mix:0.2", help="policy spec that drives the rollout")
    parser.add_argument("--seed", type=int, default=0, help="rollout and sampling seed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-words", action="store_true", help="history only (no LM runs)")
    parser.add_argument("--out", default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = measure(args)
    print(markdown(result))
    for sentence in result["examples"]:
        print("example:", sentence)
    if args.out:
        from recsim_llm.io import atomic_write_json

        atomic_write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
