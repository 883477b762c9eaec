"""The env's user state from a fine-tuned LM encoder: ``lm-fast`` and ``lm-exact``.

State of a user (``user_dim = 3 * dim + 1``)::

    [ u (dim) | p (dim) | h (dim) | w (1) ]

``u`` is the user embedding the policy reads (same space as the item embeddings); ``p`` the
embedding of the profile text (cold-start history); ``h`` the recency-decayed, response-gated
mean of the embeddings of shown items and ``w`` its total weight. ``p``, ``h`` and ``w`` are what
the fast head needs to update ``u`` in O(dim^2) per user and step from cached item embeddings:

* **fast** (``lm-fast``): ``u = normalize(W_p p + W_h h + b)`` (the trained ``FastHead``), pure
  NumPy per step. Item and profile embeddings come from the LM once per text (cached, and the
  shipped encoder carries them precomputed for the default world, so no LM runs at all there).
* **exact** (``lm-exact``): ``u`` is the LM's user tower on the full history text (truncated to
  the token budget) at every step: slow, the reference the fast state is measured against.

Both read only the interaction log and texts: never hidden state.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm import text
from recsim_llm.encoders import UserEncoder
from recsim_llm.log import InteractionLog

ASSETS = Path(__file__).resolve().parent / "assets"
SHIPPED_ENCODER = ASSETS / "minilm-lora-default"
"""The LoRA encoder shipped with the package, fine-tuned on the default synthetic world."""


SHIPPED_MOVIELENS_ENCODER = ASSETS / "minilm-lora-movielens"
"""The encoder the MovieLens env's LM states use by default, fit on MovieLens-100K ratings."""


def shipped_movielens_encoder_path() -> Path:
    """Directory of the shipped MovieLens encoder (clear error when the package data is missing)."""
    if not (SHIPPED_MOVIELENS_ENCODER / "encoder.json").is_file():
        raise FileNotFoundError(
            f"the shipped MovieLens encoder is missing under {SHIPPED_MOVIELENS_ENCODER}; "
            "reinstall recsim-llm or set EnvConfig(encoder_path=...)"
        )
    return SHIPPED_MOVIELENS_ENCODER


def shipped_encoder_path() -> Path:
    """Directory of the shipped encoder (clear error when the package data is missing)."""
    if not (SHIPPED_ENCODER / "encoder.json").is_file():
        raise FileNotFoundError(
            f"the shipped LM encoder is missing under {SHIPPED_ENCODER}; reinstall recsim-llm or "
            "set EnvConfig(encoder_path=...) to a directory written by `recsim-llm finetune`"
        )
    return SHIPPED_ENCODER


def profile_texts(n_topics: int = 16) -> list[str]:
    """Every profile text the built-in user sampler can produce (for precomputed caches).

    Mirrors ``recsim_llm.world.users.sample_users``; a text outside this list is simply encoded on
    first use, so a drift here costs speed, never correctness.
    """
    out = []
    for age in text.AGE_BANDS:
        for job in text.OCCUPATIONS:
            for t in range(n_topics):
                for word in text.TOPIC_WORDS[t]:
                    taste = f"I enjoy anything with {word} and {text.TOPIC_WORDS[t][0]}."
                    out.append(text.profile_text(age, job, taste))
    return out


def world_texts(logs: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Texts to pre-encode for a log's world (``finetune --cache-world``).

    The item texts of the logged catalog and, for a synthetic world, of every built-in scenario's
    catalog (a few hundred KB), and every profile text of the built-in user sampler.
    """
    path = Path(logs)
    meta = json.loads((path / "config.json").read_text())
    items = [json.loads(line)["text"] for line in (path / "items.jsonl").open() if line.strip()]
    catalog = meta.get("env_config", {}).get("world", {}).get("catalog", {})
    if meta.get("source") == "synthetic":
        from recsim_llm.scenarios import BUILTIN_SCENARIOS, scenario_config
        from recsim_llm.world.catalog import generate_catalog

        seen = {json.dumps(catalog, sort_keys=True)}
        for config in map(scenario_config, BUILTIN_SCENARIOS):
            key = json.dumps(dataclasses.asdict(config.world.catalog), sort_keys=True)
            if key not in seen:
                seen.add(key)
                items.extend(generate_catalog(config.world.catalog).texts())
    return {"items": items, "profiles": profile_texts(int(catalog.get("n_topics", 16)))}


class _Bundle:
    """What both encoders share for one encoder directory: head, caches, and the LM on demand."""

    def __init__(self, path: Path, n_threads: int) -> None:
        from safetensors.numpy import load_file

        from recsim_llm.lm.store import (
            EncoderFormatError,
            read_cache,
            read_encoder_config,
            text_key,
        )

        self.path = path
        self.config = read_encoder_config(path)
        if self.config.get("objective", "two-tower") != "two-tower":
            raise ValueError(
                f"encoder_path {str(path)!r} holds a {self.config['objective']!r} model; env "
                "encoders need a two-tower model"
            )
        self.dim = int(self.config["dim"])
        self.n_threads = n_threads
        heads = load_file(str(path / "heads.safetensors"))
        fast = ("fast.gate", "fast.decay_logit", "fast.w_profile", "fast.w_history", "fast.bias")
        missing = [k for k in fast if k not in heads]
        if missing:
            raise EncoderFormatError(f"{path / 'heads.safetensors'} lacks the fast head {missing}")
        bad = [k for k in fast if not np.isfinite(heads[k]).all()]
        if bad:
            raise EncoderFormatError(
                f"{path / 'heads.safetensors'} holds non-finite values (NaN or inf) in {bad}"
            )
        decay = 1.0 / (1.0 + np.exp(-float(heads["fast.decay_logit"])))
        self.head = {
            "gate": heads["fast.gate"].astype(np.float32),
            "decay": np.float32(decay),
            "w_profile_t": np.ascontiguousarray(heads["fast.w_profile"].T.astype(np.float32)),
            "w_history_t": np.ascontiguousarray(heads["fast.w_history"].T.astype(np.float32)),
            "bias": heads["fast.bias"].astype(np.float32),
        }
        # The click head: logit = scale * u.v + b(v) (+ a constant that does not rank).
        scale = heads.get("logit_scale")
        w, b = heads.get("item_bias.weight"), heads.get("item_bias.bias")
        self.click_scale = float(np.exp(scale)) if scale is not None else 1.0
        self.item_bias_w = (
            w.reshape(-1).astype(np.float32)
            if w is not None and self.config.get("item_bias")
            else np.zeros(self.dim, dtype=np.float32)
        )
        self.item_bias_b = float(b.reshape(-1)[0]) if b is not None and w is not None else 0.0
        self.items: dict[int, np.ndarray] = {}
        self.profiles: dict[int, np.ndarray] = {}
        cache = read_cache(path, self.config)  # checked: listed, hash, names, shapes, finite
        for keys, emb, target in (
            ("item_keys", "item_emb", self.items),
            ("profile_keys", "profile_emb", self.profiles),
        ):
            if cache and keys in cache:
                target.update(zip(cache[keys].tolist(), cache[emb].astype(np.float32), strict=True))
        self._key = text_key
        self._keys: dict[str, int] = {}
        """Cache keys of the texts seen so far (hashing a text costs more than a dict lookup)."""
        self._lm: Any = None

    @property
    def lm(self) -> Any:
        """The loaded LM (LoRA merged in memory for speed), loaded on first use."""
        if self._lm is None:
            from recsim_llm.lm.store import load_encoder

            lm = load_encoder(self.path, n_threads=self.n_threads)
            if lm.config["lora"]:
                lm.model.backbone = lm.model.backbone.merge_and_unload()
            self._lm = lm
        return self._lm

    def _lookup(
        self, texts: Sequence[str], table: dict[int, np.ndarray], encode: Any
    ) -> np.ndarray:
        memo = self._keys
        keys = [memo[t] if t in memo else memo.setdefault(t, self._key(t)) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in table}.items())
        if missing:
            emb = encode([t for _, t in missing])
            table.update(zip([k for k, _ in missing], emb, strict=True))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if keys:
            np.stack([table[k] for k in keys], out=out)
        return out

    def item_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        return self._lookup(texts, self.items, lambda ts: self.lm.encode_items(ts))

    def profile_embeddings(self, profiles: Sequence[str]) -> np.ndarray:
        return self._lookup(
            profiles,
            self.profiles,
            lambda ps: self.lm.encode_users([text.history_text(p, []) for p in ps]),
        )


_BUNDLES: dict[tuple[str, int, int], _Bundle] = {}


def load_bundle(path: str | os.PathLike[str] | None = None, n_threads: int = 2) -> _Bundle:
    """The (process-wide cached) bundle of an encoder directory; None = the shipped encoder.

    The cache key includes the directory's ``encoder.json`` modification time, so an encoder
    rewritten in place (a second fine-tune to the same ``--out``) is loaded afresh.
    """
    root = Path(path) if path else shipped_encoder_path()
    stamp = (root / "encoder.json").stat().st_mtime_ns if (root / "encoder.json").exists() else 0
    key = (str(root.resolve()), n_threads, stamp)
    if key not in _BUNDLES:
        _BUNDLES[key] = _Bundle(root, n_threads)
    return _BUNDLES[key]


_BLOCK = 64
"""Rows per BLAS call in the fast head (see ``LMFastEncoder._user``)."""


class LMFastEncoder(UserEncoder):
    """Fine-tuned LM encoder, fast mode: cached item/profile embeddings + incremental fast head.

    Args:
        path: encoder directory (``recsim-llm finetune``); None = the shipped encoder.
        n_threads: torch threads when the LM has to run (cache misses).
    """

    name = "lm-fast"

    def __init__(self, path: str | os.PathLike[str] | None = None, n_threads: int = 2) -> None:
        self.bundle = load_bundle(path, n_threads)
        self.dim = self.bundle.dim
        self.item_dim = self.dim
        self.user_dim = 3 * self.dim + 1

    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        return self.bundle.item_embeddings(texts)

    def encode_profiles(self, texts: Sequence[str]) -> np.ndarray:
        d = self.dim
        p = self.bundle.profile_embeddings(texts)
        states = np.zeros((len(texts), self.user_dim), dtype=np.float32)
        states[:, :d] = self._user(p, states[:, 2 * d : 3 * d])
        states[:, d : 2 * d] = p
        return states

    def _user(self, p: np.ndarray, h: np.ndarray) -> np.ndarray:
        head = self.bundle.head
        # BLAS in blocks of _BLOCK rows: each block is below OpenBLAS's threading threshold, so
        # no threads are woken per env step. Woken threads cost milliseconds when another
        # process holds the cores (lm-fast measured at 42-48% of bow's user-steps/s at 1024
        # users with one `p @ W`, 99-100% in blocks). A last block of one row joins the one
        # before (one-row products take BLAS's matrix-vector path, which may sum in another
        # order); with the shipped 32-d encoder each row's result is the same as one `p @ W`
        # (tests/test_obs_equivalence.py, 48 and 129 users).
        n = p.shape[0]
        u = np.empty((n, head["w_profile_t"].shape[1]), dtype=np.float32)
        edges = [*range(0, n, _BLOCK), n]
        if len(edges) > 2 and edges[-1] - edges[-2] == 1:
            del edges[-2]
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            np.matmul(p[lo:hi], head["w_profile_t"], out=u[lo:hi])
            u[lo:hi] += h[lo:hi] @ head["w_history_t"]
        u += head["bias"]
        # np.linalg.norm(u, axis=1, keepdims=True) for real u, without its conj() copy.
        u /= np.maximum(np.sqrt(np.add.reduce(u * u, axis=1, keepdims=True)), 1e-12)
        return u

    def _update_pooled(
        self, states: np.ndarray, log: InteractionLog, item_embeddings: np.ndarray
    ) -> None:
        """Advance p/h/w by the log's newest step (both modes share this)."""
        d, head = self.dim, self.bundle.head
        rows = np.arange(log.n_users)
        slot = log.last_slot()
        slates = log.slates[rows, slot]
        pos = log.click_pos[rows, slot]
        types = np.full(slates.shape, 2, dtype=np.int64)
        clicked = np.flatnonzero(pos >= 0)
        liked = log.rating[clicked, slot[clicked]] >= 4.0
        types[clicked, pos[clicked]] = np.where(liked, 0, 1)
        # np.take gathers the same C-contiguous (n, k, d) arrays as fancy indexing, faster.
        gates = np.take(head["gate"], types, axis=0)
        step_sum = np.einsum("nkd,nkd->nd", gates, np.take(item_embeddings, slates, axis=0))
        h = states[:, 2 * d : 3 * d]
        w = states[:, 3 * d]
        # acc = decay * (h * max(w, 1)) + step_sum, in one buffer (the same float32 operations).
        acc = np.multiply(h, np.maximum(w, 1.0)[:, None])
        np.multiply(head["decay"], acc, out=acc)
        np.add(acc, step_sum, out=acc)
        w_new = head["decay"] * w + slates.shape[1]
        np.divide(acc, np.maximum(w_new, 1.0)[:, None], out=states[:, 2 * d : 3 * d])
        states[:, 3 * d] = w_new

    def update(
        self,
        states: np.ndarray,
        log: InteractionLog,
        item_embeddings: np.ndarray,
        titles: Sequence[str],
    ) -> None:
        d = self.dim
        self._update_pooled(states, log, item_embeddings)
        states[:, :d] = self._user(states[:, d : 2 * d], states[:, 2 * d : 3 * d])


class LMExactEncoder(LMFastEncoder):
    """Fine-tuned LM encoder, exact mode: the LM's user tower on the history text every step.

    Same state layout as ``lm-fast`` (so policies transfer); only ``u`` differs. Slow: the
    reference for the fast state.
    """

    name = "lm-exact"

    def encode_profiles(self, texts: Sequence[str]) -> np.ndarray:
        states = super().encode_profiles(texts)
        d = self.dim
        states[:, :d] = states[:, d : 2 * d]  # the user tower on a history with no events
        return states

    def history_texts(self, log: InteractionLog, titles: Sequence[str]) -> list[str]:
        lm = self.bundle.lm
        return [
            text.render_history_within(
                log.profiles[r], log.events(r, titles), lm.n_tokens, lm.user_max_length
            )
            for r in range(log.n_users)
        ]

    def update(
        self,
        states: np.ndarray,
        log: InteractionLog,
        item_embeddings: np.ndarray,
        titles: Sequence[str],
    ) -> None:
        self._update_pooled(states, log, item_embeddings)
        states[:, : self.dim] = self.bundle.lm.encode_users(self.history_texts(log, titles))
