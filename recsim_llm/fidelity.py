"""``recsim-llm fidelity``: how closely do simulated users behave like real MovieLens users?

The simulator is calibrated on each user's earliest 80% of ratings; the report compares it with
the held-out latest 20% (``recsim_llm.calibration``). Every number has a reference beside it, a
popularity-only simulator (the same world with every personal signal removed: all users alike,
choice by item popularity, one rating distribution), so a reader can tell what is good:

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
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm.results import atomic_write_bytes

HELP = "Compare a MovieLens-calibrated world with held-out real logs (fidelity report)."

__all__ = [
    "HELP",
    "Population",
    "add_arguments",
    "compute_fidelity",
    "gini",
    "popularity_reference",
    "run",
    "simulate_consumption",
    "top_share",
    "write_report",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recsim-llm fidelity``."""
    parser.add_argument("--data-dir", required=True, help="MovieLens-100K directory (GroupLens or RecBole layout)")
    parser.add_argument("--out", required=True, help="output directory for the report")
    parser.add_argument("--seed", type=int, default=0, help="seed of negatives and simulation")
    parser.add_argument("--negatives", type=int, default=100, help="sampled negatives per user for AUC")
    parser.add_argument("--slate-size", type=int, default=None, help="movies shown per simulated step (default: the calibration's logging slate size)")
    parser.add_argument("--max-steps", type=int, default=3000, help="cap on simulated steps per user")
    parser.add_argument("--cache-dir", default=None, help="optional on-disk cache of the calibration fit")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")


# -- metrics -----------------------------------------------------------------------------------


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0 = equal, towards 1 = concentrated)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return 0.0
    return float((2.0 * np.sum(np.arange(1, n + 1) * x) / (n * total)) - (n + 1.0) / n)


def top_share(counts: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the total held by the top ``fraction`` of entries."""
    x = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    total = x.sum()
    if total <= 0:
        return 0.0
    k = max(1, int(math.ceil(fraction * x.size)))
    return float(x[:k].sum() / total)


def _rating_hist(ratings: np.ndarray) -> np.ndarray:
    r = np.clip(np.rint(ratings).astype(np.int64), 1, 5)
    h = np.bincount(r, minlength=6)[1:].astype(np.float64)
    return h / max(h.sum(), 1.0)


def _tv(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(p - q).sum())


def _w1(p: np.ndarray, q: np.ndarray) -> float:
    """1-Wasserstein distance between distributions on 1..5 (rating points)."""
    return float(np.abs(np.cumsum(p) - np.cumsum(q)).sum())


def _js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Jensen-Shannon divergence, base 2 (0 = same mix, 1 = disjoint)."""
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(a > 0, a * np.log2(a / np.where(b > 0, b, 1.0)), 0.0)
        return t.sum(axis=1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def _genre_matrix(genres: tuple[tuple[str, ...], ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    from recsim_llm.movielens import GENRES

    g = np.zeros((len(genres), len(GENRES)))
    index = {name: k for k, name in enumerate(GENRES)}
    for i, names in enumerate(genres):
        names = names or ("unknown",)
        for name in names:
            g[i, index[name]] += 1.0 / len(names)
    return g, GENRES


def _user_genre_mix(
    user: np.ndarray, movie: np.ndarray, genre_of_movie: np.ndarray, n_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n_users, n_genres) genre shares of each user's consumption, and consumption counts."""
    mix = np.zeros((n_users, genre_of_movie.shape[1]))
    np.add.at(mix, user, genre_of_movie[movie])
    counts = np.bincount(user, minlength=n_users)
    total = mix.sum(axis=1, keepdims=True)
    return mix / np.maximum(total, 1e-12), counts


def _per_user_auc(
    pos_user: np.ndarray,
    pos_item: np.ndarray,
    neg: np.ndarray,
    neg_users: np.ndarray,
    score_of: Any,
) -> np.ndarray:
    """AUC per user in ``neg_users`` (row k of ``neg`` = that user's negatives)."""
    out = np.empty(neg_users.size)
    order = np.argsort(pos_user, kind="stable")
    pu, pi = pos_user[order], pos_item[order]
    starts = np.searchsorted(pu, neg_users, side="left")
    ends = np.searchsorted(pu, neg_users, side="right")
    for k, u in enumerate(neg_users.tolist()):
        items = np.concatenate([pi[starts[k] : ends[k]], neg[k]])
        s = score_of(u, items)
        sp, sn = s[: ends[k] - starts[k]], s[ends[k] - starts[k] :]
        greater = (sp[:, None] > sn[None, :]).mean()
        ties = (sp[:, None] == sn[None, :]).mean()
        out[k] = greater + 0.5 * ties
    return out


# -- simulation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """A simulator for the fidelity protocol: a world config and catalog, and who the users are.

    Catalog item ids are mapped to MovieLens movie rows by ``movie_of_item``.
    """

    name: str
    world_config: Any
    catalog: Any
    interest: np.ndarray
    """(n_users, dim) hidden interests at the start of the held-out period."""
    satisfaction: np.ndarray
    """(n_users,) initial satisfaction."""
    movie_of_item: np.ndarray
    item_of_movie: np.ndarray


def calibrated_population(calibration: Any) -> Population:
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


def popularity_reference(calibration: Any) -> Population:
    """The popularity-only simulator: the calibrated pipeline with every personal signal removed.

    All users share one interest and every movie the same latent vector (match is 1), so a
    movie's click utility is ``log(1 + training count)``; the no-click utility is set so the mean
    single-movie click probability equals the training density; one quality and noise fitted to
    the global training rating distribution; one churn hazard giving the mean activity.
    """
    from dataclasses import replace

    from recsim_llm.calibration import (
        _fit_rating_model,
        _slate_click_probability,
    )
    from recsim_llm.world.catalog import Catalog

    cal = calibration
    data, fit = cal.data, cal.fit
    train = ~fit.is_test
    n_users, n_movies = len(data.users), len(data.movies)
    counts = np.bincount(data.item[train], minlength=n_movies).astype(np.float64)
    log_pop = np.log1p(counts)[cal.movie_of_item]
    weight = max(float(log_pop.max()), 1e-6)
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
    offset, noise, quality, _ = _fit_rating_model(
        np.ones(ratings.size), np.zeros(ratings.size, dtype=np.int64), ratings, 1, 0.0,
        offsets=(0.0,),
    )
    sc = cal.config
    p_click = float(
        _slate_click_probability(log_pop[None, :], no_click, sc.logging_slate_size, sc.position_bias)[0]
    )
    n_train = np.bincount(data.user[train], minlength=n_users)
    mean_activity = float(n_train.mean() * sc.test_fraction / (1.0 - sc.test_fraction))
    hazard = float(np.clip(p_click / max(mean_activity, 1e-9), 1e-5, 1.0))

    dim = cal.catalog.n_topics
    latent = np.zeros((cal.catalog.n_total, dim))
    latent[:, 0] = 1.0
    catalog = Catalog(
        latent=latent,
        topic=np.zeros(cal.catalog.n_total, dtype=np.int64),
        quality=np.full(cal.catalog.n_total, float(quality[0])),
        appeal=log_pop / weight,
        clickbait=np.zeros(cal.catalog.n_total, dtype=bool),
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
    interest = np.zeros((n_users, dim))
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


def simulate_consumption(
    population: Population,
    excluded_movies: np.ndarray,
    slate_size: int,
    max_steps: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """``calibration.simulate_logging`` for a ``Population`` (see there)."""
    from recsim_llm.calibration import simulate_logging

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


# -- the report --------------------------------------------------------------------------------


def compute_fidelity(
    calibration: Any,
    negatives: int = 100,
    seed: int = 0,
    slate_size: int | None = None,
    max_steps: int = 3000,
) -> dict[str, Any]:
    """All fidelity numbers (plain JSON-ready dict) plus the raw arrays under ``'_arrays'``."""
    if isinstance(negatives, bool) or not isinstance(negatives, int) or negatives < 1:
        raise ValueError(f"--negatives must be a positive integer, got {negatives!r}")
    slate_size = calibration.config.logging_slate_size if slate_size is None else slate_size
    if isinstance(slate_size, bool) or not isinstance(slate_size, int) or slate_size < 1:
        raise ValueError(f"--slate-size must be a positive integer, got {slate_size!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"--max-steps must be a positive integer, got {max_steps!r}")
    from recsim_llm.calibration import ks_distance

    cal = calibration
    data, fit = cal.data, cal.fit
    n_users, n_movies = len(data.users), len(data.movies)
    test, train = fit.is_test, ~fit.is_test
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF1DE]))

    # Held-out AUC of positives (rating >= 4) against unrated movies.
    rated = np.zeros((n_users, n_movies), dtype=bool)
    rated[data.user, data.item] = True
    pos = test & (data.rating >= 4.0)
    auc_users = np.unique(data.user[pos])
    neg = np.empty((auc_users.size, negatives), dtype=np.int64)
    for k, u in enumerate(auc_users.tolist()):
        pool = np.flatnonzero(~rated[u])
        neg[k] = rng.choice(pool, size=negatives, replace=pool.size < negatives)
    train_count = np.bincount(data.item[train], minlength=n_movies).astype(np.float64)
    auc_cal = _per_user_auc(
        data.user[pos], data.item[pos], neg, auc_users,
        lambda u, items: cal.click_logits(np.array([u]), items)[0],
    )
    auc_pop = _per_user_auc(
        data.user[pos], data.item[pos], neg, auc_users, lambda u, items: train_count[items]
    )
    cold = fit.cold_user[auc_users]

    # Simulated held-out period for both simulators (the same random slates protocol).
    excluded = np.zeros((n_users, n_movies), dtype=bool)
    excluded[data.user[train], data.item[train]] = True
    sims = {}
    for population in (calibrated_population(cal), popularity_reference(cal)):
        sim_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5140]))
        sims[population.name] = simulate_consumption(
            population, excluded, slate_size, max_steps, sim_rng
        )
    real = {
        "user": data.user[test],
        "movie": data.item[test],
        "rating": data.rating[test],
        "activity": np.bincount(data.user[test], minlength=n_users),
    }

    genre_of_movie, genre_names = _genre_matrix(data.movies.genres)
    real_mix, real_n = _user_genre_mix(real["user"], real["movie"], genre_of_movie, n_users)
    train_mix, train_n = _user_genre_mix(
        data.user[train], data.item[train], genre_of_movie, n_users
    )
    real_hist = _rating_hist(real["rating"])
    real_pop = np.bincount(real["movie"], minlength=n_movies)

    def describe(sim: dict[str, np.ndarray]) -> dict[str, Any]:
        hist = _rating_hist(sim["rating"]) if sim["rating"].size else np.zeros(5)
        pop = np.bincount(sim["movie"], minlength=n_movies)
        mix, n = _user_genre_mix(sim["user"], sim["movie"], genre_of_movie, n_users)
        both = (n > 0) & (real_n > 0)
        act = sim["activity"]
        return {
            "n_consumptions": int(sim["user"].size),
            "rating_hist": hist.round(4).tolist(),
            "rating_tv": round(_tv(hist, real_hist), 4),
            "rating_w1": round(_w1(hist, real_hist), 4),
            "gini": round(gini(pop), 4),
            "top10_share": round(top_share(pop), 4),
            "activity_mean": round(float(act.mean()), 2),
            "activity_median": float(np.median(act)),
            "activity_p90": float(np.percentile(act, 90)),
            "activity_ks": round(ks_distance(act, real["activity"]), 4),
            "genre_js": round(float(_js(mix[both], real_mix[both]).mean()), 4) if both.any() else None,
            "genre_users": int(both.sum()),
            "genre_total": (
                (mix * n[:, None]).sum(axis=0) / max(float(n.sum()), 1.0)
            ).round(4).tolist(),
        }

    both_real = (train_n > 0) & (real_n > 0)
    result: dict[str, Any] = {
        "calibration": cal.summary(),
        "protocol": {
            "split": f"time-based, last {cal.config.test_fraction:.0%} of each user's ratings",
            "negatives_per_user": negatives,
            "slate_size": slate_size,
            "max_steps": max_steps,
            "seed": seed,
        },
        "auc": {
            "calibrated": round(float(auc_cal.mean()), 4),
            "popularity": round(float(auc_pop.mean()), 4),
            "calibrated_cold_users": round(float(auc_cal[cold].mean()), 4) if cold.any() else None,
            "popularity_cold_users": round(float(auc_pop[cold].mean()), 4) if cold.any() else None,
            "n_users": int(auc_users.size),
            "n_positives": int(pos.sum()),
        },
        "real": {
            "n_consumptions": int(real["user"].size),
            "rating_hist": real_hist.round(4).tolist(),
            "gini": round(gini(real_pop), 4),
            "top10_share": round(top_share(real_pop), 4),
            "activity_mean": round(float(real["activity"].mean()), 2),
            "activity_median": float(np.median(real["activity"])),
            "activity_p90": float(np.percentile(real["activity"], 90)),
            "genre_js_train_vs_test": round(
                float(_js(train_mix[both_real], real_mix[both_real]).mean()), 4
            ),
            "genre_total": (
                (real_mix * real_n[:, None]).sum(axis=0) / max(float(real_n.sum()), 1.0)
            ).round(4).tolist(),
        },
        "simulated": {name: describe(sim) for name, sim in sims.items()},
        "genres": list(genre_names),
        "_arrays": {"real": real, **sims, "real_pop": real_pop},
    }
    return result


def _table(result: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Rows: metric, real, calibrated, popularity reference, better (closer to real / higher)."""
    r, cal, ref = result["real"], result["simulated"]["calibrated"], result["simulated"]["popularity reference"]
    a = result["auc"]

    def better(c: float | None, p: float | None, target: float | None = None, high: bool = False) -> str:
        if c is None or p is None:
            return ""
        if high:
            return "calibrated" if c > p else "reference" if p > c else "tie"
        if target is not None:
            c, p = abs(c - target), abs(p - target)
        return "calibrated" if c < p else "reference" if p < c else "tie"

    rows = [
        ("Held-out AUC (rating >= 4 vs unrated), higher is better", "", f"{a['calibrated']:.3f}", f"{a['popularity']:.3f}", better(a["calibrated"], a["popularity"], high=True)),
    ]
    if a["calibrated_cold_users"] is not None:
        rows.append(("Held-out AUC, cold-start users only", "", f"{a['calibrated_cold_users']:.3f}", f"{a['popularity_cold_users']:.3f}", better(a["calibrated_cold_users"], a["popularity_cold_users"], high=True)))
    rows += [
        ("Rating distribution: total variation to real, lower is better", "0", f"{cal['rating_tv']:.3f}", f"{ref['rating_tv']:.3f}", better(cal["rating_tv"], ref["rating_tv"])),
        ("Rating distribution: Wasserstein-1 to real (stars), lower is better", "0", f"{cal['rating_w1']:.3f}", f"{ref['rating_w1']:.3f}", better(cal["rating_w1"], ref["rating_w1"])),
        ("Popularity Gini of consumption", f"{r['gini']:.3f}", f"{cal['gini']:.3f}", f"{ref['gini']:.3f}", better(cal["gini"], ref["gini"], r["gini"])),
        ("Share of consumption on top 10% of movies", f"{r['top10_share']:.3f}", f"{cal['top10_share']:.3f}", f"{ref['top10_share']:.3f}", better(cal["top10_share"], ref["top10_share"], r["top10_share"])),
        ("Activity per user: KS distance to real, lower is better", "0", f"{cal['activity_ks']:.3f}", f"{ref['activity_ks']:.3f}", better(cal["activity_ks"], ref["activity_ks"])),
        ("Activity per user: mean", f"{r['activity_mean']:.1f}", f"{cal['activity_mean']:.1f}", f"{ref['activity_mean']:.1f}", better(cal["activity_mean"], ref["activity_mean"], r["activity_mean"])),
        ("Activity per user: median / 90th percentile", f"{r['activity_median']:.0f} / {r['activity_p90']:.0f}", f"{cal['activity_median']:.0f} / {cal['activity_p90']:.0f}", f"{ref['activity_median']:.0f} / {ref['activity_p90']:.0f}", ""),
        (f"Genre mix per user: JS divergence to real, lower is better (user's own training mix: {r['genre_js_train_vs_test']:.3f})", "0", f"{cal['genre_js']:.3f}", f"{ref['genre_js']:.3f}", better(cal["genre_js"], ref["genre_js"])),
    ]
    return rows


def _figures(result: dict[str, Any], out: Path) -> list[str]:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = result["_arrays"]
    names = ["real", "calibrated", "popularity reference"]
    colors = {"real": "black", "calibrated": "tab:blue", "popularity reference": "tab:orange"}
    written = []

    def save(fig: Any, name: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        atomic_write_bytes(out / name, buf.getvalue())
        written.append(name)

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    hists = [result["real"]["rating_hist"]] + [result["simulated"][n]["rating_hist"] for n in names[1:]]
    for k, (name, h) in enumerate(zip(names, hists, strict=True)):
        ax.bar(np.arange(1, 6) + (k - 1) * 0.27, h, width=0.27, label=name, color=colors[name])
    ax.set_xlabel("rating")
    ax.set_ylabel("share of held-out ratings")
    ax.set_title("Rating distribution")
    ax.legend()
    save(fig, "rating_distribution.png")

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name in names:
        pop = arrays["real_pop"] if name == "real" else np.bincount(
            arrays[name]["movie"], minlength=arrays["real_pop"].size
        )
        x = np.sort(pop)[::-1].astype(np.float64)
        ax.plot(np.arange(1, x.size + 1) / x.size, np.cumsum(x) / max(x.sum(), 1), label=name, color=colors[name])
    ax.set_xlabel("share of movies (most consumed first)")
    ax.set_ylabel("share of consumption")
    ax.set_title("Popularity concentration")
    ax.legend()
    save(fig, "popularity_concentration.png")

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name in names:
        act = np.sort(arrays[name]["activity"])
        ax.plot(act, np.arange(1, act.size + 1) / act.size, label=name, color=colors[name])
    ax.set_xscale("symlog")
    ax.set_xlabel("consumptions per user in the held-out period")
    ax.set_ylabel("share of users (CDF)")
    ax.set_title("Per-user activity")
    ax.legend()
    save(fig, "activity.png")

    fig, ax = plt.subplots(figsize=(7.5, 3.5))
    genres = result["genres"]
    totals = [result["real"]["genre_total"]] + [result["simulated"][n]["genre_total"] for n in names[1:]]
    for k, (name, t) in enumerate(zip(names, totals, strict=True)):
        ax.bar(np.arange(len(genres)) + (k - 1) * 0.27, t, width=0.27, label=name, color=colors[name])
    ax.set_xticks(np.arange(len(genres)), genres, rotation=60, ha="right")
    ax.set_ylabel("share of consumption")
    ax.set_title("Genre mix (all users)")
    ax.legend()
    save(fig, "genre_mix.png")
    return written


def write_report(result: dict[str, Any], out: str | Path, command: str, seconds: float, figures: bool = True) -> dict[str, Path]:
    """Write ``fidelity.json``, ``fidelity.md`` and the PNG figures to ``out`` (atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    public["command"] = command
    public["run_seconds"] = round(seconds, 2)
    written_figures = _figures(result, out) if figures else []
    public["figures"] = written_figures
    atomic_write_bytes(out / "fidelity.json", (json.dumps(public, indent=2) + "\n").encode())

    cal = result["calibration"]
    lines = [
        "# Fidelity of the MovieLens-100K calibrated world",
        "",
        f"Data: `{cal['data_dir']}` ({cal['layout']} layout): {cal['n_users']} users "
        f"({cal['n_cold_users']} held out as cold-start users), {cal['n_movies']} movies "
        f"({cal['n_new_movies']} only in the held-out period, entering as new items), "
        f"{cal['n_train_ratings']} training and {cal['n_test_ratings']} held-out ratings.",
        f"Split: {result['protocol']['split']}. Simulation: each step a user sees "
        f"{result['protocol']['slate_size']} random movies they have not rated and may click one; "
        f"activity = clicks before churning. Reference: a popularity-only simulator (same pipeline, "
        f"no personal signal).",
        "",
        f"Command: `{command}` — run time {seconds:.1f} s (calibration fit "
        f"{cal['fit_seconds']:.1f} s of it, or 0 when cached).",
        "",
        "| Metric | Real (held out) | Calibrated | Popularity reference | Closer / better |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {m} | {r} | {c} | {p} | {b} |" for m, r, c, p, b in _table(result)]
    lines += [
        "",
        f"AUC over {result['auc']['n_users']} users and {result['auc']['n_positives']} held-out "
        f"positives, {result['protocol']['negatives_per_user']} sampled unrated movies per user.",
        "",
    ]
    lines += [f"![{name}]({name})" for name in written_figures]
    atomic_write_bytes(out / "fidelity.md", ("\n".join(lines) + "\n").encode())
    return {"json": out / "fidelity.json", "markdown": out / "fidelity.md"}


def run(args: argparse.Namespace) -> int:
    """``recsim-llm fidelity``: calibrate, simulate, compare, write the report."""
    import shlex

    from recsim_llm.calibration import calibrate

    start = time.perf_counter()
    calibration = calibrate(args.data_dir, cache_dir=args.cache_dir)
    result = compute_fidelity(
        calibration,
        negatives=args.negatives,
        seed=args.seed,
        slate_size=args.slate_size,
        max_steps=args.max_steps,
    )
    parts = ["recsim-llm", "fidelity", "--data-dir", str(args.data_dir), "--out", str(args.out)]
    for flag, value, default in (
        ("--seed", args.seed, 0),
        ("--negatives", args.negatives, 100),
        ("--slate-size", args.slate_size, None),
        ("--max-steps", args.max_steps, 3000),
        ("--cache-dir", args.cache_dir, None),
    ):
        if value != default:
            parts += [flag, str(value)]
    if args.no_figures:
        parts.append("--no-figures")
    command = " ".join(shlex.quote(p) for p in parts)
    seconds = time.perf_counter() - start
    paths = write_report(result, args.out, command, seconds, figures=not args.no_figures)
    print(Path(paths["markdown"]).read_text())
    return 0
