"""LM user encoder speed: encode throughput, fine-tuning samples/s, env user-steps/s, agreement.

Usage::

    python benchmarks/bench_encoder.py --out bench_encoder.json [--quick]

Measures, with the shipped encoder (``recsim_llm/lm/assets/minilm-lora-default``) unless
``--encoder`` names another:

* encode throughput of item texts (64 tokens) and history texts (128-token budget), texts/s;
* fine-tuning samples/s of the two-tower objective, LoRA vs full, on behaviour logs;
* batched env user-steps/s (``SlateVectorEnv``, random slates) with ``bow``, ``lm-fast`` and
  ``lm-exact`` at n_users = 1, 64, 1024, and the ratios the issue sets goals for;
* the cosine agreement of fast and exact user states on identical rollouts.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def _env(encoder: str, n_users: int, path: str):
    from recsim_llm.config import EnvConfig
    from recsim_llm.envs.vector import SlateVectorEnv

    return SlateVectorEnv(num_envs=n_users, config=EnvConfig(encoder=encoder, encoder_path=path))


def env_throughput(
    encoder: str, n_users: int, path: str, min_seconds: float, max_steps: int
) -> dict:
    env = _env(encoder, n_users, path)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    actions = [np.argsort(rng.random((n_users, 20)), axis=1)[:, :5] for _ in range(16)]
    env.step(actions[0])  # warm-up (lazy LM load etc.)
    steps, start = 0, time.perf_counter()
    while steps < max_steps and (steps < 2 or time.perf_counter() - start < min_seconds):
        env.step(actions[steps % 16])
        steps += 1
    seconds = time.perf_counter() - start
    return {
        "encoder": encoder,
        "n_users": n_users,
        "steps": steps,
        "seconds": seconds,
        "user_steps_per_s": n_users * steps / seconds,
    }


def agreement(path: str, n_users: int, n_steps: int) -> dict:
    """Fast vs exact user states along the same rollout (same seed, same slates).

    Reports the raw cosine, the cosine after removing the mean user state of the step (the
    towers give every user a large shared component, so the raw cosine between *different*
    users is high too; it is reported as a reference), and how often fast and exact agree on
    the top-5 of each user's 20 candidates.
    """
    fast, exact = _env("lm-fast", n_users, path), _env("lm-exact", n_users, path)
    d = fast.sim.encoder.dim
    rng = np.random.default_rng(1)
    fast.reset(seed=3)
    exact.reset(seed=3)
    raw, centred, other, top5 = [], [], [], []

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    for _ in range(n_steps):
        action = np.argsort(rng.random((n_users, 20)), axis=1)[:, :5]
        fast.step(action)
        exact.step(action)
        u, v = fast.sim.states[:, :d], exact.sim.states[:, :d]
        raw.append(float(np.mean(np.sum(u * v, axis=1))))
        mean = v.mean(axis=0)
        centred.append(float(np.mean(np.sum(unit(u - mean) * unit(v - mean), axis=1))))
        other.append(float(np.mean(np.sum(v * np.roll(v, 1, axis=0), axis=1))))
        items = fast.sim.item_embeddings[fast.sim.candidates]
        su, sv = np.einsum("nd,ncd->nc", u, items), np.einsum("nd,ncd->nc", v, items)
        tu, tv = np.argsort(-su, axis=1)[:, :5], np.argsort(-sv, axis=1)[:, :5]
        top5.append(float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(tu, tv, strict=True)])))
    return {
        "n_users": n_users,
        "n_steps": n_steps,
        "mean_cosine": float(np.mean(raw)),
        "min_step_cosine": float(np.min(raw)),
        "mean_centred_cosine": float(np.mean(centred)),
        "mean_cosine_exact_of_different_users": float(np.mean(other)),
        "top5_overlap": float(np.mean(top5)),
        "per_step_cosine": raw,
        "per_step_centred_cosine": centred,
    }


def encode_throughput(path: str) -> dict:
    from recsim_llm.config import EnvConfig
    from recsim_llm.envs.core import SlateSimulator
    from recsim_llm.lm.state import LMExactEncoder
    from recsim_llm.world.catalog import generate_catalog

    enc = LMExactEncoder(path or None)
    lm = enc.bundle.lm
    catalog = generate_catalog(EnvConfig().world.catalog)
    items = catalog.texts()[:256]
    lm.encode_items(items[:16])
    start = time.perf_counter()
    lm.encode_items(items)
    item_rate = len(items) / (time.perf_counter() - start)
    sim = SlateSimulator(EnvConfig(), 64, encoder=enc)
    rng = np.random.default_rng(0)
    sim.reset(rng)
    for _ in range(25):  # fill histories past the token budget
        sim.log.record(
            sim.candidates[:, :5],
            rng.integers(-1, 5, 64),
            rng.integers(1, 6, 64).astype(float),
            np.ones(64),
        )
        sim.draw_candidates(rng)
    texts = enc.history_texts(sim.log, sim.titles)
    n_tok = [lm.n_tokens(t) for t in texts]
    start = time.perf_counter()
    lm.encode_users(texts)
    hist_rate = len(texts) / (time.perf_counter() - start)
    return {
        "item_texts_per_s": item_rate,
        "history_texts_per_s": hist_rate,
        "history_tokens_mean": float(np.mean(n_tok)),
        "history_token_budget": lm.user_max_length,
    }


def finetune_throughput(n_batches: int) -> dict:
    from recsim_llm.lm.finetune import FinetuneConfig, Trainer
    from recsim_llm.lm.logs import load_logs, write_behaviour_logs

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = load_logs(write_behaviour_logs(Path(tmp) / "logs", n_users=64, n_steps=20, seed=0))
        for lora in (True, False):
            cfg = FinetuneConfig(lora=lora, batch_size=16, max_val_rows=16, lr=1e-4)
            trainer = Trainer(cfg, data, progress=False)
            import torch

            params = [p for p in trainer.model.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=cfg.lr)
            trainer.model.train()
            rows = trainer.train_rows
            for r in rows[:32].reshape(2, 16):  # warm-up and text cache
                [trainer.user_text(int(x), True) for x in r]
            for r in rows[: 16 * n_batches].reshape(n_batches, 16):
                [trainer.user_text(int(x), True) for x in r]
            start = time.perf_counter()
            for b in range(n_batches):
                loss = trainer.batch_loss(rows[16 * b : 16 * (b + 1)], True)
                opt.zero_grad()
                loss.backward()
                opt.step()
            seconds = time.perf_counter() - start
            n_train, n_all = (
                sum(p.numel() for p in params),
                sum(p.numel() for p in trainer.model.parameters()),
            )
            out["lora" if lora else "full"] = {
                "samples_per_s": 16 * n_batches / seconds,
                "batches": n_batches,
                "trainable_params": n_train,
                "trainable_fraction": n_train / n_all,
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_encoder.json")
    parser.add_argument("--encoder", default="", help="encoder directory (default: shipped)")
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["agreement"], default=None, help="run one part")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    result: dict = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": args.threads,
            "processor": platform.processor(),
        }
    }
    secs = 1.0 if args.quick else 3.0
    if args.only == "agreement":
        result["agreement"] = agreement(args.encoder, 32, 10 if args.quick else 20)
        print(
            json.dumps(
                {k: v for k, v in result["agreement"].items() if not k.startswith("per_step")}
            )
        )
        return
    rows = []
    for n in (1, 64, 1024):
        for enc in ("bow", "lm-fast", "lm-exact"):
            exact_steps = {1: 20, 64: 2, 1024: 1}[n]
            max_steps = exact_steps if enc == "lm-exact" else 100_000
            r = env_throughput(enc, n, args.encoder, secs if enc != "lm-exact" else 0.0, max_steps)
            print(json.dumps(r), flush=True)
            rows.append(r)
    result["env"] = rows
    rate = {(r["encoder"], r["n_users"]): r["user_steps_per_s"] for r in rows}
    result["ratios"] = {
        str(n): {
            "fast_over_bow": rate["lm-fast", n] / rate["bow", n],
            "fast_over_exact": rate["lm-fast", n] / rate["lm-exact", n],
        }
        for n in (1, 64, 1024)
    }
    print(json.dumps(result["ratios"]), flush=True)
    result["agreement"] = agreement(args.encoder, 32, 10 if args.quick else 20)
    print(
        json.dumps({k: v for k, v in result["agreement"].items() if not k.startswith("per_step")}),
        flush=True,
    )
    result["encode"] = encode_throughput(args.encoder)
    print(json.dumps(result["encode"]), flush=True)
    result["finetune"] = finetune_throughput(3 if args.quick else 6)
    print(json.dumps(result["finetune"]), flush=True)
    from recsim_llm.io import atomic_write_text

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
