"""The one writer: atomic files and marked output directories that never destroy a user's data.

Every command writes through this module.

* **Files** go to a temp file in the same directory, are fsynced and renamed into place
  (``atomic_write_bytes`` / ``_text`` / ``_json``): a reader sees the old file or the new one,
  never half of one.
* **Directories** (runs, encoders, logs, reports) are built in a hidden staging sibling and swapped
  in as a whole (``output_directory``): a reader never sees files of two versions mixed. Each
  carries a marker file, ``.recsim-llm.json``, naming what wrote it.
* An ``--out`` may be **replaced only if it is ours**: missing, an empty folder, or a folder whose
  marker names the same kind of output. A folder holding anything else, or an existing file, is
  refused with ``OutputError`` before any work starts (``check_out_dir``); there is no override.
* **Two writers** to one ``--out``: the first to claim it holds an exclusive lock
  (``.NAME.lock`` beside it) for its whole run; the second fails at once with a clear error,
  before doing its work.
* **A hard kill** leaves, at worst, a hidden ``.NAME.tmp-*`` staging folder, or (between the two
  renames of a swap) the previous version in a hidden ``.NAME.old-*`` folder with ``NAME``
  missing. The next writer of ``NAME`` removes stale staging folders and moves a complete old
  version back before it starts, so one complete version always survives. Readers skip
  dot-names (``is_hidden``), so these are never listed as runs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

MARKER = ".recsim-llm.json"
"""Name of the marker file inside every directory this package writes."""
MARKER_TAG = "recsim-llm output"
KINDS = ("run", "encoder", "logs", "fidelity", "model", "eval", "calibration-cache")
"""Kinds of output directories; a marked folder may only be replaced by the same kind."""


class OutputError(ValueError):
    """An output path cannot be written without destroying something that is not ours."""


# -- files ----------------------------------------------------------------------------------------
def share_file_mode(path: str | Path, directory: bool = False) -> None:
    """Give a temp file (or directory) the mode a plainly created one would have.

    ``mkstemp`` makes 0600 files and ``mkdtemp`` 0700 directories; outputs are meant to be shared.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via an fsynced temp file in the same directory and a rename.

    Raises:
        OutputError: ``path`` is an existing directory.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory; expected a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        share_file_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, content: str) -> None:
    """``content`` as UTF-8 text, atomically."""
    atomic_write_bytes(path, content.encode("utf-8"))


def json_default(value: Any) -> Any:
    """JSON encoding of NumPy scalars/arrays and paths (for ``json.dumps(default=...)``)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_text(payload: Any) -> str:
    """``payload`` as the project's JSON text: indented, sorted keys, trailing newline."""
    return json.dumps(payload, indent=2, sort_keys=True, default=json_default) + "\n"


def atomic_write_json(path: str | Path, payload: Any) -> None:
    """``payload`` as indented JSON, atomically."""
    atomic_write_text(path, json_text(payload))


# -- marked directories ---------------------------------------------------------------------------
def is_hidden(path: str | Path) -> bool:
    """True for dot-names: staging, old-version and lock siblings are never outputs to list."""
    return Path(path).name.startswith(".")


def read_marker(path: str | Path) -> dict[str, Any] | None:
    """The marker of directory ``path``, or None if it has none (or an unreadable one)."""
    marker = Path(path) / MARKER
    try:
        payload = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("written_by") != MARKER_TAG:
        return None
    return payload


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def check_out_dir(path: str | Path, kind: str, *, option: str = "--out") -> Path:
    """Fail before any work when ``path`` cannot become a ``kind`` output directory.

    Accepted: a missing path (its parent must be creatable), an empty folder, or a folder whose
    marker says it is a ``kind`` output written by this package.

    Raises:
        OutputError: ``path`` is a file, a folder with files that are not ours, or another kind
            of our outputs; the message names ``option`` and the path.
    """
    _check_kind(kind)
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise OutputError(f"{option} {path} is a dangling symbolic link; choose another path")
    if path.exists() and not path.is_dir():
        raise OutputError(
            f"{option} {path} is an existing file; it must be a new or empty folder, or a "
            f"{kind} folder written by recsim-llm"
        )
    if path.is_dir():
        entries = sorted(p.name for p in path.iterdir())
        if entries:
            marker = read_marker(path)
            if marker is None:
                shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
                raise OutputError(
                    f"{option} {path} holds files recsim-llm did not write ({shown}); it only "
                    f"replaces an empty folder or one of its own {kind} folders. Choose another "
                    "path or empty it yourself"
                )
            if marker.get("kind") != kind:
                raise OutputError(
                    f"{option} {path} is a recsim-llm {marker.get('kind')!r} folder, not a "
                    f"{kind!r} folder; choose another path"
                )
    else:
        parent = path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"{option} {path}: cannot create it under {parent} (not writable)")
    return path


class _Lock:
    """An exclusive, non-blocking ``flock`` on ``.NAME.lock`` beside an output."""

    def __init__(self, path: Path, option: str) -> None:
        self.path = path.with_name(f".{path.name}.lock")
        self.option = option
        self.target = path
        self.fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OutputError(
                    f"{self.option} {self.target} is being written by another recsim-llm process "
                    f"(lock {self.path}); wait for it to finish or choose another path"
                ) from None
            raise
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def _recover_siblings(path: Path) -> None:
    """Under the lock: drop stale staging folders; move back a complete old version if needed."""
    parent = path.parent
    if not parent.is_dir():
        return
    olds = sorted(parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime)
    for old in olds:
        version = old / "x" if (old / "x").is_dir() else old
        if not path.exists() and read_marker(version) is not None:
            os.replace(version, path)  # a kill fell between the two renames of a swap
        shutil.rmtree(old, ignore_errors=True)
    for tmp in parent.glob(f".{path.name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def _finalise_tree(root: Path) -> None:
    """Shared modes and fsync of every file and folder under ``root`` (deepest first)."""
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            file = Path(dirpath) / name
            share_file_mode(file)
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        share_file_mode(dirpath, directory=True)
        _fsync_dir(Path(dirpath))


@contextlib.contextmanager
def output_directory(
    path: str | Path,
    kind: str,
    *,
    meta: Mapping[str, Any] | None = None,
    option: str = "--out",
) -> Iterator[Path]:
    """Claim ``path`` for a ``kind`` output and yield a staging folder to fill.

    On a clean exit the staging folder gets the marker and replaces ``path`` as a whole; on an
    exception it is removed and ``path`` is left as it was. The claim (an exclusive lock) is
    taken before the block runs, so call this before the expensive work, or call
    ``check_out_dir`` first.

    Args:
        path: the output folder.
        kind: one of ``KINDS``.
        meta: extra plain values stored in the marker.
        option: the option name used in error messages.

    Raises:
        OutputError: ``path`` is not ours to replace, or another process is writing it.
    """
    _check_kind(kind)
    path = Path(path)
    check_out_dir(path, kind, option=option)
    lock = _Lock(path, option)
    lock.acquire()
    try:
        _recover_siblings(path)
        check_out_dir(path, kind, option=option)  # again, now that no one else can write it
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            yield staging
            marker = {"written_by": MARKER_TAG, "kind": kind, "format": 1, **dict(meta or {})}
            (staging / MARKER).write_text(json_text(marker), encoding="utf-8")
            _finalise_tree(staging)
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
                os.replace(path, old / "x")
                os.replace(staging, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, path)
            _fsync_dir(path.parent)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    finally:
        lock.release()


def write_directory(
    path: str | Path,
    files: Mapping[str, bytes | str],
    kind: str,
    *,
    meta: Mapping[str, Any] | None = None,
    option: str = "--out",
) -> Path:
    """Write ``files`` (relative name -> content) as one ``kind`` output folder; returns ``path``."""
    for name in files:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or name == MARKER or not rel.parts:
            raise ValueError(f"files: {name!r} must be a relative path inside the folder")
    with output_directory(path, kind, meta=meta, option=option) as staging:
        for name, content in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return Path(path)
