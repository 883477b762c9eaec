"""User models: samplers that draw new users' hidden interests and satisfaction and a profile text.

A user model is a ``UserSampler`` built by ``factory(config: UserConfig, n_topics: int)`` and
registered by name in ``recsim_llm.world_registries`` (``UserConfig.model`` selects one). A
calibrated world may also pass its own sampler to ``World`` directly (MovieLens does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recsim_llm import text
from recsim_llm.config import UserConfig


@dataclass(frozen=True)
class NewUsers:
    """Freshly sampled users (cold start: no history yet)."""

    interest: np.ndarray
    """(n, n_topics) unit interest vectors (hidden)."""
    satisfaction: np.ndarray
    """(n,) initial satisfaction in [0, 1] (hidden)."""
    profiles: tuple[str, ...]
    """Observable profile texts."""


def sample_interest(
    n: int, n_topics: int, config: UserConfig, rng: np.random.Generator
) -> np.ndarray:
    """Interest vectors concentrated on 1..interest_topics_max topics, unit length."""
    n_liked = rng.integers(1, min(config.interest_topics_max, n_topics) + 1, size=n)
    weights = rng.uniform(0.5, 1.0, size=(n, n_topics))
    # A random subset of size n_liked per user: the n_liked smallest random keys.
    keys = rng.random((n, n_topics))
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    interest = np.where(rank < n_liked[:, None], weights, 0.0)
    interest += rng.normal(0.0, config.interest_noise, size=(n, n_topics))
    norm = np.linalg.norm(interest, axis=1, keepdims=True)
    return interest / np.maximum(norm, 1e-9)


def sample_users(n: int, n_topics: int, config: UserConfig, rng: np.random.Generator) -> NewUsers:
    """Sample ``n`` new users with their hidden state and observable profile."""
    interest = sample_interest(n, n_topics, config, rng)
    satisfaction = rng.uniform(config.satisfaction_low, config.satisfaction_high, size=n)
    age = rng.integers(len(text.AGE_BANDS), size=n)
    job = rng.integers(len(text.OCCUPATIONS), size=n)
    truthful = rng.random(n) < config.profile_taste_accuracy
    random_topic = rng.integers(n_topics, size=n)
    word_pick = rng.integers(len(text.TOPIC_WORDS[0]), size=n)
    top = np.argmax(interest, axis=1)
    profiles = []
    for u in range(n):
        t = int(top[u]) if truthful[u] else int(random_topic[u])
        word = text.TOPIC_WORDS[t][int(word_pick[u]) % len(text.TOPIC_WORDS[t])]
        taste = f"I enjoy anything with {word} and {text.TOPIC_WORDS[t][0]}."
        profiles.append(
            text.profile_text(text.AGE_BANDS[int(age[u])], text.OCCUPATIONS[int(job[u])], taste)
        )
    return NewUsers(interest=interest, satisfaction=satisfaction, profiles=tuple(profiles))


class UserSampler(Protocol):
    """Draws new users; a calibrated world supplies its own (e.g. fitted on real logs)."""

    def sample(self, n: int, rng: np.random.Generator) -> NewUsers:
        """``n`` new cold-start users."""
        ...

    def sample_interest(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, dim) fresh unit interest vectors, used by taste-shift events."""
        ...


class SyntheticUserSampler:
    """The built-in sampler: users who like 1..interest_topics_max of the catalog's topics.

    Args:
        config: user settings.
        n_topics: dimension of the interest space (the catalog's topics).
    """

    def __init__(self, config: UserConfig, n_topics: int) -> None:
        self.config = config
        self.n_topics = int(n_topics)

    def sample(self, n: int, rng: np.random.Generator) -> NewUsers:
        return sample_users(n, self.n_topics, self.config, rng)

    def sample_interest(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_interest(n, self.n_topics, self.config, rng)
