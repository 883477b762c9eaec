"""The recsim-llm command: simulate writes a tidy run; quickstart prints a table; errors exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

from recsim_llm.cli import main
from recsim_llm.results import read_results


def test_simulate_writes_results(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "simulate",
            "--policy",
            "mix",
            "--mix",
            "0.2",
            "--users",
            "8",
            "--horizon",
            "10",
            "--seeds",
            "0,1",
            "--encoder",
            "bow",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rows = read_results(out)
    assert {r.seed for r in rows} == {0, 1}
    assert {r.policy for r in rows} == {"mix-0.20"}
    config = json.loads((out / "config.json").read_text())
    assert config["env"]["horizon"] == 10
    assert "mix-0.20" in capsys.readouterr().out


def test_bad_values_exit_2_with_a_message(tmp_path, capsys):
    code = main(
        [
            "simulate",
            "--policy",
            "mix",
            "--mix",
            "3",
            "--out",
            str(tmp_path / "x"),
            "--encoder",
            "bow",
        ]
    )
    assert code == 2
    assert "mix must be in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "recsim_llm.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "quickstart" in out.stdout and "simulate" in out.stdout


def test_quickstart_small_run(tmp_path, capsys):
    out = tmp_path / "qs"
    code = main(
        [
            "quickstart",
            "--seeds",
            "0",
            "--users",
            "8",
            "--ppo-steps",
            "0",
            "--encoder",
            "bow",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    for name in ("random", "myopic", "oracle", "mix-"):
        assert name in text
    assert (out / "results.csv").is_file()


def test_negative_seed_is_a_usage_error(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--seeds=-1", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert "seeds must be >= 0" in capsys.readouterr().err


def test_out_that_is_a_file_fails_before_any_work(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep")
    assert main(["evaluate", "--policies", "random", "--out", str(target), "--encoder", "bow"]) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert target.read_text() == "keep"
