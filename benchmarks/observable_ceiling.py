"""How well can an observable, hand-made feature model rank the default world's logged clicks?

A reference for the LM encoder's per-row AUC (issue 8): a logistic regression over features a
deployed recommender could compute from what it observes, written by hand with knowledge of how
the synthetic world writes its texts (so it is an upper reference, not a product baseline):

* each item's *text topic*: the share of its words that are topic words of each of the world's
  16 topics (``recsim_llm.text.TOPIC_WORDS``);
* the user's *profile topic* (the topic words of the profile's "Says: ..." sentence);
* the user's history before the row: topic shares of clicked items (raw and normalised), of
  skipped items, of recently clicked items (decay 0.7), and of rated clicks (rating - 3);
* the item's clickbait opener (``recsim_llm.text.CLICKBAIT_PHRASES``) and quality words
  (``recsim_llm.text.QUALITY_WORDS``); optionally the item's training click count.

Fit on the training rows of ``recsim_llm.lm.logs.split_logs`` (by user; rows showing any cold
item dropped, stricter than fine-tuning, which masks cold items; a training row's popularity
leaves out its own click) and scored on every test row with the encoder evaluation's per-row AUC
(shown items, intervals over users), beside the hidden ceilings read from the logs.

    python benchmarks/observable_ceiling.py --logs LOGS [--seeds 0 1 2] [--cold-item-fraction 0.1]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np


def topic_shares(texts: list[str]) -> np.ndarray:
    """(n, n_topics) share of each text's topic words per topic (0 without any)."""
    from recsim_llm import text

    word_topic = {w: t for t, words in enumerate(text.TOPIC_WORDS) for w in words}
    out = np.zeros((len(texts), len(text.TOPIC_WORDS)))
    for i, s in enumerate(texts):
        for w in re.findall(r"[a-z\-]+", s.lower()):
            if w in word_topic:
                out[i, word_topic[w]] += 1.0
    return out / np.maximum(out.sum(1, keepdims=True), 1.0)


def features(data, popularity: np.ndarray) -> np.ndarray:
    """(n_rows, slate_size, n_features) observable features of every shown item."""
    from recsim_llm import text

    item_topic = topic_shares(data.item_texts)
    opener = np.array(
        [
            any(t.lower().startswith(p.lower()) for p in text.CLICKBAIT_PHRASES)
            for t in data.item_titles
        ],
        dtype=float,
    )
    praise = np.array([any(q in s for q in text.QUALITY_WORDS) for s in data.item_texts], float)
    profile_topic = topic_shares([p.split("Says:")[-1] for p in data.profiles])
    n, k = data.slates.shape
    n_topics = item_topic.shape[1]
    out = np.zeros((n, k, 11))
    clicked = skipped = recent = rated = np.zeros(n_topics)
    steps = 0
    for r in range(n):
        if r == 0 or data.user[r] != data.user[r - 1]:
            clicked, skipped, recent, rated = (np.zeros(n_topics) for _ in range(4))
            steps = 0
        t = item_topic[data.slates[r]]  # (k, n_topics)
        share = clicked / max(clicked.sum(), 1.0)
        out[r] = np.stack(
            [
                t @ profile_topic[r],
                t @ clicked,
                t @ share,
                t @ skipped / (1.0 + steps),
                t @ recent,
                t @ rated,
                (t @ profile_topic[r]) * (steps == 0),
                np.full(k, np.log1p(steps)),
                opener[data.slates[r]],
                praise[data.slates[r]],
                np.log1p(popularity[data.slates[r]]),
            ],
            axis=1,
        )
        c = int(data.click_pos[r])
        recent = 0.7 * recent
        for j, item in enumerate(data.slates[r]):
            if j == c:
                clicked = clicked + item_topic[item]
                recent = recent + item_topic[item]
                rated = rated + item_topic[item] * (data.rating[r] - 3.0)
            else:
                skipped = skipped + item_topic[item]
        steps += 1
    return out


def hidden_fields(log_dir: str) -> dict[str, np.ndarray]:
    """The logs' hidden appeal / match / utility of each shown item, in the loader's row order."""
    path = Path(log_dir) / "impressions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows or "hidden" not in rows[0]:
        raise ValueError(f"{path}: no hidden fields (write the logs with recsim-llm write-logs)")
    rows.sort(key=lambda r: (r["user"], r["t"]))
    return {k: np.array([r["hidden"][k] for r in rows]) for k in ("appeal", "match", "utility")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", required=True, help="logs from recsim-llm write-logs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--cold-item-fraction",
        type=float,
        default=0.1,
        help="share of items held out as cold (the encoder's split setting; default 0.1)",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.cold_item_fraction < 1.0:
        parser.error(f"--cold-item-fraction must be in [0, 1), got {args.cold_item_fraction}")

    from sklearn.linear_model import LogisticRegression

    from recsim_llm.lm.logs import labels, load_logs, split_logs
    from recsim_llm.lm.rowmetrics import bootstrap_mean, per_row_metrics

    data = load_logs(args.logs)
    y = labels(data, "click")
    hidden = hidden_fields(args.logs)
    if hidden["utility"].shape != data.slates.shape:
        raise ValueError(f"{args.logs}: hidden fields do not match the logged slates")
    print("| split | ranking by | per-row AUC, all test rows | cold-item rows |")
    print("|---|---|---|---|")
    for seed in args.seeds:
        split = split_logs(data, "user", 0.1, 0.2, args.cold_item_fraction, seed)
        cold = split.cold_mask(data.n_items)
        train = split.train[~cold[data.slates[split.train]].any(axis=1)]
        popularity = np.bincount(
            data.slates[train].ravel(), weights=y[train].ravel(), minlength=data.n_items
        )
        x = features(data, popularity)
        # A training row's popularity leaves out its own click.
        x[train, :, 10] = np.log1p(popularity[data.slates[train]] - y[train])
        test = split.test
        pos_cold = cold[data.slates[test]][np.arange(test.size), np.argmax(y[test], axis=1)]
        rankers = {}
        for name, cols in (
            ("observable text + history", slice(0, 10)),
            ("observable text + history + popularity", slice(0, 11)),
        ):
            model = LogisticRegression(max_iter=2000)
            model.fit(x[train][:, :, cols].reshape(-1, x[:, :, cols].shape[2]), y[train].ravel())
            rankers[name] = model.decision_function(
                x[test][:, :, cols].reshape(-1, x[:, :, cols].shape[2])
            ).reshape(test.size, -1)
        for key in ("appeal", "match", "utility"):
            rankers[f"*hidden {key}*"] = hidden[key][test]
        for name, scores in rankers.items():
            _, auc, _ = per_row_metrics(scores, data.slates[test], data.slates[test], y[test])
            cells = []
            for mask in (np.ones(test.size, dtype=bool), pos_cold):
                b = bootstrap_mean(np.where(mask, auc, np.nan), data.user[test])
                cells.append(f"{b['mean']:.3f} [{b['lo']:.3f}, {b['hi']:.3f}]")
            print(f"| {seed} | {name} | {cells[0]} | {cells[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
