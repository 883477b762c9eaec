"""Response models: what consuming an item gives the user and what the log sees of it.

A response model turns a consumed item's hidden features into the consumed value (hidden truth),
the watch time (engagement, the reward) and a 1-5 rating, by sampling, and also gives the
expectations ``World.expected_response`` needs without sampling. Response models are registered
by name in ``recsim_llm.world_registries`` (``ResponseConfig.model`` selects one) and built by
``factory(config: ResponseConfig)``.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from recsim_llm.config import ResponseConfig


class ResponseModel(Protocol):
    """Consumed value, watch time and rating of consumed items (arrays of one shape)."""

    def consumed_value(self, quality: np.ndarray, match: np.ndarray) -> np.ndarray:
        """Value of consuming items of ``quality`` for users whose interest ``match`` them."""
        ...

    def sample(
        self,
        clicked: np.ndarray,
        appeal: np.ndarray,
        value: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(engagement, rating), each (n,): watch time in minutes and a 1-5 rating of each
        user's consumed item; both 0 where ``clicked`` is False."""
        ...

    def expected_engagement(self, appeal: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Mean watch time of items with ``appeal`` and consumed ``value``, given a click."""
        ...

    def median_engagement(self, appeal: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Median watch time given a click (the noise-free watch time for symmetric log-noise)."""
        ...


class DefaultResponse:
    """The default response model.

    * consumed value ``quality * clip(match, 0, 1)``;
    * watch time ``scale * (appeal_weight * appeal + value_weight * value) * exp(noise * z)``
      with ``z ~ N(0, 1)``: clickbait holds attention without giving value. The log-normal factor
      has median 1 and mean ``exp(noise**2 / 2)``;
    * rating ``clip(rint(1 + 4 * value + rating_noise * z'), 1, 5)``: it follows value only.

    Args:
        config: response settings.
    """

    def __init__(self, config: ResponseConfig) -> None:
        self.config = config
        # E[exp(s z)] for z ~ N(0, 1): turns the median watch time into the mean.
        self._mean_factor = math.exp(0.5 * config.engagement_noise**2)

    def consumed_value(self, quality: np.ndarray, match: np.ndarray) -> np.ndarray:
        return quality * np.clip(match, 0.0, 1.0)

    def median_engagement(self, appeal: np.ndarray, value: np.ndarray) -> np.ndarray:
        r = self.config
        return r.engagement_scale * (
            r.engagement_appeal_weight * appeal + r.engagement_value_weight * value
        )

    def expected_engagement(self, appeal: np.ndarray, value: np.ndarray) -> np.ndarray:
        return self.median_engagement(appeal, value) * self._mean_factor

    def sample(
        self,
        clicked: np.ndarray,
        appeal: np.ndarray,
        value: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        r = self.config
        n = clicked.shape[0]
        # Noise is drawn for every user slot, clicked or not, so the draws that follow do not
        # depend on who clicked (and the order of draws stays that of the pinned rollouts).
        noise = rng.standard_normal((2, n))
        watch = r.engagement_appeal_weight * appeal + r.engagement_value_weight * value
        engagement = np.where(
            clicked, r.engagement_scale * watch * np.exp(r.engagement_noise * noise[0]), 0.0
        )
        rating = np.where(
            clicked, np.clip(np.rint(1.0 + 4.0 * value + r.rating_noise * noise[1]), 1, 5), 0.0
        )
        return engagement, rating
