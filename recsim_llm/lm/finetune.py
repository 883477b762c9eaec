"""Fine-tuning the LM user encoder on logged behaviour (full fine-tuning or LoRA).

Objectives:

* ``two-tower`` (default): user tower (history text) and item tower (item text) share the LM and
  a projection. The click logit is ``s * cos(u, v) + b(v) + c + pos[j]``: an item bias ``b`` (a
  linear head on the item embedding) carries the item prior (appeal), so the cosine is free to
  carry taste; ``pos[j]`` absorbs the click propensity of slate position ``j`` (training only).
  The loss is binary cross-entropy on every shown item of the row plus an in-batch softmax of
  each click against the batch's shown items (clicked elsewhere or skipped: mixed negatives),
  with its own temperature and a logQ correction (the log share of training impressions of each
  item, subtracted so that often-shown items are not pushed down just for being in every batch).
  A ``FastHead`` (fit afterwards on the same click objective over every training row, plus a
  small distillation term onto the exact user tower) updates users from cached item embeddings:
  it is the env's ``lm-fast`` state.
* ``pointwise``: a cross-encoder on the (history text, item text) pair with BCE (a stronger
  scorer, no per-user state; not usable as an env encoder).

Training uses AdamW, a validation split for early stopping (on the validation rows' per-row
AUC, checked every ``val_every`` steps and at each epoch end), tqdm bars and progress lines
throughout (training, validation, fast head, caches). Splits are by user or by time; test rows are never read during training.
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
    """Passes of the LM stage over the training rows; 0 skips the LM stage (the pretrained LM
    with its initial LoRA, whitened projection and item bias; only the fast head is fit)."""
    weight_decay: float = 0.01
    dropout: float = 0.1
    patience: int = 1
    """Validations without a per-row validation AUC improvement before stopping."""
    keep_best: bool = True
    """Restore the weights of the best validation (early stopping's choice, which may be the
    untuned start); False keeps the weights of the last optimiser step."""
    val_every: int = 0
    """Validate every this many optimiser steps as well as at each epoch end (0 = epoch ends)."""
    softmax_weight: float = 1.0
    """Weight of the in-batch softmax loss beside the click BCE (0 = BCE only)."""
    logq: bool = True
    """Subtract the log impression share of each item from the in-batch softmax logits."""
    split: str = "user"
    """'user' or 'time'."""
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    cold_item_fraction: float = 0.1
    max_train_rows: int = 0
    """Training rows used (a seeded subsample; 0 = all)."""
    max_val_rows: int = 400
    user_max_length: int = 128
    """Token budget of a history text (most recent events kept)."""
    item_max_length: int = 64
    history_steps: int = 20
    """Steps of history rendered (the env's history_length)."""
    fast_rows: int = 800
    """Training rows whose exact user state the fast head is distilled onto (0 = skip the
    fast head). Its click objective uses every training row."""
    fast_epochs: int = 1200
    """Optimiser steps (512 rows each) of the fast head's fit."""
    fast_lr: float = 3e-3
    fast_loss: str = "bce"
    """The fast stage's click objective: 'bce' (binary cross-entropy on every shown item of
    every training row) or 'slate' (a conditional logit within each row's shown items, rows
    with a response only: how often an item was shown does not enter)."""
    fast_distil: float = 0.0
    """Weight of the distillation term (1 - cosine to the exact tower) in the fast head's loss."""
    fast_proj: bool = False
    """The fast stage trains the projection too (on the LM's cached pooled outputs of items,
    profiles and the distillation histories: the LM itself stays frozen there). The whitened
    start keeps MiniLM's top principal directions, which are mostly topic words mixed with
    filler; fitting the projection on every training row's clicks lets the item and user
    vectors keep the directions that predict them (topic, clickbait wording, quality words).
    The exact tower shares the projection, so it moves with it."""
    id_bias: bool = False
    """The fast stage adds a free bias per warm training item to the training logits (not
    saved, never used to score): item-specific click rates go there, so the text-based item
    prior ``b(v)`` and the projection learn only what carries over to other items (as
    DropoutNet-style hybrid recommenders keep ID effects out of the content part)."""
    fast_proj_l2: float = 0.0
    """With ``fast_proj``: weight of an L2 pull of the projection's weight matrix toward its
    start (squared Frobenius distance over the start's squared norm; its bias is not pulled);
    it limits how far the projection can fit single warm items."""
    seed: int = 0
    threads: int = 2
    """torch CPU threads (0 = torch default)."""
    max_steps: int = 0
    """Stop after this many optimiser steps in total (0 = no limit; for smoke runs)."""
    init_from: str = ""
    """Encoder directory to start from (its adapter or weights, heads, tokenizer; checked by
    ``recsim_llm.lm.transfer.check_init_from``); '' = the pretrained backbone."""
    whiten: bool = True
    """Start the projection as a PCA whitening of the training items' pooled LM outputs
    (centred, top ``proj_dim`` directions, unit variance each). Raw MiniLM outputs are
    anisotropic: every text sits near one common direction (mean pairwise cosine ~0.99 after a
    random projection), so cosines carry little beyond that direction and training collapses
    further. Whitened, the untrained towers already rank by topic (ignored with ``init_from``
    or ``proj_dim`` 0)."""
    prior_direction: bool = False
    """With ``whiten``: the last projection dimension is the item click-prior direction instead
    of the 32nd principal one: a ridge regression, over the warm training items, of each item's
    smoothed training click logit on its pooled LM output (impression-weighted). MiniLM's top
    principal directions carry topic, not the clickbait wording that drives clicks (in the 32-d
    whitened space a probe finds the clickbait openers at AUC 0.74; in the 384-d output at
    0.9999); this keeps that signal in the item vector, where the item bias ``b(v)`` can read
    it, for cold items too (it is a direction of the text space, not a per-item value)."""
    prior_fit: str = "rate"
    """How ``prior_direction`` is fit: 'rate' (ridge of each warm item's smoothed response
    logit on its pooled output, impression-weighted; the only choice when a row shows one
    item, as on MovieLens) or 'slate' (a conditional logit within each training slate: the
    responded-to item against the others shown with it, so how often an item was shown does
    not enter; neither ranks cold-item rows above chance on the default world,
    ``benchmarks/prior_direction_cold.py``)."""
    item_refresh: int = 50
    """Two-tower: the item side reads the backbone's pooled item outputs computed without
    gradients, refreshed every this many optimiser steps (the LM's cost per step is then the
    user histories only); the projection and item bias still learn from both sides."""

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
            ("epochs", 0),
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
            ("val_every", 0),
            ("item_refresh", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name, low, high in (
            ("lr", 0.0, 1.0),
            ("weight_decay", 0.0, 10.0),
            ("dropout", 0.0, 0.9),
            ("lora_dropout", 0.0, 0.9),
            ("softmax_weight", 0.0, 100.0),
            ("fast_distil", 0.0, 100.0),
            ("fast_lr", 1e-6, 1.0),
            ("fast_proj_l2", 0.0, 1e6),
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
        if not isinstance(self.logq, bool):
            raise ValueError(f"logq must be True or False, got {self.logq!r}")
        if not isinstance(self.id_bias, bool):
            raise ValueError(f"id_bias must be True or False, got {self.id_bias!r}")
        if not isinstance(self.fast_proj, bool):
            raise ValueError(f"fast_proj must be True or False, got {self.fast_proj!r}")
        if self.fast_proj_l2 > 0 and not self.fast_proj:
            raise ValueError("fast_proj_l2 > 0 needs fast_proj=True (it pulls that projection)")
        if (self.fast_proj or self.id_bias) and (
            self.fast_rows < 1 or self.objective != "two-tower"
        ):
            raise ValueError(
                "fast_proj and id_bias act in the fast stage: they need fast_rows >= 1 and "
                f"objective 'two-tower', got fast_rows {self.fast_rows!r}, objective "
                f"{self.objective!r}"
            )
        if self.fast_proj and (self.proj_dim < 1 or self.objective != "two-tower"):
            raise ValueError(
                "fast_proj trains the projection in the fast stage: it needs proj_dim >= 1 and "
                f"objective 'two-tower', got proj_dim {self.proj_dim!r}, objective "
                f"{self.objective!r}"
            )
        if not isinstance(self.prior_direction, bool):
            raise ValueError(f"prior_direction must be True or False, got {self.prior_direction!r}")
        if self.fast_loss not in ("bce", "slate"):
            raise ValueError(f"fast_loss must be 'bce' or 'slate', got {self.fast_loss!r}")
        if self.prior_fit not in ("rate", "slate"):
            raise ValueError(f"prior_fit must be 'rate' or 'slate', got {self.prior_fit!r}")
        if self.prior_fit != "rate" and not self.prior_direction:
            raise ValueError(
                f"prior_fit {self.prior_fit!r} needs prior_direction=True (it says how that "
                "direction is fit)"
            )
        if self.prior_direction and (
            self.whiten is not True
            or self.objective != "two-tower"
            or self.proj_dim < 2
            or self.init_from
        ):
            raise ValueError(
                "prior_direction sets the whitened projection's start: it needs whiten=True, "
                "objective 'two-tower', proj_dim >= 2 and no init_from"
            )
        if not isinstance(self.whiten, bool):
            raise ValueError(f"whiten must be True or False, got {self.whiten!r}")
        if not isinstance(self.keep_best, bool):
            raise ValueError(f"keep_best must be True or False, got {self.keep_best!r}")


@dataclass
class TrainingSet:
    """Rows and texts the trainer reads (built once per fine-tune)."""

    data: LogData
    split: Split
    y: np.ndarray
    user_text: dict[int, str] = field(default_factory=dict)


def row_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Mean over rows (with both classes) of the AUC within the row; NaN when no row qualifies."""
    values = [auc(s, t) for s, t in zip(scores, y, strict=True) if 0 < t.sum() < t.size]
    return float(np.mean(values)) if values else float("nan")


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
        self.cold = self.split.cold_mask(data.n_items)
        rows = self.split.train[~self.cold[data.slates[self.split.train]].all(axis=1)]
        self.all_train_rows = rows
        if config.max_train_rows and rows.size > config.max_train_rows:
            rows = np.sort(self.rng.choice(rows, config.max_train_rows, replace=False))
        self.train_rows = rows
        val = self.split.val
        if val.size > config.max_val_rows:
            val = np.sort(self.rng.choice(val, config.max_val_rows, replace=False))
        self.val_rows = val
        self.val_hist = Histories(data, config.history_steps)
        self._user_text: dict[tuple[int, bool], str] = {}
        # logQ: each item's share of the training impressions. In-batch negatives are the
        # batch's shown items, drawn about in proportion to it (the behaviour policy favours
        # high-utility, often clickbait items).
        shown = np.bincount(
            data.slates[self.all_train_rows].ravel(), minlength=data.n_items
        ).astype(np.float64)
        self.log_q = np.log((shown + 1.0) / (shown.sum() + data.n_items)).astype(np.float32)
        self.n_tokens = lambda s: len(self.tokenizer(s)["input_ids"])
        self._pooled: np.ndarray | None = None
        base_rate = float(np.clip(self.y[self.all_train_rows].mean(), 1e-4, 1 - 1e-4))
        import torch as _torch

        with _torch.no_grad():
            # Start the constant at the training click rate: from 0, the first steps spend the
            # base rate on the weights (Adam moves every weight against the mean shown item,
            # which ranks *against* clicks until the constant catches up).
            self.model.logit_bias.fill_(math.log(base_rate / (1.0 - base_rate)))
        if config.whiten and not config.init_from and config.objective == "two-tower":
            if config.proj_dim > 0:
                if config.prior_direction:  # checked before the LM runs over the catalog
                    shown = self.y[self.all_train_rows]
                    if not 0 < float(shown.sum()) < shown.size:
                        raise ValueError(
                            "prior_direction needs training rows with both clicks and "
                            f"non-clicks (label {config.label!r})"
                        )
                self.refresh_items()
                assert self._pooled is not None
                warm = np.setdiff1d(np.arange(data.n_items), self.split.cold_items)
                prior = None
                if config.prior_direction:
                    fit = (
                        slate_prior_direction
                        if config.prior_fit == "slate"
                        else (click_prior_direction)
                    )
                    prior = fit(
                        self._pooled,
                        data.slates[self.all_train_rows],
                        self.y[self.all_train_rows],
                        warm,
                    )
                whiten_projection(self.model, self._pooled[warm], prior)

    # -- data ------------------------------------------------------------------------------------
    def user_text(self, row: int, train: bool) -> str:
        key = (int(row), train)
        if key not in self._user_text:
            hist = self.train_hist if train else self.val_hist
            self._user_text[key] = hist.text(int(row), self.n_tokens, self.config.user_max_length)
        return self._user_text[key]

    def pairs(self, rows: np.ndarray, train: bool) -> tuple[np.ndarray, ...]:
        """(row, item, label, position) of every shown item of ``rows`` (not cold, training)."""
        slates = self.data.slates[rows]
        keep = ~self.cold[slates] if train else np.ones(slates.shape, dtype=bool)
        r_idx, pos = np.nonzero(keep)
        return (
            rows[r_idx].astype(np.int64),
            slates[r_idx, pos].astype(np.int64),
            self.y[rows][r_idx, pos].astype(np.float32),
            pos.astype(np.int64),
        )

    # -- losses ------------------------------------------------------------------------------------
    def batch_loss(self, rows: np.ndarray, train: bool) -> Any:
        import torch
        from torch.nn import functional as F

        from recsim_llm.lm.model import MAX_POSITIONS, tokenize

        cfg, model, tok = self.config, self.model, self.tokenizer
        pr, pi, py, pp = self.pairs(rows, train)
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
        v = model.project(self.item_pooled(items))
        u_idx = torch.from_numpy(np.searchsorted(users, pr))
        v_idx = torch.from_numpy(np.searchsorted(items, pi))
        position = model.position_bias[torch.from_numpy(np.minimum(pp, MAX_POSITIONS - 1))]
        logit = model.dot_logit(u[u_idx], v[v_idx]) + position
        loss = F.binary_cross_entropy_with_logits(logit, target)
        pos = py > 0
        if cfg.softmax_weight > 0 and pos.sum() >= 1 and items.size >= 2:
            # Each click against every item shown in the batch (other users' clicks and skips).
            # The cosine only: the item prior is the BCE's item bias, so the softmax (whose
            # negatives are mostly popular items, corrected by logQ) teaches taste.
            logits = model.softmax_scale.exp() * u[u_idx[pos]] @ v.T
            if cfg.logq:
                logits = logits - torch.from_numpy(self.log_q[items])
            loss = loss + cfg.softmax_weight * F.cross_entropy(logits, v_idx[pos])
        return loss

    def score_slates(self, rows: np.ndarray, train: bool = False) -> np.ndarray:
        """(len(rows), slate_size) position-free response scores of shown items (eval mode)."""
        import torch

        from recsim_llm.lm.model import tokenize

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
        u = self.encode_users([self.user_text(r, train) for r in rows.tolist()], "validation")
        import torch

        self.refresh_items()  # the current weights, for these scores and the next steps
        with torch.inference_mode():
            was_training = model.training
            model.eval()
            v = model.project(torch.from_numpy(self._pooled)).numpy()
            model.train(was_training)
        scale, bias = self.head_numpy()
        vv = v[slates]
        return scale * np.einsum("nd,nkd->nk", u, vv) + vv @ bias[0] + bias[1]

    def item_pooled(self, items: np.ndarray) -> Any:
        """Pooled backbone outputs of ``items`` (no gradient), from the refreshed cache."""
        import torch

        if self._pooled is None:
            self.refresh_items()
        return torch.from_numpy(self._pooled[items])

    def refresh_items(self) -> None:
        """Recompute the pooled backbone outputs of every item with the current weights."""
        import torch

        from recsim_llm.lm.model import tokenize

        model, texts = self.model, self.data.item_texts
        was_training = model.training
        model.eval()
        out = np.zeros((len(texts), model.hidden), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                idx = order[start : start + 64]
                batch = tokenize(
                    self.tokenizer, [texts[i] for i in idx], self.config.item_max_length
                )
                out[idx] = model.pooled(batch).float().numpy()
        model.train(was_training)
        self._pooled = out

    def head_numpy(self) -> tuple[float, tuple[np.ndarray, float]]:
        """(click scale, (item-bias weight, item-bias constant)) as NumPy."""
        m = self.model
        w = m.item_bias.weight.detach().numpy().reshape(-1).astype(np.float32)
        return float(m.logit_scale.detach().exp()), (w, float(m.item_bias.bias.detach()))

    def validate(self) -> dict[str, float]:
        import torch

        self.model.eval()
        if self.progress:
            print(f"validating on {self.val_rows.size} rows ...", flush=True)
        scores = self.score_slates(self.val_rows)
        y = self.y[self.val_rows]
        if self.config.objective == "two-tower":
            # The click BCE of the position-free logits (the scores plus the constant).
            logit = torch.from_numpy(
                (scores + float(self.model.logit_bias.detach())).astype(np.float32)
            )
            losses = [
                torch.nn.functional.binary_cross_entropy_with_logits(
                    logit, torch.from_numpy(y)
                ).item()
            ]
        else:
            losses = []
            with torch.inference_mode():
                for start in range(0, self.val_rows.size, self.config.batch_size):
                    batch = self.val_rows[start : start + self.config.batch_size]
                    loss = self.batch_loss(batch, False)
                    if loss is not None:
                        losses.append(loss.item())
        return {
            "val_loss": float(np.mean(losses)) if losses else float("nan"),
            "val_auc": auc(scores, y),
            "val_row_auc": row_auc(scores, y),
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
        # The small heads (scales, biases, position offsets) learn at 10x the LM's rate: at the
        # LM's rate they barely move in the few hundred steps a CPU run affords.
        small = {"logit_scale", "logit_bias", "softmax_scale", "position_bias"}
        fast_names = {
            n for n, _ in model.named_parameters() if n in small or n.startswith("item_bias.")
        }
        chosen = {id(p) for p in params}
        groups = [
            {
                "params": [
                    p
                    for n, p in model.named_parameters()
                    if id(p) in chosen and n not in fast_names
                ],
                "lr": cfg.lr,
            },
            {
                "params": [
                    p for n, p in model.named_parameters() if id(p) in chosen and n in fast_names
                ],
                "lr": 10 * cfg.lr,
                "weight_decay": 0.0,
            },
        ]
        optimiser = torch.optim.AdamW(
            [g for g in groups if g["params"]], lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        history = [{"epoch": 0, "step": 0, "train_loss": float("nan"), **self.validate()}]
        self._log(history[-1])
        key = stopping_key(cfg.objective, int(self.data.slates.shape[1]))

        def score(record: dict[str, Any]) -> float:
            value = record[key]
            return -np.inf if not np.isfinite(value) else value

        best = (score(history[-1]), self._snapshot())
        bad, steps, stop = 0, 0, False
        n_batches = math.ceil(self.train_rows.size / cfg.batch_size)
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            start = time.perf_counter()
            order = self.rng.permutation(self.train_rows)
            losses: list[float] = []
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
                    if cfg.objective == "two-tower" and steps % cfg.item_refresh == 0:
                        self.refresh_items()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}" if losses else "-")
                last = b == n_batches - 1 or bool(cfg.max_steps and steps >= cfg.max_steps)
                if last or (cfg.val_every and steps and steps % cfg.val_every == 0):
                    seconds = time.perf_counter() - start
                    record = {
                        "epoch": epoch,
                        "step": steps,
                        "train_loss": float(np.mean(losses)) if losses else float("nan"),
                        **self.validate(),
                        "seconds": seconds,
                        "train_samples_per_s": len(losses) * cfg.batch_size / max(seconds, 1e-9),
                    }
                    model.train()
                    history.append(record)
                    self._log(record)
                    if score(record) > best[0] + 1e-4:
                        best, bad = (score(record), self._snapshot()), 0
                    else:
                        bad += 1
                        stop = bad > cfg.patience
                if last or stop:
                    break
            if bar is not None:
                bar.close()
            if stop or (cfg.max_steps and steps >= cfg.max_steps):
                break
        if cfg.keep_best:
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
        """Fit the fast user tower: the click objective on every training row, plus distillation.

        The fast head is the env's ``lm-fast`` state, so it is trained on what the state is for
        (ranking a user's shown items: BCE of ``s * cos(u_fast, v) + b(v)``, position offsets as
        in training) over all training rows; a small term (``fast_distil``) keeps it near the
        exact user tower on ``fast_rows`` rows, so that fast and exact states stay comparable.
        """
        import torch
        from torch.nn import functional as F

        from recsim_llm import text
        from recsim_llm.lm.model import MAX_POSITIONS

        cfg, model = self.config, self.model
        rows = self.all_train_rows
        distil_rows = rows
        if rows.size > cfg.fast_rows:
            distil_rows = np.sort(self.rng.choice(rows, cfg.fast_rows, replace=False))
        if self.progress:
            print(
                f"fast head: encoding {distil_rows.size} histories (distillation), profiles and "
                "items ...",
                flush=True,
            )
        # With fast_proj the stage reads the LM's pooled outputs and projects them itself (the
        # projection learns); otherwise the fixed unit-norm tower embeddings.
        pooled = cfg.fast_proj
        exact = self.encode_users(
            [self.user_text(r, True) for r in distil_rows.tolist()],
            "fast head: histories",
            pooled=pooled,
        )
        profile_of = [self.data.profiles[r] for r in rows.tolist()]
        unique_profiles = sorted(set(profile_of))
        p_emb = self.encode_users(
            [text.history_text(p, []) for p in unique_profiles], pooled=pooled
        )
        p_idx = {p: i for i, p in enumerate(unique_profiles)}
        profile_ids = np.array([p_idx[p] for p in profile_of], dtype=np.int64)
        max_events = cfg.history_steps * self.data.slates.shape[1]
        items, types, ages, mask = self.train_hist.arrays(rows, max_events)
        slates = self.data.slates[rows]
        used = np.unique(np.concatenate([items[mask], slates.ravel()]))
        width = model.hidden if pooled else model.dim
        item_emb = np.zeros((self.data.n_items, width), dtype=np.float32)
        item_emb[used] = self.encode_items(
            [self.data.item_texts[i] for i in used.tolist()], pooled=pooled
        )
        y = self.y[rows]
        ok = ~self.cold[slates]
        d_local = np.searchsorted(rows, distil_rows)
        t = {
            k: torch.from_numpy(np.ascontiguousarray(v))
            for k, v in dict(
                p=p_emb,
                p_ids=profile_ids,
                items=items,
                types=types,
                ages=ages,
                mask=mask,
                exact=exact,
                slates=slates,
                y=y,
                ok=ok.astype(np.float32),
                d_local=d_local,
                emb=item_emb,
            ).items()
        }
        head = model.fast
        # The item bias, position offsets and constant are refit with the fast head on every
        # training row (cheap on cached embeddings); the exact tower's scores use them too.
        refit = [
            *head.parameters(),
            *model.item_bias.parameters(),
            model.position_bias,
            model.logit_bias,
            model.logit_scale,
        ]
        if pooled:
            refit += list(model.proj.parameters())
            proj_start = model.proj.weight.detach().clone()
            proj_norm = float((proj_start**2).sum())
        id_bias = None
        if cfg.id_bias:
            id_bias = torch.nn.Parameter(torch.zeros(self.data.n_items))
            refit.append(id_bias)
        optimiser = torch.optim.Adam(refit, lr=cfg.fast_lr)

        def towers() -> tuple[Any, Any, Any]:
            """(item embeddings, unique-profile embeddings, exact states) at this step: the
            fixed tower embeddings, or with fast_proj the current projection of the pooled
            outputs (rows pick their profile by ``t["p_ids"]``)."""
            if not pooled:
                return t["emb"], t["p"], t["exact"]
            return (
                F.normalize(model.proj(t["emb"]), dim=-1),
                F.normalize(model.proj(t["p"]), dim=-1),
                F.normalize(model.proj(t["exact"]), dim=-1),
            )

        n_pos = min(slates.shape[1], MAX_POSITIONS)
        positions = torch.arange(slates.shape[1]).clamp(max=n_pos - 1)
        bar = self._bar(cfg.fast_epochs, "fast head")
        n_batch = 512  # rows per step of the click objective (and 256 distillation rows)
        for _ in range(cfg.fast_epochs):
            emb, profiles, exact_states = towers()
            order = torch.from_numpy(self.rng.permutation(rows.size)[:n_batch])
            state = head(
                profiles[t["p_ids"][order]],
                emb[t["items"][order]],
                t["types"][order],
                t["ages"][order],
                t["mask"][order],
            )
            slate_v = emb[t["slates"][order]]
            slate_b = model.bias_of(slate_v) + model.logit_bias + model.position_bias[positions]
            if id_bias is not None:
                slate_b = slate_b + id_bias[t["slates"][order]]
            scale = model.logit_scale.exp()
            logit = scale * (state[:, None, :] * slate_v).sum(-1) + slate_b
            if cfg.fast_loss == "slate":
                # A conditional logit within each slate (rows with a response; cold items out).
                ok = t["ok"][order] > 0
                target = t["y"][order] * ok
                has = target.sum(-1) > 0
                logp = torch.log_softmax(logit.masked_fill(~ok, -1e9), dim=-1)
                bce = -(target[has] * logp[has]).sum(-1).mean()
            else:
                bce = F.binary_cross_entropy_with_logits(
                    logit, t["y"][order], weight=t["ok"][order]
                )
            loss = bce
            if pooled and cfg.fast_proj_l2 > 0:
                drift = ((model.proj.weight - proj_start) ** 2).sum() / proj_norm
                loss = loss + cfg.fast_proj_l2 * drift
            if cfg.fast_distil > 0:
                pick = torch.from_numpy(self.rng.permutation(distil_rows.size)[:256])
                dl = t["d_local"][pick]
                d_state = head(
                    profiles[t["p_ids"][dl]],
                    emb[t["items"][dl]],
                    t["types"][dl],
                    t["ages"][dl],
                    t["mask"][dl],
                )
                # The target is detached: with fast_proj the projection must not lower the
                # distance by moving the exact states toward the fast ones.
                distil = (1.0 - (d_state * exact_states[pick].detach()).sum(-1)).mean()
                loss = loss + cfg.fast_distil * distil
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(bce=f"{bce.item():.4f}")
        if bar is not None:
            bar.close()
        with torch.no_grad():
            emb, profiles, exact_states = towers()
            dl = t["d_local"]
            state = head(
                profiles[t["p_ids"][dl]],
                emb[t["items"][dl]],
                t["types"][dl],
                t["ages"][dl],
                t["mask"][dl],
            )
            cos = float((state * exact_states).sum(-1).mean())
        return {
            "fast_train_cosine": cos,
            "fast_rows": int(rows.size),
            "fast_distil_rows": int(dl.numel()),
        }

    def encode_items(self, texts: list[str], pooled: bool = False) -> np.ndarray:
        from recsim_llm.lm.model import encode_texts

        return encode_texts(
            self.model, self.tokenizer, texts, self.config.item_max_length, pooled=pooled
        )

    def encode_users(self, texts: list[str], desc: str = "", pooled: bool = False) -> np.ndarray:
        from recsim_llm.lm.model import encode_texts

        return encode_texts(
            self.model,
            self.tokenizer,
            texts,
            self.config.user_max_length,
            32,
            progress=desc if self.progress else "",
            pooled=pooled,
        )


def stopping_key(objective: str, slate_size: int) -> str:
    """The validation metric early stopping follows.

    Two-tower on slates of several items: the per-row AUC within the shown slate. With one shown
    item per row (MovieLens logs) a row has no negative, the per-row AUC is undefined (NaN) and
    would never improve, so the pooled validation AUC is used; pointwise: the pooled AUC.
    """
    if objective == "two-tower" and slate_size > 1:
        return "val_row_auc"
    return "val_auc"


def click_prior_direction(
    pooled: np.ndarray, slates: np.ndarray, clicks: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """(hidden,) the direction of the pooled LM space that predicts an item's response rate.

    Ridge regression over ``items`` (the warm ones) of each item's smoothed response logit in
    ``slates``/``clicks`` (training rows: shown items and their 0/1 labels, clicks or the
    config's ``label``; ten pseudo-impressions at the overall rate) on its centred pooled
    output, each item weighted by its impressions;
    the ridge is 10% of the mean weighted variance per dimension. Items never shown weigh 0.
    """
    x = np.asarray(pooled, dtype=np.float64)[items]
    n_items = pooled.shape[0]
    shows = np.bincount(slates.ravel(), minlength=n_items).astype(np.float64)[items]
    hits = np.bincount(slates.ravel(), weights=clicks.ravel(), minlength=n_items)[items]
    if shows.sum() <= 0 or not 0.0 < hits.sum() < shows.sum():
        raise ValueError("prior_direction needs training rows with both clicks and non-clicks")
    base = hits.sum() / shows.sum()
    rate = (hits + 10.0 * base) / (shows + 10.0)
    z = np.log(rate / (1.0 - rate))
    w = shows / shows.sum()
    xc = x - w @ x
    zc = z - w @ z
    gram = xc.T @ (xc * w[:, None])
    ridge = 0.1 * np.trace(gram) / gram.shape[0]
    beta = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), xc.T @ (w * zc))
    return beta


def slate_prior_direction(
    pooled: np.ndarray,
    slates: np.ndarray,
    clicks: np.ndarray,
    items: np.ndarray,
    l2: float = 1e-2,
    max_iter: int = 200,
) -> np.ndarray:
    """(hidden,) the item-prior direction fit *within* slates (a conditional logit).

    Over the rows whose shown items are all in ``items`` (the warm ones) and that have a
    response: maximise ``sum_j y_j log softmax_j(z_j · beta)`` over each row's shown items,
    ``z`` the items' pooled outputs whitened over ``items`` (every direction with spread), with
    an L2 penalty ``l2 |beta|^2``; L-BFGS. Comparing an item only with the items shown beside
    it leaves out how often it was shown (on the default world it does not rank cold-item rows
    better than the 'rate' fit: ``benchmarks/prior_direction_cold.py``). Returns the direction
    in the pooled space.
    """
    import torch

    x = np.asarray(pooled, dtype=np.float64)
    keep = np.zeros(x.shape[0], dtype=bool)
    keep[items] = True
    rows = (
        keep[slates].all(axis=1) & (clicks.sum(axis=1) > 0) & (clicks.sum(axis=1) < clicks.shape[1])
    )
    if not rows.any():
        raise ValueError("prior_direction needs training rows with both clicks and non-clicks")
    mean = x[items].mean(axis=0)
    _, sv, vt = np.linalg.svd(x[items] - mean, full_matrices=False)
    rank = int((sv > 1e-6 * sv[0]).sum())
    scale = math.sqrt(len(items)) / sv[:rank]
    z = torch.from_numpy((((x - mean) @ vt[:rank].T) * scale).astype(np.float32))
    shown = torch.from_numpy(np.ascontiguousarray(slates[rows]))
    target = torch.from_numpy(np.ascontiguousarray(clicks[rows], dtype=np.float32))
    beta = torch.zeros(rank, requires_grad=True)
    optimiser = torch.optim.LBFGS([beta], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Any:
        optimiser.zero_grad()
        logits = z[shown] @ beta
        loss = -(torch.log_softmax(logits, dim=1) * target).sum(dim=1).mean()
        loss = loss + l2 * beta.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    b = beta.detach().numpy().astype(np.float64)
    return vt[:rank].T @ (b * scale)


def whiten_projection(model: Any, pooled: np.ndarray, prior: np.ndarray | None = None) -> None:
    """Set ``model.proj`` to the PCA whitening of ``pooled`` (n_items, hidden) outputs.

    With ``prior`` (a (hidden,) direction, ``click_prior_direction``), the last output
    dimension is, instead of the ``dim``-th principal direction, the part of the prior's score
    that the top ``dim - 1`` coordinates do not explain (unit variance): the coordinates stay
    uncorrelated and the prior's score is an exact linear function of them.

    ``proj(x) = (x - mean) @ V_k / sigma_k * sqrt(n)``: the top ``dim`` principal directions,
    each scaled to unit variance over the items (floored at 5% of the top spread), centred on
    their mean. The towers' unit-norm
    embeddings then spread over the sphere instead of sitting near one common direction.
    """
    import torch

    x = np.asarray(pooled, dtype=np.float64)
    dim = int(model.dim)
    if x.ndim != 2 or x.shape[1] != model.hidden or x.shape[0] <= dim:
        raise ValueError(
            f"whitening needs more than {dim} items of width {model.hidden}, got {x.shape}"
        )
    mean = x.mean(axis=0)
    xc = x - mean
    n_pca = dim
    if prior is not None:
        d = np.asarray(prior, dtype=np.float64).reshape(-1)
        if d.shape != (model.hidden,) or not np.all(np.isfinite(d)) or not np.any(d):
            raise ValueError(f"prior must be a finite non-zero ({model.hidden},) direction")
        n_pca = dim - 1
    _, sv, vt = np.linalg.svd(xc, full_matrices=False)
    # Directions with under 5% of the top one's spread are scaled as if they had 5%: dividing by
    # a near-zero spread would amplify float noise (e.g. a LoRA merge's rounding) without bound.
    # MiniLM's top 32 directions over a catalog span 1.0 to 0.36 of the top one: untouched.
    spread = np.maximum(sv[:dim], 0.05 * sv[0] + 1e-12)
    weight = vt[:dim] / spread[:, None] * math.sqrt(x.shape[0])
    if prior is not None:
        # The last row: the prior's score minus what the first dim-1 coordinates explain,
        # scaled to unit variance. The coordinates stay uncorrelated, and their span holds the
        # prior's score exactly (a linear read-out such as the item bias can recover it).
        z = xc @ weight[:n_pca].T
        score = xc @ d
        # Least squares, not z.T @ score / n: floored directions have variance under 1.
        coef = np.linalg.lstsq(z, score, rcond=None)[0]
        row = d - coef @ weight[:n_pca]
        sd = float(np.std(xc @ row))
        if sd > 1e-6 * float(np.std(score)):  # else the span already holds it: keep PCA's row
            weight[n_pca] = row / sd
    with torch.no_grad():
        model.proj.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        model.proj.bias.copy_(torch.from_numpy((-(weight @ mean)).astype(np.float32)))


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
        "item_bias": cfg.objective == "two-tower",
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
        cache = build_cache(
            trainer.model, trainer.tokenizer, enc_config, cache_texts, progress=progress
        )
    return save_encoder(out_dir, trainer.model, trainer.tokenizer, enc_config, metrics, cache)


def build_cache(
    model: Any,
    tokenizer: Any,
    enc_config: dict[str, Any],
    texts: dict[str, list[str]],
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Text-hash-keyed embeddings of item texts and profile (cold-start history) texts."""
    from recsim_llm import text
    from recsim_llm.lm.model import encode_texts
    from recsim_llm.lm.store import text_key

    out: dict[str, np.ndarray] = {}
    items = sorted(set(texts.get("items", [])))
    if items:
        out["item_keys"] = np.array([text_key(t) for t in items], dtype=np.uint64)
        out["item_emb"] = encode_texts(
            model,
            tokenizer,
            items,
            enc_config["item_max_length"],
            128,
            progress=f"cache: {len(items)} item texts" if progress else "",
        )
    profiles = sorted(set(texts.get("profiles", [])))
    if profiles:
        out["profile_keys"] = np.array([text_key(t) for t in profiles], dtype=np.uint64)
        out["profile_emb"] = encode_texts(
            model,
            tokenizer,
            [text.history_text(p, []) for p in profiles],
            enc_config["user_max_length"],
            128,
            progress=f"cache: {len(profiles)} profile texts" if progress else "",
        )
    return out
