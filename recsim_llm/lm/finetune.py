"""Fine-tuning the LM user encoder on logged behaviour (full fine-tuning or LoRA).

Objectives:

* ``two-tower`` (default): user tower (history text) and item tower (item text) share the LM and
  a projection; the loss is in-batch softmax over the batch's positive items plus binary
  cross-entropy of a scaled cosine on (user, shown item, response). It is what makes per-step env
  states cheap: item embeddings are computed once, and a ``FastHead`` (fit afterwards by
  distillation onto the exact user tower plus the same BCE) updates users from cached item
  embeddings.
* ``pointwise``: a cross-encoder on the (history text, item text) pair with BCE (a stronger
  scorer, no per-user state; not usable as an env encoder).

Training uses AdamW, a validation split for early stopping (on validation loss), a tqdm bar and
per-epoch metrics. Splits are by user or by time; test rows are never read during training.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm.lm.logs import Histories, LogData, Split, labels, load_logs, split_logs
from recsim_llm.lm.metrics import auc


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning settings (all validated)."""

    model_path: str = ""
    """Pretrained backbone directory; '' = the bundled all-MiniLM-L6-v2."""
    objective: str = "two-tower"
    """'two-tower' (env-ready) or 'pointwise' (cross-encoder)."""
    lora: bool = True
    """LoRA (PEFT) on query/value instead of full fine-tuning."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    proj_dim: int = 32
    """Projection of both towers (the env's item and user state size); 0 = the LM's hidden size."""
    label: str = "click"
    """Response to predict: 'click' or 'liked' (rating >= 4)."""
    lr: float = 2e-4
    batch_size: int = 16
    epochs: int = 2
    weight_decay: float = 0.01
    dropout: float = 0.1
    patience: int = 1
    """Epochs without validation-loss improvement before stopping."""
    split: str = "user"
    """'user' or 'time'."""
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    cold_item_fraction: float = 0.3
    """Share of item ids held out of training (the cold items of ``encoder-eval``): 0.3 gives
    the cold-item segment >= 200 rankings on the default log size (256 users x 40 steps)."""
    max_train_rows: int = 2000
    """Training rows used (a seeded subsample; 0 = all)."""
    max_val_rows: int = 200
    user_max_length: int = 128
    """Token budget of a history text (most recent events kept)."""
    item_max_length: int = 64
    history_steps: int = 20
    """Steps of history rendered (the env's history_length)."""
    fast_rows: int = 800
    """Training rows used to fit the fast head by distillation (0 = skip)."""
    fast_epochs: int = 300
    seed: int = 0
    threads: int = 2
    """torch CPU threads (0 = torch default)."""
    max_steps: int = 0
    """Stop after this many optimiser steps in total (0 = no limit; for smoke runs)."""
    init_from: str = ""
    """Encoder directory to start from (its adapter or weights, heads, tokenizer; checked by
    ``recsim_llm.lm.transfer.check_init_from``); '' = the pretrained backbone."""

    def __post_init__(self) -> None:
        if self.objective not in ("two-tower", "pointwise"):
            raise ValueError(
                f"objective must be 'two-tower' or 'pointwise', got {self.objective!r}"
            )
        if self.label not in ("click", "liked"):
            raise ValueError(f"label must be 'click' or 'liked', got {self.label!r}")
        if self.split not in ("user", "time"):
            raise ValueError(f"split must be 'user' or 'time', got {self.split!r}")
        for name, low in (
            ("lora_r", 1),
            ("lora_alpha", 1),
            ("batch_size", 2),
            ("epochs", 1),
            ("patience", 0),
            ("max_train_rows", 0),
            ("max_val_rows", 1),
            ("user_max_length", 8),
            ("item_max_length", 8),
            ("history_steps", 1),
            ("fast_rows", 0),
            ("fast_epochs", 1),
            ("seed", 0),
            ("threads", 0),
            ("proj_dim", 0),
            ("max_steps", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name, low, high in (
            ("lr", 0.0, 1.0),
            ("weight_decay", 0.0, 10.0),
            ("dropout", 0.0, 0.9),
            ("lora_dropout", 0.0, 0.9),
        ):
            value = getattr(self, name)
            if (
                not isinstance(value, (int, float))
                or not low <= value <= high
                or (name == "lr" and value == 0)
            ):
                raise ValueError(f"{name} must be in [{low}, {high}] (lr > 0), got {value!r}")
        if not isinstance(self.init_from, str):
            raise ValueError(f"init_from must be a directory path (str), got {self.init_from!r}")


@dataclass
class TrainingSet:
    """Rows and texts the trainer reads (built once per fine-tune)."""

    data: LogData
    split: Split
    y: np.ndarray
    user_text: dict[int, str] = field(default_factory=dict)


class Trainer:
    """One fine-tuning run (see ``finetune``)."""

    def __init__(self, config: FinetuneConfig, data: LogData, progress: bool = True) -> None:
        import torch

        from recsim_llm.lm.model import build_model, set_threads

        self.config = config
        self.progress = progress
        set_threads(config.threads)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xF17]))
        self.data = data
        self.split = split_logs(
            data,
            config.split,
            config.val_fraction,
            config.test_fraction,
            config.cold_item_fraction,
            config.seed,
        )
        self.y = labels(data, config.label)
        self.tokenizer, self.model = build_model(
            config.model_path,
            config.proj_dim,
            config.dropout,
            config.lora,
            config.lora_r,
            config.lora_alpha,
            config.lora_dropout,
            config.seed,
        )
        if config.init_from:  # start from a fine-tuned encoder instead (checked, shapes must fit)
            from recsim_llm.lm.transfer import build_from_encoder

            self.tokenizer, self.model = build_from_encoder(config)
        self.train_hist = Histories(data, config.history_steps, drop_items=self.split.cold_items)
        self.cold = np.zeros(data.n_items, dtype=bool)
        self.cold[self.split.cold_items] = True
        rows = self.split.train[~self.cold[data.slates[self.split.train]].all(axis=1)]
        if config.max_train_rows and rows.size > config.max_train_rows:
            rows = np.sort(self.rng.choice(rows, config.max_train_rows, replace=False))
        self.train_rows = rows
        val = self.split.val
        if val.size > config.max_val_rows:
            val = np.sort(self.rng.choice(val, config.max_val_rows, replace=False))
        self.val_rows = val
        self.val_hist = Histories(data, config.history_steps)
        self._user_text: dict[tuple[int, bool], str] = {}
        # Per training row: one positive (if any, not cold) and one sampled skipped item.
        self.n_tokens = lambda s: len(self.tokenizer(s)["input_ids"])

    # -- data ------------------------------------------------------------------------------------
    def user_text(self, row: int, train: bool) -> str:
        key = (int(row), train)
        if key not in self._user_text:
            hist = self.train_hist if train else self.val_hist
            self._user_text[key] = hist.text(int(row), self.n_tokens, self.config.user_max_length)
        return self._user_text[key]

    def pairs(self, rows: np.ndarray, train: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row index, item, label) of one positive (when there is one) and one negative per row."""
        out_r, out_i, out_y = [], [], []
        for r in rows.tolist():
            slate, y = self.data.slates[r], self.y[r]
            ok = ~self.cold[slate] if train else np.ones(slate.size, dtype=bool)
            pos = np.flatnonzero((y > 0) & ok)
            neg = np.flatnonzero((y == 0) & ok)
            if pos.size:
                out_r.append(r), out_i.append(int(slate[pos[0]])), out_y.append(1.0)
            if neg.size:
                j = int(neg[self.rng.integers(neg.size)]) if train else int(neg[0])
                out_r.append(r), out_i.append(int(slate[j])), out_y.append(0.0)
        return (
            np.array(out_r, dtype=np.int64),
            np.array(out_i, dtype=np.int64),
            np.array(out_y, dtype=np.float32),
        )

    # -- losses ------------------------------------------------------------------------------------
    def batch_loss(self, rows: np.ndarray, train: bool) -> Any:
        import torch
        from torch.nn import functional as F

        from recsim_llm.lm.model import tokenize

        cfg, model, tok = self.config, self.model, self.tokenizer
        pr, pi, py = self.pairs(rows, train)
        if pr.size == 0:
            return None
        target = torch.from_numpy(py)
        if cfg.objective == "pointwise":
            batch = tokenize(
                tok,
                [self.user_text(r, train) for r in pr.tolist()],
                cfg.user_max_length + cfg.item_max_length,
                pairs=[self.data.item_texts[i] for i in pi.tolist()],
            )
            return F.binary_cross_entropy_with_logits(model.pair_logit(batch), target)
        users = np.unique(pr)
        items = np.unique(pi)
        u = model.embed(
            tokenize(tok, [self.user_text(r, train) for r in users.tolist()], cfg.user_max_length)
        )
        v = model.embed(
            tokenize(tok, [self.data.item_texts[i] for i in items.tolist()], cfg.item_max_length)
        )
        u_idx = torch.from_numpy(np.searchsorted(users, pr))
        v_idx = torch.from_numpy(np.searchsorted(items, pi))
        loss = F.binary_cross_entropy_with_logits(model.dot_logit(u[u_idx], v[v_idx]), target)
        pos = py > 0
        if pos.sum() >= 2:
            logits = model.logit_scale.exp() * u[u_idx[pos]] @ v.T
            loss = loss + F.cross_entropy(logits, v_idx[pos])
        return loss

    def score_slates(self, rows: np.ndarray, train: bool = False) -> np.ndarray:
        """(len(rows), slate_size) response scores of shown items (eval mode)."""
        import torch

        from recsim_llm.lm.model import encode_texts, tokenize

        cfg, model = self.config, self.model
        slates = self.data.slates[rows]
        if cfg.objective == "pointwise":
            out = np.zeros(slates.shape, dtype=np.float32)
            model.eval()
            with torch.inference_mode():
                for i, r in enumerate(rows.tolist()):
                    batch = tokenize(
                        self.tokenizer,
                        [self.user_text(r, train)] * slates.shape[1],
                        cfg.user_max_length + cfg.item_max_length,
                        pairs=[self.data.item_texts[j] for j in slates[i].tolist()],
                    )
                    out[i] = model.pair_logit(batch).numpy()
            return out
        u = encode_texts(
            model,
            self.tokenizer,
            [self.user_text(r, train) for r in rows.tolist()],
            cfg.user_max_length,
            32,
        )
        items = np.unique(slates)
        v = encode_texts(
            model,
            self.tokenizer,
            [self.data.item_texts[i] for i in items.tolist()],
            cfg.item_max_length,
        )
        return np.einsum("nd,nkd->nk", u, v[np.searchsorted(items, slates)])

    def validate(self) -> dict[str, float]:
        import torch

        self.model.eval()
        losses = []
        with torch.inference_mode():
            for start in range(0, self.val_rows.size, self.config.batch_size):
                loss = self.batch_loss(self.val_rows[start : start + self.config.batch_size], False)
                if loss is not None:
                    losses.append(loss.item())
        scores = self.score_slates(self.val_rows)
        return {
            "val_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_auc": auc(scores, self.y[self.val_rows]),
        }

    # -- training ----------------------------------------------------------------------------------
    def train(self) -> list[dict[str, Any]]:
        import torch

        cfg, model = self.config, self.model
        # Each objective trains its own head; the fast head is fit afterwards (fit_fast_head).
        if cfg.objective == "two-tower":
            params = [
                p
                for n, p in model.named_parameters()
                if p.requires_grad and not n.startswith(("fast.", "pair_head."))
            ]
        else:
            params = [
                p
                for n, p in model.named_parameters()
                if p.requires_grad and n.startswith(("backbone.", "pair_head."))
            ]
        optimiser = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        history = [{"epoch": 0, "train_loss": float("nan"), **self.validate(), "seconds": 0.0}]
        self._log(history[-1])
        best = (history[-1]["val_loss"], self._snapshot())
        bad_epochs, steps = 0, 0
        n_batches = math.ceil(self.train_rows.size / cfg.batch_size)
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            start = time.perf_counter()
            order = self.rng.permutation(self.train_rows)
            losses = []
            bar = self._bar(n_batches, f"epoch {epoch}/{cfg.epochs}")
            for b in range(n_batches):
                loss = self.batch_loss(order[b * cfg.batch_size : (b + 1) * cfg.batch_size], True)
                if loss is not None:
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    optimiser.step()
                    losses.append(loss.item())
                    steps += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}" if losses else "-")
                if cfg.max_steps and steps >= cfg.max_steps:
                    break
            if bar is not None:
                bar.close()
            seconds = time.perf_counter() - start
            record = {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)) if losses else float("nan"),
                **self.validate(),
                "seconds": seconds,
                "train_samples_per_s": len(losses) * cfg.batch_size / max(seconds, 1e-9),
            }
            history.append(record)
            self._log(record)
            if record["val_loss"] < best[0] - 1e-4:
                best, bad_epochs = (record["val_loss"], self._snapshot()), 0
            else:
                bad_epochs += 1
                if bad_epochs > cfg.patience:
                    break
            if cfg.max_steps and steps >= cfg.max_steps:
                break
        model.load_state_dict(best[1], strict=False)
        model.eval()
        return history

    def _snapshot(self) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in self.model.named_parameters() if v.requires_grad}

    def _bar(self, total: int, desc: str) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="batch", leave=False)

    def _log(self, record: dict[str, Any]) -> None:
        if self.progress:
            print(
                " ".join(
                    f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in record.items()
                ),
                flush=True,
            )

    # -- fast head ---------------------------------------------------------------------------------
    def fit_fast_head(self) -> dict[str, float]:
        """Fit the fast user tower on training rows: distil the exact tower, plus BCE."""
        import torch
        from torch.nn import functional as F

        from recsim_llm import text

        cfg, model = self.config, self.model
        rows = self.train_rows
        if rows.size > cfg.fast_rows:
            rows = np.sort(self.rng.choice(rows, cfg.fast_rows, replace=False))
        exact = self.encode_users([self.user_text(r, True) for r in rows.tolist()])
        profiles = self.encode_users(
            [text.history_text(self.data.profiles[r], []) for r in rows.tolist()]
        )
        max_events = cfg.history_steps * self.data.slates.shape[1]
        items, types, ages, mask = self.train_hist.arrays(rows, max_events)
        pr, pi, py = self.pairs(rows, True)
        # Only the items these histories and pairs mention need the item tower.
        used = np.unique(np.concatenate([items[mask], pi]))
        item_emb = np.zeros((self.data.n_items, model.dim), dtype=np.float32)
        item_emb[used] = self.encode_items([self.data.item_texts[i] for i in used.tolist()])
        local = np.searchsorted(rows, pr)
        t = {
            k: torch.from_numpy(v)
            for k, v in dict(
                p=profiles,
                e=item_emb[items],
                types=types,
                ages=ages,
                mask=mask,
                exact=exact,
                pi=item_emb[pi],
                py=py,
                local=local,
            ).items()
        }
        head = model.fast
        optimiser = torch.optim.Adam(head.parameters(), lr=1e-2)
        scale, bias = model.logit_scale.detach().exp(), model.logit_bias.detach()
        for _ in range(cfg.fast_epochs):
            state = head(t["p"], t["e"], t["types"], t["ages"], t["mask"])
            distil = (1.0 - (state * t["exact"]).sum(-1)).mean()
            logit = scale * (state[t["local"]] * t["pi"]).sum(-1) + bias
            loss = distil + 0.1 * F.binary_cross_entropy_with_logits(logit, t["py"])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            state = head(t["p"], t["e"], t["types"], t["ages"], t["mask"]).numpy()
        return {
            "fast_train_cosine": float((state * exact).sum(-1).mean()),
            "fast_rows": int(rows.size),
        }

    def encode_items(self, texts: list[str]) -> np.ndarray:
        from recsim_llm.lm.model import encode_texts

        return encode_texts(self.model, self.tokenizer, texts, self.config.item_max_length)

    def encode_users(self, texts: list[str]) -> np.ndarray:
        from recsim_llm.lm.model import encode_texts

        return encode_texts(self.model, self.tokenizer, texts, self.config.user_max_length, 32)


def encoder_config(trainer: Trainer) -> dict[str, Any]:
    """What ``encoder.json`` records about a fine-tuned model."""
    from recsim_llm.lm.model import BUNDLED_MODEL, trainable_fraction
    from recsim_llm.lm.store import arch_of
    from recsim_llm.lm.transfer import init_record

    cfg = trainer.config
    backbone = trainer.model.backbone
    base = backbone.base_model.model if cfg.lora else backbone
    n_train, n_all = trainable_fraction(trainer.model)
    meta = trainer.data.meta
    return {
        "base_model": BUNDLED_MODEL
        if cfg.model_path in ("", BUNDLED_MODEL)
        else str(Path(cfg.model_path).resolve()),
        "base_arch": arch_of(base),
        "lora": cfg.lora,
        "lora_r": cfg.lora_r,
        "lora_alpha": cfg.lora_alpha,
        "proj_dim": cfg.proj_dim,
        "dim": int(trainer.model.dim),
        "objective": cfg.objective,
        "label": cfg.label,
        "user_max_length": cfg.user_max_length,
        "item_max_length": cfg.item_max_length,
        "history_steps": cfg.history_steps,
        "trainable_params": n_train,
        "total_params": n_all,
        "trainable_fraction": n_train / n_all,
        "finetune": asdict(cfg),
        "logs": {
            k: meta.get(k) for k in ("source", "world_hash", "n_rows", "seed", "n_users", "n_steps")
        },
        "world_hash": meta.get("world_hash"),
        "init_from": init_record(cfg.init_from),
        "catalog_seed": (meta.get("env_config") or {})
        .get("world", {})
        .get("catalog", {})
        .get("seed"),
        "split": {
            "train_rows": int(trainer.train_rows.size),
            "val_rows": int(trainer.val_rows.size),
            "test_rows": int(trainer.split.test.size),
            "cold_items": int(trainer.split.cold_items.size),
        },
    }


def finetune(
    logs: str | os.PathLike[str] | LogData,
    out_dir: str | os.PathLike[str],
    config: FinetuneConfig | None = None,
    progress: bool = True,
    evaluate: bool = False,
    eval_rows: int = 400,
    cache_texts: dict[str, list[str]] | None = None,
) -> Path:
    """Fine-tune on a log directory and write the encoder directory ``out_dir`` (atomically).

    With ``evaluate`` the held-out test split is scored (see ``recsim_llm.lm.evaluate``) and
    the table goes into ``metrics.json``. ``cache_texts`` ({'items': [...], 'profiles': [...]})
    are pre-encoded into ``cache.npz`` so that envs over those texts start without running the LM.
    """
    from recsim_llm.io import check_out_dir
    from recsim_llm.lm.store import save_encoder

    check_out_dir(out_dir, "encoder")  # before any work; written by recsim_llm.io at the end
    config = config or FinetuneConfig()
    if config.init_from:
        from recsim_llm.lm.transfer import check_init_from

        check_init_from(config)  # before any work: a start that cannot fit is refused here
    data = logs if isinstance(logs, LogData) else load_logs(logs)
    trainer = Trainer(config, data, progress)
    n_train, n_all = 0, 0
    from recsim_llm.lm.model import trainable_fraction

    n_train, n_all = trainable_fraction(trainer.model)
    if progress:
        print(
            f"trainable parameters: {n_train:,} of {n_all:,} ({100.0 * n_train / n_all:.2f}%); "
            f"train rows {trainer.train_rows.size}, val rows {trainer.val_rows.size}",
            flush=True,
        )
    start = time.perf_counter()
    history = trainer.train()
    fast = trainer.fit_fast_head() if config.objective == "two-tower" and config.fast_rows else {}
    metrics: dict[str, Any] = {
        "history": history,
        "fast_head": fast,
        "train_seconds": time.perf_counter() - start,
    }
    enc_config = encoder_config(trainer)
    if evaluate:
        from recsim_llm.lm.evaluate import evaluate_trained

        metrics["evaluation"] = evaluate_trained(trainer, enc_config, max_rows=eval_rows)
    cache = None
    if cache_texts:
        cache = build_cache(trainer.model, trainer.tokenizer, enc_config, cache_texts)
    return save_encoder(out_dir, trainer.model, trainer.tokenizer, enc_config, metrics, cache)


def build_cache(
    model: Any, tokenizer: Any, enc_config: dict[str, Any], texts: dict[str, list[str]]
) -> dict[str, np.ndarray]:
    """Text-hash-keyed embeddings of item texts and profile (cold-start history) texts."""
    from recsim_llm import text
    from recsim_llm.lm.model import encode_texts
    from recsim_llm.lm.store import text_key

    out: dict[str, np.ndarray] = {}
    items = sorted(set(texts.get("items", [])))
    if items:
        out["item_keys"] = np.array([text_key(t) for t in items], dtype=np.uint64)
        out["item_emb"] = encode_texts(model, tokenizer, items, enc_config["item_max_length"], 128)
    profiles = sorted(set(texts.get("profiles", [])))
    if profiles:
        out["profile_keys"] = np.array([text_key(t) for t in profiles], dtype=np.uint64)
        out["profile_emb"] = encode_texts(
            model,
            tokenizer,
            [text.history_text(p, []) for p in profiles],
            enc_config["user_max_length"],
            128,
        )
    return out
