"""``calibrate``: the calibrated world of a MovieLens directory, fitted once and cached.

Two caches, both keyed by a hash of the data files' contents and the config (``fingerprint``):

* **in process**: the same ``Calibration`` object is returned for the same data and config;
* **on disk** (optional ``cache_dir``): one ``movielens-fit-KEY.fit`` per data and config (a
  header line with the SHA-256 of the rest, then an ``.npz``), written atomically through
  ``recsim_llm.io``. A cache file is never used on trust: its bytes are checked against the
  recorded hash, it is read with ``allow_pickle=False``, and its key, the dtypes and shapes the
  data and config imply, the data's time split and the finiteness of every number are checked
  (``load_fit``). A file that fails any check is reported on stderr and refitted (then
  overwritten), never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import sys
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm.io import atomic_write_bytes
from recsim_llm.movielens.data import GROUPLENS_FILES, RECBOLE_FILES, MovieLens, load_movielens
from recsim_llm.movielens.fit import check_fit_data, fit_calibration, time_split
from recsim_llm.movielens.spec import FIT_ARRAYS, CalibrationConfig, CalibrationFit
from recsim_llm.movielens.world import Calibration, build_calibration

__all__ = [
    "CACHE_VERSION",
    "CacheError",
    "cache_path",
    "calibrate",
    "clear_cache",
    "fingerprint",
    "load_fit",
    "save_fit",
]

CACHE_VERSION = 2
"""Format of the on-disk cache (part of the key: a new format never reads an old file)."""

_CACHE: dict[tuple[str, str], Calibration] = {}


class CacheError(ValueError):
    """A calibration cache file cannot be trusted (the message says why)."""


def fingerprint(data_dir: Path, config: CalibrationConfig) -> str:
    """Hash of the data files' contents and the config: the cache key."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, **asdict(config)}, sort_keys=True).encode())
    for name in RECBOLE_FILES + GROUPLENS_FILES:
        path = data_dir / name
        if path.is_file():
            h.update(name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:32]


def cache_path(cache_dir: str | Path, key: str) -> Path:
    """The cache file of ``key`` in ``cache_dir``."""
    return Path(cache_dir) / f"movielens-fit-{key}.fit"


_MAGIC = b"recsim-llm movielens fit\n"


def save_fit(path: str | Path, fit: CalibrationFit, key: str) -> None:
    """Write ``fit`` atomically: a header line, the SHA-256 of the rest, then an ``.npz`` of the
    arrays, the scalars (JSON) and metadata (format, key, dtypes and shapes)."""
    arrays = {name: np.asarray(getattr(fit, name)) for name in FIT_ARRAYS}
    meta = {
        "format": CACHE_VERSION,
        "key": key,
        "arrays": {n: {"dtype": a.dtype.str, "shape": list(a.shape)} for n, a in arrays.items()},
    }
    buf = io.BytesIO()
    np.savez(
        buf,
        **arrays,
        scalars=np.array(json.dumps(fit.scalars, sort_keys=True)),
        meta=np.array(json.dumps(meta)),
    )
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    atomic_write_bytes(path, _MAGIC + digest + b"\n" + payload)


def _expected_shapes(data: MovieLens, config: CalibrationConfig) -> dict[str, tuple[int, ...]]:
    sizes = {
        "n_ratings": data.n_ratings,
        "n_users": len(data.users),
        "n_movies": len(data.movies),
        "latent_dim": config.latent_dim,
    }
    return {
        name: tuple(sizes[d.strip()] for d in dims.split(","))
        for name, (_dtype, dims) in FIT_ARRAYS.items()
    }


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], str, dict[str, Any]]:
    """Arrays, scalars JSON and metadata of a cache file whose bytes match their recorded hash;
    ``CacheError`` otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CacheError(f"unreadable ({err})") from None
    head = len(_MAGIC)
    if not raw.startswith(_MAGIC) or raw[head + 64 : head + 65] != b"\n":
        raise CacheError("not a recsim-llm calibration cache file (no header with its hash)")
    recorded, payload = raw[head : head + 64], raw[head + 65 :]
    if hashlib.sha256(payload).hexdigest().encode() != recorded:
        raise CacheError("its bytes do not match the hash recorded with them (changed on disk)")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            names = set(z.files)
            wanted = set(FIT_ARRAYS) | {"scalars", "meta"}
            if names != wanted:
                raise CacheError(f"holds arrays {sorted(names)}, expected {sorted(wanted)}")
            arrays = {name: z[name] for name in FIT_ARRAYS}
            scalars_json, meta_json = str(z["scalars"]), str(z["meta"])
    except CacheError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise CacheError(f"unreadable ({type(err).__name__}: {err})") from None
    try:
        meta = json.loads(meta_json)
    except ValueError:
        raise CacheError("its metadata is not JSON") from None
    if not isinstance(meta, dict):
        raise CacheError("its metadata is not a JSON object")
    return arrays, scalars_json, meta


def _check_arrays(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], data: MovieLens, config: CalibrationConfig
) -> None:
    shapes = _expected_shapes(data, config)
    recorded = meta.get("arrays") if isinstance(meta.get("arrays"), dict) else {}
    for name, (dtype, _dims) in FIT_ARRAYS.items():
        a = arrays[name]
        if a.dtype != np.dtype(dtype) or a.shape != shapes[name]:
            raise CacheError(
                f"{name} is {a.dtype}{list(a.shape)}, expected {dtype}{list(shapes[name])} "
                "for this data and config"
            )
        if recorded.get(name) != {"dtype": a.dtype.str, "shape": list(a.shape)}:
            raise CacheError(f"{name} does not match the dtype and shape recorded with it")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CacheError(f"{name} holds non-finite values")
    if not np.array_equal(
        arrays["is_test"], time_split(data.user, data.timestamp, config.test_fraction)
    ):
        raise CacheError("its held-out split is not this data's time split")


def load_fit(
    path: str | Path, data: MovieLens, config: CalibrationConfig, key: str
) -> CalibrationFit:
    """Read a cached fit of ``data`` and ``config`` (cache key ``key``), checked before use.

    Raises:
        CacheError: the file is unreadable, its bytes do not match their recorded hash, it is of
            another format or key, an array has the wrong dtype or shape, a number is not finite, or
            its split is not this data's.
    """
    arrays, scalars_json, meta = _read_npz(Path(path))
    if meta.get("format") != CACHE_VERSION:
        raise CacheError(f"format {meta.get('format')!r}, expected {CACHE_VERSION}")
    if meta.get("key") != key:
        raise CacheError("it was written for other data or another config (key mismatch)")
    _check_arrays(arrays, meta, data, config)
    try:
        scalars = json.loads(scalars_json)
    except ValueError:
        raise CacheError("its scalars are not JSON") from None
    if not isinstance(scalars, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in scalars.values()
    ):
        raise CacheError("its scalars are not all finite numbers")
    return CalibrationFit(**arrays, scalars=scalars)


def _cached_or_fitted(
    data: MovieLens, config: CalibrationConfig, disk: Path | None, key: str
) -> CalibrationFit:
    """The disk cache's fit if it passes every check, else a fresh fit (written to the cache)."""
    if disk is not None and disk.exists():
        try:
            return load_fit(disk, data, config, key)
        except CacheError as err:
            print(
                f"recsim-llm: calibration cache {disk} not used: {err}; refitting",
                file=sys.stderr,
            )
    fit = fit_calibration(data, config)
    if disk is not None:
        save_fit(disk, fit, key)
    return fit


def calibrate(
    data_dir: str | Path,
    config: CalibrationConfig | None = None,
    cache_dir: str | Path | None = None,
) -> Calibration:
    """The calibrated world of the MovieLens data in ``data_dir`` (fitted once, then cached).

    Args:
        data_dir: a directory with MovieLens-100K in GroupLens or RecBole layout.
        config: fitting settings.
        cache_dir: optional directory for an on-disk cache of the fit (keyed by a hash of the
            data files and the config); the in-process cache is always used.

    Raises:
        FileNotFoundError: ``data_dir`` is missing or holds no MovieLens files.
        DataFormatError: a file is malformed, or the data holds nothing to fit.
    """
    config = config or CalibrationConfig()
    if not isinstance(config, CalibrationConfig):
        raise ValueError(f"config must be a CalibrationConfig, got {type(config).__name__}")
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"--data-dir {data_dir}: no such directory")
    key = (str(root), fingerprint(root, config))
    if key in _CACHE:
        return _CACHE[key]
    start = time.perf_counter()
    data = load_movielens(root)
    check_fit_data(data)
    disk = cache_path(cache_dir, key[1]) if cache_dir is not None else None
    fit = _cached_or_fitted(data, config, disk, key[1])
    calibration = build_calibration(data, fit, config)
    calibration.fit_seconds = time.perf_counter() - start
    _CACHE[key] = calibration
    return calibration


def clear_cache() -> None:
    """Forget in-process calibrations (the on-disk cache is left alone)."""
    _CACHE.clear()
