"""Few-shot cold start: how good is a new user's state after k interactions?

A new user arrives with a profile only (k = 0: the state is the encoder's cold-start state from
the profile text). After each of the user's first k logged steps (a shown slate and the user's
response) the state updates the way the env updates it: the same ``InteractionLog`` is filled
step by step and each method's state is read after k = 0, 1, 2, 5, 10 steps. Each state is then
frozen and scored on the same held-out rows of that user: every logged row from step
``max(ks)`` on (``window`` rows at most), which no state has seen. The curve over k therefore
measures only what the first k interactions add.

Methods (``default_methods``):

* ``fine-tuned (fast)``: the env's ``lm-fast`` state (cached item embeddings, the fast head's
  incremental update);
* ``fine-tuned (exact)``: the env's ``lm-exact`` state (the LM's user tower on the history text
  rendered by the env, within its token budget);
* ``MiniLM zero-shot``: the pretrained MiniLM (no fine-tuning) on the same history text, cosine
  to its item-text embeddings;
* ``bow (env)``: the env's ``bow`` state (profile, clicked, liked and skipped bags of words),
  scored by a 4-weight logistic scorer of the block-item dot products fit on training logs;
* ``popularity``: responses per item on training rows only; items never seen in training
  (cold items) count zero, so popularity has no signal on them.

Segments: ``new users`` (every ranking row of the evaluated users, who are not in the training
logs) and ``new items`` (those rows whose positive is an item never seen in training, ranked
against the row's other items). Metrics: per-row AUC and NDCG@10 (``recsim_llm.lm.rowmetrics``)
with 95% bootstrap intervals over users.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm.lm.logs import LogData, labels
from recsim_llm.lm.rowmetrics import bootstrap_mean, per_row_metrics

KS: tuple[int, ...] = (0, 1, 2, 5, 10)
SEGMENTS = ("new users", "new items")


@dataclass(frozen=True)
class FewShotData:
    """What the few-shot evaluation reads.

    Attributes:
        data: logs holding the new users' rows (each user's rows in step order from t = 0).
        cold_items: item ids never seen in training (the ``new items`` segment).
        popularity: (n_items,) training responses per item, zero on ``cold_items``.
        label: response that counts as positive: 'click' or 'liked'.
        history_length: steps the env's interaction log keeps (``EnvConfig.history_length``).
    """

    data: LogData
    cold_items: np.ndarray
    popularity: np.ndarray
    label: str = "click"
    history_length: int = 20


class Method:
    """A user state driven like the env's: start from profiles, update after each logged step.

    Subclasses set ``name`` and implement ``item_vectors``, ``start``, ``step`` and
    ``user_vectors``; the score of an item is ``user_vector @ item_vector``.
    """

    name: str = ""

    def item_vectors(self) -> np.ndarray:
        """(n_items, d) item vectors."""
        raise NotImplementedError

    def start(self, profiles: Sequence[str]) -> None:
        """New users with these profile texts and no history."""

    def step(self, log: Any, item_vectors: np.ndarray, titles: Sequence[str]) -> None:
        """The step just recorded in ``log`` (an ``InteractionLog``)."""

    def user_vectors(self, log: Any, titles: Sequence[str]) -> np.ndarray:
        """(n_users, d) current user vectors."""
        raise NotImplementedError


class EnvEncoderMethod(Method):
    """An env encoder's own state; ``readout(states) -> user vectors`` (default: first block)."""

    def __init__(
        self,
        name: str,
        encoder: Any,
        item_texts: Sequence[str],
        readout: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.name = name
        self.encoder = encoder
        self._items = np.asarray(encoder.encode_items(list(item_texts)), dtype=np.float32)
        self._readout = readout
        self.states = np.zeros((0, encoder.user_dim), dtype=np.float32)

    def item_vectors(self) -> np.ndarray:
        return self._items

    def start(self, profiles: Sequence[str]) -> None:
        self.states = np.array(self.encoder.encode_profiles(list(profiles)), dtype=np.float32)

    def step(self, log: Any, item_vectors: np.ndarray, titles: Sequence[str]) -> None:
        self.encoder.update(self.states, log, self._items, titles)

    def user_vectors(self, log: Any, titles: Sequence[str]) -> np.ndarray:
        if self._readout is not None:
            return self._readout(self.states)
        return self.states[:, : self._items.shape[1]].copy()  # a snapshot: states change


class TextTowerMethod(Method):
    """An LM tower on the rendered history text, run only when a state is read.

    Args:
        name: method name.
        render: ``render(log, titles) -> history texts`` (the env's rendering).
        encode_users / item_vectors: the tower on user texts; the item vectors.
    """

    def __init__(
        self,
        name: str,
        render: Callable[[Any, Sequence[str]], list[str]],
        encode_users: Callable[[list[str]], np.ndarray],
        item_vectors: np.ndarray,
    ) -> None:
        self.name = name
        self._render = render
        self._encode = encode_users
        self._items = item_vectors
        self._memo: dict[str, np.ndarray] = {}
        """Texts seen so far (profile-only texts repeat across users)."""

    def item_vectors(self) -> np.ndarray:
        return self._items

    def user_vectors(self, log: Any, titles: Sequence[str]) -> np.ndarray:
        texts = self._render(log, titles)
        missing = sorted({t for t in texts if t not in self._memo})
        if missing:
            self._memo.update(zip(missing, self._encode(missing), strict=True))
        return np.stack([self._memo[t] for t in texts]).astype(np.float32)


class PopularityMethod(Method):
    """Training popularity: the same score for every user."""

    name = "popularity"

    def __init__(self, popularity: np.ndarray) -> None:
        self._items = np.asarray(popularity, dtype=np.float64)[:, None]

    def item_vectors(self) -> np.ndarray:
        return self._items

    def user_vectors(self, log: Any, titles: Sequence[str]) -> np.ndarray:
        return np.ones((log.n_users, 1))


def first_rows(data: LogData, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, first row index) of users whose logged rows start at t = 0 and run
    consecutively for at least ``n_steps + 1`` steps (their first ``n_steps`` build states, the
    rest are held out)."""
    starts = np.flatnonzero(np.r_[True, data.user[1:] != data.user[:-1]])
    keep = []
    for s in starts.tolist():
        end = s + n_steps
        if (
            end < data.n_rows
            and data.user[end] == data.user[s]
            and np.array_equal(data.t[s : end + 1], np.arange(n_steps + 1))
        ):
            keep.append(s)
    rows = np.array(keep, dtype=np.int64)
    return data.user[rows], rows


def replay(
    data: LogData,
    starts: np.ndarray,
    methods: Sequence[Method],
    ks: Sequence[int] = KS,
    history_length: int = 20,
    progress: bool = False,
) -> dict[str, dict[int, np.ndarray]]:
    """{method: {k: (n_users, d) user vectors after the user's first k logged steps}}.

    The users' first ``max(ks)`` rows are recorded step by step into one ``InteractionLog`` (the
    env's log) and every method's state is updated after each step, as the env does.
    """
    from recsim_llm.log import InteractionLog

    ks = sorted(set(int(k) for k in ks))
    n, titles = starts.size, data.item_titles
    log = InteractionLog(n, history_length, data.slates.shape[1], data.n_items)
    log.reset_users(np.arange(n), [data.profiles[r] for r in starts.tolist()])
    out: dict[str, dict[int, np.ndarray]] = {m.name: {} for m in methods}
    for m in methods:
        m.start(log.profiles)
    steps = range(max(ks) + 1)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="few-shot states", unit="step")
    for s in steps:
        if s in ks:
            for m in methods:
                out[m.name][s] = np.array(m.user_vectors(log, titles), copy=True)
        if s == max(ks):
            break
        rows = starts + s
        log.record(
            data.slates[rows], data.click_pos[rows], data.rating[rows], np.zeros(n, np.float64)
        )
        for m in methods:
            m.step(log, m.item_vectors(), titles)
    return out


def fewshot_table(
    setup: FewShotData,
    methods: Sequence[Method],
    ks: Sequence[int] = KS,
    window: int = 30,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Held-out per-row AUC and NDCG@10 after k interactions, per method and segment.

    Returns:
        ``rows``: a list of {method, segment, k, auc, auc_lo, auc_hi, ndcg@10, ndcg@10_lo,
        ndcg@10_hi, n_users, n_rankings}; and ``setup``: users, held-out rows, ks, window.

    Raises:
        ValueError: bad ``ks``/``window``, or no user has ``max(ks) + 1`` logged steps.
    """
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 0:
        raise ValueError(f"ks must be integers >= 0, got {ks}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    data, kmax = setup.data, max(ks)
    users, starts = first_rows(data, kmax)
    if users.size == 0:
        raise ValueError(
            f"logs: no user has {kmax + 1} consecutive logged steps from t = 0 (needed for "
            f"k up to {kmax} and one held-out step)"
        )
    states = replay(data, starts, methods, ks, setup.history_length, progress)
    # Held-out rows: each user's steps kmax .. kmax + window - 1 (what exists of them).
    tgt, owner = [], []
    for i, s in enumerate(starts.tolist()):
        end = s + kmax
        while end < data.n_rows and data.user[end] == users[i] and end - s < kmax + window:
            tgt.append(end)
            owner.append(i)
            end += 1
    tgt_rows, owner_idx = np.array(tgt, dtype=np.int64), np.array(owner, dtype=np.int64)
    y = labels(data, setup.label)[tgt_rows]
    cands, slates = data.candidates[tgt_rows], data.slates[tgt_rows]
    cold = np.zeros(data.n_items, dtype=bool)
    cold[np.asarray(setup.cold_items, dtype=np.int64)] = True
    pos_item = slates[np.arange(tgt_rows.size), np.argmax(y, axis=1)]
    table = []
    for m in methods:
        items = m.item_vectors()
        for k in ks:
            u = states[m.name][k][owner_idx]
            scores = np.einsum("nd,ncd->nc", u, items[np.maximum(cands, 0)]).astype(np.float64)
            scores = np.where(cands >= 0, scores, -np.inf)
            has_pos, row_auc, ndcg = per_row_metrics(scores, cands, slates, y)
            for seg in SEGMENTS:
                keep = has_pos if seg == "new users" else has_pos & cold[pos_item]
                a = bootstrap_mean(np.where(keep, row_auc, np.nan), owner_idx, n_boot, seed)
                g = bootstrap_mean(np.where(keep, ndcg, np.nan), owner_idx, n_boot, seed)
                table.append(
                    {
                        "method": m.name,
                        "segment": seg,
                        "k": k,
                        "auc": a["mean"],
                        "auc_lo": a["lo"],
                        "auc_hi": a["hi"],
                        "ndcg@10": g["mean"],
                        "ndcg@10_lo": g["lo"],
                        "ndcg@10_hi": g["hi"],
                        "n_users": g["n_users"],
                        "n_rankings": g["n_rows"],
                    }
                )
    return {
        "rows": table,
        "setup": {
            "n_users": int(users.size),
            "ks": ks,
            "window": window,
            "held_out_rows": int(tgt_rows.size),
            "label": setup.label,
            "n_cold_items": int(cold.sum()),
            "n_boot": n_boot,
        },
    }


# -- the default methods ---------------------------------------------------------------------------


def fit_bow_weights(
    train: LogData, rows: np.ndarray, encoder: Any, label: str, history_length: int = 20
) -> np.ndarray:
    """Logistic weights of the ``bow`` state's 4 blocks (block . item), fit on training rows.

    The users of ``rows`` are replayed through the env's ``bow`` encoder; each row's shown items
    are scored with the state before that row. Returns (4,) weights (the intercept is dropped: it
    does not change a ranking).
    """
    from recsim_llm.log import InteractionLog

    d = encoder.dim
    item = encoder.encode_items(train.item_texts)
    in_rows = np.zeros(train.n_rows, dtype=bool)
    in_rows[rows] = True
    users, starts = first_rows(train, 0)
    n_steps = 20
    feats, ys = [], []
    y_all = labels(train, label)
    starts = starts[in_rows[starts]]
    log = InteractionLog(starts.size, history_length, train.slates.shape[1], train.n_items)
    log.reset_users(np.arange(starts.size), [train.profiles[r] for r in starts.tolist()])
    states = encoder.encode_profiles(log.profiles)
    alive = np.ones(starts.size, dtype=bool)
    for s in range(n_steps):
        rows_s = np.minimum(starts + s, train.n_rows - 1)
        alive &= (train.user[rows_s] == train.user[starts]) & (train.t[rows_s] == s)
        if not alive.any():
            break
        sl = train.slates[rows_s]
        blocks = states.reshape(states.shape[0], 4, d)
        f = np.einsum("nbd,nkd->nkb", blocks, item[sl])  # (n, slate, 4)
        feats.append(f[alive].reshape(-1, 4))
        ys.append(y_all[rows_s][alive].reshape(-1))
        log.record(sl, train.click_pos[rows_s], train.rating[rows_s], np.zeros(starts.size))
        encoder.update(states, log, item, train.item_titles)
    x = np.concatenate(feats).astype(np.float64)
    t = np.concatenate(ys).astype(np.float64)
    x = np.hstack([x, np.ones((x.shape[0], 1))])
    w = np.zeros(5)
    for _ in range(25):  # Newton steps on the L2-regularised log-likelihood
        p = 1.0 / (1.0 + np.exp(-x @ w))
        grad = x.T @ (p - t) + 1e-3 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(5)
        w -= np.linalg.solve(hess, grad)
    return w[:4]


def default_methods(
    setup: FewShotData,
    encoder_path: str | os.PathLike[str] | None,
    train: LogData,
    train_rows: np.ndarray,
    bow_dim: int = 32,
    bow_decay: float = 0.8,
    zero_shot: bool = True,
    n_threads: int = 2,
) -> list[Method]:
    """The fine-tuned encoder (fast and exact), zero-shot MiniLM, the env's ``bow``, popularity."""
    from recsim_llm.encoders import BagOfWordsEncoder
    from recsim_llm.lm.state import LMExactEncoder, LMFastEncoder

    data = setup.data
    fast = LMFastEncoder(encoder_path, n_threads=n_threads)
    exact = LMExactEncoder(encoder_path, n_threads=n_threads)
    fast_m = EnvEncoderMethod("fine-tuned (fast)", fast, data.item_texts)
    methods: list[Method] = [
        fast_m,
        TextTowerMethod(
            "fine-tuned (exact)",
            exact.history_texts,
            lambda texts: exact.bundle.lm.encode_users(texts),
            fast_m.item_vectors(),
        ),
    ]
    if zero_shot:
        from recsim_llm.lm.model import build_model, encode_texts

        lm = exact.bundle.lm
        tok, base = build_model(lm.config["base_model"], proj_dim=0, dropout=0.0)
        items = encode_texts(base, tok, data.item_texts, lm.item_max_length, 128, raw=True)
        methods.append(
            TextTowerMethod(
                "MiniLM zero-shot",
                exact.history_texts,  # the same rendered text and token budget
                lambda texts: encode_texts(base, tok, texts, lm.user_max_length, 32, raw=True),
                items,
            )
        )
    bow = BagOfWordsEncoder(bow_dim, bow_decay)
    w = fit_bow_weights(train, train_rows, BagOfWordsEncoder(bow_dim, bow_decay), setup.label)
    methods.append(
        EnvEncoderMethod(
            "bow (env)",
            bow,
            data.item_texts,
            readout=lambda s: np.einsum("nbd,b->nd", s.reshape(s.shape[0], 4, bow_dim), w),
        )
    )
    methods.append(PopularityMethod(setup.popularity))
    return methods


def training_popularity(
    train: LogData, rows: np.ndarray, cold_items: np.ndarray, label: str
) -> np.ndarray:
    """Responses per item on training ``rows``; zero on ``cold_items`` (never seen in training)."""
    y = labels(train, label)[rows]
    counts = np.zeros(train.n_items)
    np.add.at(counts, train.slates[rows][y > 0], 1.0)
    counts[np.asarray(cold_items, dtype=np.int64)] = 0.0
    return counts


# -- outputs ------------------------------------------------------------------------------------------


def markdown_table(result: dict[str, Any]) -> str:
    """Method x k per segment: per-row AUC [95% interval] and NDCG@10."""
    rows, ks = result["rows"], result["setup"]["ks"]
    lines = []
    for seg in SEGMENTS:
        sub = [r for r in rows if r["segment"] == seg]
        n_rank = {r["k"]: r["n_rankings"] for r in sub}
        lines.append(
            f"**{seg}** ({next(iter(n_rank.values()), 0)} rankings of "
            f"{max((r['n_users'] for r in sub), default=0)} users)"
        )
        lines.append("")
        lines.append(
            "| method | "
            + " | ".join(f"AUC k={k}" for k in ks)
            + " | "
            + " | ".join(f"NDCG@10 k={k}" for k in ks)
            + " |"
        )
        lines.append("|---|" + "---|" * (2 * len(ks)))
        for name in dict.fromkeys(r["method"] for r in sub):
            by_k = {r["k"]: r for r in sub if r["method"] == name}
            auc = [
                f"{by_k[k]['auc']:.3f} [{by_k[k]['auc_lo']:.3f}, {by_k[k]['auc_hi']:.3f}]"
                for k in ks
            ]
            ndcg = [f"{by_k[k]['ndcg@10']:.3f}" for k in ks]
            lines.append(f"| {name} | " + " | ".join(auc + ndcg) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_curve(result: dict[str, Any], title: str = "") -> bytes:
    """PNG bytes: per-row AUC vs k per method, one panel per segment, 95% intervals shaded."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, axes = plt.subplots(1, len(SEGMENTS), figsize=(11, 4), sharey=True)
    for ax, seg in zip(axes, SEGMENTS, strict=True):
        sub = [r for r in rows if r["segment"] == seg]
        for name in dict.fromkeys(r["method"] for r in sub):
            pts = sorted((r for r in sub if r["method"] == name), key=lambda r: r["k"])
            ks = [r["k"] for r in pts]
            ax.plot(ks, [r["auc"] for r in pts], marker="o", label=name)
            ax.fill_between(ks, [r["auc_lo"] for r in pts], [r["auc_hi"] for r in pts], alpha=0.15)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("interactions k")
        ax.set_title(seg)
        ax.set_xticks(result["setup"]["ks"])
    axes[0].set_ylabel("held-out per-row AUC")
    axes[-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_fewshot(out_dir: str | os.PathLike[str], result: dict[str, Any], title: str = "") -> Path:
    """``results.json``, ``results.md`` and ``fewshot.png`` as one ``eval`` output folder."""
    from recsim_llm.io import json_text, write_directory

    files = {
        "results.json": json_text(result),
        "results.md": markdown_table(result) + "\n",
        "fewshot.png": plot_curve(result, title),
    }
    return write_directory(out_dir, files, "eval")
