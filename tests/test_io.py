"""The one writer (``recsim_llm.io``): atomic files, marked outputs, claims, recovery after kills."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from recsim_llm import io
from recsim_llm.io import MARKER, OutputError, check_out_dir, output_directory, write_directory

REPO = Path(__file__).resolve().parents[1]


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _python(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- files ----------------------------------------------------------------------------------------
def test_failed_file_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "x.txt"
    io.atomic_write_text(path, "old")
    assert stat.S_IMODE(path.stat().st_mode) & stat.S_IROTH  # shared, not mkstemp's 0600

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        io.atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert _listing(tmp_path) == ["x.txt"]


def test_atomic_write_refuses_a_directory(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        io.atomic_write_json(tmp_path, {"a": 1})


# -- checks ---------------------------------------------------------------------------------------
def test_check_out_dir_accepts_missing_empty_and_own_folders(tmp_path):
    assert check_out_dir(tmp_path / "new" / "deeper", "run") == tmp_path / "new" / "deeper"
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty", "run")
    write_directory(tmp_path / "ours", {"a.txt": "1"}, "run")
    check_out_dir(tmp_path / "ours", "run")
    assert io.read_marker(tmp_path / "ours")["kind"] == "run"


def test_check_out_dir_refuses_what_is_not_ours(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    with pytest.raises(OutputError, match=r"--out .*foreign holds files .*thesis\.tex"):
        check_out_dir(foreign, "run")

    afile = tmp_path / "afile"
    afile.write_text("keep")
    with pytest.raises(OutputError, match="is an existing file"):
        check_out_dir(afile, "run")

    write_directory(tmp_path / "logs", {"a.txt": "1"}, "logs")
    with pytest.raises(OutputError, match="recsim-llm 'logs' folder, not a 'run' folder"):
        check_out_dir(tmp_path / "logs", "run")

    # A run folder of a version before the marker: refused like any other foreign folder.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("config.json", "results.csv", "system.json"):
        (legacy / name).write_text("x")
    with pytest.raises(OutputError, match="did not write"):
        check_out_dir(legacy, "run")

    # A marker that is not ours (wrong tag) does not count.
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / MARKER).write_text(json.dumps({"kind": "run"}))
    with pytest.raises(OutputError, match="did not write"):
        check_out_dir(fake, "run")

    with pytest.raises(OutputError, match="not writable|cannot create"):
        check_out_dir(afile / "below", "run")
    assert (foreign / "thesis.tex").read_text() == "mine" and afile.read_text() == "keep"


def test_write_directory_replaces_ours_whole_and_refuses_bad_names(tmp_path):
    out = tmp_path / "out"
    write_directory(out, {"a.txt": "1", "sub/b.txt": b"2"}, "eval", meta={"note": "x"})
    assert _listing(out) == [MARKER, "a.txt", "sub"]
    assert io.read_marker(out)["note"] == "x"
    mode = stat.S_IMODE((out / "sub" / "b.txt").stat().st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH
    write_directory(out, {"c.txt": "3"}, "eval")
    assert _listing(out) == [MARKER, "c.txt"]
    assert _listing(tmp_path) == ["out"]  # no staging, old or lock siblings left
    for bad in ("../x", "/abs", "", MARKER, f"./{MARKER}"):
        with pytest.raises(ValueError, match="relative path"):
            write_directory(out, {bad: "x"}, "eval")
    with pytest.raises(ValueError, match="marker keys"):
        write_directory(out, {"a": "x"}, "eval", meta={"kind": "run"})
    with pytest.raises(ValueError, match="kind must be one of"):
        write_directory(out, {"a": "x"}, "nonsense")


def test_failed_block_leaves_previous_version(tmp_path):
    out = tmp_path / "out"
    write_directory(out, {"a.txt": "first"}, "run")
    with pytest.raises(RuntimeError), output_directory(out, "run") as staging:
        (staging / "a.txt").write_text("half")
        raise RuntimeError("failed midway")
    assert (out / "a.txt").read_text() == "first"
    assert _listing(tmp_path) == ["out"]


def test_symlinked_out_is_written_through(tmp_path):
    real = tmp_path / "real"
    write_directory(real, {"a.txt": "1"}, "run")
    link = tmp_path / "link"
    link.symlink_to(real)
    write_directory(link, {"b.txt": "2"}, "run")
    assert link.is_symlink() and _listing(real) == [MARKER, "b.txt"]


# -- two writers ----------------------------------------------------------------------------------
def test_two_threads_on_one_out_one_version_and_a_clear_error(tmp_path):
    out = tmp_path / "out"
    inside, release = threading.Event(), threading.Event()

    def first() -> None:
        with output_directory(out, "run") as staging:
            (staging / "who.txt").write_text("first")
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(10)
    try:
        with pytest.raises(OutputError, match="being written by another recsim-llm process"):
            write_directory(out, {"who.txt": "second"}, "run")
    finally:
        release.set()
        thread.join(10)
    assert (out / "who.txt").read_text() == "first"
    assert _listing(out) == [MARKER, "who.txt"]
    assert _listing(tmp_path) == ["out"]


def test_claim_is_reentrant_in_one_thread(tmp_path):
    out = tmp_path / "out"
    with io.claim_output(out, "run"):
        write_directory(out, {"a.txt": "1"}, "run")  # the holder may write what it claimed
        assert (out / "a.txt").is_file()
    assert _listing(tmp_path) == ["out"]


def test_two_processes_and_a_sigkill_mid_work(tmp_path):
    """A second process is refused while the first works; a SIGKILL leaves nothing visible."""
    out = tmp_path / "out"
    child = _python(
        f"""
        import sys, time
        from recsim_llm.io import output_directory
        with output_directory({str(out)!r}, "run") as staging:
            (staging / "part.txt").write_text("half written")
            print("ready", flush=True)
            time.sleep(60)
        """
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(OutputError, match="being written by another"):
            write_directory(out, {"a.txt": "second"}, "run")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
    assert not out.exists()  # no visible partial output
    left = [n for n in _listing(tmp_path) if n.startswith(".out.tmp-")]
    assert len(left) == 1  # a hidden staging folder (and a lock file) at worst
    write_directory(out, {"a.txt": "next"}, "run")  # the next run succeeds and cleans up
    assert (out / "a.txt").read_text() == "next"
    assert _listing(tmp_path) == ["out"]


def test_kill_between_the_two_renames_keeps_one_complete_version(tmp_path):
    """A writer killed after moving the old version aside: the next claim moves it back."""
    out = tmp_path / "out"
    write_directory(out, {"a.txt": "v1"}, "run")
    child = _python(
        f"""
        import os
        from recsim_llm.io import write_directory
        calls = []
        real_replace = os.replace
        def replace(src, dst):
            calls.append((src, dst))
            if len(calls) == 2:  # old version moved aside; the new one not yet in place
                os._exit(9)
            real_replace(src, dst)
        os.replace = replace
        write_directory({str(out)!r}, {{"a.txt": "v2"}}, "run")
        """
    )
    _, err = child.communicate(timeout=60)
    assert child.returncode == 9, err
    assert not out.exists()
    olds = [p for p in tmp_path.iterdir() if p.name.startswith(".out.old-")]
    assert len(olds) == 1 and (olds[0] / "x" / "a.txt").read_text() == "v1"

    from recsim_llm.dashboard.data import find_runs

    (olds[0] / "x" / "results.csv").write_text("run_id\n")
    assert find_runs(tmp_path) == []  # never listed as a run

    with io.claim_output(out, "run"):
        assert (out / "a.txt").read_text() == "v1"  # restored before anything else
    assert _listing(tmp_path) == ["out"]
    write_directory(out, {"a.txt": "v3"}, "run")
    assert (out / "a.txt").read_text() == "v3"


def test_recovery_leaves_other_outputs_siblings_alone(tmp_path):
    """``.a.tmp-x.tmp-*`` is the staging of output ``a.tmp-x``, not stale staging of ``a``."""
    other = tmp_path / ".a.tmp-x.tmp-abc123"
    other.mkdir()
    stale = tmp_path / ".a.tmp-abc123"
    stale.mkdir()
    write_directory(tmp_path / "a", {"f": "1"}, "run")
    assert other.exists() and not stale.exists()


# -- single-file outputs --------------------------------------------------------------------------
def test_output_file_marks_its_sidecar_and_refuses_foreign_files(tmp_path):
    model = tmp_path / "m.zip"
    with io.output_file(model, "model", meta={"algorithm": "PPO"}) as tmp:
        assert io.is_hidden(tmp) and tmp.suffix == ".zip"
        tmp.write_bytes(b"PK first")
    sidecar = json.loads((tmp_path / "m.json").read_text())
    assert sidecar["kind"] == "model" and sidecar["algorithm"] == "PPO"
    with io.output_file(model, "model") as tmp:  # ours: replaced
        tmp.write_bytes(b"PK second")
    assert model.read_bytes() == b"PK second"
    assert _listing(tmp_path) == ["m.json", "m.zip"]

    foreign = tmp_path / "f.zip"
    foreign.write_bytes(b"someone's model")
    with pytest.raises(OutputError, match="not written by recsim-llm"):
        io.check_out_file(foreign)
    lone_sidecar = tmp_path / "g.json"
    lone_sidecar.write_text("{}")
    with pytest.raises(OutputError, match="not written by recsim-llm"):
        io.check_out_file(tmp_path / "g.zip")
    with pytest.raises(OutputError, match="is a folder"):
        io.check_out_file(tmp_path)
    assert foreign.read_bytes() == b"someone's model" and lone_sidecar.read_text() == "{}"
    with (
        pytest.raises(OutputError, match="nothing was written"),
        io.output_file(tmp_path / "e.zip"),
    ):
        pass
    assert not (tmp_path / "e.zip").exists() and not (tmp_path / "e.json").exists()
