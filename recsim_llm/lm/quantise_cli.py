"""``recsim-llm quantise``: write a serving (int8 / bfloat16) copy of a fine-tuned encoder."""

from __future__ import annotations

import argparse
import sys

HELP = (
    "Write a serving encoder: a fine-tuned encoder's backbone as ONNX Runtime int8 "
    "(extra 'serve') or bfloat16, loadable like any encoder directory."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from recsim_llm.lm.quantise import METHODS

    parser.add_argument(
        "--encoder",
        default="",
        help="fine-tuned encoder directory (default: the shipped encoder)",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="encoder directory to write (new, empty, or an encoder folder of ours)",
    )
    parser.add_argument("--method", choices=METHODS, default="bf16", help="serving method")
    parser.add_argument(
        "--user-max-length",
        type=int,
        default=0,
        help="token budget of history texts in the new encoder (default: 0, the source's)",
    )


def run(args: argparse.Namespace) -> int:
    from recsim_llm.io import claim_output

    with claim_output(args.out, "encoder"):  # checked and held before any work
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from recsim_llm.lm.backends import MissingExtraError
    from recsim_llm.lm.quantise import describe, quantise_encoder

    try:
        path = quantise_encoder(args.encoder or None, args.out, args.method, args.user_max_length)
    except MissingExtraError as err:
        print(f"recsim-llm quantise: error: {err}", file=sys.stderr)
        return 2
    info = describe(path)
    print(f"wrote {args.method} encoder to {path} (backbone weights {info['weights_mb']:.1f} MB)")
    return 0
