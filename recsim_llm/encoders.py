"""User encoders: observable text and history in, state vectors out.

An encoder never reads hidden state. It embeds item texts once (new items when they arrive),
turns a new user's profile text into an initial (cold-start) state, and updates user states
after each step from the interaction log. Encoders are looked up by name (``EnvConfig.encoder``)
in ``ENCODERS``; the language-model encoders are lazy ``"module:attr"`` entry points, so torch is
imported only when one is built.
"""

from __future__ import annotations

import abc
import re
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from recsim_llm.log import InteractionLog
from recsim_llm.registry import Registry

if TYPE_CHECKING:
    from recsim_llm.config import EnvConfig
    from recsim_llm.world.catalog import Catalog


class UserEncoder(abc.ABC):
    """Turns observable text into item embeddings and per-user states.

    Attributes:
        name: registry name.
        item_dim: length of an item embedding.
        user_dim: length of a user state.
    """

    name: str
    item_dim: int
    user_dim: int

    @abc.abstractmethod
    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), item_dim) float32 item embeddings."""

    @abc.abstractmethod
    def encode_profiles(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), user_dim) float32 states of users who have no history yet."""

    @abc.abstractmethod
    def update(
        self,
        states: np.ndarray,
        log: InteractionLog,
        item_embeddings: np.ndarray,
        titles: Sequence[str],
    ) -> None:
        """Update ``states`` (n_users, user_dim) in place after the step just recorded in ``log``.

        ``item_embeddings`` holds the embeddings of every item id (rows of items that have not
        arrived yet may be zero); ``titles`` lets exact-mode encoders render the history text.
        """


_TOKEN = re.compile(r"[a-z0-9']+")


def hashed_bow(texts: Sequence[str], dim: int) -> np.ndarray:
    """(n, dim) L2-normalised signed hashed bag of words (crc32: stable across processes)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, doc in enumerate(texts):
        for token in _TOKEN.findall(doc.lower()):
            h = zlib.crc32(token.encode())
            out[i, h % dim] += 1.0 if (h >> 16) & 1 else -1.0
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norm, 1e-6)


class BagOfWordsEncoder(UserEncoder):
    """Non-LM baseline: hashed bag of words of item, profile and history text.

    A user state is four blocks of ``dim``: the profile's bag of words and recency-decayed sums
    of the embeddings of clicked, well-rated (4-5) and skipped items. That sum is the bag of words
    of the history text with older events down-weighted by ``decay`` per step; it is updated
    incrementally from the log's newest step.
    """

    name = "bow"

    def __init__(self, dim: int = 32, decay: float = 0.8) -> None:
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        self.dim = int(dim)
        self.decay = float(decay)
        self.item_dim = self.dim
        self.user_dim = 4 * self.dim
        self._profiles: dict[str, np.ndarray] = {}
        """Bag of words of the profile texts seen so far (each row depends on its text only)."""

    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        return hashed_bow(texts, self.dim)

    def encode_profiles(self, texts: Sequence[str]) -> np.ndarray:
        cache = self._profiles
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            if len(cache) + len(missing) > 100_000:
                cache.clear()  # a sampler with ever new texts: keep memory bounded
            cache.update(zip(missing, hashed_bow(missing, self.dim), strict=True))
        states = np.zeros((len(texts), self.user_dim), dtype=np.float32)
        if texts:
            np.stack([cache[t] for t in texts], out=states[:, : self.dim])
        return states

    def update(
        self,
        states: np.ndarray,
        log: InteractionLog,
        item_embeddings: np.ndarray,
        titles: Sequence[str],
    ) -> None:
        d = self.dim
        n, k = log.n_users, log.slate_size
        rows = np.arange(n)
        slot = log.last_slot()
        slates = log.slates[rows, slot]  # (n, k)
        pos = log.click_pos[rows, slot]
        clicked = pos >= 0
        c_rows = np.flatnonzero(clicked)
        c_pos = pos[c_rows]
        emb = np.take(item_embeddings, slates.T, axis=0)  # (k, n, d): slot j's items in emb[j]
        # The sums over the slate are those of masked sums (a sum over the slot axis starts from
        # +0.0 and adds slot by slot; a masked-out slot adds a zero, which changes nothing), so
        # the values are bit for bit those of ``(emb * mask[..., None]).sum(axis=1)``:
        # the clicked item's embedding plus +0.0, and the other items' embeddings in slot order.
        clicked_emb = np.zeros((n, d), dtype=np.float32)
        clicked_emb[c_rows] = emb[c_pos, c_rows] + np.float32(0.0)
        emb[c_pos, c_rows] = 0.0
        skipped_sum = np.zeros((n, d), dtype=np.float32)
        for j in range(k):
            skipped_sum += emb[j]
        n_skipped = np.maximum(np.where(clicked, k - 1, k), 1)[:, None]
        skipped_emb = skipped_sum / n_skipped  # float64, as before
        liked = (log.rating[rows, slot] >= 4.0).astype(np.float32)[:, None]
        states[:, d:] *= self.decay
        states[:, d : 2 * d] += clicked_emb
        states[:, 2 * d : 3 * d] += clicked_emb * liked
        states[:, 3 * d :] += skipped_emb


EncoderFactory = Callable[["EnvConfig", "Catalog"], UserEncoder]
"""``factory(config, catalog) -> UserEncoder``."""

ENCODERS: Registry[EncoderFactory] = Registry("encoder")
"""Encoder name (``EnvConfig.encoder``) -> factory, as an object or a lazy ``"module:attr"``."""


def make_bow(config: EnvConfig, catalog: Catalog) -> UserEncoder:
    """``bow``: the hashed bag-of-words encoder (the non-LM baseline)."""
    return BagOfWordsEncoder(config.encoder_dim, config.history_decay)


def register_encoder(name: str, factory: EncoderFactory | str, *, overwrite: bool = False) -> None:
    """Make ``EnvConfig(encoder=name)`` build its encoder with ``factory(config, catalog)``."""
    ENCODERS.register(name, factory, overwrite=overwrite)


def encoder_names() -> list[str]:
    """Registered encoder names."""
    return ENCODERS.names()


def make_encoder(config: EnvConfig, catalog: Catalog) -> UserEncoder:
    """The encoder named by ``config.encoder``."""
    return ENCODERS.make(config.encoder, config, catalog)


ENCODERS.register("bow", "recsim_llm.encoders:make_bow")
ENCODERS.register("lm-fast", "recsim_llm.lm:make_lm_fast")
ENCODERS.register("lm-exact", "recsim_llm.lm:make_lm_exact")
