"""Small MovieLens fixtures in both layouts (helpers for the MovieLens tests) and their checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsim_llm.movielens import GENRES

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
"""The shared MovieLens-100K (RecBole layout); tests using it skip where it is absent."""

needs_real_data = pytest.mark.skipif(
    not (REAL_DATA / "ml-100k.inter").is_file(),
    reason=f"MovieLens-100K not found at {REAL_DATA} (shared data is not part of the repo)",
)

OCCUPATIONS = ("student", "engineer", "writer", "other", "none")


def synthetic_logs(n_users: int = 40, n_movies: int = 80, seed: int = 0) -> dict:
    """Random but structured logs: two taste groups, popular movies, increasing timestamps."""
    rng = np.random.default_rng(seed)
    group = rng.integers(2, size=n_users)
    movie_group = rng.integers(2, size=n_movies)
    popularity = rng.pareto(1.5, size=n_movies) + 0.2
    ratings = []
    for u in range(n_users):
        weight = popularity * np.where(movie_group == group[u], 4.0, 1.0)
        n = int(rng.integers(20, 40))
        movies = rng.choice(n_movies, size=n, replace=False, p=weight / weight.sum())
        start = 880_000_000 + int(rng.integers(0, 10_000_000))
        for k, m in enumerate(movies.tolist()):
            r = int(np.clip(round(3.5 + (movie_group[m] == group[u]) - rng.normal(0, 1)), 1, 5))
            ratings.append((u + 1, m + 1, r, start + 3600 * k))
    genres = []
    for m in range(n_movies):
        first = 1 + (m % 7) if movie_group[m] else 8 + (m % 5)
        genres.append(sorted({first, 1 + (m * 5) % 18}))
    return {
        "ratings": ratings,
        "titles": [
            f"Movie n\u00e9 {m + 1}, The" if m % 3 == 0 else f"Film {m + 1}"
            for m in range(n_movies)
        ],
        "years": [1950 + (m * 7) % 48 for m in range(n_movies)],
        "genres": genres,
        "users": [
            (
                u + 1,
                18 + (u * 3) % 50,
                "MF"[u % 2],
                OCCUPATIONS[u % len(OCCUPATIONS)],
                f"{10000 + u}",
            )
            for u in range(n_users)
        ],
    }


def write_grouplens(root: Path, logs: dict | None = None) -> Path:
    """Write ``logs`` as GroupLens files (u.data tab-separated; u.item, u.user pipe, latin-1)."""
    logs = logs or synthetic_logs()
    root.mkdir(parents=True, exist_ok=True)
    (root / "u.data").write_text(
        "".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in logs["ratings"]), encoding="ascii"
    )
    lines = []
    for m, (title, year, genre) in enumerate(
        zip(logs["titles"], logs["years"], logs["genres"], strict=True)
    ):
        flags = "|".join("1" if k in genre else "0" for k in range(len(GENRES)))
        lines.append(
            f"{m + 1}|{title} ({year})|01-Jan-{year}||http://example.org/{m + 1}|{flags}\n"
        )
    (root / "u.item").write_bytes("".join(lines).encode("latin-1"))
    (root / "u.user").write_text(
        "".join(f"{u}|{a}|{g}|{o}|{z}\n" for u, a, g, o, z in logs["users"]), encoding="ascii"
    )
    return root


def write_recbole(root: Path, logs: dict | None = None) -> Path:
    """Write ``logs`` as RecBole atomic files (UTF-8, tab-separated, typed headers)."""
    logs = logs or synthetic_logs()
    root.mkdir(parents=True, exist_ok=True)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float\n"]
    inter += [f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in logs["ratings"]]
    (root / "ml-100k.inter").write_text("".join(inter), encoding="utf-8")
    item = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"]
    for m, (title, year, genre) in enumerate(
        zip(logs["titles"], logs["years"], logs["genres"], strict=True)
    ):
        item.append(f"{m + 1}\t{title}\t{year}\t{' '.join(GENRES[k] for k in sorted(genre))}\n")
    (root / "ml-100k.item").write_text("".join(item), encoding="utf-8")
    user = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"]
    user += [f"{u}\t{a}\t{g}\t{o}\t{z}\n" for u, a, g, o, z in logs["users"]]
    (root / "ml-100k.user").write_text("".join(user), encoding="utf-8")
    return root


def test_fixture_writers_are_deterministic(tmp_path: Path) -> None:
    a = write_grouplens(tmp_path / "a")
    b = write_grouplens(tmp_path / "b")
    for name in ("u.data", "u.item", "u.user"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    # latin-1 on disk: the accented title is one byte, not UTF-8's two.
    assert b"n\xe9 1" in (a / "u.item").read_bytes()
