"""Fine-tuning throughput: training samples/s of LoRA vs full fine-tuning, measured in one run.

Both trainers are built on the same behaviour logs with the same ``FinetuneConfig`` except
``lora``; their optimiser steps (the trainer's own ``batch_loss``, backward, gradient clipping,
AdamW) are interleaved in rounds (``--rounds`` × ``--steps`` steps each, same batches for both),
so machine load hits both alike; the ratio full / LoRA is of the totals. History texts are
rendered before timing (both trainers cache them). Prints a markdown table; ``--out FILE``
writes it (and FILE with ``.json``).

    python benchmarks/bench_finetune_throughput.py --out finetune.md     # about 2 minutes
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore")


def trainer_and_optimiser(data: Any, lora: bool, args: argparse.Namespace) -> tuple[Any, Any, Any]:
    import torch

    from recsim_llm.lm.finetune import FinetuneConfig, Trainer

    cfg = FinetuneConfig(
        lora=lora,
        batch_size=args.batch_size,
        max_val_rows=16,
        threads=args.threads,
        user_max_length=args.user_max_length,
        seed=0,
    )
    trainer = Trainer(cfg, data, progress=False)
    # The parameters Trainer.train optimises for the two-tower objective.
    params = [
        p
        for n, p in trainer.model.named_parameters()
        if p.requires_grad and not n.startswith(("fast.", "pair_head."))
    ]
    return trainer, params, torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def step(trainer: Any, params: Any, optimiser: Any, rows: np.ndarray) -> int:
    import torch

    loss = trainer.batch_loss(rows, True)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimiser.step()
    return int(rows.size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps per round and mode")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--batch-size", type=int, default=16, help="training rows per step")
    parser.add_argument("--user-max-length", type=int, default=128, help="history token budget")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default="", help="write the markdown table here (+ .json)")
    args = parser.parse_args(argv)
    for name in ("steps", "rounds", "batch_size", "threads", "user_max_length"):
        if getattr(args, name) < 1:
            print(f"--{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2

    import torch

    from recsim_llm.lm.logs import load_logs, write_behaviour_logs
    from recsim_llm.lm.model import trainable_fraction

    start_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        data = load_logs(
            write_behaviour_logs(Path(tmp) / "logs", n_users=64, n_steps=20, seed=0, progress=False)
        )
    modes = {"LoRA": True, "full": False}
    runs = {name: trainer_and_optimiser(data, lora, args) for name, lora in modes.items()}
    n_batches = args.steps * args.rounds + 1
    first = runs["LoRA"][0]
    rows = first.train_rows
    need = n_batches * args.batch_size
    if rows.size < need:
        rows = np.resize(rows, need)
    batches = rows[:need].reshape(n_batches, args.batch_size)
    for trainer, _, _ in runs.values():
        trainer.model.train()
        for r in rows[:need].tolist():  # render every history text before timing
            trainer.user_text(int(r), True)
    torch.manual_seed(0)
    for trainer, params, opt in runs.values():  # warm-up step, not timed
        step(trainer, params, opt, batches[0])
    seconds = dict.fromkeys(modes, 0.0)
    samples = dict.fromkeys(modes, 0)
    for r in range(args.rounds):
        for name, (trainer, params, opt) in runs.items():
            start = time.perf_counter()
            for b in range(args.steps):
                samples[name] += step(trainer, params, opt, batches[1 + r * args.steps + b])
            seconds[name] += time.perf_counter() - start
    result: dict[str, Any] = {
        "cpu": platform.processor() or "",
        "threads": args.threads,
        "batch_size": args.batch_size,
        "user_max_length": args.user_max_length,
        "steps_per_mode": args.steps * args.rounds,
        "seconds_total": time.perf_counter() - start_all,
        "modes": {},
    }
    for name, (trainer, _, _) in runs.items():
        n_train, n_all = trainable_fraction(trainer.model)
        result["modes"][name] = {
            "samples_per_s": samples[name] / seconds[name],
            "seconds": seconds[name],
            "trainable_params": n_train,
            "trainable_fraction": n_train / n_all,
        }
    lora_rate = result["modes"]["LoRA"]["samples_per_s"]
    lines = [
        f"{args.steps * args.rounds} steps per mode in {args.rounds} interleaved rounds, batch "
        f"{args.batch_size}, history budget {args.user_max_length} tokens, {args.threads} "
        f"thread(s); run time {result['seconds_total']:.0f} s.",
        "",
        "| mode | samples/s | ratio to LoRA | trainable parameters | trainable share |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in result["modes"].items():
        lines.append(
            f"| {name} | {m['samples_per_s']:.2f} | {m['samples_per_s'] / lora_rate:.2f}× | "
            f"{m['trainable_params']:,} | {100 * m['trainable_fraction']:.2f}% |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        from recsim_llm.io import atomic_write_json, atomic_write_text

        atomic_write_text(args.out, table + "\n")
        atomic_write_json(Path(args.out).with_suffix(".json"), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
