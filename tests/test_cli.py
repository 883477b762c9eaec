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
    assert "out must be a directory" in capsys.readouterr().err
    assert target.read_text() == "keep"


# -- help: every option shows its default and allowed values --------------------------------------
def _subparsers():
    import argparse

    from recsim_llm.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_command_help_shows_defaults_and_choices(capsys):
    import argparse

    import pytest

    from recsim_llm.cli import COMMANDS

    subparsers = _subparsers()
    assert sorted(subparsers) == COMMANDS.names()
    for name, sub in subparsers.items():
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())  # unwrap argparse's line breaks
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = action.option_strings[0] if action.option_strings else action.dest
            assert action.help, f"{name} {flag}: no help text"
            if action.choices:
                for choice in action.choices:
                    assert str(choice) in text, f"{name} {flag}: choice {choice} not shown"
            if action.option_strings and not action.required and action.nargs != 0:
                shown = " ".join(sub._get_formatter()._expand_help(action).split())
                assert "default" in shown, f"{name} {flag}: default not shown"
                assert shown in text


def test_help_lists_encoders_scenarios_and_every_policy_form(capsys):
    import pytest

    for command, expected in {
        "quickstart": ["{bow,lm-exact,lm-fast}", "(default: lm-fast)", "(default: 0,1,2)"],
        "simulate": ["mix:SHARE", "model:PATH", "linucb", "new-items", "taste-shift"],
        "evaluate": ["linucb", "mix:SHARE", "model:PATH", "oracle", "popularity", "cascade"],
        "train": ["{PPO,A2C}", "(default: 50000)"],
    }.items():
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for word in expected:
            assert word in text, f"{command} --help lacks {word}"


# -- errors before any header or work --------------------------------------------------------------
def test_a_bad_policy_spec_exits_2_before_anything_is_printed(tmp_path):
    for args, message in [
        (["evaluate", "--policies", "random,greedy"], "unknown policy 'greedy'"),
        (["evaluate", "--scenarios", "default,mars"], "unknown scenario 'mars'"),
        (["simulate", "--policy", "nope"], "unknown policy 'nope'"),
        (["quickstart", "--encoder", "gpt"], "invalid choice: 'gpt'"),
    ]:
        out = tmp_path / "never"
        result = subprocess.run(
            [sys.executable, "-m", "recsim_llm.cli", *args, "--out", str(out)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
        assert result.stdout == ""  # no header, no table
        assert "usage:" in result.stderr
        assert not out.exists()


def test_a_bad_policy_argument_is_refused_before_any_rollout(tmp_path, capsys):
    out = tmp_path / "x"
    args = ["evaluate", "--policies", "random,mix:2", "--encoder", "bow", "--out", str(out)]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "mix must be in [0, 1]" in captured.err
    assert captured.out == "" and "rollout" not in captured.err
    assert not out.exists()
