"""The one writer: atomic files and marked outputs that never destroy a user's data.

Every command writes through this module.

* **Files** go to a temp file in the same directory, are fsynced and renamed into place
  (``atomic_write_bytes`` / ``_text`` / ``_json``): a reader sees the old file or the new one,
  never half of one.
* **Directories** (runs, encoders, logs, reports) are built in a hidden staging sibling and swapped
  in as a whole (``output_directory``): a reader never sees files of two versions mixed. Each
  carries a marker file, ``.recsim-llm.json``, naming what wrote it. **Single-file outputs** (an
  SB3 model ``.zip``) carry the marker keys in their sidecar ``NAME.json`` (``output_file``).
* An ``--out`` may be **replaced only if it is ours**: missing, an empty folder, or a folder whose
  marker names the same kind of output (for a file: a sidecar whose marker names that kind). A
  folder holding anything else, an existing file, or a marked output of another kind is refused
  with ``OutputError`` before any work starts (``check_out_dir`` / ``check_out_file``); there is
  no override. Folders written before recsim-llm marked its outputs count as foreign.
* **Two writers** to one ``--out``: the first to claim it (``claim_output``) holds an exclusive
  lock (``.NAME.lock`` beside it, removed on release) for as long as it works on it; the second fails at once with a
  clear ``OutputError``. Commands claim their ``--out`` before any work, so the loser does no
  work. A claim is re-entrant within one thread (a command holding it may call a writer of the
  same path).
* **A hard kill** leaves, at worst, a hidden ``.NAME.tmp-*`` staging folder (or temp file), or
  (between the two renames of a swap) the previous version in a hidden ``.NAME.old-*/x`` folder
  with ``NAME`` missing. The next claim of ``NAME`` removes stale staging and moves a complete old
  version back first, so one complete version always survives. Readers skip dot-names
  (``is_hidden``), so these are never listed as outputs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

MARKER = ".recsim-llm.json"
"""Name of the marker file inside every directory this package writes."""
MARKER_TAG = "recsim-llm output"
KINDS = (
    "run",
    "encoder",
    "logs",
    "fidelity",
    "model",
    "eval",
    "calibration-cache",
    "train",
    "train-seeds",
    "ope",
)
"""Kinds of outputs; a marked output may only be replaced by one of the same kind."""
FILE_KINDS = ("model",)
"""Kinds written as one file plus a sidecar ``.json`` (``output_file``), not as a folder."""


class OutputError(ValueError):
    """An output path cannot be written without destroying something that is not ours."""


# -- files ----------------------------------------------------------------------------------------
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):  # pragma: no cover - not Linux
        pass
    with _UMASK_LOCK:  # pragma: no cover
        mask = os.umask(0)
        os.umask(mask)
    return mask  # pragma: no cover


def share_file_mode(path: str | Path, directory: bool = False) -> None:
    """Give a temp file (or directory) the mode a plainly created one would have.

    ``mkstemp`` makes 0600 files and ``mkdtemp`` 0700 directories; outputs are meant to be shared.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


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


# -- markers and checks ---------------------------------------------------------------------------
def is_hidden(path: str | Path) -> bool:
    """True for dot-names: staging, old-version and lock siblings are never outputs to list."""
    return Path(path).name.startswith(".")


def _read_marker_file(file: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("written_by") != MARKER_TAG:
        return None
    return payload


def read_marker(path: str | Path) -> dict[str, Any] | None:
    """The marker of directory ``path``, or None if it has none (or an unreadable one)."""
    return _read_marker_file(Path(path) / MARKER)


def sidecar_path(path: str | Path) -> Path:
    """The sidecar JSON of a single-file output: ``PATH`` with its suffix replaced by ``.json``."""
    return Path(path).with_suffix(".json")


def read_file_marker(path: str | Path) -> dict[str, Any] | None:
    """The marker (the sidecar JSON) of single-file output ``path``, or None if it has none."""
    return _read_marker_file(sidecar_path(path))


def _marker(kind: str, meta: Mapping[str, Any] | None) -> dict[str, Any]:
    reserved = {"written_by", "kind", "format"} & set(meta or {})
    if reserved:
        raise ValueError(f"meta must not set the marker keys {sorted(reserved)}")
    return {"written_by": MARKER_TAG, "kind": kind, "format": 1, **dict(meta or {})}


def _check_kind(kind: str, files: bool | None = None) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if files is not None and (kind in FILE_KINDS) != files:
        raise ValueError(
            f"kind {kind!r} is written as a {'file' if kind in FILE_KINDS else 'folder'}"
        )


def _check_creatable(path: Path, option: str) -> None:
    """``path`` is missing: some existing ancestor must be a writable folder."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        if parent.is_symlink():
            raise OutputError(f"{option} {path}: {parent} is a dangling symbolic link")
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: cannot create it under {parent} (not writable)")


def check_out_dir(path: str | Path, kind: str, *, option: str = "--out") -> Path:
    """Fail before any work when ``path`` cannot become a ``kind`` output directory.

    Accepted: a missing path (its parent must be creatable), an empty folder, or a folder whose
    marker says it is a ``kind`` output written by this package.

    Raises:
        OutputError: ``path`` is a file, a folder with files that are not ours, or another kind
            of our outputs; the message names ``option`` and the path.
    """
    _check_kind(kind, files=False)
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise OutputError(f"{option} {path} is a dangling symbolic link; choose another path")
    if path.exists() and not path.is_dir():
        raise OutputError(
            f"{option} {path} is an existing file; it must be a new or empty folder, or a "
            f"{kind} folder written by recsim-llm"
        )
    if not path.is_dir():
        _check_creatable(path, option)
        return path
    entries = sorted(p.name for p in path.iterdir())
    if entries:
        marker = read_marker(path)
        if marker is None:
            shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
            raise OutputError(
                f"{option} {path} holds files recsim-llm did not write ({shown}); it only "
                f"replaces an empty folder or one of its own {kind} folders (marked by {MARKER}; "
                "folders from versions before the marker count as foreign). Choose another path "
                "or empty it yourself"
            )
        if marker.get("kind") != kind:
            raise OutputError(
                f"{option} {path} is a recsim-llm {marker.get('kind')!r} folder, not a "
                f"{kind!r} folder; choose another path"
            )
    parent = path.resolve().parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: cannot replace it, {parent} is not writable")
    return path


def check_out_file(path: str | Path, kind: str = "model", *, option: str = "--out") -> Path:
    """Fail before any work when ``path`` (and its sidecar ``.json``) cannot be written.

    Accepted: ``path`` and its sidecar both missing, or a sidecar whose marker says it is a
    ``kind`` output of this package (then ``path``, if present, must be a file).

    Raises:
        OutputError: ``path`` is a folder, or it or its sidecar exists without our marker.
    """
    _check_kind(kind, files=True)
    path = Path(path)
    sidecar = sidecar_path(path)
    if sidecar == path:
        raise OutputError(f"{option} {path}: the file may not end in .json (its sidecar's name)")
    for item in (path, sidecar):
        if item.is_symlink() and not item.exists():
            raise OutputError(f"{option} {item} is a dangling symbolic link; choose another path")
        if item.is_dir():
            raise OutputError(f"{option} {item} is a folder; choose a file path")
    if path.exists() or sidecar.exists():
        marker = read_file_marker(path)
        if marker is None:
            existing = " and ".join(str(p) for p in (path, sidecar) if p.exists())
            raise OutputError(
                f"{option} {path}: {existing} exists and was not written by recsim-llm (no marker "
                f"in {sidecar.name}); it only replaces its own {kind} files. Choose another path "
                "or remove it yourself"
            )
        if marker.get("kind") != kind:
            raise OutputError(
                f"{option} {path} is a recsim-llm {marker.get('kind')!r} file, not a {kind!r} "
                "file; choose another path"
            )
    _check_creatable(path, option)
    return path


def _check_out(path: Path, kind: str, option: str) -> Path:
    if kind in FILE_KINDS:
        return check_out_file(path, kind, option=option)
    return check_out_dir(path, kind, option=option)


# -- claims ---------------------------------------------------------------------------------------
class _Lock:
    """An exclusive, non-blocking ``flock`` on ``.NAME.lock`` beside an output.

    The lock file is removed on release (while still locked); a contender that opened the old
    file sees that the locked inode is no longer at the path and tries again, so two writers never
    hold locks on two different files of one name. Only a killed writer leaves a lock file (its
    lock is gone with the process).
    """

    def __init__(self, path: Path, shown: Path, option: str) -> None:
        self.path = path.with_name(f".{path.name}.lock")
        self.option = option
        self.shown = shown
        self.fd: int | None = None

    def _busy(self) -> OutputError:
        return OutputError(
            f"{self.option} {self.shown} is being written by another recsim-llm process "
            f"(lock {self.path}); wait for it to finish or choose another path"
        )

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(8):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise self._busy() from None
                raise
            held = os.fstat(fd)
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                self.fd = fd
                return
            os.close(fd)  # the previous holder removed this lock file; take the new one
        raise self._busy()

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


_HELD: dict[tuple[str, int], int] = {}
"""(real path, thread id) -> depth of the claims this thread holds on that path."""
_HELD_LOCK = threading.Lock()


def _real(path: Path) -> Path:
    """``path`` with symbolic links resolved (an ``--out`` link is written through)."""
    return Path(os.path.realpath(path))


def _is_ours(name: str, path: Path, part: str, suffix: str = "") -> bool:
    """``name`` is a ``.NAME.<part>-RANDOM[suffix]`` sibling made by this module for ``path``."""
    prefix = f".{path.name}.{part}-"
    if not name.startswith(prefix):
        return False
    return re.fullmatch(r"[a-z0-9_]+" + re.escape(suffix), name[len(prefix) :]) is not None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _recover_siblings(path: Path) -> None:
    """Under the lock: drop stale staging; move back a complete old version if ``path`` is gone."""
    parent = path.parent
    if not parent.is_dir():
        return
    siblings = list(parent.iterdir())
    olds = [p for p in siblings if _is_ours(p.name, path, "old")]
    olds.sort(key=lambda p: p.stat().st_mtime, reverse=True)  # newest first
    for old in olds:
        version = old / "x"
        if not path.exists() and version.is_dir() and read_marker(version) is not None:
            os.replace(version, path)  # a kill fell between the two renames of a swap
        _remove(old)
    for tmp in siblings:
        if _is_ours(tmp.name, path, "tmp") or _is_ours(tmp.name, path, "tmp", path.suffix):
            _remove(tmp)


@contextlib.contextmanager
def claim_output(path: str | Path, kind: str, *, option: str = "--out") -> Iterator[Path]:
    """Check ``path`` and hold it as this thread's ``kind`` output for the block.

    Checks first (``check_out_dir`` / ``check_out_file``), then takes the exclusive lock, restores
    or removes what a killed writer left, and checks again. Re-entrant within a thread: a writer of
    the same path inside the block reuses the claim. Yields the path with links resolved.

    Raises:
        OutputError: ``path`` is not ours to replace, or another writer holds it.
    """
    _check_kind(kind)
    shown = Path(path)
    _check_out(shown, kind, option)
    real = _real(shown)
    key = (str(real), threading.get_ident())
    with _HELD_LOCK:
        depth = _HELD.get(key, 0)
        _HELD[key] = depth + 1
    lock = None
    try:
        if depth == 0:
            lock = _Lock(real, shown, option)
            lock.acquire()
            _recover_siblings(real)
            _check_out(real, kind, option)  # again, now that no one else can write it
        yield real
    finally:
        if lock is not None:
            lock.release()
        with _HELD_LOCK:
            if _HELD[key] == 1:
                del _HELD[key]
            else:
                _HELD[key] -= 1


# -- marked directories ---------------------------------------------------------------------------
def _finalise_tree(root: Path) -> None:
    """Shared modes and fsync of every file and folder under ``root`` (deepest first)."""
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            file = Path(dirpath) / name
            if file.is_symlink():
                continue
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
    taken before the block runs, so call this before the expensive work, or hold
    ``claim_output`` over the work (or call ``check_out_dir`` first).

    Args:
        path: the output folder.
        kind: one of ``KINDS`` (not a ``FILE_KINDS`` one).
        meta: extra plain values stored in the marker.
        option: the option name used in error messages.

    Raises:
        OutputError: ``path`` is not ours to replace, or another writer holds it.
    """
    _check_kind(kind, files=False)
    marker = _marker(kind, meta)
    with claim_output(path, kind, option=option) as real:
        real.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{real.name}.tmp-", dir=real.parent))
        try:
            yield staging
            (staging / MARKER).write_text(json_text(marker), encoding="utf-8")
            _finalise_tree(staging)
            if real.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{real.name}.old-", dir=real.parent))
                os.replace(real, old / "x")
                try:
                    os.replace(staging, real)
                except BaseException:
                    os.replace(old / "x", real)  # put the previous version back at once
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, real)
            _fsync_dir(real.parent)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)


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
        if (
            not name
            or rel.is_absolute()
            or ".." in rel.parts
            or not rel.parts
            or rel == Path(MARKER)
        ):
            raise ValueError(f"files: {name!r} must be a relative path inside the folder")
    with output_directory(path, kind, meta=meta, option=option) as staging:
        for name, content in files.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return Path(path)


def atomic_write_directory(path: str | Path, files: Mapping[str, bytes]) -> Path:
    """Write ``files`` as a new subfolder ``path`` of an output we hold, all or nothing.

    For folders inside a marked output that is written in place (a training run's
    checkpoints): the files are written and fsynced in a hidden staging sibling
    ``.NAME.tmp-*`` and renamed to ``path``, so a reader (or a resume after a kill) sees the
    whole folder or none of it. No marker is written (the enclosing output has one).

    Raises:
        OutputError: ``path`` exists already.
    """
    path = Path(path)
    if path.exists():
        raise OutputError(f"{path} exists already; refusing to overwrite it")
    for name in files:
        rel = Path(name)
        if not name or rel.is_absolute() or ".." in rel.parts or len(rel.parts) != 1:
            raise ValueError(f"files: {name!r} must be a plain file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        _finalise_tree(staging)
        os.replace(staging, path)
        _fsync_dir(path.parent)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return path


# -- single-file outputs --------------------------------------------------------------------------
@contextlib.contextmanager
def output_file(
    path: str | Path,
    kind: str = "model",
    *,
    meta: Mapping[str, Any] | None = None,
    option: str = "--out",
) -> Iterator[Path]:
    """Claim single-file output ``path`` and yield a hidden temp path (same suffix) to write.

    On a clean exit the sidecar ``PATH.json`` (``meta`` plus the marker keys) is written
    atomically and the temp file is renamed onto ``path``; on an exception the temp file is
    removed and both are left as they were. (A kill between the two renames pairs the new sidecar
    with the previous file.)

    Raises:
        OutputError: ``path`` or its sidecar is not ours to replace, or another writer holds it.
    """
    _check_kind(kind, files=True)
    marker = _marker(kind, meta)
    with claim_output(path, kind, option=option) as real:
        real.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{real.name}.tmp-", suffix=real.suffix, dir=real.parent
        )
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise OutputError(f"{option} {path}: nothing was written to the temp file {tmp}")
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            share_file_mode(tmp)
            atomic_write_json(sidecar_path(real), marker)
            os.replace(tmp, real)
            _fsync_dir(real.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
