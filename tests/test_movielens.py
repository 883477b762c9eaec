"""MovieLens-100K loaders: both layouts, and every malformed input failing loudly and precisely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_movielens_data import (
    REAL_DATA,
    needs_real_data,
    synthetic_logs,
    write_grouplens,
    write_recbole,
)

from recsim_llm.movielens import (
    DataFormatError,
    detect_layout,
    load_grouplens,
    load_movielens,
    load_recbole,
)


def test_grouplens_fixture_loads(tmp_path: Path) -> None:
    logs = synthetic_logs()
    data = load_grouplens(write_grouplens(tmp_path, logs))
    assert data.layout == "grouplens"
    assert len(data.movies) == 80 and len(data.users) == 40
    assert data.n_ratings == len(logs["ratings"])
    # The year suffix is stripped, latin-1 decoded, the year kept.
    assert data.movies.titles[0] == "Movie n\u00e9 1, The"
    assert data.movies.years[0] == 1950
    assert data.movies.genres[0] == tuple(
        [
            "unknown",
            "Action",
            "Adventure",
            "Animation",
            "Children's",
            "Comedy",
            "Crime",
            "Documentary",
            "Drama",
            "Fantasy",
            "Film-Noir",
            "Horror",
            "Musical",
            "Mystery",
            "Romance",
            "Sci-Fi",
            "Thriller",
            "War",
            "Western",
        ][k]
        for k in sorted(logs["genres"][0])
    )
    u, m, r, t = logs["ratings"][5]
    assert data.users.ids[data.user[5]] == u and data.movies.ids[data.item[5]] == m
    assert data.rating[5] == r and data.timestamp[5] == t
    assert data.users.gender[1] == "F" and data.users.occupation[0] == "student"


def test_both_layouts_give_the_same_data(tmp_path: Path) -> None:
    logs = synthetic_logs(seed=3)
    a = load_grouplens(write_grouplens(tmp_path / "gl", logs))
    b = load_recbole(write_recbole(tmp_path / "rb", logs))
    assert a.movies.titles == b.movies.titles
    assert a.movies.genres == b.movies.genres
    np.testing.assert_array_equal(a.movies.years, b.movies.years)
    np.testing.assert_array_equal(a.users.age, b.users.age)
    assert a.users.occupation == b.users.occupation
    for name in ("user", "item", "rating", "timestamp"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_detect_layout_and_missing_directory(tmp_path: Path) -> None:
    assert detect_layout(write_grouplens(tmp_path / "gl")) == "grouplens"
    assert detect_layout(write_recbole(tmp_path / "rb")) == "recbole"
    assert load_movielens(tmp_path / "gl").layout == "grouplens"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="ml-100k.inter.*u.data"):
        load_movielens(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_movielens(tmp_path / "nowhere")


def test_missing_file_names_it(tmp_path: Path) -> None:
    root = write_grouplens(tmp_path)
    (root / "u.user").unlink()
    with pytest.raises(FileNotFoundError, match=r"u\.user"):
        load_grouplens(root)


def _replace_line(path: Path, line: int, new: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = new
    path.write_bytes(b"\n".join(lines))


def _edit_line(path: Path, line: int, old: bytes, new: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    assert old in lines[line - 1], (old, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_bytes(b"\n".join(lines))


# (case, layout, file, how to break it, line named in the error, words in the error)
MALFORMED = [
    (
        "data: missing field",
        "grouplens",
        "u.data",
        lambda p: _replace_line(p, 3, b"1\t2\t3"),
        3,
        "4 tab-separated fields",
    ),
    (
        "data: rating out of range",
        "grouplens",
        "u.data",
        lambda p: _replace_line(p, 4, b"1\t2\t7\t880000000"),
        4,
        "rating in [1, 5]",
    ),
    (
        "data: rating not a number",
        "grouplens",
        "u.data",
        lambda p: _replace_line(p, 2, b"1\t2\tgood\t880000000"),
        2,
        "numeric rating",
    ),
    (
        "data: unknown movie",
        "grouplens",
        "u.data",
        lambda p: _replace_line(p, 6, b"1\t999\t3\t880000000"),
        6,
        "movie id listed in u.item",
    ),
    (
        "data: unknown user",
        "grouplens",
        "u.data",
        lambda p: _replace_line(p, 7, b"999\t1\t3\t880000000"),
        7,
        "user id listed in u.user",
    ),
    (
        "data: bad timestamp",
        "grouplens",
        "u.data",
        lambda p: _replace_line(p, 5, b"1\t2\t3\tyesterday"),
        5,
        "Unix timestamp",
    ),
    (
        "item: 18 genre flags",
        "grouplens",
        "u.item",
        lambda p: _edit_line(p, 2, b"|0|", b"|"),
        2,
        "24 '|'-separated fields",
    ),
    (
        "item: flag not 0/1",
        "grouplens",
        "u.item",
        lambda p: _edit_line(p, 3, b"|0|", b"|x|"),
        3,
        "genre flags 0 or 1",
    ),
    (
        "item: duplicate id",
        "grouplens",
        "u.item",
        lambda p: _edit_line(p, 4, b"4|", b"1|"),
        4,
        "unique movie id",
    ),
    (
        "item: UTF-16 file",
        "grouplens",
        "u.item",
        lambda p: p.write_bytes(p.read_bytes().decode("latin-1").encode("utf-16")),
        1,
        "UTF-16",
    ),
    (
        "user: bad gender",
        "grouplens",
        "u.user",
        lambda p: _edit_line(p, 2, b"|F|", b"|X|"),
        2,
        "gender 'M' or 'F'",
    ),
    (
        "user: age not an integer",
        "grouplens",
        "u.user",
        lambda p: _edit_line(p, 3, b"|24|", b"|old|"),
        3,
        "integer age",
    ),
    (
        "user: non-ASCII byte",
        "grouplens",
        "u.user",
        lambda p: _edit_line(p, 2, b"engineer", b"ing\xe9nieur"),
        2,
        "ascii text, found byte 0xe9",
    ),
    (
        "inter: missing rating column",
        "recbole",
        "ml-100k.inter",
        lambda p: _edit_line(p, 1, b"rating:float", b"score:float"),
        1,
        "no column 'rating'",
    ),
    (
        "inter: untyped header",
        "recbole",
        "ml-100k.inter",
        lambda p: _edit_line(p, 1, b"user_id:token", b"user_id"),
        1,
        "typed header",
    ),
    (
        "inter: extra field",
        "recbole",
        "ml-100k.inter",
        lambda p: _replace_line(p, 4, b"1\t2\t3\t880000000\t9"),
        4,
        "4 tab-separated fields as in the header",
    ),
    (
        "item: latin-1 bytes in UTF-8 file",
        "recbole",
        "ml-100k.item",
        lambda p: p.write_bytes(p.read_bytes().decode("utf-8").encode("latin-1")),
        2,
        "utf-8 text, found byte 0xe9",
    ),
    (
        "item: unknown genre",
        "recbole",
        "ml-100k.item",
        lambda p: _replace_line(p, 3, b"2\tFilm 2\t1957\tSpaghetti"),
        3,
        "genres among",
    ),
    (
        "user: missing occupation column",
        "recbole",
        "ml-100k.user",
        lambda p: _edit_line(p, 1, b"occupation:token", b"job:token"),
        1,
        "no column 'occupation'",
    ),
    (
        "user: empty file",
        "recbole",
        "ml-100k.user",
        lambda p: p.write_bytes(b"\n\n"),
        0,
        "at least one line",
    ),
]


@pytest.mark.parametrize(
    ("layout", "name", "breaker", "line", "words"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_input_names_file_line_and_expectation(
    tmp_path: Path, layout: str, name: str, breaker, line: int, words: str
) -> None:
    root = write_grouplens(tmp_path) if layout == "grouplens" else write_recbole(tmp_path)
    path = root / name
    breaker(path)
    loader = load_grouplens if layout == "grouplens" else load_recbole
    with pytest.raises(DataFormatError) as info:
        loader(root)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.path == str(path)
    assert err.line == line
    assert words in str(err)
    assert name in str(err) and (line == 0 or f"line {line}" in str(err))


@needs_real_data
def test_real_movielens_100k() -> None:
    data = load_movielens(REAL_DATA)
    assert data.layout == "recbole"
    assert (len(data.users), len(data.movies), data.n_ratings) == (943, 1682, 100_000)
    assert np.bincount(data.user).min() >= 20  # every ML-100K user rated at least 20 movies
    assert data.movies.titles[0] == "Toy Story" and data.movies.years[0] == 1995
    assert data.movies.genres[0] == ("Animation", "Children's", "Comedy")
    assert set(np.unique(data.rating)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert "Mis\u00e9rables, Les" in data.movies.titles


def _edit_first_line(path: Path, edit) -> None:
    first, rest = path.read_bytes().split(b"\n", 1)
    path.write_bytes(edit(first) + b"\n" + rest)


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("u.data", lambda line: b"\t".join(line.split(b"\t")[:3] + [b"1e30"])),
        ("u.data", lambda line: b"\t".join([b"99999999999999999999"] + line.split(b"\t")[1:])),
        ("u.item", lambda line: line.replace(b"|", "\u00e9|".encode(), 1)),  # UTF-8, not latin-1
    ],
)
def test_overflow_and_utf8_item_file_name_file_and_line(tmp_path, name, edit):
    from recsim_llm.movielens import DataFormatError

    root = write_grouplens(tmp_path / "gl")
    _edit_first_line(root / name, edit)
    with pytest.raises(DataFormatError) as err:
        load_grouplens(root)
    assert err.value.path.endswith(name) and err.value.line == 1


def test_recbole_header_with_a_duplicated_column_is_refused(tmp_path: Path) -> None:
    root = write_recbole(tmp_path / "rb")
    path = root / "ml-100k.user"
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace("gender:token", "age:token")  # two 'age' columns
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataFormatError,
        match=r"ml-100k\.user, line 1: expected a header with unique column names, found column "
        r"'age' twice \(columns 2 and 3\)",
    ):
        load_recbole(root)
