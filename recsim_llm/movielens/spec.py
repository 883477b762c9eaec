"""What the MovieLens calibration is told (``CalibrationConfig``) and what it produces
(``CalibrationFit``): the records the fit, the world builder and the cache share.

``CalibrationConfig`` is validated like every config of the package (``recsim_llm.config``): a
frozen dataclass whose ``__post_init__`` raises ``ValueError`` naming the field and the allowed
range, through the same ``check_int`` / ``check_float`` helpers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsim_llm.config import check_float, check_int

__all__ = ["FIT_ARRAYS", "WORLD_DIM", "CalibrationConfig", "CalibrationFit"]

WORLD_DIM = 16
"""Interest-space dimension of the calibrated world (the catalog's ``n_topics``)."""


def _check_below_one(name: str, value: float, low: str) -> None:
    """The upper bound of a half-open ``[0, 1)`` / ``(0, 1)`` range (``check_float`` closes it)."""
    if value >= 1.0:
        raise ValueError(f"{name} must be in {low}0, 1), got {value}")


@dataclass(frozen=True)
class CalibrationConfig:
    """How the MovieLens world is fitted."""

    test_fraction: float = 0.2
    """Share of each user's ratings, the latest, held out (time-based split)."""
    cold_user_fraction: float = 0.1
    """Share of users kept out of the item fit; they become cold-start users."""
    latent_dim: int = 15
    """Dimension of the fitted taste vectors (the world adds one constant coordinate)."""
    iterations: int = 150
    """Full-batch Adam steps of the logistic factorisation."""
    learning_rate: float = 0.05
    """Adam step size."""
    bias_l2: float = 1e-4
    """L2 penalty on the item biases (per entry of the loss mean)."""
    quality_prior: float = 5.0
    """Pseudo-ratings shrinking each movie's quality toward the global fit."""
    logging_slate_size: int = 10
    """Random movies shown per step by the logging protocol used to fit churn (and fidelity)."""
    satisfaction_rate: float = 0.02
    """Step of satisfaction per unit of (consumed value - its training mean)."""
    boredom_weight: float = 0.5
    """Utility lost per unit of genre boredom (not identifiable from ratings; a mild default)."""
    position_bias: float = 0.5
    """Utility lost per log(1 + position) (not identifiable from ratings; the world default)."""
    filter_bubble_rate: float = 0.0
    """Step of a user's interest toward a consumed movie. Not identifiable from ratings, and 0
    by default: because the world's match weight is large, even 0.01 per click pulls users'
    consumption toward the long tail (popularity Gini 0.26 instead of 0.55 in the fidelity
    protocol)."""
    drift_std: float = 0.0
    """Random walk of interests per step; 0 because fitted tastes are sharp: the world's match
    weight is large, so even small drift would wash them out within a session."""
    activity_shrink: tuple[float, ...] = (0.4, 0.7, 1.0)
    """Exponents tried for shrinking each user's target activity toward the mean (1 = none).
    Churn is a per-step coin, which adds geometric spread on top of the users' differences;
    the exponent whose simulated activity distribution is closest (KS) to the training one wins.
    Empty: no simulation-based refinement (faster, activity less faithful)."""
    new_items_per_step: int = 2
    """New movies arriving per world step, in order of release year (then movie id)."""
    seed: int = 0
    """Seed of the factorisation's initialisation and the cold-user draw."""

    def __post_init__(self) -> None:
        check_float("calibration.test_fraction", self.test_fraction, 0.0, 1.0, open_low=True)
        _check_below_one("calibration.test_fraction", self.test_fraction, "(")
        check_float("calibration.cold_user_fraction", self.cold_user_fraction, 0.0, 1.0)
        _check_below_one("calibration.cold_user_fraction", self.cold_user_fraction, "[")
        check_int("calibration.latent_dim", self.latent_dim, 2, WORLD_DIM - 1)
        check_int("calibration.iterations", self.iterations, 1)
        check_float("calibration.learning_rate", self.learning_rate, 0.0, 1.0, open_low=True)
        check_float("calibration.bias_l2", self.bias_l2, 0.0)
        check_float("calibration.quality_prior", self.quality_prior, 0.0)
        check_int("calibration.logging_slate_size", self.logging_slate_size, 1)
        check_float("calibration.satisfaction_rate", self.satisfaction_rate, 0.0, 1.0)
        check_float("calibration.boredom_weight", self.boredom_weight, 0.0, 100.0)
        check_float("calibration.position_bias", self.position_bias, 0.0, 100.0)
        check_float("calibration.filter_bubble_rate", self.filter_bubble_rate, 0.0, 1.0)
        check_float("calibration.drift_std", self.drift_std, 0.0, 10.0)
        if not isinstance(self.activity_shrink, tuple):
            raise ValueError(
                "calibration.activity_shrink must be a tuple of numbers in [0, 1], "
                f"got {self.activity_shrink!r}"
            )
        for k, gamma in enumerate(self.activity_shrink):
            check_float(f"calibration.activity_shrink[{k}]", gamma, 0.0, 1.0)
        check_int("calibration.new_items_per_step", self.new_items_per_step, 1)
        check_int("calibration.seed", self.seed, 0)


FIT_ARRAYS: dict[str, tuple[str, str]] = {
    "is_test": ("bool", "n_ratings"),
    "cold_user": ("bool", "n_users"),
    "known_item": ("bool", "n_movies"),
    "user_vec": ("float64", "n_users, latent_dim"),
    "item_vec": ("float64", "n_movies, latent_dim"),
    "item_bias": ("float64", "n_movies"),
    "quality": ("float64", "n_movies"),
    "satisfaction": ("float64", "n_users"),
}
"""The arrays of a ``CalibrationFit``: name -> (dtype, shape in terms of the data and config).
The on-disk cache checks a file against this before trusting it."""


@dataclass(frozen=True)
class CalibrationFit:
    """Everything fitted: plain arrays and numbers (what the on-disk cache stores)."""

    is_test: np.ndarray
    """(n_ratings,) held-out flag of each rating."""
    cold_user: np.ndarray
    """(n_users,) users kept out of the item fit."""
    known_item: np.ndarray
    """(n_movies,) movies with training ratings from fitted users (the rest are new items)."""
    user_vec: np.ndarray
    """(n_users, latent_dim) unit taste vectors."""
    item_vec: np.ndarray
    """(n_movies, latent_dim) unit movie vectors (predicted from content for new movies)."""
    item_bias: np.ndarray
    """(n_movies,) logit bias of being rated."""
    quality: np.ndarray
    """(n_movies,) quality in [0, 1]."""
    satisfaction: np.ndarray
    """(n_users,) initial satisfaction (encodes activity through churn)."""
    scalars: dict[str, float]
    """scale, offset, rating_noise, value_reference, churn_base, churn_max, churn_threshold,
    churn_width, no_click_base, final_loss, ..."""
