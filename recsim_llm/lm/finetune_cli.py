"""``recsim-llm finetune``: fine-tune the LM user encoder (LoRA or full), or merge a LoRA one."""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

HELP = (
    "Fine-tune the LM user encoder on behaviour logs (LoRA by default, --full for all weights); "
    "without --logs, logs of the chosen scenario are written first. --merge SRC merges a LoRA "
    "encoder into plain weights instead."
)

_SKIP = {"lora", "model_path", "logq", "keep_best", "whiten"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from recsim_llm.lm.finetune import FinetuneConfig
    from recsim_llm.scenarios import scenario_names

    parser.add_argument(
        "--out",
        required=True,
        help="encoder directory to write (atomically; new, empty, or an encoder folder of ours)",
    )
    parser.add_argument(
        "--logs", default="", help="log directory (from write-logs); default: write new logs"
    )
    parser.add_argument(
        "--scenario",
        choices=scenario_names(),
        default="default",
        help="world to log when --logs is not given",
    )
    parser.add_argument("--log-users", type=int, default=256, help="user slots when writing logs")
    parser.add_argument("--log-steps", type=int, default=40, help="world steps when writing logs")
    parser.add_argument(
        "--model-path", default="", help="pretrained model directory (default: bundled MiniLM)"
    )
    parser.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    parser.add_argument(
        "--no-logq",
        action="store_true",
        help="no logQ correction of the in-batch softmax (FinetuneConfig.logq=False)",
    )
    parser.add_argument(
        "--keep-last",
        action="store_true",
        help="keep the last step's weights instead of the best validation's "
        "(FinetuneConfig.keep_best=False)",
    )
    parser.add_argument(
        "--no-whiten",
        action="store_true",
        help="start the projection from a seeded random rotation instead of the PCA whitening "
        "of the training items (FinetuneConfig.whiten=False)",
    )
    parser.add_argument(
        "--eval", action="store_true", help="evaluate on the test split into metrics.json"
    )
    parser.add_argument("--eval-rows", type=int, default=400, help="test rows scored by --eval")
    parser.add_argument(
        "--cache-world",
        action="store_true",
        help="pre-encode the logged world's item texts and every profile text into cache.npz",
    )
    parser.add_argument(
        "--merge",
        default="",
        metavar="SRC",
        help="merge LoRA encoder SRC into --out and exit (default: fine-tune)",
    )
    for f in dataclasses.fields(FinetuneConfig):
        if f.name in _SKIP:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):  # --x / --no-x (type=bool would read "False" as True)
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=f.default,
                help=f"FinetuneConfig.{f.name}",
            )
            continue
        parser.add_argument(
            flag, type=type(f.default), default=f.default, help=f"FinetuneConfig.{f.name}"
        )


def run(args: argparse.Namespace) -> int:
    from recsim_llm.io import claim_output

    with claim_output(args.out, "encoder"):  # checked and held before any work
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from recsim_llm.lm.finetune import FinetuneConfig, finetune
    from recsim_llm.lm.store import merge_encoder

    if args.merge:
        if not Path(args.merge).is_dir():
            raise FileNotFoundError(f"--merge: encoder directory {args.merge!r} does not exist")
        print(f"merged into {merge_encoder(args.merge, args.out)}")
        return 0
    from recsim_llm.lm.finetune import FinetuneConfig as _C

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(_C) if f.name not in _SKIP}
    config = FinetuneConfig(
        model_path=args.model_path,
        lora=not args.full,
        logq=not args.no_logq,
        keep_best=not args.keep_last,
        whiten=not args.no_whiten,
        **values,
    )
    if config.init_from:
        from recsim_llm.lm.transfer import check_init_from

        check_init_from(config)  # refused before any logs are written
    with tempfile.TemporaryDirectory(prefix="recsim-llm-logs-") as tmp:
        logs = args.logs
        if logs:
            if not Path(logs).is_dir():
                raise FileNotFoundError(f"--logs: directory {logs!r} does not exist")
        else:
            from recsim_llm.lm.logs import write_behaviour_logs
            from recsim_llm.scenarios import scenario_config

            logs = str(
                write_behaviour_logs(
                    Path(tmp) / "logs",
                    scenario_config(args.scenario),
                    n_users=args.log_users,
                    n_steps=args.log_steps,
                    seed=config.seed,
                    progress=True,
                )
            )
        cache = None
        if args.cache_world:
            from recsim_llm.lm.state import world_texts

            cache = world_texts(logs)
        path = finetune(
            logs,
            args.out,
            config,
            progress=True,
            evaluate=args.eval,
            eval_rows=args.eval_rows,
            cache_texts=cache,
        )
    print(f"wrote encoder to {path}")
    return 0
