"""Serving encoders: a fine-tuned encoder rewritten for fast inference (``recsim-llm quantise``).

Methods (measured in ``docs/benchmarks.md``, "Real-time serving path"; the ones that did not pay
are reported there and not offered here):

* ``bf16`` (default): the merged backbone stored and run in bfloat16 with torch; no extra needed.
  Within cosine 0.99 of float32 on the shipped encoder (tested). Fast only on CPUs with native
  bfloat16 (AVX512-BF16 or AMX); elsewhere it is slower than float32.
* ``onnx-int8``: the merged backbone exported to ONNX and its weights quantised per channel to
  int8 by ONNX Runtime's dynamic quantisation (activations quantised per call to uint8), except
  the feed-forward down-projections of the first two layers, kept in float32
  (``backends.FLOAT_FFN_LAYERS``; the serving record lists them as ``float32_nodes``). Needs the
  optional extra ``serve``. About 30% of float32's size and the fastest at batch 1. With every
  MatMul in int8 the shipped encoder's item vectors fell to cosine 0.988 of float32, under the
  0.99 tolerance; keeping those two in float32 brings every vector to 0.993 or more, but scores
  still move by up to ~0.01, beyond the top-5 tolerance (a strict expected-failure test records
  it), so it is not the default.

The output is an encoder directory like any other (kind ``"encoder"`` of ``recsim_llm.io``:
``--out`` checked before any work, written in a staging folder and swapped in whole) with the
source's heads, tokenizer, metrics and ``cache.npz`` (the float32 item/profile embeddings: items
are embedded offline, so the serving path keeps their full precision), and an ``encoder.json``
whose ``serving`` record names the method and the source. ``load_encoder`` and the env's
``lm-fast`` / ``lm-exact`` load it offline like a fine-tuned one. It cannot be fine-tuned further
or merged (its backbone is an inference artefact); quantise the fine-tuned source again instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recsim_llm.io import check_out_dir
from recsim_llm.lm.backends import (
    ONNX_FILE,
    export_onnx,
    quantise_onnx,
    require_onnx,
    weights_file,
)
from recsim_llm.lm.store import (
    load_encoder,
    read_cache,
    read_encoder_config,
    save_encoder,
    sha256_file,
)

METHODS = ("onnx-int8", "bf16")
"""Serving methods ``quantise_encoder`` writes."""

_RECORDS = {
    "onnx-int8": {"backend": "onnx", "dtype": "int8", "weights": ONNX_FILE},
    "bf16": {"backend": "torch", "dtype": "bfloat16", "weights": "backbone/model.safetensors"},
}


def quantise_encoder(
    src: str | os.PathLike[str] | None,
    dst: str | os.PathLike[str],
    method: str = "bf16",
    user_max_length: int = 0,
    keep_float32: Sequence[str] | None = None,
) -> Path:
    """Write a serving encoder for the fine-tuned encoder ``src`` (None = the shipped one).

    Args:
        src: a two-tower encoder directory written by ``recsim-llm finetune`` (LoRA, full or
            merged); None or '' for the shipped encoder.
        dst: the encoder directory to write (new, empty, or an encoder folder of ours).
        method: one of ``METHODS``.
        user_max_length: token budget of history texts for the new encoder (0 keeps the
            source's); a smaller budget is faster and keeps the most recent events.
        keep_float32: ``onnx-int8`` only: the exact names of the MatMuls to keep in float32
            instead of ``backends.float32_nodes``'s (for sensitivity studies; the serving record
            lists what was kept either way).

    Raises:
        OutputError: ``dst`` is not ours to replace (before any work).
        ValueError: unknown ``method``, a negative budget, ``keep_float32`` not a list of names
            (or given for ``bf16``, or naming no MatMul of the exported graph), or ``src``
            already a serving encoder.
        MissingExtraError: ``onnx-int8`` without the ``serve`` extra (before any work).
    """
    from recsim_llm.lm.state import shipped_encoder_path

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if user_max_length < 0:
        raise ValueError(
            f"user_max_length must be >= 0 (0 keeps the source's), got {user_max_length}"
        )
    if keep_float32 is not None:
        if method != "onnx-int8":
            raise ValueError(f"keep_float32 applies to 'onnx-int8' only, not {method!r}")
        if isinstance(keep_float32, str) or not all(isinstance(k, str) for k in keep_float32):
            raise ValueError(f"keep_float32 must be a list of MatMul names, got {keep_float32!r}")
    check_out_dir(dst, "encoder")
    if _RECORDS[method]["backend"] == "onnx":
        require_onnx()
    source = Path(src) if src else shipped_encoder_path()
    if not (source / "encoder.json").is_file():
        raise FileNotFoundError(f"--encoder {str(source)!r} is not an encoder directory")
    loaded = load_encoder(source)
    if loaded.config.get("serving"):
        raise ValueError(
            f"--encoder {str(source)!r} is already a serving encoder "
            f"({loaded.config['serving']['method']}); quantise its fine-tuned source instead"
        )
    if loaded.config.get("objective", "two-tower") != "two-tower":
        raise ValueError(
            f"--encoder {str(source)!r} holds a {loaded.config['objective']!r} model; only "
            "two-tower encoders have a serving path"
        )
    model = loaded.model
    if loaded.config["lora"]:
        model.backbone = model.backbone.merge_and_unload()
    cache = read_cache(source, loaded.config)
    config = {k: v for k, v in loaded.config.items() if k not in ("files", "format")}
    config["lora"] = False
    if user_max_length:
        config["user_max_length"] = int(user_max_length)
    config["serving"] = {
        "method": method,
        **_RECORDS[method],
        "source": str(source),
        "source_encoder_json_sha256": sha256_file(source / "encoder.json"),
        "source_user_max_length": int(loaded.config["user_max_length"]),
    }
    backbone = model.backbone

    def write_weights(tmp: Path) -> None:
        if method == "bf16":
            import torch

            backbone.to(torch.bfloat16).save_pretrained(
                str(tmp / "backbone"), safe_serialization=True
            )
            return
        with tempfile.TemporaryDirectory(prefix="recsim-llm-onnx-") as work:
            plain = export_onnx(backbone, loaded.tokenizer, Path(work))
            (tmp / "onnx").mkdir()
            # The MatMuls kept in float32 go into the serving record (written after this).
            config["serving"]["float32_nodes"] = quantise_onnx(plain, tmp / ONNX_FILE, keep_float32)
            (tmp / "onnx" / "config.json").write_bytes((Path(work) / "config.json").read_bytes())

    return save_encoder(
        dst, model, loaded.tokenizer, config, loaded.metrics, cache, write_weights=write_weights
    )


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Size on disk of an encoder directory's backbone weights and its serving record."""
    root = Path(path)
    config = read_encoder_config(root)
    return {
        "path": str(root),
        "serving": config.get("serving"),
        "weights_mb": (root / weights_file(config)).stat().st_size / 1e6,
    }
