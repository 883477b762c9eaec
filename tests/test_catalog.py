"""The synthetic catalog: size, determinism, and text that carries real but imperfect signal."""

from __future__ import annotations

import numpy as np

from recsim_llm import text
from recsim_llm.config import CatalogConfig
from recsim_llm.encoders import hashed_bow
from recsim_llm.world.catalog import generate_catalog


def test_default_catalog_size_and_topics():
    cat = generate_catalog(CatalogConfig())
    assert cat.n_total >= 1000
    assert cat.n_topics >= 12
    assert len(np.unique(cat.topic)) >= 12
    assert np.allclose(np.linalg.norm(cat.latent, axis=1), 1.0)
    assert (cat.arrival_step == 0).sum() == CatalogConfig().n_items
    assert cat.arrival_step.max() > 0  # new items arrive during a run


def test_catalog_is_deterministic_by_seed():
    a = generate_catalog(CatalogConfig(seed=3))
    b = generate_catalog(CatalogConfig(seed=3))
    c = generate_catalog(CatalogConfig(seed=4))
    assert a.texts() == b.texts()
    assert np.array_equal(a.latent, b.latent)
    assert a.texts() != c.texts()


def test_clickbait_has_high_appeal_low_quality():
    cat = generate_catalog(CatalogConfig())
    bait = cat.clickbait
    assert cat.appeal[bait].mean() > cat.appeal[~bait].mean() + 0.4
    assert cat.quality[bait].mean() < cat.quality[~bait].mean() - 0.4


def _nearest_centroid_accuracy(features, labels, train):
    classes = np.unique(labels[train])
    centroids = np.stack([features[train & (labels == c)].mean(axis=0) for c in classes])
    pred = classes[np.argmax(features[~train] @ centroids.T, axis=1)]
    return float((pred == labels[~train]).mean())


def test_text_carries_imperfect_topic_signal_beyond_genre_labels():
    cat = generate_catalog(CatalogConfig())
    rng = np.random.default_rng(0)
    train = rng.random(cat.n_total) < 0.7
    words = hashed_bow(cat.texts(), 256)
    acc_text = _nearest_centroid_accuracy(words, cat.topic, train)
    genre_only = hashed_bow([" ".join(g) for g in cat.genres], 256)
    acc_genre = _nearest_centroid_accuracy(genre_only, cat.topic, train)
    chance = 1.0 / cat.n_topics
    assert acc_text > 0.6  # the words carry real signal about the hidden topic
    assert acc_text < 0.99  # but imperfect (noise words, secondary topics)
    assert acc_genre < 0.6  # genre labels alone are not enough (topics share genres)
    assert acc_genre > chance


def test_item_text_template():
    assert text.item_text("T", "D.", ["A", "B"]) == "T. Genres: A, B. D."
