"""Explanations of the LM encoder's scores: which history events and which item words drove them.

The score of an item for a user is the ``lm-fast`` state's dot product with the item's embedding
(plus the encoder's item bias when it has one). The fast head is linear before its normalisation,

    z = W_p p + W_h h + b,    h = (sum_e decay**age_e * gate[type_e] * e_e) / max(w, 1),
    u = z / |z|,              score = scale * u . v (+ item_bias(v)),

so the score splits *exactly* into a profile term ``(W_p p) . v / |z|``, a bias term
``b . v / |z|``, one term per history event ``decay**age * (gate[type] * e) . (W_h^T v) / (max(w,
1) |z|)``, an "older history" term (events the env's pooled state still remembers but its
interaction log no longer lists; zero for log rows) and the item bias. ``Explanation`` carries
these terms; they sum to ``score`` up to float rounding (tested).

Words of the item text are attributed by **leave-one-out** by default: the weight of a word is the
drop of the score when every occurrence of it is deleted from the item text and the item is
re-encoded by the item tower. It is what the explanation claims ("its description mentions Z"
means: without Z the score would be lower by this much), it needs no gradient and handles the
item tower's normalisation and the item bias as they are; item texts are short (about 17 words),
so it costs one batched forward pass of ~17 texts per item. ``word_method='grad'`` gives gradient
x input over the word-embedding layer (summed over a word's sub-word tokens), a first-order
approximation measured against leave-one-out in ``benchmarks/bench_explain.py``. A fixed list of
function words (``STOPWORDS``) is not attributed.

Only observable data is read: the profile text, the logged responses, item texts and the
encoder. Entry points: ``explain`` (any profile + history + item), ``explain_log_row`` (a row of a
behaviour log), ``explain_step`` (a simulator step: plain rows for the dashboard's episode
replay) and ``recsim-llm explain`` (``recsim_llm.lm.explain_cli``). torch is imported only when
words are attributed or the LM has to encode an uncached text.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from recsim_llm.envs.core import SlateSimulator
    from recsim_llm.lm.logs import LogData
    from recsim_llm.lm.state import _Bundle
    from recsim_llm.log import InteractionLog

__all__ = [
    "STOPWORDS",
    "EventWeight",
    "Explainer",
    "Explanation",
    "HistoryEvent",
    "WordWeight",
    "decompose",
    "events_from_interaction_log",
    "events_from_log_row",
    "explain",
    "explain_log_row",
    "explain_slates",
    "explain_step",
    "explanation_row",
    "fast_score",
]

WORD_METHODS = ("loo", "grad", "none")
"""Word attribution: leave-one-out (default), gradient x input, or none (history only)."""

STOPWORDS = frozenset(
    "a an the and or of with about in on at for to from by is are as its it this that "
    "genres".split()
)
"""Function words (and the template's ``Genres:`` label) that are not attributed."""

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
RESPONSES = ("liked", "clicked", "skipped")
"""Response names of the fast head's event types (``recsim_llm.lm.model.N_EVENT_TYPES``)."""


# -- plain data ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryEvent:
    """One shown item in a user's observable history.

    Attributes:
        title: the item's title.
        text: the item's text (``recsim_llm.text.item_text``), what the item tower reads.
        clicked: whether the user clicked it.
        rating: the rating given after a click (0 or None: none).
        age: steps ago (0 = the most recent step).
        item_id: catalog id, -1 if unknown.
    """

    title: str
    text: str
    clicked: bool
    rating: float | None
    age: int
    item_id: int = -1

    @property
    def type(self) -> int:
        """Fast-head event type: 0 liked (clicked, rating >= 4), 1 clicked, 2 skipped."""
        from recsim_llm.lm.logs import event_type

        return event_type(self.clicked, float(self.rating or 0.0))


@dataclass(frozen=True)
class EventWeight:
    """A history event's exact share of the score."""

    item_id: int
    title: str
    response: str
    """'liked', 'clicked' or 'skipped'."""
    rating: float | None
    steps_ago: int
    weight: float


@dataclass(frozen=True)
class WordWeight:
    """A word of the item text and its attribution (score drop without it, for 'loo')."""

    word: str
    weight: float


@dataclass(frozen=True)
class Explanation:
    """Why the encoder scores ``item_title`` as it does for one user.

    ``score == profile + bias + item_bias + older_history + sum(h.weight for h in history)``
    (float rounding aside). ``history`` and ``words`` are ordered by absolute weight, largest
    first. Word weights are a separate attribution of the item side and do not sum to anything.
    """

    item_id: int
    item_title: str
    score: float
    profile: float
    """Share of the profile embedding (the cold-start part of the state)."""
    bias: float
    """Share of the fast head's bias vector."""
    item_bias: float
    """The encoder's item bias b(v) (0 when the encoder has none)."""
    older_history: float
    """Share of events the pooled state remembers but the log no longer lists (env only)."""
    history: tuple[EventWeight, ...]
    words: tuple[WordWeight, ...]
    word_method: str
    sentence: str

    def parts_sum(self) -> float:
        """Sum of every part: equals ``score`` up to float rounding."""
        return (
            self.profile
            + self.bias
            + self.item_bias
            + self.older_history
            + float(sum(h.weight for h in self.history))
        )

    def top_history(self, k: int = 3) -> list[EventWeight]:
        """The ``k`` events with the largest absolute weight."""
        return list(self.history[:k])

    def top_words(self, k: int = 3) -> list[WordWeight]:
        """The ``k`` words with the largest absolute weight."""
        return list(self.words[:k])

    def to_dict(self, top_k: int | None = None) -> dict[str, Any]:
        """Plain JSON-ready dict (``top_k`` keeps only that many events and words)."""
        out = dataclasses.asdict(self)
        out["history"] = out["history"][:top_k] if top_k else out["history"]
        out["words"] = out["words"][:top_k] if top_k else out["words"]
        return out


# -- the exact decomposition ---------------------------------------------------------------------
def _check_head(head: dict[str, np.ndarray]) -> None:
    needed = ("gate", "decay", "w_profile_t", "w_history_t", "bias")
    missing = [k for k in needed if k not in head]
    if missing:
        raise ValueError(f"head: missing {missing}; expected the keys {list(needed)}")


def decompose(
    head: dict[str, np.ndarray],
    profile: np.ndarray,
    events: np.ndarray,
    types: np.ndarray,
    ages: np.ndarray,
    item: np.ndarray,
    total_weight: float | None = None,
    pooled: np.ndarray | None = None,
) -> tuple[float, float, float, np.ndarray, float]:
    """Exact split of the fast-head score ``u . item`` (float64).

    Args:
        head: the fast head as ``recsim_llm.lm.state._Bundle.head`` holds it (``gate`` (3, d),
            ``decay``, ``w_profile_t`` = W_p^T, ``w_history_t`` = W_h^T, ``bias``).
        profile: (d,) profile embedding.
        events: (n, d) embeddings of the history events' items.
        types: (n,) event types (0 liked, 1 clicked, 2 skipped).
        ages: (n,) steps ago.
        item: (d,) the scored item's embedding.
        total_weight: the state's ``w`` (sum of decay**age over every event it has pooled);
            default: the named events' weights only.
        pooled: the state's ``h``; with it, whatever ``h`` holds beyond the named events is the
            "older history" part. Default: ``h`` is exactly the named events.

    Returns:
        (score, profile part, bias part, (n,) event parts, older-history part); the parts sum to
        the score.
    """
    _check_head(head)
    gate = np.asarray(head["gate"], np.float64)
    decay = float(head["decay"])
    wp_t = np.asarray(head["w_profile_t"], np.float64)
    wh_t = np.asarray(head["w_history_t"], np.float64)
    bias = np.asarray(head["bias"], np.float64)
    p = np.asarray(profile, np.float64)
    e = np.asarray(events, np.float64).reshape(-1, p.size)
    types = np.asarray(types, np.int64).reshape(-1)
    ages = np.asarray(ages, np.float64).reshape(-1)
    v = np.asarray(item, np.float64)
    if not (e.shape[0] == types.size == ages.size):
        raise ValueError(
            f"events, types and ages must have one entry per event, got {e.shape[0]}, "
            f"{types.size}, {ages.size}"
        )
    weights = decay**ages
    w = float(weights.sum()) if total_weight is None else float(total_weight)
    denom = max(w, 1.0)
    acc_events = weights[:, None] * gate[types] * e  # each event's term of the pooled sum
    older = np.zeros_like(p)
    if pooled is not None:
        older = np.asarray(pooled, np.float64) * denom - acc_events.sum(axis=0)
    h = (acc_events.sum(axis=0) + older) / denom
    profile_z = p @ wp_t
    z = profile_z + h @ wh_t + bias
    norm = max(float(np.linalg.norm(z)), 1e-12)
    g = wh_t @ v  # (h @ W_h^T) . v == h . (W_h^T v)
    event_parts = acc_events @ g / (denom * norm)
    return (
        float(z @ v / norm),
        float(profile_z @ v / norm),
        float(bias @ v / norm),
        event_parts,
        float(older @ g / (denom * norm)),
    )


def fast_score(
    head: dict[str, np.ndarray],
    profile: np.ndarray,
    events: np.ndarray,
    types: np.ndarray,
    ages: np.ndarray,
    items: np.ndarray,
    keep: np.ndarray | None = None,
    older_acc: np.ndarray | None = None,
    older_weight: float = 0.0,
) -> np.ndarray:
    """Fast-head scores ``u . v`` of ``items`` (m, d) from the events kept (``keep`` mask).

    What a removal test needs: the state recomputed as if the dropped events never happened
    (their weight leaves the normaliser too). ``older_acc``/``older_weight``: pooled sum and
    weight of events beyond the named ones (the env's older history), kept as they are.
    """
    gate = np.asarray(head["gate"], np.float64)
    decay = float(head["decay"])
    e = np.asarray(events, np.float64).reshape(-1, np.asarray(profile).size)
    weights = decay ** np.asarray(ages, np.float64).reshape(-1)
    if keep is not None:
        weights = weights * np.asarray(keep, np.float64)
    acc = (weights[:, None] * gate[np.asarray(types, np.int64)] * e).sum(axis=0)
    w = float(weights.sum()) + float(older_weight)
    if older_acc is not None:
        acc = acc + np.asarray(older_acc, np.float64)
    h = acc / max(w, 1.0)
    z = (
        np.asarray(profile, np.float64) @ np.asarray(head["w_profile_t"], np.float64)
        + h @ np.asarray(head["w_history_t"], np.float64)
        + np.asarray(head["bias"], np.float64)
    )
    u = z / max(float(np.linalg.norm(z)), 1e-12)
    return np.asarray(items, np.float64).reshape(-1, u.size) @ u


# -- words ---------------------------------------------------------------------------------------
def content_words(item_text: str) -> list[str]:
    """Distinct content words of a text, lower-cased, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(item_text):
        word = match.group(0).lower()
        if word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)


def without_word(item_text: str, word: str) -> str:
    """``item_text`` with every occurrence of ``word`` (case-insensitive, whole word) deleted."""
    out = _WORD.sub(lambda m: "" if m.group(0).lower() == word else m.group(0), item_text)
    out = re.sub(r"\s{2,}", " ", out)
    return re.sub(r"\s+([.,;:])", r"\1", out).strip()


# -- the explainer -------------------------------------------------------------------------------
class Explainer:
    """An encoder ready to explain: its fast head, embedding caches and (lazily) its LM.

    Args:
        path: encoder directory (``recsim-llm finetune``); None = the shipped encoder.
        n_threads: torch threads when the LM runs (word attribution, uncached texts).
        bundle: an already loaded ``recsim_llm.lm.state._Bundle`` (e.g. an env's encoder's);
            overrides ``path``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        n_threads: int = 1,
        bundle: _Bundle | None = None,
    ) -> None:
        from recsim_llm.lm.state import load_bundle

        self.bundle = bundle if bundle is not None else load_bundle(path or None, n_threads)
        self.head = self.bundle.head
        self.dim = self.bundle.dim

    @property
    def lm(self) -> Any:
        """The encoder's LM (``LoadedEncoder``, LoRA merged), loaded on first use."""
        return self.bundle.lm

    def item_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) item embeddings (the encoder's cache, the LM for unseen texts)."""
        return self.bundle.item_embeddings(list(texts))

    def profile_vector(self, profile: str) -> np.ndarray:
        """(d,) profile embedding."""
        return self.bundle.profile_embeddings([profile])[0]

    @property
    def scale(self) -> float:
        """The response logit's scale on ``u . v`` (the two-tower model scores
        ``scale * u . v + b(v)``); 1 for an encoder without a learned scale."""
        if not hasattr(self, "_scale"):
            value = getattr(self.bundle, "logit_scale", None)
            if value is None:
                # An env's bundle holds the click head in NumPy: no LM load for the scale.
                value = getattr(self.bundle, "click_scale", None)
            if value is None:
                value = getattr(self.lm, "logit_scale", None)
            self._scale = float(value) if isinstance(value, (int, float)) else 1.0
        return self._scale

    def item_bias(self, vectors: np.ndarray) -> np.ndarray:
        """(n,) the encoder's item bias b(v) of item embeddings; zeros when it has none.

        Looked up as ``item_bias`` on the bundle, then as the bundle's NumPy click head (an env
        encoder's ``_Bundle``: ``item_bias_w``/``item_bias_b``, no LM load), then on the loaded
        LM (``LoadedEncoder``), so an encoder with an item-bias head is explained with it and one
        without is not penalised.
        """
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        fn = getattr(self.bundle, "item_bias", None)
        if fn is None and hasattr(self.bundle, "item_bias_w"):
            fn = self._bundle_item_bias
        if fn is None:
            fn = getattr(self.lm, "item_bias", None)
        if fn is None:
            return np.zeros(vectors.shape[0])
        return np.asarray(fn(vectors), np.float64).reshape(vectors.shape[0])

    def _bundle_item_bias(self, vectors: np.ndarray) -> np.ndarray:
        """b(v) from the bundle's NumPy head, as ``LoadedEncoder.item_bias`` computes it (zero
        when the encoder was trained without an item bias)."""
        bundle = self.bundle
        if not bundle.config.get("item_bias", False):
            return np.zeros(vectors.shape[0])
        w = np.asarray(bundle.item_bias_w, np.float32)
        return (vectors @ w + np.float32(bundle.item_bias_b)).astype(np.float64)

    def _encode_exact(self, texts: list[str]) -> np.ndarray:
        """Item-tower embeddings computed now by the LM (not the cache)."""
        return np.asarray(self.lm.encode_items(texts), np.float64)

    def word_weights(
        self, user: np.ndarray, item_text: str, method: str = "loo"
    ) -> list[WordWeight]:
        """Attribution of the item text's content words to the score with user state ``user``.

        Args:
            user: (d,) the user state ``u``.
            item_text: the item's text.
            method: 'loo' (score drop when the word is deleted), 'grad' (gradient x input over
                the word-embedding layer, of ``u . v``) or 'none'.

        Returns:
            Words ordered by absolute weight, largest first.
        """
        if method not in WORD_METHODS:
            raise ValueError(f"word_method must be one of {WORD_METHODS}, got {method!r}")
        words = content_words(item_text)
        if method == "none" or not words:
            return []
        u = np.asarray(user, np.float64)
        if method == "loo":
            texts = [item_text] + [without_word(item_text, w) for w in words]
            vec = self._encode_exact(texts)
            scores = self.scale * (vec @ u) + self.item_bias(vec)
            weights = scores[0] - scores[1:]
        else:
            weights = self._grad_x_input(u, item_text, words)
        order = np.argsort(-np.abs(weights), kind="stable")
        return [WordWeight(words[i], float(weights[i])) for i in order]

    def _grad_x_input(self, u: np.ndarray, item_text: str, words: list[str]) -> np.ndarray:
        """Gradient x input of ``u . v`` at the word embeddings, summed per content word."""
        import torch

        from recsim_llm.lm.model import mean_pool

        lm = self.lm
        tokenizer, model = lm.tokenizer, lm.model
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("word_method='grad' needs a fast tokenizer (character offsets)")
        batch = tokenizer(
            [item_text],
            truncation=True,
            max_length=lm.item_max_length,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = batch.pop("offset_mapping")[0].tolist()
        backbone = model.backbone
        with torch.enable_grad():
            emb = backbone.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)
            extra = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
            out = backbone(inputs_embeds=emb, attention_mask=batch["attention_mask"], **extra)
            pooled = mean_pool(out.last_hidden_state, batch["attention_mask"])
            v = torch.nn.functional.normalize(model.proj(pooled), dim=-1)[0]
            score = (v.double() * torch.as_tensor(u)).sum()
            (grad,) = torch.autograd.grad(score, emb)
        per_token = (grad * emb).sum(-1)[0].detach().double().numpy()
        index = {w: i for i, w in enumerate(words)}
        weights = np.zeros(len(words))
        for match in _WORD.finditer(item_text):
            i = index.get(match.group(0).lower())
            if i is None:
                continue
            start, end = match.span()
            for t, (a, b) in enumerate(offsets):
                if b > a and a >= start and b <= end:
                    weights[i] += per_token[t]
        return weights

    # -- one explanation ------------------------------------------------------------------------
    def explain_vectors(
        self,
        profile_vec: np.ndarray,
        events: Sequence[HistoryEvent],
        event_vecs: np.ndarray,
        item_vec: np.ndarray,
        item_text: str,
        item_title: str = "",
        item_id: int = -1,
        word_method: str = "loo",
        total_weight: float | None = None,
        pooled: np.ndarray | None = None,
        n_reasons: int = 2,
    ) -> Explanation:
        """``explain`` from embeddings already at hand (the env's, or the caches')."""
        if word_method not in WORD_METHODS:
            raise ValueError(f"word_method must be one of {WORD_METHODS}, got {word_method!r}")
        types = np.array([ev.type for ev in events], dtype=np.int64)
        ages = np.array([ev.age for ev in events], dtype=np.int64)
        score, profile, bias, parts, older = decompose(
            self.head,
            profile_vec,
            np.asarray(event_vecs).reshape(len(events), self.dim),
            types,
            ages,
            item_vec,
            total_weight,
            pooled,
        )
        item_bias = float(self.item_bias(item_vec)[0])
        # Every part is in the units of the response logit ``scale * u . v + b(v)``.
        scale = self.scale
        score, profile, bias, older = scale * score, scale * profile, scale * bias, scale * older
        parts = scale * np.asarray(parts)
        order = np.argsort(-np.abs(parts), kind="stable")
        history = tuple(
            EventWeight(
                item_id=int(events[i].item_id),
                title=events[i].title,
                response=RESPONSES[int(types[i])],
                rating=(
                    float(events[i].rating) if events[i].clicked and events[i].rating else None
                ),
                steps_ago=int(events[i].age),
                weight=float(parts[i]),
            )
            for i in order.tolist()
        )
        words: tuple[WordWeight, ...] = ()
        if word_method != "none":
            u = _state_from_parts(
                self.head, profile_vec, types, ages, event_vecs, pooled, total_weight
            )
            words = tuple(self.word_weights(u, item_text, word_method))
        sentence = render_sentence(profile, history, words, n_reasons)
        return Explanation(
            item_id=int(item_id),
            item_title=item_title,
            score=score + item_bias,
            profile=profile,
            bias=bias,
            item_bias=item_bias,
            older_history=older,
            history=history,
            words=words,
            word_method=word_method,
            sentence=sentence,
        )


def _state_from_parts(
    head: dict[str, np.ndarray],
    profile: np.ndarray,
    types: np.ndarray,
    ages: np.ndarray,
    event_vecs: np.ndarray,
    pooled: np.ndarray | None,
    total_weight: float | None,
) -> np.ndarray:
    """The user state ``u`` (float64) the decomposition explains."""
    gate = np.asarray(head["gate"], np.float64)
    e = np.asarray(event_vecs, np.float64).reshape(types.size, -1)
    weights = float(head["decay"]) ** ages.astype(np.float64)
    if pooled is not None:
        h = np.asarray(pooled, np.float64)
    else:
        w = float(weights.sum()) if total_weight is None else float(total_weight)
        h = (weights[:, None] * gate[types] * e).sum(axis=0) / max(w, 1.0)
    z = (
        np.asarray(profile, np.float64) @ np.asarray(head["w_profile_t"], np.float64)
        + h @ np.asarray(head["w_history_t"], np.float64)
        + np.asarray(head["bias"], np.float64)
    )
    return z / max(float(np.linalg.norm(z)), 1e-12)


def _event_phrase(event: EventWeight) -> str:
    title = f'"{event.title}"'
    if event.response == "skipped":
        return f"you skipped {title}"
    if event.rating:
        return f"you watched {title} (rated {int(event.rating)}/5)"
    return f"you clicked {title}"


MIN_SHARE = 0.1
"""A reason is named only if its weight is at least this share of the strongest reason's: a
history event worth 0.0004 beside a profile worth 0.12 is not a reason to tell anyone."""


def render_sentence(
    profile: float,
    history: Sequence[EventWeight],
    words: Sequence[WordWeight],
    n_reasons: int = 2,
) -> str:
    """One sentence from the parts: the strongest positive reasons among the profile and the
    history events (each at least ``MIN_SHARE`` of the strongest), then the item text's
    strongest positive words (same rule).

    Example: ``Recommended because you watched "X" (rated 5/5) and you clicked "Y"; its
    description mentions "galaxy" and "orbit".``
    """
    candidates: list[tuple[float, str, str]] = []  # (weight, dedupe key, phrase)
    if profile > 0:
        candidates.append((profile, "\0profile", "of your profile"))
    candidates += [(h.weight, h.title, _event_phrase(h)) for h in history if h.weight > 0]
    candidates.sort(key=lambda c: -c[0])
    reasons: list[str] = []
    seen: set[str] = set()
    for weight, key, phrase in candidates:
        if weight < MIN_SHARE * candidates[0][0] or len(reasons) == n_reasons:
            break
        if key not in seen:
            seen.add(key)
            reasons.append(phrase)
    if reasons:
        head = "Recommended because " + _join(reasons)
    else:
        head = "Recommended with little support from your history"
    positive = sorted((w for w in words if w.weight > 0), key=lambda w: -w.weight)
    top_words = [w.word for w in positive if w.weight >= MIN_SHARE * positive[0].weight][:2]
    if top_words:
        head += "; its description mentions " + _join([f'"{w}"' for w in top_words])
    return head + "."


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    # "because of your profile and you watched X": keep "because" readable for each reason.
    return ", ".join(parts[:-1]) + " and " + parts[-1]


# -- public entry points -------------------------------------------------------------------------
def _as_explainer(encoder: Explainer | str | os.PathLike[str] | None) -> Explainer:
    return encoder if isinstance(encoder, Explainer) else Explainer(encoder)


def explain(
    encoder: Explainer | str | os.PathLike[str] | None,
    profile: str,
    history_events: Sequence[HistoryEvent],
    item_text: str,
    item_title: str = "",
    item_id: int = -1,
    word_method: str = "loo",
) -> Explanation:
    """Explain the fast-head score of one item for one user.

    Args:
        encoder: an ``Explainer``, an encoder directory, or None (the shipped encoder).
        profile: the user's profile text.
        history_events: the user's observable history, any order (``age`` says when).
        item_text: the scored item's text; ``item_title``/``item_id`` label it.
        word_method: 'loo' (default), 'grad' or 'none' (see the module docstring).

    Returns:
        The exact split of the score into profile, bias, item bias and per-event parts, the
        words of the item text by attribution, and a one-sentence explanation.
    """
    model = _as_explainer(encoder)
    events = list(history_events)
    for i, ev in enumerate(events):
        if not isinstance(ev, HistoryEvent):
            raise ValueError(f"history_events[{i}] must be a HistoryEvent, got {type(ev).__name__}")
        if ev.age < 0:
            raise ValueError(f"history_events[{i}].age must be >= 0, got {ev.age}")
    vecs = model.item_vectors([ev.text for ev in events] + [item_text])
    return model.explain_vectors(
        model.profile_vector(profile),
        events,
        vecs[:-1],
        vecs[-1],
        item_text,
        item_title,
        item_id,
        word_method,
    )


def events_from_log_row(data: LogData, row: int, history_steps: int) -> list[HistoryEvent]:
    """The history of a log row as the fast head sees it in training and evaluation.

    ``recsim_llm.lm.logs.Histories`` with ``history_steps`` steps, at most ``history_steps x
    slate size`` events (what ``lm_scorers`` feeds the fast head).
    """
    from recsim_llm.lm.logs import Histories

    hist = Histories(data, history_steps)
    limit = history_steps * data.slates.shape[1]
    return [
        HistoryEvent(
            title=data.item_titles[it],
            text=data.item_texts[it],
            clicked=bool(clicked),
            rating=float(rating) if clicked else None,
            age=int(age),
            item_id=int(it),
        )
        for it, clicked, rating, age in hist.events(int(row))[:limit]
    ]


def explain_log_row(
    encoder: Explainer | str | os.PathLike[str] | None,
    data: LogData,
    row: int,
    items: Sequence[int] | None = None,
    word_method: str = "loo",
    history_steps: int | None = None,
) -> list[Explanation]:
    """Explanations of ``items`` (default: the slate logged at ``row``) for that row's user.

    ``history_steps`` defaults to the encoder's (``encoder.json``).
    """
    model = _as_explainer(encoder)
    if not 0 <= row < data.n_rows:
        raise ValueError(f"row must be in [0, {data.n_rows - 1}], got {row}")
    steps = history_steps or int(model.bundle.config.get("history_steps", 20))
    events = events_from_log_row(data, row, steps)
    ids = [int(i) for i in (data.slates[row] if items is None else items)]
    bad = [i for i in ids if not 0 <= i < data.n_items]
    if bad:
        raise ValueError(f"items: ids {bad} are not in the log's catalog [0, {data.n_items - 1}]")
    vecs = model.item_vectors([ev.text for ev in events] + [data.item_texts[i] for i in ids])
    profile = model.profile_vector(data.profiles[row])
    n = len(events)
    return [
        model.explain_vectors(
            profile,
            events,
            vecs[:n],
            vecs[n + j],
            data.item_texts[i],
            data.item_titles[i],
            i,
            word_method,
        )
        for j, i in enumerate(ids)
    ]


def events_from_interaction_log(
    log: InteractionLog, row: int, titles: Sequence[str], texts: Sequence[str]
) -> list[HistoryEvent]:
    """A user slot's history in an env's ``InteractionLog`` (most recent first, clicks first)."""
    out: list[HistoryEvent] = []
    for age, slot in enumerate(log.recent_steps(row)):
        pos = int(log.click_pos[row, slot])
        items = log.slates[row, slot].tolist()
        order = ([pos] if pos >= 0 else []) + [j for j in range(len(items)) if j != pos]
        for j in order:
            clicked = j == pos
            out.append(
                HistoryEvent(
                    title=titles[items[j]],
                    text=texts[items[j]],
                    clicked=clicked,
                    rating=float(log.rating[row, slot]) if clicked else None,
                    age=age,
                    item_id=int(items[j]),
                )
            )
    return out


def explanation_row(
    explanation: Explanation, position: int = 0, top_k: int | None = 3
) -> dict[str, Any]:
    """One plain row of an explanation (what ``explain_step`` and the CLI's ``--json`` give).

    ``top_k`` keeps that many history events and words (None: all of them).
    """
    ex = explanation
    return {
        "position": int(position),
        "item": ex.item_id,
        "title": ex.item_title,
        "score": ex.score,
        "profile_weight": ex.profile,
        "bias_weight": ex.bias + ex.item_bias,
        "older_history_weight": ex.older_history,
        "top_history": [dataclasses.asdict(h) for h in ex.history[:top_k]],
        "top_words": [dataclasses.asdict(w) for w in ex.words[:top_k]],
        "word_method": ex.word_method,
        "sentence": ex.sentence,
    }


def explain_step(
    sim: SlateSimulator,
    user: int,
    slate: Sequence[int] | None = None,
    explainer: Explainer | None = None,
    word_method: str = "loo",
    top_k: int = 3,
) -> list[dict[str, Any]]:
    """Plain rows explaining one user slot's slate at a simulator step (the dashboard's replay).

    Call it before ``sim.step``: the slate is explained from the state the policy acted on. It
    reads the slot's observable state (``sim.states``: the ``lm-fast`` [u | p | h | w]), the
    interaction log, item titles/texts and item embeddings; never the hidden world.

    Args:
        sim: a ``SlateSimulator`` (``env.sim``) whose encoder is ``lm-fast``.
        user: user slot.
        slate: item ids to explain (default: the slot's candidates, in order).
        explainer: reuse one (default: built on the sim's encoder).
        word_method: 'loo', 'grad' or 'none'.
        top_k: history events and words kept per row.

    Returns:
        One dict per item: ``position``, ``item``, ``title``, ``score``, ``profile_weight``,
        ``bias_weight`` (head bias + item bias), ``older_history_weight``, ``top_history``
        ([{item_id, title, response, rating, steps_ago, weight}]), ``top_words``
        ([{word, weight}]), ``word_method`` and ``sentence`` (``explanation_row``).
    """
    from recsim_llm.lm.state import LMExactEncoder, LMFastEncoder

    enc = sim.encoder
    if not isinstance(enc, LMFastEncoder) or isinstance(enc, LMExactEncoder):
        raise ValueError(
            f"explanations decompose the lm-fast state; this simulator's encoder is "
            f"{getattr(enc, 'name', type(enc).__name__)!r}"
        )
    if not 0 <= user < sim.n_users:
        raise ValueError(f"user must be a slot in [0, {sim.n_users - 1}], got {user}")
    model = explainer if explainer is not None else Explainer(bundle=enc.bundle)
    d = enc.dim
    state = sim.states[user].astype(np.float64)
    texts = sim._texts
    events = events_from_interaction_log(sim.log, user, sim.titles, texts)
    ids = [int(i) for i in (sim.candidates[user] if slate is None else slate)]
    event_vecs = sim.item_embeddings[[ev.item_id for ev in events]] if events else np.zeros((0, d))
    rows = []
    for position, item in enumerate(ids):
        ex = model.explain_vectors(
            state[d : 2 * d],
            events,
            event_vecs,
            sim.item_embeddings[item],
            texts[item],
            sim.titles[item],
            item,
            word_method,
            total_weight=float(state[3 * d]),
            pooled=state[2 * d : 3 * d],
        )
        rows.append(explanation_row(ex, position, top_k))
    return rows


def _history_arrays(log: InteractionLog, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, types, ages) of a slot's logged events, in ``events_from_interaction_log``'s order
    (most recent step first, the clicked item first within a step)."""
    steps = np.asarray(log.recent_steps(row), dtype=np.int64)
    if steps.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    slates = log.slates[row, steps]
    pos = log.click_pos[row, steps]
    k = slates.shape[1]
    cols = np.broadcast_to(np.arange(k), slates.shape)
    order = np.argsort(cols != pos[:, None], axis=1, kind="stable")  # clicked slot first
    items = np.take_along_axis(slates, order, axis=1)
    clicked = np.take_along_axis(cols == pos[:, None], order, axis=1)
    liked = (log.rating[row, steps] >= 4.0)[:, None]
    types = np.where(clicked, np.where(liked, 0, 1), 2)
    ages = np.repeat(np.arange(steps.size), k)
    return items.ravel(), types.ravel().astype(np.int64), ages


def explain_slates(
    sim: SlateSimulator,
    rows: Sequence[int],
    slates: np.ndarray,
    explainer: Explainer | None = None,
    n_reasons: int = 2,
    top_k: int = 3,
) -> tuple[list[list[str]], list[list[dict[str, Any]]]]:
    """Sentences and top history events for the shown slates of several user slots, batched.

    The same exact split as ``explain_step`` with ``word_method='none'`` (the sentences are
    identical; a test checks it), computed per slot with one matrix product over the slate
    instead of one decomposition per item, and without the LM: the scale and item bias come
    from the encoder's NumPy head. What ``recsim-llm evaluate`` writes into ``steps.parquet``.
    Call it before ``sim.step``, as ``explain_step``.

    Args:
        sim: a ``SlateSimulator`` whose encoder is ``lm-fast``.
        rows: user slots.
        slates: (len(rows), slate size) item ids shown to those slots.
        explainer: reuse one (default: built on the sim's encoder).
        n_reasons: reasons named per sentence (``render_sentence``).
        top_k: history events kept per item in the structured record.

    Returns:
        Per slot, one sentence per slate item, and one record per slate item: ``item``,
        ``score`` (the response logit ``scale * u . v + b(v)``), ``profile`` (its share), and
        ``history``: up to ``top_k`` events by absolute weight, each ``{item_id, title, response,
        steps_ago, weight}``.
    """
    from recsim_llm.lm.state import LMExactEncoder, LMFastEncoder

    enc = sim.encoder
    if not isinstance(enc, LMFastEncoder) or isinstance(enc, LMExactEncoder):
        raise ValueError(
            f"explanations decompose the lm-fast state; this simulator's encoder is "
            f"{getattr(enc, 'name', type(enc).__name__)!r}"
        )
    model = explainer if explainer is not None else Explainer(bundle=enc.bundle)
    head, d, scale = model.head, enc.dim, model.scale
    gate = np.asarray(head["gate"], np.float64)
    decay = float(head["decay"])
    wp_t = np.asarray(head["w_profile_t"], np.float64)
    wh_t = np.asarray(head["w_history_t"], np.float64)
    bias = np.asarray(head["bias"], np.float64)
    slates = np.asarray(slates, dtype=np.int64).reshape(len(rows), -1)
    embeddings = sim.item_embeddings
    titles = sim.titles
    sentences: list[list[str]] = []
    records: list[list[dict[str, Any]]] = []
    for r, slate in zip(rows, slates, strict=True):
        state = sim.states[int(r)].astype(np.float64)
        p, pooled, w = state[d : 2 * d], state[2 * d : 3 * d], float(state[3 * d])
        items, types, ages = _history_arrays(sim.log, int(r))
        denom = max(w, 1.0)
        acc = (decay ** ages.astype(np.float64))[:, None] * gate[types] * embeddings[items]
        profile_z = p @ wp_t
        z = profile_z + pooled @ wh_t + bias
        norm = max(float(np.linalg.norm(z)), 1e-12)
        v = embeddings[slate].astype(np.float64)
        g = v @ wh_t.T  # row j: W_h^T v_j
        parts = scale * (acc @ g.T) / (denom * norm)  # (events, slate)
        profile = scale * (v @ profile_z) / norm
        score = scale * (v @ z) / norm + model.item_bias(v)
        rated = sim.log.rating[int(r), np.asarray(sim.log.recent_steps(int(r)), dtype=np.int64)]
        row_sentences, row_records = [], []
        for j in range(slate.size):
            col = parts[:, j]
            # The positive events render_sentence would consider, strongest first, up to the
            # n_reasons-th distinct title: the sentence is the same as with every event.
            positive = np.flatnonzero(col > 0)
            positive = positive[np.argsort(-col[positive], kind="stable")]
            reasons: list[EventWeight] = []
            named: set[str] = set()
            for i in positive.tolist():
                if len(named) == n_reasons:
                    break
                t, age = int(types[i]), int(ages[i])
                rating = float(rated[age]) if t != 2 and rated[age] else None
                reasons.append(
                    EventWeight(int(items[i]), titles[items[i]], RESPONSES[t], rating, age, col[i])
                )
                named.add(titles[items[i]])
            row_sentences.append(render_sentence(float(profile[j]), reasons, (), n_reasons))
            strongest = np.argsort(-np.abs(col), kind="stable")[:top_k]
            row_records.append(
                {
                    "item": int(slate[j]),
                    "score": float(score[j]),
                    "profile": float(profile[j]),
                    "history": [
                        {
                            "item_id": int(items[i]),
                            "title": titles[items[i]],
                            "response": RESPONSES[int(types[i])],
                            "steps_ago": int(ages[i]),
                            "weight": float(col[i]),
                        }
                        for i in strongest.tolist()
                    ],
                }
            )
        sentences.append(row_sentences)
        records.append(row_records)
    return sentences, records
