"""The calibrated world: catalog, world config and user pools built from a ``CalibrationFit``.

``build_calibration`` maps a fit onto the simulator (``recsim_llm.movielens.fit`` explains the
mapping): item ids are movies with training ratings first, then new movies in order of arrival;
users are every MovieLens user with a world interest vector and a demographic profile text.
``Calibration`` holds the result and makes worlds whose new users are real users
(``MovieLensUserSampler``). ``simulate_logging`` is the logging protocol shared by the activity
refinement of the fit and by the fidelity report.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from recsim_llm import text
from recsim_llm.config import (
    CatalogConfig,
    ChoiceConfig,
    DynamicsConfig,
    ResponseConfig,
    UserConfig,
    WorldConfig,
)
from recsim_llm.movielens.data import MovieLens
from recsim_llm.movielens.spec import WORLD_DIM, CalibrationConfig, CalibrationFit
from recsim_llm.world import Catalog, NewUsers, World, item_utility, no_click_utility

__all__ = [
    "TOPIC_GENRES",
    "Calibration",
    "MovieLensUserSampler",
    "build_calibration",
    "click_logits",
    "simulate_logging",
]

TOPIC_GENRES: tuple[str, ...] = (
    "Drama",
    "Comedy",
    "Thriller",
    "Action",
    "Romance",
    "Adventure",
    "Children's",
    "Crime",
    "Sci-Fi",
    "Horror",
    "War",
    "Mystery",
    "Musical",
    "Documentary",
    "Animation",
    "other",
)
"""Boredom topics: the 15 most common MovieLens genres, then 'other' (Western, Film-Noir,
Fantasy, unknown). A movie's topic is its first listed genre."""


class MovieLensUserSampler:
    """Draws real users: fitted hidden tastes, satisfaction from activity, demographic profile.

    Args:
        interest: (n_pool, dim) unit interest vectors of the pool.
        satisfaction: (n_pool,) initial satisfaction.
        profiles: profile text of each pool user.
        user_rows: (n_pool,) row of each pool user in the MovieLens user table.
    """

    def __init__(
        self,
        interest: np.ndarray,
        satisfaction: np.ndarray,
        profiles: tuple[str, ...],
        user_rows: np.ndarray,
    ) -> None:
        if interest.shape[0] == 0:
            raise ValueError("the user pool is empty")
        self.interest = interest
        self.satisfaction = satisfaction
        self.profiles = profiles
        self.user_rows = user_rows
        self.last_drawn = np.zeros(0, dtype=np.int64)
        """Pool indices of the users drawn by the latest ``sample`` call."""

    def sample(self, n: int, rng: np.random.Generator) -> NewUsers:
        pick = rng.integers(self.interest.shape[0], size=n)
        self.last_drawn = pick
        return NewUsers(
            interest=self.interest[pick].copy(),
            satisfaction=self.satisfaction[pick].copy(),
            profiles=tuple(self.profiles[i] for i in pick.tolist()),
        )

    def sample_interest(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Tastes of other real users (a taste shift makes a user like someone else)."""
        return self.interest[rng.integers(self.interest.shape[0], size=n)].copy()


class _PoolSampler:
    """Only for the World's constructor: the logging simulation places users itself."""

    def __init__(self, interest: np.ndarray) -> None:
        self.interest = interest

    def sample(self, n: int, rng: np.random.Generator) -> NewUsers:
        pick = rng.integers(self.interest.shape[0], size=n)
        return NewUsers(self.interest[pick].copy(), np.ones(n), tuple("" for _ in range(n)))

    def sample_interest(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.interest[rng.integers(self.interest.shape[0], size=n)].copy()


def simulate_logging(
    world_config: WorldConfig,
    catalog: Catalog,
    interest: np.ndarray,
    satisfaction: np.ndarray,
    movie_of_item: np.ndarray,
    excluded_movies: np.ndarray,
    slate_size: int,
    max_steps: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The logging protocol: every user sees random unrated movies until they churn.

    Each step a user is shown ``slate_size`` random movies they may still be shown, clicks at
    most one through the world's choice model, rates it, and may churn (``World.step``).

    Args:
        world_config, catalog: the simulated world.
        interest, satisfaction: (n_users, dim) and (n_users,) starting hidden state.
        movie_of_item: MovieLens movie row of each catalog item id.
        excluded_movies: (n_users, n_movies) bool, movies a user is never shown (already rated);
            movies consumed in the simulation are added.
        slate_size: movies shown per step.
        max_steps: cap on steps per user.
        rng: the only source of randomness.

    Returns:
        ``user``, ``movie``, ``rating`` of every simulated consumption, ``activity`` (clicks
        per user) and ``steps`` (steps each user stayed).
    """
    n_users = interest.shape[0]
    n_items = catalog.n_total
    world = World(world_config, n_users, catalog, _PoolSampler(interest))
    world.interest[:] = interest
    world.satisfaction[:] = satisfaction
    world.boredom[:] = 0.0
    excluded = excluded_movies[:, movie_of_item].copy()  # now indexed by item id
    rows = np.arange(n_users)
    # Each user walks a private random order of the catalog, skipping excluded items.
    perm = np.argsort(rng.random((n_users, n_items)), axis=1)
    pointer = np.zeros(n_users, dtype=np.int64)
    offsets = np.arange(min(n_items, 4 * slate_size))
    active = np.ones(n_users, dtype=bool)
    steps = np.zeros(n_users, dtype=np.int64)
    out_user: list[np.ndarray] = []
    out_item: list[np.ndarray] = []
    out_rating: list[np.ndarray] = []
    for _ in range(max_steps):
        if not active.any():
            break
        cand = perm[rows[:, None], (pointer[:, None] + offsets[None, :]) % n_items]
        valid = ~excluded[rows[:, None], cand]
        order = np.argsort(~valid, axis=1, kind="stable")[:, :slate_size]
        slates = np.take_along_axis(cand, order, axis=1)
        pointer = (pointer + order.max(axis=1) + 1) % n_items
        responses = world.step(slates, rng)
        clicked = (responses.click_pos >= 0) & active
        c_rows = rows[clicked]
        items = responses.clicked_item[clicked]
        excluded[c_rows, items] = True
        out_user.append(c_rows)
        out_item.append(items)
        out_rating.append(responses.rating[clicked])
        steps += active
        active &= ~responses.churned
    user = np.concatenate(out_user) if out_user else np.zeros(0, dtype=np.int64)
    item = np.concatenate(out_item) if out_item else np.zeros(0, dtype=np.int64)
    return {
        "user": user,
        "movie": movie_of_item[item],
        "rating": np.concatenate(out_rating) if out_rating else np.zeros(0),
        "activity": np.bincount(user, minlength=n_users),
        "steps": steps,
    }


def _world_vectors(vec: np.ndarray, offset: float) -> np.ndarray:
    """Fitted unit vectors with the constant coordinate: cosines become offset + (1-offset)cos."""
    alpha = math.sqrt(offset / (1.0 - offset))
    out = np.concatenate([np.full((vec.shape[0], 1), alpha), vec], axis=1)
    out = out / math.sqrt(1.0 + alpha * alpha)
    if out.shape[1] < WORLD_DIM:
        out = np.concatenate([out, np.zeros((out.shape[0], WORLD_DIM - out.shape[1]))], axis=1)
    return out


def _topic(genres: tuple[str, ...]) -> int:
    first = genres[0] if genres else "unknown"
    return TOPIC_GENRES.index(first) if first in TOPIC_GENRES else len(TOPIC_GENRES) - 1


@dataclass
class Calibration:
    """A fitted MovieLens world: catalog, world config, user pools, and the fit behind them.

    Item ids of the catalog: movies with training ratings first (present from the start), then
    new movies in order of arrival. ``movie_of_item`` maps item ids to MovieLens movie rows.
    """

    data: MovieLens
    fit: CalibrationFit
    config: CalibrationConfig
    catalog: Catalog
    world_config: WorldConfig
    movie_of_item: np.ndarray
    item_of_movie: np.ndarray
    user_interest: np.ndarray
    """(n_users, 16) world interest vectors of every MovieLens user."""
    profiles: tuple[str, ...]
    fit_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def warm_users(self) -> np.ndarray:
        return np.flatnonzero(~self.fit.cold_user)

    @property
    def cold_users(self) -> np.ndarray:
        return np.flatnonzero(self.fit.cold_user)

    def user_sampler(self, pool: str = "warm") -> MovieLensUserSampler:
        """Sampler over 'warm' (fitted), 'cold' (held-out, cold-start) or 'all' users."""
        if pool == "warm":
            rows = self.warm_users
        elif pool == "cold":
            rows = self.cold_users
        elif pool == "all":
            rows = np.arange(len(self.data.users))
        else:
            raise ValueError(f"user_pool must be 'warm', 'cold' or 'all', got {pool!r}")
        return MovieLensUserSampler(
            self.user_interest[rows],
            self.fit.satisfaction[rows],
            tuple(self.profiles[i] for i in rows.tolist()),
            rows,
        )

    def make_world(self, n_users: int, pool: str = "warm") -> World:
        """A world of ``n_users`` slots whose new users are real users from ``pool``."""
        return World(self.world_config, n_users, self.catalog, self.user_sampler(pool))

    def click_logits(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """(len(users), len(movies)) logit of clicking each movie shown alone at slot 0.

        ``world utility - no-click utility`` for fresh users (no boredom): the simulator's
        choice score used for held-out AUC (``click_logits`` below holds the formula).
        """
        items = self.item_of_movie[movies]
        return click_logits(
            self.world_config.choice,
            self.user_interest[users],
            self.fit.satisfaction[users],
            self.catalog.latent[items],
            self.catalog.appeal[items],
        )

    def summary(self) -> dict[str, Any]:
        """Plain-number description of the fit (for reports and JSON)."""
        return {
            "data_dir": self.data.data_dir,
            "layout": self.data.layout,
            "n_users": len(self.data.users),
            "n_cold_users": int(self.fit.cold_user.sum()),
            "n_movies": len(self.data.movies),
            "n_new_movies": int((~self.fit.known_item).sum()),
            "n_train_ratings": int((~self.fit.is_test).sum()),
            "n_test_ratings": int(self.fit.is_test.sum()),
            "fit_seconds": round(self.fit_seconds, 3),
            "config": asdict(self.config),
            "scalars": dict(self.fit.scalars),
        }


def click_logits(
    choice: ChoiceConfig,
    interest: np.ndarray,
    satisfaction: np.ndarray,
    latent: np.ndarray,
    appeal: np.ndarray,
) -> np.ndarray:
    """(n_users, n_items) single-slot click logit: the world's MNL utility of each item for a
    fresh user (no boredom, slot 0) minus the no-click utility, from the world's own formulas.
    """
    utility = item_utility(choice, interest @ latent.T, appeal[None, :])
    return utility - no_click_utility(choice, satisfaction)[:, None]


def _item_order(data: MovieLens, fit: CalibrationFit) -> tuple[np.ndarray, np.ndarray, int]:
    """(movie_of_item, item_of_movie, number of movies present from the start)."""
    n_movies = len(data.movies)
    known = np.flatnonzero(fit.known_item)
    new = np.flatnonzero(~fit.known_item)
    # New movies arrive by release year (then id): observable before any held-out rating, so the
    # held-out period's timestamps do not leak into the world.
    new = new[np.lexsort((new, data.movies.years[new]))]
    movie_of_item = np.concatenate([known, new])
    item_of_movie = np.empty(n_movies, dtype=np.int64)
    item_of_movie[movie_of_item] = np.arange(n_movies)
    return movie_of_item, item_of_movie, int(known.size)


def _build_catalog(
    data: MovieLens,
    fit: CalibrationFit,
    config: CalibrationConfig,
    movie_of_item: np.ndarray,
    n_known: int,
) -> Catalog:
    """The movies as catalog items, in item-id order."""
    sc = fit.scalars
    n_movies = len(data.movies)
    latent = _world_vectors(fit.item_vec[movie_of_item], sc["offset"])
    bias = np.maximum(fit.item_bias[movie_of_item], sc["bias_low"])
    appeal = np.clip((bias - sc["bias_low"]) / sc["appeal_weight"], 0.0, 1.0)
    arrival = np.zeros(n_movies, dtype=np.int64)
    arrival[n_known:] = 1 + np.arange(n_movies - n_known) // config.new_items_per_step
    genres = tuple(data.movies.genres[m] for m in movie_of_item.tolist())
    return Catalog(
        latent=latent,
        topic=np.array([_topic(g) for g in genres], dtype=np.int64),
        quality=fit.quality[movie_of_item].astype(np.float64),
        appeal=appeal,
        clickbait=np.zeros(n_movies, dtype=bool),
        arrival_step=arrival,
        titles=tuple(data.movies.titles[m] for m in movie_of_item.tolist()),
        descriptions=tuple(
            text.movie_description(int(data.movies.years[m]), data.movies.genres[m])
            for m in movie_of_item.tolist()
        ),
        genres=tuple(text.movie_genres(g) for g in genres),
    )


def _build_world_config(
    fit: CalibrationFit, config: CalibrationConfig, n_known: int, n_new: int
) -> WorldConfig:
    """The world's parameters from the fitted scalars (clipped into the config's ranges)."""
    sc = fit.scalars
    return WorldConfig(
        catalog=CatalogConfig(
            n_items=n_known,
            n_new_items=n_new,
            new_items_per_step=config.new_items_per_step,
            n_topics=WORLD_DIM,
            clickbait_fraction=0.0,
        ),
        users=UserConfig(),
        choice=ChoiceConfig(
            model="mnl",
            match_weight=float(min(sc["match_weight"], 100.0)),
            appeal_weight=float(min(sc["appeal_weight"], 100.0)),
            boredom_weight=config.boredom_weight,
            position_bias=config.position_bias,
            no_click_base=float(np.clip(sc["no_click_base"], -100.0, 100.0)),
            no_click_dissatisfaction=0.0,
        ),
        response=ResponseConfig(rating_noise=float(sc["rating_noise"])),
        dynamics=DynamicsConfig(
            filter_bubble_rate=config.filter_bubble_rate,
            drift_std=config.drift_std,
            satisfaction_rate=config.satisfaction_rate,
            value_reference=float(np.clip(sc["value_reference"], 0.0, 1.0)),
            churn_base=sc["churn_base"],
            churn_max=sc["churn_max"],
            churn_threshold=sc["churn_threshold"],
            churn_width=sc["churn_width"],
        ),
    )


def build_calibration(
    data: MovieLens, fit: CalibrationFit, config: CalibrationConfig | None = None
) -> Calibration:
    """Assemble catalog, world config and user vectors from a fit."""
    config = config or CalibrationConfig()
    movie_of_item, item_of_movie, n_known = _item_order(data, fit)
    users = data.users
    profiles = tuple(
        text.demographic_profile_text(int(users.age[i]), users.gender[i], users.occupation[i])
        for i in range(len(users))
    )
    return Calibration(
        data=data,
        fit=fit,
        config=config,
        catalog=_build_catalog(data, fit, config, movie_of_item, n_known),
        world_config=_build_world_config(fit, config, n_known, len(data.movies) - n_known),
        movie_of_item=movie_of_item,
        item_of_movie=item_of_movie,
        user_interest=_world_vectors(fit.user_vec, fit.scalars["offset"]),
        profiles=profiles,
    )
