"""Held-out evaluation of user encoders: AUC, NDCG@10 and HR@10, overall and on cold starts.

Every method scores each test row's candidates (the items the env offered at that step). AUC is
over the shown items (shown item, response); NDCG@10 and HR@10 rank the responded-to item among
all candidates. Segments: ``all`` test rows, ``cold_users`` (rows with no history: profile only)
and ``cold_items`` (impressions / positives of items held out of training). Methods: fine-tuned
encoders (exact tower on the history text, and the fast head), the same pretrained LM without
fine-tuning (zero-shot cosine), the non-LM bag-of-words encoder, and popularity.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm import text
from recsim_llm.io import check_out_dir, json_text, write_directory
from recsim_llm.lm.logs import Histories, LogData, Split, labels
from recsim_llm.lm.metrics import auc

Scorer = Callable[[np.ndarray], np.ndarray]
"""rows -> (len(rows), n_candidates) scores of each row's candidates."""

K = 10


def ranking_metrics(scores: np.ndarray, positive: np.ndarray, k: int = K) -> tuple[float, float]:
    """Mean NDCG@k and HR@k of one positive column per row (ties count half)."""
    if scores.shape[0] == 0:
        return float("nan"), float("nan")
    pos_score = scores[np.arange(scores.shape[0]), positive][:, None]
    rank = 1.0 + (scores > pos_score).sum(1) + 0.5 * ((scores == pos_score).sum(1) - 1)
    hit = rank <= k
    ndcg = np.where(hit, 1.0 / np.log2(rank + 1.0), 0.0)
    return float(ndcg.mean()), float(hit.mean())


def evaluate_scorers(
    data: LogData,
    split: Split,
    rows: np.ndarray,
    scorers: dict[str, Scorer],
    label: str = "click",
    sample: np.ndarray | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """{method: {segment: {auc, ndcg@10, hr@10, n_impressions, n_rankings}}}.

    ``sample`` (rows subset) is what the ``all`` and ``cold_items`` segments use (default: all
    ``rows``); ``cold_users`` uses every row of ``rows`` with t == 0.
    """
    in_sample = np.isin(rows, rows if sample is None else sample)
    y = labels(data, label)[rows]
    slates = data.slates[rows]
    cands = data.candidates[rows]
    valid = cands >= 0
    # Column of each shown item among the row's candidates.
    slate_col = np.argmax(cands[:, None, :] == slates[:, :, None], axis=2)
    has_pos = y.sum(1) > 0
    pos_item = slates[np.arange(rows.size), np.argmax(y, axis=1)]
    pos_col = slate_col[np.arange(rows.size), np.argmax(y, axis=1)]
    cold = np.zeros(data.n_items, dtype=bool)
    cold[split.cold_items] = True
    segments = {
        "all": (np.repeat(in_sample[:, None], slates.shape[1], 1), has_pos & in_sample),
        "cold_users": (
            np.repeat((data.t[rows] == 0)[:, None], slates.shape[1], 1),
            has_pos & (data.t[rows] == 0),
        ),
        "cold_items": (cold[slates] & in_sample[:, None], has_pos & cold[pos_item] & in_sample),
    }
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, scorer in scorers.items():
        scores = np.where(valid, scorer(rows), -np.inf).astype(np.float64)
        shown = np.take_along_axis(scores, slate_col, axis=1)
        out[name] = {}
        for seg, (imp_mask, rank_mask) in segments.items():
            ndcg, hr = ranking_metrics(scores[rank_mask], pos_col[rank_mask])
            out[name][seg] = {
                "auc": auc(shown[imp_mask], y[imp_mask]),
                f"ndcg@{K}": ndcg,
                f"hr@{K}": hr,
                "n_impressions": int(imp_mask.sum()),
                "n_rankings": int(rank_mask.sum()),
            }
    return out


def popularity_scorer(data: LogData, train_rows: np.ndarray, label: str) -> Scorer:
    y = labels(data, label)[train_rows]
    counts = np.zeros(data.n_items)
    np.add.at(counts, data.slates[train_rows][y > 0], 1.0)
    return lambda rows: counts[np.maximum(data.candidates[rows], 0)]


def bow_scorer(data: LogData, history_steps: int, dim: int = 32, decay: float = 0.8) -> Scorer:
    """The non-LM baseline: the ``bow`` encoder's state, scored against item bags of words."""
    from recsim_llm.encoders import hashed_bow

    item = hashed_bow(data.item_texts, dim)
    hist = Histories(data, history_steps)

    def score(rows: np.ndarray) -> np.ndarray:
        users = np.zeros((rows.size, dim), dtype=np.float32)
        prof = hashed_bow([data.profiles[r] for r in rows.tolist()], dim)
        for i, r in enumerate(rows.tolist()):
            u = prof[i].copy()
            for it, clicked, rating, age in hist.events(r):
                w = decay ** (age + 1)
                u += w * item[it] * ((1.0 + (rating >= 4.0)) if clicked else -0.2)
            users[i] = u
        return np.einsum("nd,ncd->nc", users, item[np.maximum(data.candidates[rows], 0)])

    return score


def embedding_scorer(
    data: LogData, user_emb: Callable[[np.ndarray], np.ndarray], item_emb: np.ndarray
) -> Scorer:
    return lambda rows: np.einsum(
        "nd,ncd->nc", user_emb(rows), item_emb[np.maximum(data.candidates[rows], 0)]
    )


def lm_scorers(
    data: LogData,
    model: Any,
    tokenizer: Any,
    cfg: dict[str, Any],
    prefix: str,
) -> dict[str, Scorer]:
    """Exact and fast scorers of a fine-tuned two-tower model (or the pair scorer if pointwise)."""
    from recsim_llm.lm.model import encode_texts, tokenize

    hist = Histories(data, cfg["history_steps"])
    user_len, item_len = cfg["user_max_length"], cfg["item_max_length"]

    def n_tokens(s: str) -> int:
        return len(tokenizer(s)["input_ids"])

    def user_texts(rows: np.ndarray) -> list[str]:
        return [hist.text(r, n_tokens, user_len) for r in rows.tolist()]

    if cfg["objective"] == "pointwise":
        import torch

        def pair_scores(rows: np.ndarray) -> np.ndarray:
            out = np.zeros(data.candidates[rows].shape, dtype=np.float32)
            model.eval()
            with torch.inference_mode():
                for i, (r, ut) in enumerate(zip(rows.tolist(), user_texts(rows), strict=True)):
                    cand = np.maximum(data.candidates[r], 0)
                    batch = tokenize(
                        tokenizer,
                        [ut] * cand.size,
                        user_len + item_len,
                        pairs=[data.item_texts[j] for j in cand.tolist()],
                    )
                    out[i] = model.pair_logit(batch).numpy()
            return out

        return {f"{prefix} (pair)": pair_scores}

    items = encode_texts(model, tokenizer, data.item_texts, item_len, 128)

    def exact(rows: np.ndarray) -> np.ndarray:
        return encode_texts(model, tokenizer, user_texts(rows), user_len, 32)

    def fast(rows: np.ndarray) -> np.ndarray:
        from recsim_llm.lm.model import fast_states_numpy

        prof = encode_texts(
            model,
            tokenizer,
            [text.history_text(data.profiles[r], []) for r in rows.tolist()],
            user_len,
            64,
        )
        it, ty, ag, mk = hist.arrays(rows, cfg["history_steps"] * data.slates.shape[1])
        return fast_states_numpy(model.fast.export(), prof, items[it], ty, ag, mk)

    return {
        f"{prefix} (exact)": embedding_scorer(data, exact, items),
        f"{prefix} (fast)": embedding_scorer(data, fast, items),
    }


def zero_shot_scorer(
    data: LogData, model_path: str, user_len: int, item_len: int, history_steps: int
) -> Scorer:
    """The pretrained LM without fine-tuning: cosine of mean-pooled history and item texts."""
    from recsim_llm.lm.model import build_model, encode_texts

    tokenizer, model = build_model(model_path, proj_dim=0, dropout=0.0)
    hist = Histories(data, history_steps)
    items = encode_texts(model, tokenizer, data.item_texts, item_len, 128, raw=True)

    def n_tokens(s: str) -> int:
        return len(tokenizer(s)["input_ids"])

    def users(rows: np.ndarray) -> np.ndarray:
        texts = [hist.text(r, n_tokens, user_len) for r in rows.tolist()]
        return encode_texts(model, tokenizer, texts, user_len, 32, raw=True)

    return embedding_scorer(data, users, items)


def test_rows(split: Split, max_rows: int, seed: int, data: LogData | None = None) -> np.ndarray:
    """A seeded sample of ``max_rows`` test rows (0 = all), plus every cold-start-user test row.

    Cold-start rows (t == 0, one per user) are few; they are all added so that their segment is
    measured on as many rows as possible. The ``all`` segment uses the random sample only.
    """
    rows = split.test
    if max_rows and rows.size > max_rows:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE7A]))
        rows = np.sort(rng.choice(rows, max_rows, replace=False))
    if data is not None:
        rows = np.union1d(rows, split.test[data.t[split.test] == 0])
    return rows


def baseline_scorers(
    data: LogData, split: Split, cfg: dict[str, Any], model_path: str, label: str
) -> dict[str, Scorer]:
    return {
        "pretrained MiniLM zero-shot": zero_shot_scorer(
            data, model_path, cfg["user_max_length"], cfg["item_max_length"], cfg["history_steps"]
        ),
        "bag-of-words (non-LM)": bow_scorer(data, cfg["history_steps"]),
        "popularity": popularity_scorer(data, split.train, label),
    }


def evaluate_trained(trainer: Any, cfg: dict[str, Any], max_rows: int = 400) -> dict[str, Any]:
    """Evaluate a just-trained model and the baselines on the trainer's test split.

    ``cfg`` is the model's ``encoder.json`` record (``recsim_llm.lm.finetune.encoder_config``),
    passed in so that this module never imports the fine-tuning module.
    """
    fc = trainer.config
    sample = test_rows(trainer.split, max_rows, fc.seed)
    rows = test_rows(trainer.split, max_rows, fc.seed, trainer.data)
    name = "fine-tuned " + ("LoRA" if fc.lora else "full")
    scorers = lm_scorers(trainer.data, trainer.model, trainer.tokenizer, cfg, name)
    scorers.update(baseline_scorers(trainer.data, trainer.split, cfg, fc.model_path, fc.label))
    return {
        "rows": int(rows.size),
        "table": evaluate_scorers(trainer.data, trainer.split, rows, scorers, fc.label, sample),
    }


def evaluate_encoders(
    logs: str | os.PathLike[str],
    encoders: list[str],
    out_dir: str | os.PathLike[str],
    max_rows: int = 400,
    baselines: bool = True,
) -> dict[str, Any]:
    """Evaluate saved encoders (same split settings) and baselines; write results.json/.md.

    ``out_dir`` is an ``"eval"`` output of ``recsim_llm.io``: checked before any work, written
    as a whole.
    """
    from recsim_llm.lm.logs import load_logs, split_logs
    from recsim_llm.lm.store import load_encoder

    check_out_dir(out_dir, "eval")
    if not encoders:
        raise ValueError("encoders: give at least one encoder directory")
    data = load_logs(logs)
    loaded = [load_encoder(e) for e in encoders]
    # The split is rebuilt from these logs: they must be the logs the encoders were trained on,
    # or "test" rows could be training rows.
    fields = ("source", "world_hash", "n_rows", "seed", "n_users", "n_steps")
    mine = {k: data.meta.get(k) for k in fields}
    for e, enc in zip(encoders, loaded, strict=True):
        trained_on = enc.config.get("logs") or {}
        if {k: trained_on.get(k) for k in fields} != mine:
            raise ValueError(
                f"logs: {logs} are not the logs {e} was trained on "
                f"(encoder.json logs={trained_on}, these logs={mine})"
            )
    ft = [enc.config["finetune"] for enc in loaded]
    keys = ("split", "val_fraction", "test_fraction", "cold_item_fraction", "seed", "label")
    for e, f in zip(encoders[1:], ft[1:], strict=True):
        if any(f[k] != ft[0][k] for k in keys):
            raise ValueError(
                f"encoders: {e} was trained with other split settings than {encoders[0]}"
            )
    f0 = ft[0]
    split = split_logs(
        data,
        f0["split"],
        f0["val_fraction"],
        f0["test_fraction"],
        f0["cold_item_fraction"],
        f0["seed"],
    )
    sample = test_rows(split, max_rows, f0["seed"])
    rows = test_rows(split, max_rows, f0["seed"], data)
    scorers: dict[str, Scorer] = {}
    for path, enc in zip(encoders, loaded, strict=True):
        kind = (
            "LoRA"
            if enc.config["lora"]
            else ("merged" if enc.config.get("merged_from") else "full")
        )
        scorers.update(
            lm_scorers(
                data, enc.model, enc.tokenizer, enc.config, f"fine-tuned {kind} [{Path(path).name}]"
            )
        )
    if baselines:
        scorers.update(
            baseline_scorers(data, split, loaded[0].config, f0["model_path"], f0["label"])
        )
    table = evaluate_scorers(data, split, rows, scorers, f0["label"], sample)
    result = {
        "logs": str(logs),
        "encoders": encoders,
        "rows": int(rows.size),
        "table": table,
        "trainable_fraction": {
            str(p): e.config["trainable_fraction"] for p, e in zip(encoders, loaded, strict=True)
        },
    }
    files = {"results.json": json_text(result), "results.md": markdown_table(table) + "\n"}
    write_directory(out_dir, files, "eval")
    return result


def markdown_table(table: dict[str, dict[str, dict[str, float]]]) -> str:
    """Methods x (segment, metric) as a markdown table."""
    segs = ("all", "cold_users", "cold_items")
    mets = ("auc", f"ndcg@{K}", f"hr@{K}")
    head = "| method | " + " | ".join(f"{s} {m}" for s in segs for m in mets) + " |"
    lines = [head, "|" + "---|" * (1 + len(segs) * len(mets))]
    for name, row in table.items():
        cells = [f"{row[s][m]:.3f}" for s in segs for m in mets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    n = next(iter(table.values()))
    lines.append("")
    lines.append(
        "rows with a response (rankings): " + ", ".join(f"{s} {n[s]['n_rankings']}" for s in segs)
    )
    return "\n".join(lines)
