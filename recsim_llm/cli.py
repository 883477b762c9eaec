"""The ``recsim-llm`` command.

Built-in subcommands live here (``quickstart``, ``simulate``). Others are plug-in modules listed
in ``PLUGIN_COMMANDS``: each exposes ``HELP: str``, ``add_arguments(parser)`` and
``run(args) -> int`` and keeps heavy imports (torch, transformers) inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

PLUGIN_COMMANDS: dict[str, str] = {
    "write-logs": "recsim_llm.lm.logs_cli",
    "finetune": "recsim_llm.lm.finetune_cli",
    "encoder-eval": "recsim_llm.lm.eval_cli",
    "fidelity": "recsim_llm.movielens.cli",
}
"""Subcommand name -> module implementing it."""


def _add_builtin(sub: argparse._SubParsersAction) -> None:
    from recsim_llm import commands

    for name, (help_text, add, _run) in commands.BUILTIN.items():
        parser = sub.add_parser(name, help=help_text, description=help_text)
        add(parser)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, plug-ins included when their modules import."""
    parser = argparse.ArgumentParser(
        prog="recsim-llm",
        description="Simulate slate recommendation with drifting users and an LM user encoder.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_builtin(sub)
    for name, module_name in PLUGIN_COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # plug-in not built (yet)
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``recsim-llm`` console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    from recsim_llm import commands

    try:
        if args.command in commands.BUILTIN:
            return int(commands.BUILTIN[args.command][2](args) or 0)
        module = importlib.import_module(PLUGIN_COMMANDS[args.command])
        return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"recsim-llm {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
