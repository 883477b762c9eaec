"""The ``recsim-llm`` command.

Subcommands are registered by name in ``COMMANDS``, each as a lazy entry point to a ``Command``
(or to a module with the same three attributes): ``HELP: str``, ``add_arguments(parser)`` and
``run(args) -> int``. A command keeps heavy imports (torch, transformers, SB3) inside ``run``.
Add one with ``COMMANDS.register("my-command", "my_pkg.cli:MY_COMMAND")``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from recsim_llm.registry import Registry

__all__ = ["COMMANDS", "Command", "HelpFormatter", "build_parser", "main"]


class Command(NamedTuple):
    """One subcommand: its help line, its arguments and what it runs."""

    HELP: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: Registry[Command] = Registry("command")
"""Subcommand name -> ``Command`` (entry points are imported when the parser is built)."""

for _name, _entry in {
    "quickstart": "recsim_llm.commands:QUICKSTART",
    "simulate": "recsim_llm.commands:SIMULATE",
    "evaluate": "recsim_llm.commands:EVALUATE",
    "train": "recsim_llm.commands:TRAIN",
    "dashboard": "recsim_llm.commands:DASHBOARD",
    "scenarios": "recsim_llm.commands:SCENARIOS",
    "write-logs": "recsim_llm.lm.logs_cli",
    "finetune": "recsim_llm.lm.finetune_cli",
    "encoder-eval": "recsim_llm.lm.eval_cli",
    "quantise": "recsim_llm.lm.quantise_cli",
    "explain": "recsim_llm.lm.explain_cli",
    "fidelity": "recsim_llm.movielens.cli",
    "ope": "recsim_llm.ope_cli",
}.items():
    COMMANDS.register(_name, _entry)
del _name, _entry


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default: ``(default: X)``, or ``(default: none)`` for ``None``.

    Help texts that already say what the default is (they contain "default:") are left alone,
    and so are flags (``store_true``) and required options.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if (
            "default:" in help_text.lower()
            or action.default is argparse.SUPPRESS
            or action.required
            or not action.option_strings
            or action.nargs == 0
        ):
            return help_text
        if action.default is None:
            return help_text + " (default: none)"
        return help_text + " (default: %(default)s)"

    def _split_lines(self, text: str, width: int) -> list[str]:
        """Wrap at spaces only: policy specs such as ``encoder-greedy[:PATH]`` stay whole."""
        import textwrap

        text = " ".join(text.split())
        return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: every registered command."""
    parser = argparse.ArgumentParser(
        prog="recsim-llm",
        description="Simulate slate recommendation with drifting users and an LM user encoder.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS.names():
        command = COMMANDS.resolve(name)
        p = sub.add_parser(
            name, help=command.HELP, description=command.HELP, formatter_class=HelpFormatter
        )
        command.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``recsim-llm`` console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        return int(COMMANDS.resolve(args.command).run(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"recsim-llm {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
