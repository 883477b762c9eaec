"""The recsim-llm command: simulate writes a tidy run; quickstart prints a table; errors exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
    for name in ("random", "myopic", "oracle", "mix-", "| linucb |", "| linucb-hybrid |"):
        assert name in text
    assert (out / "results.csv").is_file()


def test_quickstart_trains_the_scorer_with_the_encoder_prior_on_the_lm_state(tmp_path, capsys):
    out = tmp_path / "qs"
    args = ["quickstart", "--seeds", "0", "--users", "8", "--ppo-steps", "4096"]
    assert main([*args, "--out", str(out)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "ppo-scorer" in line]
    assert len(rows) == 1 and rows[0].startswith("| ppo-scorer+prior ")
    import csv

    with open(out / "results.csv", newline="") as handle:
        names = {row["policy"] for row in csv.DictReader(handle)}
    assert "ppo-scorer+prior" in names and "encoder-greedy" in names


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


# -- --out is checked (and claimed) before any work ------------------------------------------------
def _no_work(monkeypatch):
    """Make every command's real work fail loudly, so a refused --out proves it ran first."""
    import recsim_llm.agents.sb3
    import recsim_llm.evaluation
    import recsim_llm.lm
    import recsim_llm.lm.evaluate
    import recsim_llm.lm.finetune
    import recsim_llm.lm.logs
    import recsim_llm.lm.quantise

    def work(*args, **kwargs):
        raise AssertionError("work started before --out was checked")

    for module, name in (
        (recsim_llm.evaluation, "evaluate"),
        (recsim_llm.agents.sb3, "train_sb3"),
        (recsim_llm.lm, "quickstart_encoder"),
        (recsim_llm.lm.logs, "write_behaviour_logs"),
        (recsim_llm.lm.logs, "write_movielens_logs"),
        (recsim_llm.lm.finetune, "finetune"),
        (recsim_llm.lm.evaluate, "evaluate_encoders"),
        (recsim_llm.lm.quantise, "quantise_encoder"),
    ):
        monkeypatch.setattr(module, name, work)


COMMANDS = {
    "simulate": ["simulate", "--encoder", "bow"],
    "evaluate": ["evaluate", "--policies", "random", "--encoder", "bow"],
    "train": ["train", "--encoder", "bow"],
    "quickstart": ["quickstart", "--ppo-steps", "0", "--encoder", "bow"],
    "write-logs": ["write-logs"],
    "finetune": ["finetune"],
    "encoder-eval": ["encoder-eval", "--logs", "nope", "--encoders", "nope"],
    "quantise": ["quantise", "--method", "bf16"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_foreign_out_before_any_work(
    command, tmp_path, capsys, monkeypatch
):
    _no_work(monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main([*COMMANDS[command], "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # not even a header
    assert f"recsim-llm {command}: error: --out {out}" in captured.err
    assert "did not write" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no staging, no lock


def test_out_of_another_kind_and_quickstart_encoder_folder_are_refused(
    tmp_path, capsys, monkeypatch
):
    from recsim_llm.io import write_directory

    _no_work(monkeypatch)
    logs = write_directory(tmp_path / "logs", {"config.json": "{}"}, "logs")
    assert main(["simulate", "--encoder", "bow", "--out", str(logs)]) == 2
    assert "recsim-llm 'logs' folder, not a 'run' folder" in capsys.readouterr().err

    (tmp_path / "qs-encoder").mkdir()
    (tmp_path / "qs-encoder" / "weights.bin").write_bytes(b"x")
    code = main(["quickstart", "--finetune", "--out", str(tmp_path / "qs")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "qs-encoder holds files recsim-llm did not write" in captured.err
    assert not (tmp_path / "qs").exists()


def test_rerun_replaces_our_own_run(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["simulate", "--users", "4", "--horizon", "5", "--encoder", "bow", "--out", str(out)]
    assert main(args) == 0
    assert main([*args[:-2], "--seeds", "3", "--out", str(out)]) == 0
    assert {r.seed for r in read_results(out)} == {3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_train_writes_a_marked_run_whose_model_loads_and_can_be_replaced(tmp_path, capsys):
    from recsim_llm.agents.sb3 import load_sb3_policy
    from recsim_llm.io import read_file_marker, read_marker

    out = tmp_path / "ppo"
    args = ["train", "--steps", "64", "--envs", "2", "--encoder", "bow", "--out", str(out)]
    args += ["--policy", "MlpPolicy", "--eval-every", "0", "--checkpoint-every", "0"]
    assert main(args) == 0
    assert read_marker(out)["kind"] == "train"
    assert read_file_marker(out / "model.zip")["kind"] == "model"
    assert load_sb3_policy(out / "model.zip").name == "ppo:model"
    assert main(args) == 0  # ours: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ppo"]


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
