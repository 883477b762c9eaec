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
the recorded architecture; anything else raises ``EncoderFormatError`` naming the file. The cache
is read back only through ``read_cache``: it must be listed in ``encoder.json``, the bytes read
must match the recorded sha256, and its arrays must have the expected names, dtypes, shapes and
finite values. Written encoder directories are ``"encoder"`` outputs of ``recsim_llm.io`` (marked,
swapped in whole); reading needs no marker (the shipped encoder has none).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm.io import check_out_dir, json_text, output_directory
from recsim_llm.lm.backends import check_serving, weights_file
from recsim_llm.lm.model import build_model, resolve_model_path

ENCODER_FORMAT = "recsim-llm-encoder/1"
CACHE_FILE = "cache.npz"
CACHE_PAIRS = (("item_keys", "item_emb"), ("profile_keys", "profile_emb"))
"""Arrays of ``cache.npz``: text keys (uint64, ``(n,)``) and their embeddings (float, ``(n, dim)``)."""
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

    def item_bias(self, item_vectors: np.ndarray) -> np.ndarray:
        """(m,) item bias b(v) of item embeddings (m, dim); zeros when the encoder has none.

        The response score of the two-tower model is ``scale * u.v + b(v)`` (plus a constant):
        ``u.v`` alone is the bias-free part, ``b`` the item prior learned beside it.
        """
        vectors = np.asarray(item_vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"item_vectors must have shape (m, {self.dim}), got {vectors.shape}")
        head = getattr(self.model, "item_bias", None)
        if head is None or not self.config.get("item_bias", False):
            return np.zeros(vectors.shape[0], dtype=np.float32)
        w = head.weight.detach().cpu().numpy().astype(np.float32).reshape(-1)
        b = float(head.bias.detach().cpu().numpy().reshape(-1)[0])
        return (vectors @ w + b).astype(np.float32)

    @property
    def logit_scale(self) -> float:
        """The click logit's scale on the cosine (``exp`` of the learned log-scale)."""
        return float(self.model.logit_scale.detach().exp().item())


def save_encoder(
    out_dir: str | os.PathLike[str],
    model: Any,
    tokenizer: Any,
    config: dict[str, Any],
    metrics: dict[str, Any],
    cache: dict[str, np.ndarray] | None = None,
    write_weights: Callable[[Path], None] | None = None,
) -> Path:
    """Write an encoder directory atomically (see the module docstring); returns its path.

    ``write_weights(staging_dir)``, when given, writes the backbone instead of ``adapter/`` or
    ``backbone/`` (serving encoders: ``recsim_llm.lm.quantise``).

    Raises:
        OutputError: ``out_dir`` is not ours to replace (see ``recsim_llm.io``).
    """
    from safetensors.torch import save_file

    lora = bool(config["lora"])
    with output_directory(out_dir, "encoder") as tmp:
        if write_weights is not None:
            write_weights(tmp)
        elif lora:
            model.backbone.save_pretrained(str(tmp / "adapter"))
            (tmp / "adapter" / "README.md").unlink(missing_ok=True)  # PEFT boilerplate
        else:
            model.backbone.save_pretrained(str(tmp / "backbone"), safe_serialization=True)
        heads = {k: v.detach().cpu().contiguous() for k, v in model.head_state_dict().items()}
        save_file(heads, str(tmp / "heads.safetensors"))
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        (tmp / "metrics.json").write_text(json_text(metrics), encoding="utf-8")
        if cache:
            check_cache_arrays(Path(out_dir) / CACHE_FILE, cache, int(config["dim"]))
            np.savez(tmp / CACHE_FILE, **cache)
        files = {
            str(p.relative_to(tmp)): sha256_file(p)
            for p in sorted(tmp.rglob("*"))
            if p.is_file() and p.name not in ("encoder.json", "metrics.json")
        }
        manifest = {**config, "format": ENCODER_FORMAT, "files": files}
        (tmp / "encoder.json").write_text(json_text(manifest), encoding="utf-8")
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
    if "serving" in config:
        try:
            check_serving(cfg_path, config["serving"])
        except ValueError as err:
            raise EncoderFormatError(str(err)) from None
    needed = weights_file(config)
    if needed not in config["files"] or "heads.safetensors" not in config["files"]:
        raise EncoderFormatError(
            f"{cfg_path}: files must list {needed!r} and 'heads.safetensors' "
            f"(lora={config['lora']}, serving={config.get('serving', {}).get('method')})"
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
    if config.get("serving"):
        # A serving encoder (recsim-llm quantise): ONNX Runtime or bfloat16 backbone, merged.
        from recsim_llm.lm.backends import load_serving_backbone
        from recsim_llm.lm.model import rec_lm_class

        backbone = load_serving_backbone(root, config, n_threads)
        _check_arch(root, config, backbone)
        tokenizer = None  # read from tokenizer/ below
        model = rec_lm_class()(backbone, config["proj_dim"], 0.0)
    elif config["lora"]:
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
    if tokenizer is None and not tok_dir.is_dir():
        raise EncoderFormatError(f"{root}: serving encoders need their tokenizer/ folder")
    if tok_dir.is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    heads = load_file(str(root / "heads.safetensors"))
    expected = model.head_state_dict()
    from recsim_llm.lm.model import OPTIONAL_HEADS

    # Encoders saved before the item bias / softmax temperature lack those heads: they keep
    # their zero (bias) or default (temperature) values, which reproduces the old scores.
    expected_names = set(expected) - (set(OPTIONAL_HEADS) - set(heads))
    if set(heads) != expected_names or any(heads[k].shape != expected[k].shape for k in heads):
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
    check_out_dir(dst, "encoder")
    loaded = load_encoder(src)
    if not loaded.config["lora"]:
        raise ValueError(f"encoder {str(src)!r} is not a LoRA encoder (nothing to merge)")
    cache = read_cache(src, loaded.config)
    model = loaded.model
    model.backbone = model.backbone.merge_and_unload()
    config = {k: v for k, v in loaded.config.items() if k not in ("files", "format")}
    config.update(lora=False, merged_from=str(src), base_model=str(Path(dst) / "backbone"))
    return save_encoder(dst, model, loaded.tokenizer, config, loaded.metrics, cache)


def check_cache_arrays(file: Path, arrays: dict[str, np.ndarray], dim: int) -> None:
    """Refuse a cache whose names, dtypes, shapes or values are not what ``read_cache`` expects.

    Raises:
        EncoderFormatError: naming ``file`` and what is wrong.
    """
    known = {name for pair in CACHE_PAIRS for name in pair}
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise EncoderFormatError(
            f"{file}: unexpected arrays {unknown}; expected some of {sorted(known)}"
        )
    for keys_name, emb_name in CACHE_PAIRS:
        if (keys_name in arrays) != (emb_name in arrays):
            raise EncoderFormatError(f"{file}: {keys_name!r} and {emb_name!r} come only together")
        if keys_name not in arrays:
            continue
        keys, emb = np.asarray(arrays[keys_name]), np.asarray(arrays[emb_name])
        if keys.dtype != np.uint64 or keys.ndim != 1:
            raise EncoderFormatError(
                f"{file}: {keys_name!r} must be a 1-d uint64 array, got {keys.dtype} {keys.shape}"
            )
        if emb.dtype.kind != "f" or emb.shape != (keys.size, dim):
            raise EncoderFormatError(
                f"{file}: {emb_name!r} must be a float array of shape ({keys.size}, {dim}) "
                f"(keys x encoder dim), got {emb.dtype} {emb.shape}"
            )
        if np.unique(keys).size != keys.size:
            raise EncoderFormatError(f"{file}: {keys_name!r} holds repeated keys")
        bad = ~np.isfinite(emb).all(axis=1)
        if bad.any():
            raise EncoderFormatError(
                f"{file}: {emb_name!r} holds non-finite values (NaN or inf) in {int(bad.sum())} of "
                f"{keys.size} rows; refit it (recsim-llm finetune --cache-world)"
            )


def read_cache(
    path: str | os.PathLike[str], config: dict[str, Any] | None = None
) -> dict[str, np.ndarray] | None:
    """The checked ``cache.npz`` of an encoder directory, or None when it has none.

    The cache must be listed in ``encoder.json`` (``config``, read and checked when not given);
    the bytes loaded are the bytes hashed (no pickles), and the arrays pass
    ``check_cache_arrays``.

    Raises:
        EncoderFormatError: unlisted, hash mismatch, unreadable, or wrong arrays; names the file.
    """
    root = Path(path)
    file = root / CACHE_FILE
    if not file.exists():
        return None
    if config is None:
        config = read_encoder_config(root)
    digest = config["files"].get(CACHE_FILE)
    if digest is None:
        raise EncoderFormatError(
            f"{file} is not listed in encoder.json, so it cannot be checked; remove it or rewrite "
            "the encoder with recsim-llm finetune"
        )
    payload = file.read_bytes()
    if hashlib.sha256(payload).hexdigest() != digest:
        raise EncoderFormatError(
            f"encoder file {file} does not match encoder.json (sha256 differs): corrupt or replaced"
        )
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise EncoderFormatError(f"{file} is not a readable .npz of plain arrays: {err}") from None
    check_cache_arrays(file, arrays, int(config["dim"]))
    return arrays
