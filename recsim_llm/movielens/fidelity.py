"""The fidelity numbers: how closely do simulated users behave like real MovieLens users?

The simulator is calibrated on each user's earliest 80% of ratings; the report compares it with
the held-out latest 20% (``recsim_llm.movielens.fit``). Every number has a reference beside it,
a popularity-only simulator (the same world with every personal signal removed: all users
alike, choice by item popularity, one rating distribution), so a reader can tell what is good:

* **held-out AUC**: the simulator's click logit of each held-out positive (rating >= 4) against
  ``negatives`` movies the user never rated, per user, averaged;
* **rating distribution**: total variation and 1-Wasserstein distance between simulated and
  real held-out ratings;
* **popularity concentration**: Gini of per-movie consumption and the share of consumption on
  the top 10% of movies, simulated vs real;
* **per-user activity**: consumptions per user (KS distance, mean, median, 90th percentile);
* **genre mix per user**: Jensen-Shannon divergence (base 2) between a user's simulated and real
  genre mix, averaged; the user's own training-period mix is the "real vs real" floor.

Simulated consumption uses a logging protocol: each step a user is shown ``slate_size`` random
movies they have not rated yet, clicks at most one (the world's choice model), rates it, and
may churn; a user's activity is their number of clicks before churning.

Data the report cannot use (no user with two ratings, so nothing held out; no held-out rating
>= 4, so no AUC) is refused by ``check_report_data`` with a ``DataFormatError`` naming the
ratings file, before the calibration runs, instead of a report of NaN AUCs. Users with a single
rating, and users with held-out positives who rated every movie (no negatives), are left out of
the AUC by design; the report counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from recsim_llm.config import WorldConfig, check_int
from recsim_llm.movielens.data import DataFormatError, MovieLens
from recsim_llm.movielens.fit import (
    check_fit_data,
    fit_rating_model,
    slate_click_probability,
    time_split,
)
from recsim_llm.movielens.metrics import (
    genre_matrix,
    gini,
    js_divergence,
    ks_distance,
    per_user_auc,
    rating_hist,
    top_share,
    total_variation,
    user_genre_mix,
    wasserstein1,
)
from recsim_llm.movielens.spec import CalibrationConfig
from recsim_llm.movielens.world import Calibration, simulate_logging
from recsim_llm.world import Catalog

__all__ = [
    "Population",
    "calibrated_population",
    "check_report_data",
    "compute_fidelity",
    "popularity_reference",
    "popularity_scores",
    "simulate_consumption",
]


# -- what the report needs ----------------------------------------------------------------------


def check_report_data(data: MovieLens, config: CalibrationConfig) -> None:
    """Refuse data the fidelity report cannot use, before anything is fitted.

    Raises:
        DataFormatError: naming the ratings file and the reason: no rating at all; no user with
            at least two ratings (the time split holds out each user's latest ratings, so a
            user with one rating has nothing held out); no rating >= 4, or none held out (the
            held-out AUC has no positives); no held-out positive of a user who left a movie
            unrated (the AUC has no negatives).
    """
    check_fit_data(data)
    path = data.ratings_file
    counts = np.bincount(data.user, minlength=len(data.users))
    if not (counts >= 2).any():
        raise DataFormatError(
            path,
            0,
            "users with at least 2 ratings (the time split holds out each user's latest "
            "ratings; a user with a single rating has nothing held out)",
            f"all {int((counts > 0).sum())} users with ratings have a single rating",
        )
    liked = data.rating >= 4.0
    if not liked.any():
        raise DataFormatError(
            path,
            0,
            "ratings >= 4 (the positives of the held-out AUC)",
            f"none among {data.n_ratings} ratings (the highest is {data.rating.max():g})",
        )
    positive = time_split(data.user, data.timestamp, config.test_fraction) & liked
    if not positive.any():
        raise DataFormatError(
            path,
            0,
            "held-out ratings >= 4 (the positives of the held-out AUC)",
            f"none: each user's latest {config.test_fraction:.0%} of ratings are all below 4",
        )
    users = np.unique(data.user[positive])
    if not (counts[users] < len(data.movies)).any():
        raise DataFormatError(
            path,
            0,
            "a user with held-out ratings >= 4 who has not rated every movie (the AUC's "
            "negatives are movies the user never rated)",
            f"all {users.size} such users rated every movie",
        )


# -- simulators ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """A simulator for the fidelity protocol: a world config and catalog, and who the users are.

    Catalog item ids are mapped to MovieLens movie rows by ``movie_of_item``.
    """

    name: str
    world_config: WorldConfig
    catalog: Catalog
    interest: np.ndarray
    """(n_users, dim) hidden interests at the start of the held-out period."""
    satisfaction: np.ndarray
    """(n_users,) initial satisfaction."""
    movie_of_item: np.ndarray
    item_of_movie: np.ndarray


def calibrated_population(calibration: Calibration) -> Population:
    """Every MovieLens user (warm and cold) in the calibrated world."""
    return Population(
        name="calibrated",
        world_config=calibration.world_config,
        catalog=calibration.catalog,
        interest=calibration.user_interest,
        satisfaction=calibration.fit.satisfaction,
        movie_of_item=calibration.movie_of_item,
        item_of_movie=calibration.item_of_movie,
    )


def _popularity_parameters(calibration: Calibration) -> dict[str, Any]:
    """Fit the popularity reference on the training logs: item appeal ``log(1 + count)``, the
    no-click utility matching the training density, one rating noise and quality, one hazard."""
    cal = calibration
    data, fit = cal.data, cal.fit
    train = ~fit.is_test
    n_users, n_movies = len(data.users), len(data.movies)
    counts = np.bincount(data.item[train], minlength=n_movies).astype(np.float64)
    log_pop = np.log1p(counts)[cal.movie_of_item]
    density = train.sum() / float(n_users * n_movies)

    lo, hi = -50.0, 50.0  # bisection: mean_i sigmoid(log_pop_i - u0) = density
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if np.mean(1.0 / (1.0 + np.exp(-(log_pop - mid)))) > density:
            lo = mid
        else:
            hi = mid
    no_click = 0.5 * (lo + hi)

    ratings = data.rating[train]
    _offset, noise, quality, _ = fit_rating_model(
        np.ones(ratings.size),
        np.zeros(ratings.size, dtype=np.int64),
        ratings,
        1,
        0.0,
        offsets=(0.0,),
    )
    sc = cal.config
    p_click = float(
        slate_click_probability(
            log_pop[None, :], no_click, sc.logging_slate_size, sc.position_bias
        )[0]
    )
    n_train = np.bincount(data.user[train], minlength=n_users)
    mean_activity = float(n_train.mean() * sc.test_fraction / (1.0 - sc.test_fraction))
    return {
        "log_pop": log_pop,
        "no_click": no_click,
        "noise": float(noise),
        "quality": float(quality[0]),
        "hazard": float(np.clip(p_click / max(mean_activity, 1e-9), 1e-5, 1.0)),
    }


def _popularity_world(
    calibration: Calibration,
    log_pop: np.ndarray,
    no_click: float,
    noise: float,
    quality: float,
    hazard: float,
) -> tuple[Catalog, WorldConfig]:
    """The popularity reference's catalog and world config: every movie has the same latent
    vector (match is 1 for everyone), appeal ``log_pop / max``, no personal dynamics.

    The one place the reference's choice model is written down."""
    cal = calibration
    weight = max(float(log_pop.max()), 1e-6)
    n_total, dim = cal.catalog.n_total, cal.catalog.n_topics
    latent = np.zeros((n_total, dim))
    latent[:, 0] = 1.0
    catalog = Catalog(
        latent=latent,
        topic=np.zeros(n_total, dtype=np.int64),
        quality=np.full(n_total, quality),
        appeal=log_pop / weight,
        clickbait=np.zeros(n_total, dtype=bool),
        arrival_step=cal.catalog.arrival_step,
        titles=cal.catalog.titles,
        descriptions=cal.catalog.descriptions,
        genres=cal.catalog.genres,
    )
    wc = cal.world_config
    world_config = replace(
        wc,
        choice=replace(
            wc.choice,
            match_weight=0.0,
            appeal_weight=float(min(weight, 100.0)),
            boredom_weight=0.0,
            no_click_base=float(no_click),
            no_click_dissatisfaction=0.0,
        ),
        response=replace(wc.response, rating_noise=float(noise)),
        dynamics=replace(
            wc.dynamics,
            filter_bubble_rate=0.0,
            drift_std=0.0,
            satisfaction_rate=0.0,
            churn_base=hazard,
            churn_max=0.0,
        ),
    )
    return catalog, world_config


def popularity_reference(calibration: Calibration) -> Population:
    """The popularity-only simulator: the calibrated pipeline with every personal signal removed.

    All users share one interest and every movie the same latent vector (match is 1), so a
    movie's click utility is ``log(1 + training count)``; the no-click utility is set so the mean
    single-movie click probability equals the training density; one quality and noise fitted to
    the global training rating distribution; one churn hazard giving the mean activity.
    """
    cal = calibration
    catalog, world_config = _popularity_world(cal, **_popularity_parameters(cal))
    n_users = len(cal.data.users)
    interest = np.zeros((n_users, cal.catalog.n_topics))
    interest[:, 0] = 1.0
    return Population(
        name="popularity reference",
        world_config=world_config,
        catalog=catalog,
        interest=interest,
        satisfaction=np.ones(n_users),
        movie_of_item=cal.movie_of_item,
        item_of_movie=cal.item_of_movie,
    )


def popularity_scores(calibration: Calibration, movies: np.ndarray) -> np.ndarray:
    """The popularity reference's ranking score of ``movies`` (the same for every user): the
    number of training ratings. Its AUC counterpart of ``Calibration.click_logits``."""
    data, fit = calibration.data, calibration.fit
    train = ~fit.is_test
    counts = np.bincount(data.item[train], minlength=len(data.movies)).astype(np.float64)
    return counts[movies]


def simulate_consumption(
    population: Population,
    excluded_movies: np.ndarray,
    slate_size: int,
    max_steps: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """``world.simulate_logging`` for a ``Population`` (see there)."""
    return simulate_logging(
        population.world_config,
        population.catalog,
        population.interest,
        population.satisfaction,
        population.movie_of_item,
        excluded_movies,
        slate_size,
        max_steps,
        rng,
    )


# -- the numbers --------------------------------------------------------------------------------


def _held_out_auc(cal: Calibration, negatives: int, seed: int) -> dict[str, Any]:
    """Per-user AUC of held-out positives against sampled unrated movies, both simulators."""
    data, fit = cal.data, cal.fit
    n_users, n_movies = len(data.users), len(data.movies)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF1DE]))
    rated = np.zeros((n_users, n_movies), dtype=bool)
    rated[data.user, data.item] = True
    pos = fit.is_test & (data.rating >= 4.0)
    auc_users = np.unique(data.user[pos])
    auc_users = auc_users[~rated[auc_users].all(axis=1)]  # users who rated everything: no negatives
    pos &= np.isin(data.user, auc_users)
    if auc_users.size == 0:  # check_report_data refuses such data first; never a NaN AUC
        raise DataFormatError(data.ratings_file, 0, "held-out ratings >= 4 for the AUC", "none")
    neg = np.empty((auc_users.size, negatives), dtype=np.int64)
    for k, u in enumerate(auc_users.tolist()):
        pool = np.flatnonzero(~rated[u])
        neg[k] = rng.choice(pool, size=negatives, replace=pool.size < negatives)
    train_count = popularity_scores(cal, np.arange(n_movies))
    auc_cal = per_user_auc(
        data.user[pos],
        data.item[pos],
        neg,
        auc_users,
        lambda u, items: cal.click_logits(np.array([u]), items)[0],
    )
    auc_pop = per_user_auc(
        data.user[pos], data.item[pos], neg, auc_users, lambda u, items: train_count[items]
    )
    cold = fit.cold_user[auc_users]
    return {
        "calibrated": round(float(auc_cal.mean()), 4),
        "popularity": round(float(auc_pop.mean()), 4),
        "calibrated_cold_users": round(float(auc_cal[cold].mean()), 4) if cold.any() else None,
        "popularity_cold_users": round(float(auc_pop[cold].mean()), 4) if cold.any() else None,
        "n_users": int(auc_users.size),
        "n_positives": int(pos.sum()),
    }


def _simulate_both(
    cal: Calibration, slate_size: int, max_steps: int, seed: int
) -> dict[str, dict[str, np.ndarray]]:
    """The held-out period simulated by both simulators (the same random slates protocol)."""
    data, fit = cal.data, cal.fit
    train = ~fit.is_test
    excluded = np.zeros((len(data.users), len(data.movies)), dtype=bool)
    excluded[data.user[train], data.item[train]] = True
    sims = {}
    for population in (calibrated_population(cal), popularity_reference(cal)):
        sim_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5140]))
        sims[population.name] = simulate_consumption(
            population, excluded, slate_size, max_steps, sim_rng
        )
    return sims


def _genre_total(mix: np.ndarray, n: np.ndarray) -> list[float]:
    return ((mix * n[:, None]).sum(axis=0) / max(float(n.sum()), 1.0)).round(4).tolist()


def _describe_simulation(
    sim: dict[str, np.ndarray],
    real: dict[str, np.ndarray],
    genre_of_movie: np.ndarray,
    n_users: int,
    n_movies: int,
) -> dict[str, Any]:
    """One simulator's numbers, each beside its distance to the real held-out logs."""
    real_hist = rating_hist(real["rating"])
    real_mix, real_n = user_genre_mix(real["user"], real["movie"], genre_of_movie, n_users)
    hist = rating_hist(sim["rating"]) if sim["rating"].size else np.zeros(5)
    pop = np.bincount(sim["movie"], minlength=n_movies)
    mix, n = user_genre_mix(sim["user"], sim["movie"], genre_of_movie, n_users)
    both = (n > 0) & (real_n > 0)
    act = sim["activity"]
    return {
        "n_consumptions": int(sim["user"].size),
        "rating_hist": hist.round(4).tolist(),
        "rating_tv": round(total_variation(hist, real_hist), 4),
        "rating_w1": round(wasserstein1(hist, real_hist), 4),
        "gini": round(gini(pop), 4),
        "top10_share": round(top_share(pop), 4),
        "activity_mean": round(float(act.mean()), 2),
        "activity_median": float(np.median(act)),
        "activity_p90": float(np.percentile(act, 90)),
        "activity_ks": round(ks_distance(act, real["activity"]), 4),
        "genre_js": round(float(js_divergence(mix[both], real_mix[both]).mean()), 4)
        if both.any()
        else None,
        "genre_users": int(both.sum()),
        "genre_total": _genre_total(mix, n),
    }


def _describe_real(
    data: MovieLens, train: np.ndarray, real: dict[str, np.ndarray], genre_of_movie: np.ndarray
) -> dict[str, Any]:
    """The real held-out logs' numbers (and the genre floor: training vs held-out mix)."""
    n_users, n_movies = len(data.users), len(data.movies)
    real_mix, real_n = user_genre_mix(real["user"], real["movie"], genre_of_movie, n_users)
    train_mix, train_n = user_genre_mix(data.user[train], data.item[train], genre_of_movie, n_users)
    both = (train_n > 0) & (real_n > 0)
    real_pop = np.bincount(real["movie"], minlength=n_movies)
    return {
        "n_consumptions": int(real["user"].size),
        "rating_hist": rating_hist(real["rating"]).round(4).tolist(),
        "gini": round(gini(real_pop), 4),
        "top10_share": round(top_share(real_pop), 4),
        "activity_mean": round(float(real["activity"].mean()), 2),
        "activity_median": float(np.median(real["activity"])),
        "activity_p90": float(np.percentile(real["activity"], 90)),
        "genre_js_train_vs_test": round(
            float(js_divergence(train_mix[both], real_mix[both]).mean()), 4
        )
        if both.any()
        else None,
        "genre_total": _genre_total(real_mix, real_n),
    }


def compute_fidelity(
    calibration: Calibration,
    negatives: int = 100,
    seed: int = 0,
    slate_size: int | None = None,
    max_steps: int = 3000,
) -> dict[str, Any]:
    """All fidelity numbers (plain JSON-ready dict) plus the raw arrays under ``'_arrays'``.

    Raises:
        ValueError: an argument is out of range.
        DataFormatError: the data has nothing to evaluate (``check_report_data``).
    """
    cal = calibration
    check_int("negatives", negatives, 1)
    slate_size = cal.config.logging_slate_size if slate_size is None else slate_size
    check_int("slate_size", slate_size, 1)
    check_int("max_steps", max_steps, 1)
    check_int("seed", seed, 0)
    data, fit = cal.data, cal.fit
    check_report_data(data, cal.config)
    n_users, n_movies = len(data.users), len(data.movies)
    test, train = fit.is_test, ~fit.is_test

    auc = _held_out_auc(cal, negatives, seed)
    sims = _simulate_both(cal, slate_size, max_steps, seed)
    real = {
        "user": data.user[test],
        "movie": data.item[test],
        "rating": data.rating[test],
        "activity": np.bincount(data.user[test], minlength=n_users),
    }
    genre_of_movie, genre_names = genre_matrix(data.movies.genres)
    counts = np.bincount(data.user, minlength=n_users)
    return {
        "calibration": cal.summary(),
        "protocol": {
            "split": f"time-based, last {cal.config.test_fraction:.0%} of each user's ratings",
            "negatives_per_user": negatives,
            "slate_size": slate_size,
            "max_steps": max_steps,
            "seed": seed,
            "users_with_one_rating": int((counts == 1).sum()),
        },
        "auc": auc,
        "real": _describe_real(data, train, real, genre_of_movie),
        "simulated": {
            name: _describe_simulation(sim, real, genre_of_movie, n_users, n_movies)
            for name, sim in sims.items()
        },
        "genres": list(genre_names),
        "_arrays": {
            "real": real,
            **sims,
            "real_pop": np.bincount(real["movie"], minlength=n_movies),
        },
    }
