"""MovieLens-100K loaders (``recsim_llm.movielens.data``): the GroupLens files and RecBole's atomic files, strictly validated.

Two layouts hold the same data:

* GroupLens (``u.data``, ``u.item``, ``u.user``): ``u.data`` is tab-separated
  ``user | item | rating | timestamp``; ``u.item`` is pipe-separated latin-1 with
  ``id | title (year) | release date | video date | IMDb URL`` and 19 genre flags; ``u.user`` is
  pipe-separated ``id | age | gender | occupation | zip``.
* RecBole atomic files (``ml-100k.inter``, ``ml-100k.item``, ``ml-100k.user``): UTF-8,
  tab-separated, with a typed header line (``user_id:token  item_id:token  rating:float ...``).

Both give the same ``MovieLens`` object (titles without the year suffix, genres as names). A
malformed file raises ``DataFormatError`` (a ``ValueError``) naming the file, the line and what
was expected; loading is all or nothing. The data is never downloaded or shipped: callers pass
the directory.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "GENRES",
    "GROUPLENS_FILES",
    "RECBOLE_FILES",
    "DataFormatError",
    "MovieLens",
    "Movies",
    "Users",
    "detect_layout",
    "load_grouplens",
    "load_movielens",
    "load_recbole",
]

GENRES: tuple[str, ...] = (
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
)
"""MovieLens genres in the order of the GroupLens ``u.item`` flags."""

GROUPLENS_FILES = ("u.data", "u.item", "u.user")
"""The GroupLens layout's files: ratings, movies, users."""
RECBOLE_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
"""The RecBole layout's files: ratings, movies, users."""


class DataFormatError(ValueError):
    """A data file does not have the expected format.

    Attributes:
        path: the file.
        line: 1-based line number (0 when the problem is the file as a whole).
        expected: what the loader expected there.
    """

    def __init__(self, path: Path | str, line: int, expected: str, found: str = "") -> None:
        self.path = str(path)
        self.line = int(line)
        self.expected = expected
        where = f"{self.path}, line {line}" if line else self.path
        message = f"{where}: expected {expected}"
        if found:
            message += f", found {found}"
        super().__init__(message)


@dataclass(frozen=True)
class Movies:
    """The movie table, row i = movie index i."""

    ids: np.ndarray
    """(n,) int64 original movie ids."""
    titles: tuple[str, ...]
    """Titles without the year suffix, as in the files (``"Usual Suspects, The"``)."""
    years: np.ndarray
    """(n,) int64 release year, 0 where unknown."""
    genres: tuple[tuple[str, ...], ...]
    """Genre names per movie (from ``GENRES``)."""

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class Users:
    """The user table, row i = user index i."""

    ids: np.ndarray
    """(n,) int64 original user ids."""
    age: np.ndarray
    """(n,) int64 age in years."""
    gender: tuple[str, ...]
    """'M' or 'F'."""
    occupation: tuple[str, ...]
    zip_code: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True)
class MovieLens:
    """A loaded MovieLens data set; ratings index into ``users`` and ``movies`` rows."""

    movies: Movies
    users: Users
    user: np.ndarray
    """(n_ratings,) int64 user row of each rating."""
    item: np.ndarray
    """(n_ratings,) int64 movie row of each rating."""
    rating: np.ndarray
    """(n_ratings,) float64 rating 1..5."""
    timestamp: np.ndarray
    """(n_ratings,) int64 Unix time of the rating."""
    layout: str
    """'grouplens' or 'recbole'."""
    data_dir: str
    ratings_file: str
    """Path of the ratings file (``u.data`` or ``ml-100k.inter``), named by errors about the
    ratings as a whole (see ``recsim_llm.movielens.fit.check_fit_data``)."""

    @property
    def n_ratings(self) -> int:
        return int(self.rating.shape[0])


# -- reading ---------------------------------------------------------------------------------


def _is_utf8_text(chunk: bytes) -> bool:
    """True when ``chunk`` has non-ASCII bytes and all of them form valid UTF-8 sequences."""
    if chunk.isascii():
        return False
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_lines(path: Path, encoding: str) -> list[tuple[int, str]]:
    """Non-empty lines of ``path`` as (1-based number, text), decoded strictly line by line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataFormatError(path, 1, f"{encoding} text", "a UTF-16 byte-order mark")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines: list[tuple[int, str]] = []
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        chunk = chunk.rstrip(b"\r")
        if b"\x00" in chunk:
            raise DataFormatError(path, number, f"{encoding} text", "a NUL byte (UTF-16 data?)")
        if encoding.replace("-", "").lower() in ("latin1", "iso88591") and _is_utf8_text(chunk):
            # latin-1 decodes every byte, so UTF-8 data would load silently as mojibake.
            raise DataFormatError(
                path, number, f"{encoding} text", "UTF-8 multi-byte characters (re-encoded file?)"
            )
        try:
            line = chunk.decode(encoding)
        except UnicodeDecodeError as err:
            bad = chunk[err.start : err.start + 1].hex()
            raise DataFormatError(
                path, number, f"{encoding} text", f"byte 0x{bad} at column {err.start + 1}"
            ) from None
        if line.strip():
            lines.append((number, line))
    if not lines:
        raise DataFormatError(path, 0, "at least one line of data", "an empty file")
    return lines


def _fields(path: Path, number: int, line: str, sep: str, n: int, what: str) -> list[str]:
    parts = line.split(sep)
    if len(parts) != n:
        shown = "tab" if sep == "\t" else repr(sep)
        raise DataFormatError(
            path, number, f"{n} {shown}-separated fields ({what})", f"{len(parts)} fields"
        )
    return parts


_INT64_MAX = 2**63 - 1


def _int(path: Path, number: int, value: str, name: str, low: int | None = None) -> int:
    try:
        out = int(value.strip())
    except ValueError:
        raise DataFormatError(path, number, f"an integer {name}", repr(value)) from None
    if low is not None and out < low:
        raise DataFormatError(path, number, f"{name} >= {low}", str(out))
    if out > _INT64_MAX:
        raise DataFormatError(path, number, f"{name} <= {_INT64_MAX}", str(out))
    return out


def _rating(path: Path, number: int, value: str) -> float:
    try:
        out = float(value.strip())
    except ValueError:
        raise DataFormatError(path, number, "a numeric rating in [1, 5]", repr(value)) from None
    if not math.isfinite(out) or not 1.0 <= out <= 5.0:
        raise DataFormatError(path, number, "a numeric rating in [1, 5]", repr(value))
    return out


def _timestamp(path: Path, number: int, value: str) -> int:
    try:
        out = float(value.strip())
    except ValueError:
        raise DataFormatError(path, number, "a numeric Unix timestamp", repr(value)) from None
    if not math.isfinite(out) or out < 0 or out > _INT64_MAX:
        raise DataFormatError(path, number, "a non-negative Unix timestamp", repr(value))
    return int(out)


def _gender(path: Path, number: int, value: str) -> str:
    value = value.strip()
    if value not in ("M", "F"):
        raise DataFormatError(path, number, "gender 'M' or 'F'", repr(value))
    return value


def _year(value: str) -> int:
    match = re.search(r"(\d{4})\s*$", value.strip())
    return int(match.group(1)) if match else 0


_TITLE_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


def _check_unique(path: Path, numbers: list[int], ids: list[int], what: str) -> None:
    seen: dict[int, int] = {}
    for number, ident in zip(numbers, ids, strict=True):
        if ident in seen:
            raise DataFormatError(
                path, number, f"a unique {what}", f"{ident} again (first on line {seen[ident]})"
            )
        seen[ident] = number


def _index_ratings(
    path: Path,
    numbers: list[int],
    user_ids: list[int],
    item_ids: list[int],
    users: Users,
    movies: Movies,
    users_file: str,
    items_file: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Map original ids to table rows; an unknown id names the ratings line."""
    user_row = {int(u): i for i, u in enumerate(users.ids.tolist())}
    item_row = {int(m): i for i, m in enumerate(movies.ids.tolist())}
    user = np.empty(len(user_ids), dtype=np.int64)
    item = np.empty(len(item_ids), dtype=np.int64)
    for k, (number, u, m) in enumerate(zip(numbers, user_ids, item_ids, strict=True)):
        if u not in user_row:
            raise DataFormatError(path, number, f"a user id listed in {users_file}", str(u))
        if m not in item_row:
            raise DataFormatError(path, number, f"a movie id listed in {items_file}", str(m))
        user[k] = user_row[u]
        item[k] = item_row[m]
    return user, item


# -- GroupLens ---------------------------------------------------------------------------------


def _grouplens_movies(item_path: Path, item_encoding: str) -> Movies:
    numbers, ids, titles, years, genres = [], [], [], [], []
    for number, line in _read_lines(item_path, item_encoding):
        parts = _fields(
            item_path, number, line, "|", 5 + len(GENRES),
            "id, title, release date, video date, URL and 19 genre flags",
        )  # fmt: skip
        ids.append(_int(item_path, number, parts[0], "movie id", 0))
        title = parts[1].strip()
        match = _TITLE_YEAR.search(title)
        year = _year(parts[2]) or (int(match.group(1)) if match else 0)
        titles.append(_TITLE_YEAR.sub("", title) if match else title)
        years.append(year)
        flags = parts[5:]
        if any(f.strip() not in ("0", "1") for f in flags):
            raise DataFormatError(item_path, number, "genre flags 0 or 1", repr("|".join(flags)))
        genres.append(tuple(g for g, f in zip(GENRES, flags, strict=True) if f.strip() == "1"))
        numbers.append(number)
    _check_unique(item_path, numbers, ids, "movie id")
    return Movies(
        ids=np.asarray(ids, dtype=np.int64),
        titles=tuple(titles),
        years=np.asarray(years, dtype=np.int64),
        genres=tuple(genres),
    )


def _grouplens_users(user_path: Path) -> Users:
    numbers, uids, ages, genders, jobs, zips = [], [], [], [], [], []
    for number, line in _read_lines(user_path, "ascii"):
        parts = _fields(user_path, number, line, "|", 5, "id, age, gender, occupation, zip")
        uids.append(_int(user_path, number, parts[0], "user id", 0))
        ages.append(_int(user_path, number, parts[1], "age", 0))
        genders.append(_gender(user_path, number, parts[2]))
        jobs.append(parts[3].strip())
        zips.append(parts[4].strip())
        numbers.append(number)
    _check_unique(user_path, numbers, uids, "user id")
    return Users(
        ids=np.asarray(uids, dtype=np.int64),
        age=np.asarray(ages, dtype=np.int64),
        gender=tuple(genders),
        occupation=tuple(jobs),
        zip_code=tuple(zips),
    )


def load_grouplens(data_dir: str | Path, item_encoding: str = "latin-1") -> MovieLens:
    """Load the GroupLens files ``u.data``, ``u.item`` and ``u.user`` from ``data_dir``.

    ``u.item`` is read as ``item_encoding`` (latin-1 in the official release); ``u.data`` and
    ``u.user`` must be ASCII.
    """
    root = Path(data_dir)
    item_path, user_path, data_path = root / "u.item", root / "u.user", root / "u.data"
    movies = _grouplens_movies(item_path, item_encoding)
    users = _grouplens_users(user_path)

    numbers, r_users, r_items, ratings, stamps = [], [], [], [], []
    for number, line in _read_lines(data_path, "ascii"):
        parts = _fields(data_path, number, line, "\t", 4, "user id, movie id, rating, timestamp")
        r_users.append(_int(data_path, number, parts[0], "user id"))
        r_items.append(_int(data_path, number, parts[1], "movie id"))
        ratings.append(_rating(data_path, number, parts[2]))
        stamps.append(_timestamp(data_path, number, parts[3]))
        numbers.append(number)
    user, item = _index_ratings(
        data_path, numbers, r_users, r_items, users, movies, "u.user", "u.item"
    )
    return MovieLens(
        movies=movies,
        users=users,
        user=user,
        item=item,
        rating=np.asarray(ratings, dtype=np.float64),
        timestamp=np.asarray(stamps, dtype=np.int64),
        layout="grouplens",
        data_dir=str(root),
        ratings_file=str(data_path),
    )


# -- RecBole atomic files ----------------------------------------------------------------------


def _header(path: Path, lines: list[tuple[int, str]], required: tuple[str, ...]) -> dict[str, int]:
    """Column positions by name from a typed RecBole header (``name:type`` per column)."""
    number, line = lines[0]
    columns: dict[str, int] = {}
    for pos, column in enumerate(line.split("\t")):
        name, sep, kind = column.strip().partition(":")
        if not sep or not name or not kind:
            raise DataFormatError(
                path, number, "a typed header of tab-separated 'name:type' columns", repr(column)
            )
        if name in columns:
            raise DataFormatError(
                path,
                number,
                "a header with unique column names",
                f"column {name!r} twice (columns {columns[name] + 1} and {pos + 1})",
            )
        columns[name] = pos
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataFormatError(
            path,
            number,
            f"header columns {', '.join(required)}",
            f"no column {', '.join(repr(m) for m in missing)}",
        )
    return columns


def _rows(path: Path, lines: list[tuple[int, str]], n_columns: int):
    for number, line in lines[1:]:
        parts = line.split("\t")
        if len(parts) != n_columns:
            raise DataFormatError(
                path,
                number,
                f"{n_columns} tab-separated fields as in the header",
                f"{len(parts)} fields",
            )
        yield number, parts


def _recbole_movies(item_path: Path) -> Movies:
    lines = _read_lines(item_path, "utf-8")
    col = _header(item_path, lines, ("item_id", "movie_title", "release_year", "class"))
    numbers, ids, titles, years, genres = [], [], [], [], []
    known = set(GENRES)
    for number, parts in _rows(item_path, lines, len(lines[0][1].split("\t"))):
        ids.append(_int(item_path, number, parts[col["item_id"]], "item id", 0))
        titles.append(parts[col["movie_title"]].strip())
        years.append(_year(parts[col["release_year"]]))
        names = tuple(parts[col["class"]].split())
        unknown = [g for g in names if g not in known]
        if unknown:
            raise DataFormatError(
                item_path, number, f"genres among {', '.join(GENRES)}", repr(unknown[0])
            )
        genres.append(names)
        numbers.append(number)
    _check_unique(item_path, numbers, ids, "item id")
    return Movies(
        ids=np.asarray(ids, dtype=np.int64),
        titles=tuple(titles),
        years=np.asarray(years, dtype=np.int64),
        genres=tuple(genres),
    )


def _recbole_users(user_path: Path) -> Users:
    lines = _read_lines(user_path, "utf-8")
    col = _header(user_path, lines, ("user_id", "age", "gender", "occupation"))
    numbers, uids, ages, genders, jobs, zips = [], [], [], [], [], []
    for number, parts in _rows(user_path, lines, len(lines[0][1].split("\t"))):
        uids.append(_int(user_path, number, parts[col["user_id"]], "user id", 0))
        ages.append(_int(user_path, number, parts[col["age"]], "age", 0))
        genders.append(_gender(user_path, number, parts[col["gender"]]))
        jobs.append(parts[col["occupation"]].strip())
        zips.append(parts[col["zip_code"]].strip() if "zip_code" in col else "")
        numbers.append(number)
    _check_unique(user_path, numbers, uids, "user id")
    return Users(
        ids=np.asarray(uids, dtype=np.int64),
        age=np.asarray(ages, dtype=np.int64),
        gender=tuple(genders),
        occupation=tuple(jobs),
        zip_code=tuple(zips),
    )


def load_recbole(data_dir: str | Path, name: str = "ml-100k") -> MovieLens:
    """Load RecBole atomic files ``{name}.inter``, ``{name}.item`` and ``{name}.user``."""
    root = Path(data_dir)
    inter_path, item_path = root / f"{name}.inter", root / f"{name}.item"
    user_path = root / f"{name}.user"
    movies = _recbole_movies(item_path)
    users = _recbole_users(user_path)

    lines = _read_lines(inter_path, "utf-8")
    col = _header(inter_path, lines, ("user_id", "item_id", "rating", "timestamp"))
    numbers, r_users, r_items, ratings, stamps = [], [], [], [], []
    for number, parts in _rows(inter_path, lines, len(lines[0][1].split("\t"))):
        r_users.append(_int(inter_path, number, parts[col["user_id"]], "user id"))
        r_items.append(_int(inter_path, number, parts[col["item_id"]], "item id"))
        ratings.append(_rating(inter_path, number, parts[col["rating"]]))
        stamps.append(_timestamp(inter_path, number, parts[col["timestamp"]]))
        numbers.append(number)
    user, item = _index_ratings(
        inter_path, numbers, r_users, r_items, users, movies, user_path.name, item_path.name
    )
    return MovieLens(
        movies=movies,
        users=users,
        user=user,
        item=item,
        rating=np.asarray(ratings, dtype=np.float64),
        timestamp=np.asarray(stamps, dtype=np.int64),
        layout="recbole",
        data_dir=str(root),
        ratings_file=str(inter_path),
    )


# -- either ------------------------------------------------------------------------------------


def detect_layout(data_dir: str | Path) -> str:
    """'recbole' or 'grouplens', from the files present in ``data_dir``."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--data-dir {root}: no such directory")
    if (root / RECBOLE_FILES[0]).exists():
        return "recbole"
    if (root / GROUPLENS_FILES[0]).exists():
        return "grouplens"
    raise FileNotFoundError(
        f"{root}: no MovieLens-100K files; expected {', '.join(RECBOLE_FILES)} (RecBole) or "
        f"{', '.join(GROUPLENS_FILES)} (GroupLens). The data is not downloaded automatically."
    )


def load_movielens(data_dir: str | Path) -> MovieLens:
    """Load MovieLens-100K from ``data_dir`` in whichever layout it holds (RecBole first)."""
    if detect_layout(data_dir) == "recbole":
        return load_recbole(data_dir)
    return load_grouplens(data_dir)
