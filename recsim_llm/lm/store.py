"""Fine-tuned encoder directories: save (atomically), load (checked), merge LoRA into weights.

Layout of an encoder directory::

    encoder.json          format, base model, LoRA/projection settings, fine-tune config,
                          world hash, trainable fraction, and the sha256 of every other file
    adapter/              LoRA: adapter_config.json + adapter_model.safetensors (PEFT)
    backbone/             full fine-tune (or merged): config.json + model.safetensors
    heads.safetensors     projection, logit scale/bias, pair head, fast head
    tokenizer/            tokenizer files
    metrics.json          training history and evaluation metrics
    cache.npz             optional: item/profile embeddings keyed by text hash

Loading checks every listed file exists with the recorded hash and that the base model matches
the recorded architecture; anything else raises ``EncoderFormatError`` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm.lm.logs import atomic_directory, write_json
from recsim_llm.lm.model import build_model, resolve_model_path

ENCODER_FORMAT = "recsim-llm-encoder/1"
_ARCH_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


class EncoderFormatError(ValueError):
    """An encoder directory is incomplete, corrupt or does not match its config."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def text_key(text: str) -> int:
    """64-bit stable key of a text (cache index)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def arch_of(backbone: Any) -> dict[str, Any]:
    config = backbone.config
    return {k: getattr(config, k, None) for k in _ARCH_KEYS}


@dataclass
class LoadedEncoder:
    """A fine-tuned encoder in memory."""

    path: Path
    config: dict[str, Any]
    tokenizer: Any
    model: Any
    metrics: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.config["dim"])

    @property
    def user_max_length(self) -> int:
        return int(self.config["user_max_length"])

    @property
    def item_max_length(self) -> int:
        return int(self.config["item_max_length"])

    def encode_items(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        from recsim_llm.lm.model import encode_texts

        return encode_texts(
            self.model, self.tokenizer, list(texts), self.item_max_length, batch_size
        )

    def encode_users(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        from recsim_llm.lm.model import encode_texts

        return encode_texts(
            self.model, self.tokenizer, list(texts), self.user_max_length, batch_size
        )

    def n_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])


def save_encoder(
    out_dir: str | os.PathLike[str],
    model: Any,
    tokenizer: Any,
    config: dict[str, Any],
    metrics: dict[str, Any],
    cache: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write an encoder directory atomically (see the module docstring); returns its path."""
    from safetensors.torch import save_file

    lora = bool(config["lora"])
    with atomic_directory(out_dir) as tmp:
        if lora:
            model.backbone.save_pretrained(str(tmp / "adapter"))
            (tmp / "adapter" / "README.md").unlink(missing_ok=True)  # PEFT boilerplate
        else:
            model.backbone.save_pretrained(str(tmp / "backbone"), safe_serialization=True)
        heads = {k: v.detach().cpu().contiguous() for k, v in model.head_state_dict().items()}
        save_file(heads, str(tmp / "heads.safetensors"))
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        write_json(tmp / "metrics.json", metrics)
        if cache:
            np.savez(tmp / "cache.npz", **cache)
        files = {
            str(p.relative_to(tmp)): sha256_file(p)
            for p in sorted(tmp.rglob("*"))
            if p.is_file() and p.name not in ("encoder.json", "metrics.json")
        }
        write_json(tmp / "encoder.json", {**config, "format": ENCODER_FORMAT, "files": files})
    return Path(out_dir)


def read_encoder_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked ``encoder.json`` of an encoder directory (files and hashes verified)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"encoder directory {str(root)!r} does not exist")
    cfg_path = root / "encoder.json"
    if not cfg_path.is_file():
        raise EncoderFormatError(f"{root} is not an encoder directory: encoder.json is missing")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise EncoderFormatError(f"{cfg_path} is not valid JSON: {err}") from None
    if config.get("format") != ENCODER_FORMAT:
        raise EncoderFormatError(
            f"{cfg_path}: format must be {ENCODER_FORMAT!r}, got {config.get('format')!r}"
        )
    for key in (
        "lora",
        "dim",
        "proj_dim",
        "base_model",
        "base_arch",
        "files",
        "user_max_length",
        "item_max_length",
    ):
        if key not in config:
            raise EncoderFormatError(f"{cfg_path} lacks the field {key!r}")
    needed = "adapter/adapter_model.safetensors" if config["lora"] else "backbone/model.safetensors"
    if needed not in config["files"] or "heads.safetensors" not in config["files"]:
        raise EncoderFormatError(
            f"{cfg_path}: files must list {needed!r} and 'heads.safetensors' "
            f"(lora={config['lora']})"
        )
    for name, digest in config["files"].items():
        file = root / name
        if not file.is_file():
            raise EncoderFormatError(f"encoder file {file} is missing (listed in encoder.json)")
        if sha256_file(file) != digest:
            raise EncoderFormatError(
                f"encoder file {file} does not match encoder.json (sha256 differs): corrupt or "
                "replaced"
            )
    return config


def load_encoder(path: str | os.PathLike[str], n_threads: int = 0) -> LoadedEncoder:
    """Load and check an encoder directory; the model is in eval mode."""
    import torch
    from safetensors.torch import load_file

    from recsim_llm.lm.model import set_threads

    set_threads(n_threads)
    root = Path(path)
    config = read_encoder_config(root)
    if config["lora"]:
        base = config["base_model"]
        try:
            base_dir = resolve_model_path(base)
        except (FileNotFoundError, ImportError) as err:
            raise EncoderFormatError(f"{root}: base model {base!r} unavailable: {err}") from err
        tokenizer, model = build_model(
            base_dir,
            config["proj_dim"],
            dropout=0.0,
            lora=True,
            lora_r=config["lora_r"],
            lora_alpha=config["lora_alpha"],
            lora_dropout=0.0,
        )
        _check_arch(root, config, model.backbone.base_model.model)
        from peft import set_peft_model_state_dict

        adapter_cfg = json.loads((root / "adapter" / "adapter_config.json").read_text())
        for adapter_key, config_key in (("r", "lora_r"), ("lora_alpha", "lora_alpha")):
            if float(adapter_cfg.get(adapter_key, -1)) != float(config[config_key]):
                raise EncoderFormatError(
                    f"{root / 'adapter' / 'adapter_config.json'}: {adapter_key}="
                    f"{adapter_cfg.get(adapter_key)} but encoder.json says "
                    f"{config_key}={config[config_key]}"
                )
        state = load_file(str(root / "adapter" / "adapter_model.safetensors"))
        result = set_peft_model_state_dict(model.backbone, state)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise EncoderFormatError(
                f"{root / 'adapter'}: unexpected adapter keys {unexpected[:3]}"
            )
    else:
        tokenizer, model = build_model(root / "backbone", config["proj_dim"], dropout=0.0)
        _check_arch(root, config, model.backbone)
    tok_dir = root / "tokenizer"
    if tok_dir.is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    heads = load_file(str(root / "heads.safetensors"))
    expected = model.head_state_dict()
    if set(heads) != set(expected) or any(heads[k].shape != expected[k].shape for k in heads):
        raise EncoderFormatError(
            f"{root / 'heads.safetensors'} does not match encoder.json (proj_dim="
            f"{config['proj_dim']}): heads differ in names or shapes"
        )
    with torch.no_grad():
        model.load_state_dict(heads, strict=False)
    model.eval()
    metrics_path = root / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return LoadedEncoder(root, config, tokenizer, model, metrics)


def _check_arch(root: Path, config: dict[str, Any], backbone: Any) -> None:
    actual = arch_of(backbone)
    recorded = config["base_arch"]
    diff = {k: (recorded.get(k), actual[k]) for k in _ARCH_KEYS if recorded.get(k) != actual[k]}
    if diff:
        raise EncoderFormatError(
            f"{root}: base model does not match encoder.json (recorded vs found: {diff})"
        )


def merge_encoder(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Merge a LoRA encoder's adapter into plain backbone weights, written as a new directory."""
    loaded = load_encoder(src)
    if not loaded.config["lora"]:
        raise ValueError(f"encoder {str(src)!r} is not a LoRA encoder (nothing to merge)")
    model = loaded.model
    model.backbone = model.backbone.merge_and_unload()
    config = {k: v for k, v in loaded.config.items() if k not in ("files", "format")}
    config.update(lora=False, merged_from=str(src), base_model=str(Path(dst) / "backbone"))
    return save_encoder(dst, model, loaded.tokenizer, config, loaded.metrics, _read_cache(src))


def _read_cache(path: str | os.PathLike[str]) -> dict[str, np.ndarray] | None:
    file = Path(path) / "cache.npz"
    if not file.is_file():
        return None
    with np.load(file) as z:
        return {k: z[k] for k in z.files}
