"""The item catalog: observable texts and labels beside hidden latent vectors, quality and appeal.

The built-in catalog is synthetic and deterministic by ``CatalogConfig.seed``. Item texts are
composed from topic words with noise, so that the words carry real but imperfect signal about the
hidden topics: a bag of genre labels alone is not enough (several topics share a genre and labels
are sometimes wrong), while the topic words name the topic most of the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsim_llm import text
from recsim_llm.config import CatalogConfig


@dataclass(frozen=True)
class Catalog:
    """All items of a world, present from the start or arriving later.

    Arrays are indexed by item id (0..n_total-1). ``latent``, ``quality``, ``appeal`` and
    ``topic`` are hidden truth; ``titles``, ``descriptions``, ``genres`` and ``arrival_step``
    are observable.
    """

    latent: np.ndarray
    """(n_total, n_topics) float64 unit vectors in the interest space (hidden)."""
    topic: np.ndarray
    """(n_total,) int primary hidden topic."""
    quality: np.ndarray
    """(n_total,) float in [0, 1] (hidden): value of consuming the item for a matching user."""
    appeal: np.ndarray
    """(n_total,) float in [0, 1] (hidden): clickbait level, raises clicks but not value."""
    clickbait: np.ndarray
    """(n_total,) bool (hidden): generated as a high-appeal, low-quality item."""
    arrival_step: np.ndarray
    """(n_total,) int: world step at which the item becomes available (0 = from the start)."""
    titles: tuple[str, ...]
    descriptions: tuple[str, ...]
    genres: tuple[tuple[str, ...], ...]
    """Observable genre labels per item."""

    @property
    def n_total(self) -> int:
        """Items including those that arrive later."""
        return int(self.topic.shape[0])

    @property
    def n_topics(self) -> int:
        return int(self.latent.shape[1])

    def texts(self) -> list[str]:
        """Every item as the text a recommender sees."""
        return [
            text.item_text(t, d, g)
            for t, d, g in zip(self.titles, self.descriptions, self.genres, strict=True)
        ]

    def available(self, step: int) -> np.ndarray:
        """Ids of items available at world step ``step``."""
        return np.flatnonzero(self.arrival_step <= step)


def _topic_word(rng: np.random.Generator, topic: int, n_topics: int, noise: float) -> str:
    source = topic if rng.random() >= noise else int(rng.integers(n_topics))
    words = text.TOPIC_WORDS[source]
    return words[int(rng.integers(len(words)))]


def generate_catalog(config: CatalogConfig) -> Catalog:
    """Build the synthetic catalog of ``config``; the same config gives the same catalog."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xCA7]))
    n_total = config.n_items + config.n_new_items
    k = config.n_topics

    topic = rng.integers(k, size=n_total)
    secondary = rng.integers(k, size=n_total)
    latent = np.zeros((n_total, k))
    latent[np.arange(n_total), topic] = 1.0
    latent[np.arange(n_total), secondary] += rng.uniform(0.0, 0.6, size=n_total)
    latent += rng.normal(0.0, 0.15, size=(n_total, k))
    latent /= np.linalg.norm(latent, axis=1, keepdims=True)

    clickbait = rng.random(n_total) < config.clickbait_fraction
    appeal = np.where(clickbait, rng.beta(8.0, 2.0, n_total), rng.beta(2.0, 6.0, n_total))
    quality = np.where(clickbait, rng.beta(1.5, 10.0, n_total), rng.beta(6.0, 2.5, n_total))

    arrival = np.zeros(n_total, dtype=np.int64)
    arrival[config.n_items :] = 1 + np.arange(config.n_new_items) // config.new_items_per_step

    titles, descriptions, genres = [], [], []
    for i in range(n_total):
        t = int(topic[i])
        words = [_topic_word(rng, t, k, config.text_noise) for _ in range(2)]
        filler = text.FILLER_WORDS[int(rng.integers(len(text.FILLER_WORDS)))]
        # Clickbait wording is a strong but imperfect signal of appeal.
        baity = rng.random() < (0.8 if clickbait[i] else 0.1)
        if baity:
            opener = text.CLICKBAIT_PHRASES[int(rng.integers(len(text.CLICKBAIT_PHRASES)))]
            title = f"{opener} {words[0]} {filler}".capitalize()
        else:
            title = f"The {words[0]} {filler}"
        titles.append(title)
        body = [_topic_word(rng, t, k, config.text_noise) for _ in range(3)]
        body.append(_topic_word(rng, int(secondary[i]), k, config.text_noise))
        rng.shuffle(body)
        praise = ""
        if rng.random() < 0.6 * float(quality[i]):
            praise = text.QUALITY_WORDS[int(rng.integers(len(text.QUALITY_WORDS)))] + " "
        descriptions.append(
            f"A {praise}{filler} about {body[0]} and {body[1]}, with {body[2]} and {body[3]}."
        )
        genre = text.TOPIC_GENRE[t]
        if rng.random() < config.genre_label_noise:
            genre = int(rng.integers(len(text.GENRE_NAMES)))
        labels = [text.GENRE_NAMES[genre]]
        second = text.TOPIC_GENRE[int(secondary[i])]
        if second != genre and rng.random() < 0.3:
            labels.append(text.GENRE_NAMES[second])
        genres.append(tuple(labels))

    return Catalog(
        latent=latent,
        topic=topic,
        quality=quality,
        appeal=appeal,
        clickbait=clickbait,
        arrival_step=arrival,
        titles=tuple(titles),
        descriptions=tuple(descriptions),
        genres=tuple(genres),
    )
