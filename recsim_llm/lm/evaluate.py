"""Held-out evaluation of user encoders against the baselines, with intervals a reviewer can trust.

Every method scores each evaluated test row's candidates (the items the env offered at that
step). Metrics, each with a 95% bootstrap interval over *users* (users are resampled with
replacement, seeded; every method is scored on the same resamples, so paired differences get
intervals too):

* ``row_auc``: per-row AUC, the mean over rows (one row = one impression) of the AUC within the
  row: its shown slate when the slate has several items (positive = the responded-to item,
  negatives = the other shown items); for logs that show one item per row (MovieLens) the row's
  candidates (positive = the rated item, negatives = the other candidates). Rows without a
  positive or a negative are left out.
* ``auc``: pooled AUC over all shown (item, response) pairs of the segment.
* ``ndcg@10``, ``hr@10``: rank of the responded-to item among all the row's candidates.

Segments: ``all`` (a seeded sample of test rows; with a split by user every test user is held
out, i.e. a cold user), ``cold_items`` (rows whose responded-to item was never in training; per-row
AUC of that cold positive against the row's shown negatives; pooled AUC over cold-item
impressions), ``first_step`` (t == 0: profile only, no history) and, with a split by time,
``cold_users`` (test rows of users with no training row). Every test row of the cold and
first-step segments is evaluated, not a sample.

Methods: for each fine-tuned two-tower encoder the exact state (user tower on the history text)
and the fast state (``FastHead``), each scored ``u·v + b(v)`` (``b`` = the encoder's
``item_bias`` when it has one, else 0; both terms read text only), the personal component
``(u - ū)·v`` and the prior ``ū·v + b(v)`` (``ū`` = mean state over the evaluated rows), and the
fast score combined with observable popularity (a 2-feature logistic regression fit on validation
rows, on the ranking the table reports: shown items, or candidates when rows show one item). Baselines: zero-shot MiniLM (bundled model, mean-pooled, cosine), leak-free popularity
(clicks in training rows only; cold items have none, asserted), a hashed bag of words of history
and item text (1024-d) with a logistic scorer on user-bag ⊙ item-bag plus item-bag features fit on
training rows, and the env's own ``bow`` encoder state scored by cosine. Beside them: each
state's diversity (mean pairwise cosine and mean norm over the evaluated rows) and the hidden
ceilings (ranking shown items by the world's hidden appeal, taste match and full utility, read
from the logs' ``hidden`` fields, which nothing else reads).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
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
METRICS = ("row_auc", "auc", f"ndcg@{K}", f"hr@{K}")
ITEM_METRIC = "row_auc_items"
"""The cold-item segment's per-row AUC with its interval from a bootstrap over the clicked cold
items instead of the users (same point estimate as ``row_auc``)."""
NEW_METRIC = "row_auc_among_new"
"""The cold-item segment's per-row AUC of the responded-to cold item against the *cold* items it
is ranked with only: the shown items, or the candidates where rows show one item (the usual item
cold-start protocol: rank among new items). A model that fits the warm items ranks a cold
positive below well-known warm negatives even when it ranks new items as well as any other
(``docs/results.md``, session 9); this metric does not see warm items, so a constant offset on
new items cannot move it. Rows without a cold negative are left out."""
N_BOOT = 1000
BASELINES = (
    "popularity (leak-free)",
    "pretrained MiniLM zero-shot",
    "hashed BoW-1024 + logistic (non-LM)",
    "env bow encoder (cosine)",
)
HIDDEN_CEILINGS = {
    "hidden appeal only": "appeal",
    "hidden taste match only": "match",
    "hidden full utility": "utility",
}


# -- metrics -----------------------------------------------------------------------------------------
def per_row_auc(scores: np.ndarray, y: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(n,) AUC within each row of (n, m) scores and 0/1 labels; NaN where a class is absent.

    Ties count half. ``valid`` (n, m) masks out padding (never a positive nor a negative).
    """
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y) > 0.5
    valid = np.ones(y.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    pos, neg = y & valid, ~y & valid
    s = np.where(valid, scores, 0.0)
    gt = (s[:, :, None] > s[:, None, :]).astype(np.float64)
    eq = (s[:, :, None] == s[:, None, :]).astype(np.float64)
    pairs = pos[:, :, None] & neg[:, None, :]
    wins = ((gt + 0.5 * eq) * pairs).sum(axis=(1, 2))
    n_pairs = pairs.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pairs > 0, wins / np.maximum(n_pairs, 1), np.nan)


def rank_metrics(scores: np.ndarray, positive: np.ndarray, k: int = K) -> tuple[np.ndarray, ...]:
    """(ndcg@k, hr@k) per row of one positive column per row (ties count half; -inf = padding)."""
    if scores.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    pos_score = scores[np.arange(scores.shape[0]), positive][:, None]
    rank = 1.0 + (scores > pos_score).sum(1) + 0.5 * ((scores == pos_score).sum(1) - 1)
    hit = rank <= k
    return np.where(hit, 1.0 / np.log2(rank + 1.0), 0.0), hit.astype(np.float64)


def ranking_metrics(scores: np.ndarray, positive: np.ndarray, k: int = K) -> tuple[float, float]:
    """Mean NDCG@k and HR@k of one positive column per row (ties count half)."""
    if scores.shape[0] == 0:
        return float("nan"), float("nan")
    ndcg, hit = rank_metrics(scores, positive, k)
    return float(ndcg.mean()), float(hit.mean())


def resample_counts(n_users: int, n_boot: int, seed: int, stream: int = 0xB007) -> np.ndarray:
    """(n_boot, n_users) how often each user (or item) is drawn in each bootstrap resample
    (seeded; ``stream`` keeps the users' and the items' resamples apart)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream]))
    if n_users == 0:
        return np.zeros((n_boot, 0))
    return rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=n_boot).astype(np.float64)


def mean_by_user(
    values: np.ndarray, users: np.ndarray, counts: np.ndarray
) -> tuple[float, np.ndarray]:
    """Mean of per-row ``values`` (NaN left out) and its value on each resample of users.

    ``users`` are indices into the columns of ``counts`` (n_boot, n_users).
    """
    ok = np.isfinite(values)
    n_users = counts.shape[1]
    sums = np.bincount(users[ok], values[ok], minlength=n_users)
    ns = np.bincount(users[ok], minlength=n_users).astype(np.float64)
    point = float(sums.sum() / ns.sum()) if ns.sum() else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (counts @ sums) / (counts @ ns)
    return point, boot


def pooled_auc_by_user(
    scores: np.ndarray, y: np.ndarray, users: np.ndarray, counts: np.ndarray, chunk: int = 200
) -> tuple[float, np.ndarray]:
    """Pooled AUC of (scores, 0/1 y) and its value on each resample of users (ties count half).

    A resample weights each impression by how often its user was drawn; the weighted AUC is
    computed over tie groups of the sorted scores, so no resample re-sorts.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(y).ravel() > 0.5
    point = auc(scores, y)
    n_boot = counts.shape[0]
    if scores.size == 0 or np.isnan(point):
        return point, np.full(n_boot, np.nan)
    order = np.argsort(scores, kind="mergesort")
    s, yy, uu = scores[order], y[order], users.ravel()[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    out = np.empty(n_boot)
    for b0 in range(0, n_boot, chunk):
        w = counts[b0 : b0 + chunk][:, uu]  # (c, n)
        gp = np.add.reduceat(w * yy, starts, axis=1)
        gn = np.add.reduceat(w * ~yy, starts, axis=1)
        below = np.cumsum(gn, axis=1) - gn
        num = (gp * (below + 0.5 * gn)).sum(1)
        den = gp.sum(1) * gn.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b0 : b0 + chunk] = np.where(den > 0, num / den, np.nan)
    return point, out


def interval(boot: np.ndarray) -> list[float]:
    """95% percentile interval of bootstrap values (NaN resamples left out)."""
    ok = boot[np.isfinite(boot)]
    if ok.size == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(ok, [2.5, 97.5])
    return [float(lo), float(hi)]


# -- rows, segments and scoring ----------------------------------------------------------------------
@dataclass
class EvalSet:
    """The evaluated test rows of one split, their segments and bootstrap resamples."""

    data: LogData
    split: Split
    label: str
    rows: np.ndarray
    y: np.ndarray
    """(n_rows, slate) 0/1 response of the shown items."""
    slate_col: np.ndarray
    pos_col: np.ndarray
    """(n_rows,) candidate column of the responded-to item (0 where none)."""
    has_pos: np.ndarray
    valid: np.ndarray
    user_idx: np.ndarray
    counts: np.ndarray
    over: str
    """'slate' or 'candidates': what per-row AUC ranks within."""
    segments: dict[str, tuple[np.ndarray, np.ndarray]]
    """segment -> (ranking rows mask (n_rows,), impression mask (n_rows, slate))."""
    cold_item_idx: np.ndarray
    """(rows of the cold-item segment,) index of each row's clicked cold item among them."""
    cold_item_counts: np.ndarray
    """(n_boot, clicked cold items) bootstrap resamples of the clicked cold items."""
    cold_cand: np.ndarray
    """(n_rows, n_cand) True where a valid candidate is a cold (never-trained) item."""

    def slice_scores(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        """Every per-row / pooled input a metric needs, from (n_rows, n_cand) scores."""
        return {"cand": scores, "shown": np.take_along_axis(scores, self.slate_col, axis=1)}


def eval_rows(
    data: LogData, split: Split, label: str, max_rows: int, seed: int, cold: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, in_sample): a seeded sample of ``max_rows`` test rows (0 = all) plus every test row
    of the cold-item and first-step segments (those segments are small: all their rows count;
    one larger than ``max_rows`` is sampled to ``max_rows`` rows too)."""
    rows = split.test
    sample = rows
    if max_rows and rows.size > max_rows:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE7A]))
        sample = np.sort(rng.choice(rows, max_rows, replace=False))
    y = labels(data, label)
    pos_item = data.slates[rows, np.argmax(y[rows], axis=1)]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC01D]))
    out = sample
    for extra in (rows[data.t[rows] == 0], rows[cold[pos_item] & (y[rows].sum(1) > 0)]):
        # A segment larger than max_rows (e.g. cold items under a split by time) is sampled too.
        if max_rows and extra.size > max_rows:
            extra = np.sort(rng.choice(extra, max_rows, replace=False))
        out = np.union1d(out, extra)
    return out, np.isin(out, sample)


def build_eval_set(
    data: LogData,
    split: Split,
    label: str,
    max_rows: int,
    seed: int,
    n_boot: int = N_BOOT,
) -> EvalSet:
    """Rows, labels, segments and the bootstrap resamples of users for one split."""
    cold = split.cold_mask(data.n_items)
    rows, in_sample = eval_rows(data, split, label, max_rows, seed, cold)
    y = labels(data, label)[rows]
    slates, cands = data.slates[rows], data.candidates[rows]
    valid = cands >= 0
    slate_col = np.argmax(cands[:, None, :] == slates[:, :, None], axis=2)
    has_pos = y.sum(1) > 0
    first = np.argmax(y, axis=1)
    pos_item = slates[np.arange(rows.size), first]
    pos_col = slate_col[np.arange(rows.size), first]
    over = "slate" if slates.shape[1] > 1 else "candidates"
    k = slates.shape[1]
    imp_all = np.repeat(in_sample[:, None], k, 1)
    first_step = data.t[rows] == 0
    segments = {
        "all": (in_sample & has_pos, imp_all),
        "cold_items": (has_pos & cold[pos_item], cold[slates]),
        "first_step": (has_pos & first_step, np.repeat(first_step[:, None], k, 1)),
    }
    if split.train.size and np.isin(data.user[rows], data.user[split.train]).any():
        # A split by time: some test users have training rows; the cold users are the others.
        new_user = ~np.isin(data.user[rows], data.user[split.train])
        segments["cold_users"] = (has_pos & new_user & in_sample, imp_all & new_user[:, None])
    users, user_idx = np.unique(data.user[rows], return_inverse=True)
    # The cold-item segment is also resampled over its clicked items: a few popular items carry
    # much of it, which a bootstrap over users does not see (docs/results.md, session 7).
    cold_items, cold_item_idx = np.unique(pos_item[segments["cold_items"][0]], return_inverse=True)
    item_counts = resample_counts(cold_items.size, n_boot, seed, stream=0x17E5)
    return EvalSet(
        data=data,
        split=split,
        label=label,
        rows=rows,
        y=y,
        slate_col=slate_col,
        pos_col=pos_col,
        has_pos=has_pos,
        valid=valid,
        user_idx=user_idx,
        counts=resample_counts(users.size, n_boot, seed),
        over=over,
        segments=segments,
        cold_item_idx=cold_item_idx,
        cold_item_counts=item_counts,
        cold_cand=valid & cold[np.maximum(cands, 0)],
    )


def score_metrics(
    ev: EvalSet, scores: np.ndarray, shown_only: bool = False
) -> dict[str, dict[str, tuple[float, np.ndarray]]]:
    """{segment: {metric: (point, bootstrap values)}} of (n_rows, n_cand) candidate scores.

    ``shown_only``: ``scores`` is (n_rows, slate) over the shown items only (hidden ceilings);
    candidate-ranking metrics are then NaN.
    """
    if shown_only:
        shown = np.asarray(scores, dtype=np.float64)
        cand = None
    else:
        cand = np.where(ev.valid, scores, -np.inf).astype(np.float64)
        shown = np.take_along_axis(cand, ev.slate_col, axis=1)
    n = ev.rows.size
    if ev.over == "slate":
        row_auc_all = per_row_auc(shown, ev.y)
    elif cand is not None:
        yc = np.zeros(cand.shape)
        yc[np.arange(n), ev.pos_col] = ev.has_pos
        # Rows without a positive (e.g. a rating below 4) have no defined AUC.
        row_auc_all = np.where(ev.has_pos, per_row_auc(cand, yc, ev.valid), np.nan)
    else:
        row_auc_all = np.full(n, np.nan)
    if cand is not None:
        ndcg_all, hr_all = rank_metrics(cand, ev.pos_col)
    else:
        ndcg_all = hr_all = np.full(n, np.nan)
    nan_boot = np.full(ev.counts.shape[0], np.nan)
    out: dict[str, dict[str, tuple[float, np.ndarray]]] = {}
    for seg, (rank_mask, imp_mask) in ev.segments.items():
        users = ev.user_idx[rank_mask]
        res: dict[str, tuple[float, np.ndarray]] = {}
        if seg == "cold_items" and ev.over == "slate":
            # The cold positive against the row's shown negatives (negatives may be warm).
            yy = ev.y[rank_mask] * imp_mask[rank_mask]
            seg_auc = per_row_auc(
                shown[rank_mask], yy, imp_mask[rank_mask] | (ev.y[rank_mask] == 0)
            )
        else:
            seg_auc = row_auc_all[rank_mask]
        res["row_auc"] = mean_by_user(seg_auc, users, ev.counts)
        if seg == "cold_items":
            # The same rows, resampled over their clicked cold items (ITEM_METRIC).
            res[ITEM_METRIC] = mean_by_user(seg_auc, ev.cold_item_idx, ev.cold_item_counts)
            # The cold positive against the cold negatives only (NEW_METRIC).
            if ev.over == "slate":
                among_new = per_row_auc(
                    shown[rank_mask], ev.y[rank_mask] * imp_mask[rank_mask], imp_mask[rank_mask]
                )
                res[NEW_METRIC] = mean_by_user(among_new, users, ev.counts)
            elif cand is not None:
                m = np.flatnonzero(rank_mask)
                yc = np.zeros(cand[m].shape)
                yc[np.arange(m.size), ev.pos_col[m]] = 1.0
                among_new = per_row_auc(cand[m], yc, ev.cold_cand[m])
                res[NEW_METRIC] = mean_by_user(among_new, users, ev.counts)
        imp_users = np.repeat(ev.user_idx[:, None], shown.shape[1], 1)[imp_mask]
        res["auc"] = pooled_auc_by_user(shown[imp_mask], ev.y[imp_mask], imp_users, ev.counts)
        if cand is None:
            res[f"ndcg@{K}"] = res[f"hr@{K}"] = (float("nan"), nan_boot)
        else:
            res[f"ndcg@{K}"] = mean_by_user(ndcg_all[rank_mask], users, ev.counts)
            res[f"hr@{K}"] = mean_by_user(hr_all[rank_mask], users, ev.counts)
        out[seg] = res
    return out


def segment_sizes(ev: EvalSet) -> dict[str, dict[str, int]]:
    """Rankings (rows with a response), impressions and users per segment; the cold-item
    segment also counts its clicked cold items (what its item-level bootstrap resamples)."""
    sizes = {
        seg: {
            "n_rankings": int(rank.sum()),
            "n_impressions": int(imp.sum()),
            "n_users": int(np.unique(ev.user_idx[rank]).size),
        }
        for seg, (rank, imp) in ev.segments.items()
    }
    sizes["cold_items"]["n_clicked_items"] = int(ev.cold_item_counts.shape[1])
    return sizes


# -- scorers -----------------------------------------------------------------------------------------
def training_click_counts(data: LogData, split: Split, label: str) -> np.ndarray:
    """(n_items,) responses in training rows only, cold items left out (training never sees them).

    Raises:
        AssertionError: a cold item has a count (the leak this baseline must not have).
    """
    y = labels(data, label)[split.train]
    counts = np.zeros(data.n_items)
    np.add.at(counts, data.slates[split.train][y > 0], 1.0)
    counts[split.cold_items] = 0.0
    assert not counts[split.cold_items].any(), "popularity counts a cold item"
    return counts


def popularity_scorer(data: LogData, split: Split, label: str) -> Scorer:
    """Leak-free popularity: responses counted on training rows only (see training_click_counts)."""
    counts = training_click_counts(data, split, label)
    return lambda rows: counts[np.maximum(data.candidates[rows], 0)]


def env_bow_scorer(data: LogData, dim: int = 32, decay: float = 0.8) -> Scorer:
    """The env's ``bow`` encoder state (``BagOfWordsEncoder``), scored by cosine.

    The state's blocks (profile bag, decayed sums of clicked, well-rated and skipped items' bags,
    as ``BagOfWordsEncoder.update`` builds them step by step) are combined into one preference
    vector ``profile + clicked + liked - skipped`` and scored by cosine with the item bag.
    """
    from recsim_llm.encoders import BagOfWordsEncoder

    enc = BagOfWordsEncoder(dim, decay)
    item = enc.encode_items(data.item_texts)
    hist = Histories(data, 1_000_000)

    def score(rows: np.ndarray) -> np.ndarray:
        states = enc.encode_profiles([data.profiles[r] for r in rows.tolist()])
        d = dim
        for i, r in enumerate(rows.tolist()):
            by_age: dict[int, list[tuple[int, bool, float]]] = {}
            for it, clicked, rating, age in hist.events(r):
                by_age.setdefault(age, []).append((it, clicked, rating))
            for age, events in by_age.items():
                w = decay**age
                skipped = [it for it, c, _ in events if not c]
                for it, c, rating in events:
                    if c:
                        states[i, d : 2 * d] += w * item[it]
                        if rating >= 4.0:
                            states[i, 2 * d : 3 * d] += w * item[it]
                if skipped:
                    states[i, 3 * d :] += w * item[skipped].sum(0) / len(skipped)
        u = states[:, :d] + states[:, d : 2 * d] + states[:, 2 * d : 3 * d] - states[:, 3 * d :]
        u = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-9)
        return np.einsum("nd,ncd->nc", u, item[np.maximum(data.candidates[rows], 0)])

    return score


def hashed_bow_logistic_scorer(
    data: LogData,
    split: Split,
    label: str,
    history_steps: int,
    seed: int,
    dim: int = 1024,
    max_rows: int = 4000,
    l2: float = 1e-4,
) -> Scorer:
    """Strong non-LM baseline: hashed bag of words (``dim``) with a learned logistic scorer.

    Features of (user, item): user-bag ⊙ item-bag and item-bag (2 * ``dim``); user bag = the
    history text (profile and events, cold items dropped in training); fit by L-BFGS with L2 on the
    shown impressions of up to ``max_rows`` training rows (seeded sample), cold items left out.
    """
    import torch

    from recsim_llm.encoders import hashed_bow

    cold = split.cold_mask(data.n_items)
    rows = split.train
    if max_rows and rows.size > max_rows:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB0B]))
        rows = np.sort(rng.choice(rows, max_rows, replace=False))
    train_hist = Histories(data, history_steps, drop_items=split.cold_items)
    users = hashed_bow([train_hist.text(r) for r in rows.tolist()], dim)
    items = hashed_bow(data.item_texts, dim)
    y = labels(data, label)[rows]
    slates = data.slates[rows]
    keep = ~cold[slates]
    r_idx = np.repeat(np.arange(rows.size)[:, None], slates.shape[1], 1)[keep]
    i_idx, target = slates[keep], y[keep]
    if target.min() == target.max():
        raise ValueError("training rows hold one response class only: cannot fit the baseline")
    u_t, v_t = torch.from_numpy(users[r_idx]), torch.from_numpy(items[i_idx])
    t_t = torch.from_numpy(target.astype(np.float32))
    torch.manual_seed(seed)
    w = torch.zeros(2 * dim + 1, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        logit = (u_t * v_t) @ w[:dim] + v_t @ w[dim : 2 * dim] + w[-1]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, t_t)
        loss = loss + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    wn = w.detach().numpy().astype(np.float32)
    test_hist = Histories(data, history_steps)

    def score(rows: np.ndarray) -> np.ndarray:
        u = hashed_bow([test_hist.text(r) for r in rows.tolist()], dim)
        v = items[np.maximum(data.candidates[rows], 0)]
        return np.einsum("nd,ncd->nc", u * wn[:dim], v) + v @ wn[dim : 2 * dim]

    return score


def zero_shot_states(
    data: LogData, model_path: str, user_len: int, item_len: int, history_steps: int
) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """(users(rows) -> states, item embeddings) of the pretrained LM: mean-pooled, unit norm."""
    from recsim_llm.lm.model import build_model, encode_texts

    tokenizer, model = build_model(model_path, proj_dim=0, dropout=0.0)
    hist = Histories(data, history_steps)
    items = encode_texts(model, tokenizer, data.item_texts, item_len, 128, raw=True)

    def n_tokens(s: str) -> int:
        return len(tokenizer(s)["input_ids"])

    def users(rows: np.ndarray) -> np.ndarray:
        texts = [hist.text(r, n_tokens, user_len) for r in rows.tolist()]
        return encode_texts(model, tokenizer, texts, user_len, 32, raw=True)

    return users, items


def dot_scores(data: LogData, rows: np.ndarray, u: np.ndarray, items: np.ndarray) -> np.ndarray:
    return np.einsum("nd,ncd->nc", u, items[np.maximum(data.candidates[rows], 0)])


def diversity(states: np.ndarray) -> dict[str, float]:
    """Mean pairwise cosine (distinct pairs) and mean norm of a set of state vectors."""
    x = np.asarray(states, dtype=np.float64)
    n = x.shape[0]
    norms = np.linalg.norm(x, axis=1)
    unit = x / np.maximum(norms, 1e-12)[:, None]
    total = unit.sum(0)
    cos = (total @ total - n) / (n * (n - 1)) if n > 1 else float("nan")
    return {"mean_pairwise_cosine": float(cos), "mean_norm": float(norms.mean()), "n": int(n)}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 50) -> np.ndarray:
    """Weights (features + intercept) of an L2 logistic regression by Newton's method (small d)."""
    z = np.column_stack([x, np.ones(len(x))])
    w = np.zeros(z.shape[1])
    reg = l2 * np.eye(z.shape[1])
    reg[-1, -1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -30, 30)))
        grad = z.T @ (p - y) + reg @ w
        hess = (z * (p * (1 - p))[:, None]).T @ z + reg + 1e-9 * np.eye(z.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def combiner_training_set(
    data: LogData, split: Split, label: str, over: str, states: Any, pop: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Features (fast text score, log1p popularity) and 0/1 labels of the validation rows.

    ``over == "slate"``: every shown item, labelled by its response. ``over == "candidates"``
    (rows show one item, e.g. MovieLens ratings): every valid candidate of a row whose shown item
    got a positive response, labelled 1 for that item and 0 for the others: the ranking the table
    reports, where popularity matters far more than among the shown items alone.
    """
    val = split.val
    u, v, b, s = states.fast(val), states.items, states.bias, states.scale
    y = labels(data, label)[val]
    if over == "slate":
        items = data.slates[val]
        score = s * np.einsum("nd,nkd->nk", u, v[items]) + b[items]
        return np.column_stack([score.ravel(), np.log1p(pop[items]).ravel()]), y.ravel()
    keep = y[:, 0] > 0
    cands = data.candidates[val][keep]
    valid = cands >= 0
    items = np.maximum(cands, 0)
    score = s * np.einsum("nd,nkd->nk", u[keep], v[items]) + b[items]
    target = (cands == data.slates[val][keep][:, :1]).astype(np.float64)
    x = np.column_stack([score[valid], np.log1p(pop[items][valid])])
    return x, target[valid]


class EncoderStates:
    """A loaded two-tower encoder's item embeddings, item bias and user states on log rows."""

    def __init__(self, data: LogData, enc: Any) -> None:
        self.data, self.enc = data, enc
        cfg = enc.config
        self.cfg = cfg
        self.hist = Histories(data, cfg["history_steps"])
        self.items = self._items()
        bias = getattr(enc, "item_bias", None)
        self.bias = (
            np.asarray(bias(self.items), dtype=np.float64).reshape(-1)
            if callable(bias)
            else np.zeros(data.n_items)
        )
        # The two-tower response logit is ``scale * u.v + b(v)``: with an item bias the scale
        # changes the ranking, so every full score uses it (1 for encoders without one).
        scale = getattr(enc, "logit_scale", None)
        self.scale = float(scale) if isinstance(scale, (int, float)) else 1.0
        self._profiles: dict[str, np.ndarray] = {}

    def _items(self) -> np.ndarray:
        """Item embeddings; texts in the encoder's checked cache are not re-encoded."""
        from recsim_llm.lm.store import read_cache, text_key

        texts = self.data.item_texts
        cache = read_cache(self.enc.path, self.cfg) if self.enc.path else None
        out = np.zeros((len(texts), self.enc.dim), dtype=np.float32)
        known: dict[int, np.ndarray] = {}
        if cache and "item_keys" in cache:
            known = dict(zip(cache["item_keys"].tolist(), cache["item_emb"], strict=True))
        keys = [text_key(t) for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in known]
        for i, k in enumerate(keys):
            if k in known:
                out[i] = known[k]
        if missing:
            out[missing] = self.enc.encode_items([texts[i] for i in missing], 128)
        return out

    def n_tokens(self, s: str) -> int:
        return len(self.enc.tokenizer(s)["input_ids"])

    def exact(self, rows: np.ndarray) -> np.ndarray:
        texts = [self.hist.text(r, self.n_tokens, self.cfg["user_max_length"]) for r in rows]
        return self.enc.encode_users(texts, 32)

    def fast(self, rows: np.ndarray) -> np.ndarray:
        from recsim_llm.lm.model import fast_states_numpy

        profiles = [self.data.profiles[r] for r in rows.tolist()]
        new = sorted(set(profiles) - set(self._profiles))
        if new:
            emb = self.enc.encode_users([text.history_text(p, []) for p in new], 64)
            self._profiles.update(zip(new, emb, strict=True))
        prof = np.stack([self._profiles[p] for p in profiles])
        max_events = self.cfg["history_steps"] * self.data.slates.shape[1]
        it, ty, ag, mk = self.hist.arrays(rows, max_events)
        return fast_states_numpy(self.enc.model.fast.export(), prof, self.items[it], ty, ag, mk)


def pair_scorer(data: LogData, model: Any, tokenizer: Any, cfg: dict[str, Any]) -> Scorer:
    """A pointwise (cross-encoder) model's logit of every (history text, candidate) pair."""
    import torch

    from recsim_llm.lm.model import tokenize

    hist = Histories(data, cfg["history_steps"])
    user_len, item_len = cfg["user_max_length"], cfg["item_max_length"]

    def n_tokens(s: str) -> int:
        return len(tokenizer(s)["input_ids"])

    def scores(rows: np.ndarray) -> np.ndarray:
        out = np.zeros(data.candidates[rows].shape, dtype=np.float32)
        model.eval()
        with torch.inference_mode():
            for i, r in enumerate(rows.tolist()):
                cand = np.maximum(data.candidates[r], 0)
                batch = tokenize(
                    tokenizer,
                    [hist.text(r, n_tokens, user_len)] * cand.size,
                    user_len + item_len,
                    pairs=[data.item_texts[j] for j in cand.tolist()],
                )
                out[i] = model.pair_logit(batch).numpy()
        return out

    return scores


# -- one split ---------------------------------------------------------------------------------------
@dataclass
class Encoder:
    """An encoder to evaluate: a display name and the loaded model (``LoadedEncoder``-like)."""

    name: str
    loaded: Any


def evaluate_split(
    data: LogData,
    split: Split,
    encoders: list[Encoder],
    label: str,
    max_rows: int,
    seed: int,
    model_path: str,
    hidden: dict[str, np.ndarray] | None = None,
    baselines: bool = True,
    n_boot: int = N_BOOT,
    suffix: str = "",
    progress: Callable[[str], None] | None = None,
    exact: bool = True,
) -> dict[str, Any]:
    """Scores, metrics with intervals and paired differences of encoders and baselines on a split.

    ``exact=False`` leaves out the exact states (every history text through the LM), the slow part
    on a large test set; the fast states and every baseline are still scored.

    Returns a dict with ``table`` {method: {segment: {metric: value}}}, ``intervals`` (same keys,
    [lo, hi]), ``paired`` {method: {baseline: {segment: {metric: [diff, lo, hi]}}}},
    ``diversity``, ``hidden_ceilings``, ``segments`` (sizes), ``n_rows``, ``n_users``,
    ``per_row_auc_over`` and ``seconds`` per method.
    """
    say = progress or (lambda _msg: None)
    ev = build_eval_set(data, split, label, max_rows, seed, n_boot)
    rows = ev.rows
    results: dict[str, dict[str, dict[str, tuple[float, np.ndarray]]]] = {}
    div: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    main_rows: list[str] = []
    sample_rows = ev.segments["all"][1][:, 0]

    def add(name: str, scores: np.ndarray, start: float) -> None:
        results[name] = score_metrics(ev, scores)
        seconds[name] = round(time.perf_counter() - start, 2)

    pop = training_click_counts(data, split, label)
    for enc in encoders:
        start = time.perf_counter()
        cfg = enc.loaded.config
        if cfg.get("objective", "two-tower") == "pointwise":
            say(f"{enc.name}: pair scores")
            scorer = pair_scorer(data, enc.loaded.model, enc.loaded.tokenizer, cfg)
            add(f"{enc.name} (pair)", scorer(rows), start)
            main_rows.append(f"{enc.name} (pair)")
            continue
        states = EncoderStates(data, enc.loaded)
        say(f"{enc.name}: fast states")
        for kind in ("fast", "exact") if exact else ("fast",):
            start = time.perf_counter()
            if kind == "exact":
                say(f"{enc.name}: exact states ({rows.size} history texts through the LM)")
            u = states.fast(rows) if kind == "fast" else states.exact(rows)
            v = states.items
            b = states.bias
            u_bar = u[sample_rows].mean(0)
            s = states.scale
            full = s * dot_scores(data, rows, u, v) + b[np.maximum(data.candidates[rows], 0)]
            add(f"{enc.name} {kind}: s·u·v + b (text only)", full, start)
            main_rows.append(f"{enc.name} {kind}: s·u·v + b (text only)")
            add(
                f"{enc.name} {kind}: personal (u - ū)·v",
                dot_scores(data, rows, u - u_bar, v),
                start,
            )
            prior = s * dot_scores(data, rows, np.broadcast_to(u_bar, u.shape), v)
            prior = prior + b[np.maximum(data.candidates[rows], 0)]
            add(f"{enc.name} {kind}: prior s·ū·v + b", prior, start)
            div[f"{enc.name} {kind}"] = diversity(u[sample_rows])
            if kind == "fast" and split.val.size:
                # Text score + observable popularity: 2 features, fit on validation rows, on
                # the task the table ranks (shown items, or the candidates when rows show one).
                x, vy = combiner_training_set(data, split, label, ev.over, states, pop)
                if 0.0 < vy.sum() < vy.size:
                    w = fit_logistic(x, vy)
                    pop_c = np.log1p(pop[np.maximum(data.candidates[rows], 0)])
                    name = f"{enc.name} fast + popularity (logistic on validation rows)"
                    add(name, w[0] * full + w[1] * pop_c, start)
                    main_rows.append(name)
                else:  # no positive (or no negative) to fit on: the row would be meaningless
                    say(f"{enc.name}: fast + popularity skipped (validation rows lack both labels)")
        div[f"{enc.name} items"] = diversity(states.items)
    if baselines:
        base = {}
        start = time.perf_counter()
        base[BASELINES[0]] = lambda r: pop[np.maximum(data.candidates[r], 0)]
        cfg0 = encoders[0].loaded.config
        say("baselines: hashed bag of words + logistic")
        base[BASELINES[2]] = hashed_bow_logistic_scorer(
            data, split, label, cfg0["history_steps"], seed
        )
        base[BASELINES[3]] = env_bow_scorer(data)
        for name, scorer in base.items():
            start = time.perf_counter()
            add(name + suffix, scorer(rows), start)
        say("baselines: zero-shot MiniLM")
        start = time.perf_counter()
        zs_users, zs_items = zero_shot_states(
            data,
            model_path,
            cfg0["user_max_length"],
            cfg0["item_max_length"],
            cfg0["history_steps"],
        )
        u = zs_users(rows)
        add(BASELINES[1] + suffix, dot_scores(data, rows, u, zs_items), start)
        div[BASELINES[1] + suffix] = diversity(u[sample_rows])
    ceilings: dict[str, Any] = {}
    if hidden is not None:
        for name, field in HIDDEN_CEILINGS.items():
            res = score_metrics(ev, hidden[field][rows], shown_only=True)
            ceilings[name] = {
                seg: {m: [res[seg][m][0], *interval(res[seg][m][1])] for m in ("row_auc", "auc")}
                for seg in res
            }
    paired: dict[str, Any] = {}
    for name in main_rows:
        paired[name] = {}
        for bname in BASELINES:
            key = bname + suffix
            if key not in results:
                continue
            paired[name][key] = {
                seg: {
                    m: [
                        results[name][seg][m][0] - results[key][seg][m][0],
                        *interval(results[name][seg][m][1] - results[key][seg][m][1]),
                    ]
                    for m in (*METRICS, ITEM_METRIC, NEW_METRIC)
                    if m in results[name][seg] and m in results[key][seg]
                }
                for seg in results[name]
            }
    return {
        "table": {
            n: {s: {m: v[0] for m, v in r.items()} for s, r in res.items()}
            for n, res in results.items()
        },
        "intervals": {
            n: {s: {m: interval(v[1]) for m, v in r.items()} for s, r in res.items()}
            for n, res in results.items()
        },
        "paired": paired,
        "diversity": div,
        "hidden_ceilings": ceilings,
        "segments": segment_sizes(ev),
        "n_rows": int(rows.size),
        "n_users": int(ev.counts.shape[1]),
        "n_boot": int(n_boot),
        "per_row_auc_over": ev.over,
        "popularity_cold_item_counts": float(pop[split.cold_items].sum()),
        "seconds": seconds,
        "main_rows": main_rows,
        "methods": list(results),
    }


# -- hidden truth ------------------------------------------------------------------------------------
def load_hidden(log_dir: str | os.PathLike[str], data: LogData) -> dict[str, np.ndarray] | None:
    """The logs' hidden truth per shown slot, aligned with ``data``'s rows; None if not logged.

    Only evaluation reads this (``load_logs`` never does), for the hidden ceilings.
    """
    path = Path(log_dir) / "impressions.jsonl"
    rows = [json.loads(line) for line in path.open() if line.strip()]
    if not rows or "hidden" not in rows[0]:
        return None
    rows.sort(key=lambda r: (r["user"], r["t"]))
    return {
        f: np.array([r["hidden"][f] for r in rows], dtype=np.float64)
        for f in ("appeal", "match", "utility")
    }


# -- seeds -------------------------------------------------------------------------------------------
def seed_summary(
    table: dict[str, Any], intervals: dict[str, Any], groups: dict[str, list[str]]
) -> dict[str, Any]:
    """Per group of methods that differ only in the fine-tuning seed: mean, spread, each seed."""
    out: dict[str, Any] = {}
    for key, names in groups.items():
        if len(names) < 2:
            continue
        out[key] = {"methods": names}
        for seg in table[names[0]]:
            out[key][seg] = {}
            for m in METRICS:
                vals = np.array([table[n][seg][m] for n in names], dtype=np.float64)
                out[key][seg][m] = {
                    "mean": float(np.mean(vals)),
                    "std": float(np.std(vals, ddof=1)),
                    "min": float(np.min(vals)),
                    "max": float(np.max(vals)),
                    "per_seed": [
                        [float(v), *intervals[n][seg][m]] for v, n in zip(vals, names, strict=True)
                    ],
                }
    return out


# -- public entry points -----------------------------------------------------------------------------
def check_trained_on(data: LogData, logs: Any, config: dict[str, Any], encoder: Any) -> None:
    """Raise unless ``data`` (read from ``logs``) are the logs the encoder (``config``, read from
    ``encoder``) was trained on: a split rebuilt from other logs could call training rows test rows.

    Raises:
        ValueError: naming both sides' identity fields.
    """
    fields = ("source", "world_hash", "n_rows", "seed", "n_users", "n_steps")
    mine = {k: data.meta.get(k) for k in fields}
    trained_on = config.get("logs") or {}
    if {k: trained_on.get(k) for k in fields} != mine:
        raise ValueError(
            f"logs: {logs} are not the logs {encoder} was trained on "
            f"(encoder.json logs={trained_on}, these logs={mine})"
        )


def _split_of(data: LogData, f: dict[str, Any]) -> Split:
    from recsim_llm.lm.logs import split_logs

    return split_logs(
        data, f["split"], f["val_fraction"], f["test_fraction"], f["cold_item_fraction"], f["seed"]
    )


def _variant(config: dict[str, Any]) -> str:
    if config.get("merged_from"):
        return "merged"
    return "LoRA" if config.get("lora") else "full"


def evaluate_encoders(
    logs: str | os.PathLike[str],
    encoders: list[str],
    out_dir: str | os.PathLike[str],
    max_rows: int = 2000,
    baselines: bool = True,
    n_boot: int = N_BOOT,
    command: str = "",
    progress: bool = False,
    exact: bool = True,
) -> dict[str, Any]:
    """Evaluate saved encoders and the baselines on held-out rows; write results.json/.md.

    Encoders trained with the same split settings share one split (and one set of baselines);
    encoders whose split differs (e.g. another fine-tuning seed that also seeds the split) are
    evaluated on their own split with their own baselines, paired differences within it.
    ``out_dir`` is an ``"eval"`` output of ``recsim_llm.io``: checked before any work, written as
    a whole. ``command`` is recorded in the outputs.
    """
    from recsim_llm.lm.logs import load_logs
    from recsim_llm.lm.store import load_encoder

    check_out_dir(out_dir, "eval")
    if not encoders:
        raise ValueError("encoders: give at least one encoder directory")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0:
        raise ValueError(f"max_rows must be an integer >= 0, got {max_rows!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10, got {n_boot!r}")
    say = (lambda msg: print(msg, flush=True)) if progress else None
    t0 = time.perf_counter()
    data = load_logs(logs)
    loaded = [load_encoder(e) for e in encoders]
    for e, enc in zip(encoders, loaded, strict=True):
        check_trained_on(data, logs, enc.config, e)
    keys = ("split", "val_fraction", "test_fraction", "cold_item_fraction", "seed", "label")
    labels_used = {enc.config["finetune"]["label"] for enc in loaded}
    if len(labels_used) > 1:
        raise ValueError(f"encoders: trained on different labels {sorted(labels_used)}")
    hidden = load_hidden(logs, data)
    by_split: dict[tuple[Any, ...], list[int]] = {}
    for i, enc in enumerate(loaded):
        by_split.setdefault(tuple(enc.config["finetune"][k] for k in keys), []).append(i)
    names = []
    for path, enc in zip(encoders, loaded, strict=True):
        names.append(f"{_variant(enc.config)} [{Path(path).name}]")
    if len(set(names)) != len(names):
        names = [f"{_variant(e.config)} [{p}]" for p, e in zip(encoders, loaded, strict=True)]
    merged: dict[str, Any] = {
        k: {} for k in ("table", "intervals", "paired", "diversity", "seconds")
    }
    runs = []
    for j, (skey, idx) in enumerate(by_split.items()):
        f = loaded[idx[0]].config["finetune"]
        split = _split_of(data, f)
        suffix = f" [split {j + 1}]" if len(by_split) > 1 else ""
        res = evaluate_split(
            data,
            split,
            [Encoder(names[i], loaded[i]) for i in idx],
            f["label"],
            max_rows,
            f["seed"],
            f["model_path"],
            hidden,
            baselines,
            n_boot,
            suffix,
            say,
            exact=exact,
        )
        for k in merged:
            merged[k].update(res[k])
        runs.append(
            {
                "split": dict(zip(keys, skey, strict=True)),
                "encoders": [encoders[i] for i in idx],
                "suffix": suffix,
                **{
                    k: res[k]
                    for k in (
                        "segments",
                        "n_rows",
                        "n_users",
                        "n_boot",
                        "per_row_auc_over",
                        "hidden_ceilings",
                        "popularity_cold_item_counts",
                        "main_rows",
                        "methods",
                    )
                },
            }
        )
    groups: dict[str, list[str]] = {}
    for name in merged["table"]:
        key = name
        for n in names:
            if n in name:
                key = name.replace(n, f"{n.split(' [')[0]} [*]")
        if " [split " in key:
            key = key.split(" [split ")[0]
        groups.setdefault(key, []).append(name)
    result = {
        "command": command,
        "logs": str(logs),
        "encoders": encoders,
        "label": loaded[0].config["finetune"]["label"],
        "runs": runs,
        **merged,
        "seeds": seed_summary(merged["table"], merged["intervals"], groups),
        "seconds_total": round(time.perf_counter() - t0, 1),
    }
    files = {"results.json": json_text(result), "results.md": markdown_report(result) + "\n"}
    write_directory(out_dir, files, "eval")
    return result


def evaluate_trained(trainer: Any, cfg: dict[str, Any], max_rows: int = 400) -> dict[str, Any]:
    """Evaluate a just-trained model and the baselines on the trainer's test split.

    ``cfg`` is the model's ``encoder.json`` record (``recsim_llm.lm.finetune.encoder_config``),
    passed in so that this module never imports the fine-tuning module.
    """
    from recsim_llm.lm.store import LoadedEncoder

    fc = trainer.config
    # The real encoder class: its item bias and logit scale take part in every full score (a
    # stand-in without them scored s = 1, b = 0 and under-reported the fine-tuned model).
    enc = LoadedEncoder(
        path=None,  # type: ignore[arg-type]
        config=cfg,
        tokenizer=trainer.tokenizer,
        model=trainer.model,
        metrics={},
    )
    name = "fine-tuned " + ("LoRA" if fc.lora else "full")
    res = evaluate_split(
        trainer.data,
        trainer.split,
        [Encoder(name, enc)],
        fc.label,
        max_rows,
        fc.seed,
        fc.model_path,
        n_boot=200,
    )
    return {"rows": res["n_rows"], "table": res["table"], "intervals": res["intervals"]}


# -- markdown ----------------------------------------------------------------------------------------
SEGMENT_TITLES = {
    "all": "all test rows (sampled; with a split by user, every test user is held out)",
    "cold_items": "cold items (responded-to item never in training)",
    "first_step": "first step (t = 0: profile only)",
    "cold_users": "cold users (no training row)",
}


def _fmt(v: float, lo: float | None = None, hi: float | None = None) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    if lo is None or not np.isfinite(lo):
        return f"{v:.3f}"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown_report(result: dict[str, Any]) -> str:
    """Per run and segment: methods × metrics with intervals, paired differences, diversity,
    hidden ceilings; then the seeds' summary."""
    lines: list[str] = []
    if result.get("command"):
        lines += [f"Command: `{result['command']}`", ""]
    table, intervals = result["table"], result["intervals"]
    for run in result["runs"]:
        lines.append(
            f"Split {run['split']}: {run['n_rows']} evaluated rows of {run['n_users']} users; "
            f"per-row AUC within the {run['per_row_auc_over']}; 95% intervals: bootstrap over "
            f"users ({run['n_boot']} resamples). Popularity counts on cold items: "
            f"{run['popularity_cold_item_counts']:.0f}."
        )
        lines.append("")
        methods = run["methods"]
        for seg, size in run["segments"].items():
            lines.append(
                f"**{SEGMENT_TITLES.get(seg, seg)}**: {size['n_rankings']} rankings, "
                f"{size['n_impressions']} impressions, {size['n_users']} users"
                + (" (below 200 rankings: indicative only)" if size["n_rankings"] < 200 else "")
            )
            lines.append("")
            lines.append("| method | per-row AUC | pooled AUC | NDCG@10 | HR@10 |")
            lines.append("|---|---|---|---|---|")
            for n in methods:
                if seg not in table[n]:
                    continue
                cells = [_fmt(table[n][seg][m], *intervals[n][seg][m]) for m in METRICS]
                lines.append(f"| {n} | " + " | ".join(cells) + " |")
            for name, ceil in run["hidden_ceilings"].items():
                if seg in ceil:
                    c = ceil[seg]
                    lines.append(
                        f"| *{name}* | {_fmt(*c['row_auc'])} | {_fmt(*c['auc'])} | – | – |"
                    )
            lines.append("")
        lines.append("Paired differences (method − baseline, per-row AUC, 95% interval):")
        lines.append("")
        segs = list(run["segments"])
        lines.append("| method | baseline | " + " | ".join(segs) + " |")
        lines.append("|---|---|" + "---|" * len(segs))
        for name in run["main_rows"]:
            for bname, d in result["paired"].get(name, {}).items():
                cells = [_fmt(*d[s]["row_auc"]) if s in d else "–" for s in segs]
                lines.append(f"| {name} | {bname} | " + " | ".join(cells) + " |")
        lines.append("")
        item_rows = [
            (name, bname, d["cold_items"][ITEM_METRIC])
            for name in run["main_rows"]
            for bname, d in result["paired"].get(name, {}).items()
            if ITEM_METRIC in d.get("cold_items", {})
        ]
        if item_rows:
            n_items = run["segments"]["cold_items"].get("n_clicked_items", "?")
            lines.append(
                f"Cold items, the same differences with a bootstrap over the {n_items} clicked "
                "cold items instead of the users (a few popular items carry much of this segment):"
            )
            lines.append("")
            lines.append("| method | baseline | cold items (interval over items) |")
            lines.append("|---|---|---|")
            for name, bname, d in item_rows:
                lines.append(f"| {name} | {bname} | {_fmt(*d)} |")
            lines.append("")
        new_rows = [
            (name, table[name]["cold_items"][NEW_METRIC], intervals[name]["cold_items"][NEW_METRIC])
            for name in methods
            if NEW_METRIC in table[name].get("cold_items", {})
        ]
        if new_rows:
            lines.append(
                "Cold items ranked among the new items only (the responded-to cold item against "
                f"the cold items among the {run['per_row_auc_over']} it is ranked with; warm items "
                "left out, so fitting the warm items neither helps nor hurts; rows without a cold "
                "negative left out), per-row AUC, and the paired differences (intervals over users):"
            )
            lines.append("")
            lines.append("| method | among new items | − " + " | − ".join(BASELINES) + " |")
            lines.append("|---|---|" + "---|" * len(BASELINES))
            sfx = run.get("suffix", "")
            for name, point, iv in new_rows:
                diffs = result["paired"].get(name, {})
                cells = []
                for b in BASELINES:
                    d = diffs.get(b + sfx, {}).get("cold_items", {}).get(NEW_METRIC)
                    cells.append(_fmt(*d) if d else "–")
                lines.append(f"| {name} | {_fmt(point, *iv)} | " + " | ".join(cells) + " |")
            lines.append("")
    lines.append("State diversity (evaluated sample rows; items: every catalog item):")
    lines.append("")
    lines.append("| state | mean pairwise cosine | mean norm | n |")
    lines.append("|---|---|---|---|")
    for name, d in result["diversity"].items():
        lines.append(
            f"| {name} | {d['mean_pairwise_cosine']:.3f} | {d['mean_norm']:.3f} | {d['n']} |"
        )
    if result.get("seeds"):
        lines += [
            "",
            "Fine-tuning seeds (mean ± std of the seeds' point estimates; per seed: value [interval]):",
            "",
        ]
        lines.append("| method | segment | metric | mean ± std | per seed |")
        lines.append("|---|---|---|---|---|")
        for key, s in result["seeds"].items():
            for seg in (x for x in s if x != "methods"):
                for m in ("row_auc", "auc"):
                    st = s[seg][m]
                    per = "; ".join(_fmt(*p) for p in st["per_seed"])
                    lines.append(
                        f"| {key} | {seg} | {m} | {st['mean']:.3f} ± {st['std']:.3f} | {per} |"
                    )
    lines += ["", f"Evaluation time: {result['seconds_total']} s."]
    return "\n".join(lines)


def markdown_table(table: dict[str, dict[str, dict[str, float]]]) -> str:
    """Methods × (segment, metric) point estimates as one markdown table (no intervals)."""
    segs = list(next(iter(table.values())))
    mets = METRICS
    head = "| method | " + " | ".join(f"{s} {m}" for s in segs for m in mets) + " |"
    lines = [head, "|" + "---|" * (1 + len(segs) * len(mets))]
    for name, row in table.items():
        cells = [_fmt(row[s][m]) for s in segs for m in mets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
