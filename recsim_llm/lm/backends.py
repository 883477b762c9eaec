"""Serving backbones of an encoder directory: ONNX Runtime (float32 or int8) and bfloat16 torch.

A *serving* encoder directory (written by ``recsim-llm quantise``, see ``recsim_llm.lm.quantise``)
holds the same heads, tokenizer and caches as a fine-tuned one, but its backbone is stored for
fast inference; ``encoder.json`` says how in its ``serving`` record::

    "serving": {"method": "onnx-int8", "backend": "onnx", "weights": "onnx/model.onnx", ...}

* ``onnx``: ``onnx/model.onnx`` (the merged backbone exported with ``torch.onnx.export``, its
  ``MatMul``/``Gather`` weights quantised to int8 by ONNX Runtime's dynamic quantisation for
  ``onnx-int8``) and ``onnx/config.json`` (the backbone's architecture, checked at load). Needs
  the optional extra ``serve`` (``onnxruntime``, ``onnx``).
* ``torch`` with ``dtype: bfloat16``: ``backbone/`` as plain weights stored in bfloat16, run in
  bfloat16 (fast where the CPU has AVX512-BF16 / AMX, slower where it has not).

The backbones returned here are ``torch.nn.Module`` drop-ins for the transformers model inside
``RecLM`` (same call, an output with a float32 ``last_hidden_state``), so every user of a loaded
encoder (evaluation, the env's ``lm-exact``, ``lm-fast`` cache misses) runs them unchanged. They
are for inference only: no gradients flow through ONNX Runtime.

Nothing here imports torch, transformers or onnxruntime at module level.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SERVE_EXTRA = "serve"
"""The optional extra that installs ONNX Runtime: ``pip install 'recsim-llm[serve]'``."""

BACKENDS = ("onnx", "torch")
ONNX_FILE = "onnx/model.onnx"
ONNX_CONFIG = "onnx/config.json"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class MissingExtraError(ImportError):
    """An optional dependency of a feature is not installed; the message names the extra."""


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or ``MissingExtraError`` naming the ``serve`` extra.

    Raises:
        MissingExtraError: either package is missing.
    """
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise MissingExtraError(
            f"ONNX Runtime serving needs the optional extra {SERVE_EXTRA!r}, which is not "
            f"installed ({err}): pip install 'recsim-llm[{SERVE_EXTRA}]' (onnxruntime and onnx), "
            "or use --method bf16, which needs no extra"
        ) from err
    return onnx, onnxruntime


def weights_file(config: dict[str, Any]) -> str:
    """The file an encoder directory's backbone weights must be listed under in ``encoder.json``."""
    serving = config.get("serving")
    if serving:
        return str(serving.get("weights", ""))
    return "adapter/adapter_model.safetensors" if config["lora"] else "backbone/model.safetensors"


def check_serving(file: Path, serving: Any) -> dict[str, Any]:
    """The ``serving`` record of ``encoder.json`` (``file``), checked.

    Raises:
        ValueError: not a dict, an unknown backend, or a weights path that does not fit it.
    """
    if not isinstance(serving, dict):
        raise ValueError(f"{file}: 'serving' must be an object, got {type(serving).__name__}")
    backend = serving.get("backend")
    if backend not in BACKENDS:
        raise ValueError(f"{file}: serving backend must be one of {BACKENDS}, got {backend!r}")
    expected = ONNX_FILE if backend == "onnx" else "backbone/model.safetensors"
    if serving.get("weights") != expected:
        raise ValueError(
            f"{file}: serving weights of backend {backend!r} must be {expected!r}, "
            f"got {serving.get('weights')!r}"
        )
    if backend == "torch" and serving.get("dtype") not in ("bfloat16", "float32"):
        raise ValueError(
            f"{file}: serving dtype of the torch backend must be 'bfloat16' or 'float32', "
            f"got {serving.get('dtype')!r}"
        )
    return serving


def _output(hidden: Any) -> Any:
    from transformers.modeling_outputs import BaseModelOutput

    return BaseModelOutput(last_hidden_state=hidden)


def _modules() -> tuple[type, type]:
    """Backbone classes, defined lazily (they subclass ``torch.nn.Module``)."""
    import torch

    class OnnxBackbone(torch.nn.Module):
        """A transformers-like backbone run by an ONNX Runtime session (inference only)."""

        def __init__(self, directory: Path, config: Any, n_threads: int) -> None:
            super().__init__()
            _, ort = require_onnx()
            self.config = config
            options = ort.SessionOptions()
            # ORT's default is one thread per core; follow torch's setting like the rest does.
            options.intra_op_num_threads = n_threads if n_threads > 0 else torch.get_num_threads()
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.session = ort.InferenceSession(
                str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
            self.input_names = [i.name for i in self.session.get_inputs()]

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> Any:
            given = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": (
                    token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
                ),
            }
            feed = {
                name: given[name].detach().cpu().numpy().astype(np.int64)
                for name in self.input_names
            }
            (hidden,) = self.session.run(["last_hidden_state"], feed)
            return _output(torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.float32)))

    class CastBackbone(torch.nn.Module):
        """A transformers backbone run in a lower precision, returning float32 hidden states."""

        def __init__(self, model: Any, dtype: Any) -> None:
            super().__init__()
            self.model = model.to(dtype)
            self.config = model.config

        def forward(self, **inputs: Any) -> Any:
            hidden = self.model(**inputs).last_hidden_state
            return _output(hidden.float())

    return OnnxBackbone, CastBackbone


def onnx_backbone(directory: str | os.PathLike[str], n_threads: int = 0) -> Any:
    """The ONNX Runtime backbone stored in ``directory`` (``model.onnx`` and ``config.json``)."""
    from transformers import AutoConfig

    path = Path(directory)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    return _modules()[0](path, config, n_threads)


def cast_backbone(model: Any, dtype: str) -> Any:
    """``model`` run in ``dtype`` (``'bfloat16'``) with float32 outputs."""
    import torch

    return _modules()[1](model, getattr(torch, dtype))


def load_serving_backbone(root: Path, config: dict[str, Any], n_threads: int = 0) -> Any:
    """The backbone of a serving encoder directory (``config`` is its checked ``encoder.json``).

    Raises:
        MissingExtraError: an ONNX backbone without the ``serve`` extra.
    """
    from recsim_llm.lm.model import set_offline

    set_offline()
    serving = config["serving"]
    if serving["backend"] == "onnx":
        return onnx_backbone(root / "onnx", n_threads)
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(root / "backbone"), local_files_only=True)
    model.eval()
    if serving["dtype"] == "float32":
        return model.float()
    return cast_backbone(model, serving["dtype"])


def export_onnx(backbone: Any, tokenizer: Any, directory: Path) -> Path:
    """Export a (plain, merged) transformers backbone to ``directory/model.onnx`` + config.

    Batch and sequence axes are dynamic; the graph outputs ``last_hidden_state`` (pooling and the
    heads stay in torch: they are a few small matrix products).
    """
    import torch

    require_onnx()

    class _Hidden(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    directory.mkdir(parents=True, exist_ok=True)
    backbone = backbone.float().eval()
    sample = tokenizer(
        ["a short example", "a somewhat longer example text for the export"],
        padding=True,
        return_tensors="pt",
    )
    args = tuple(
        sample[name] if name in sample else torch.zeros_like(sample["input_ids"]) for name in INPUTS
    )
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.inference_mode():
        # The TorchScript-based exporter warns that it is deprecated in favour of dynamo=True; the
        # dynamo exporter needs onnxscript and gives the same graph for this model.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Hidden(backbone),
            args,
            str(directory / "model.onnx"),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    backbone.config.to_json_file(str(directory / "config.json"))
    return directory / "model.onnx"


FLOAT_FFN_LAYERS = 2
"""``onnx-int8`` keeps the feed-forward down-projection (``layer.N/output/dense``) of the first
this many encoder layers in float32: measured on the shipped encoder (``docs/benchmarks.md``),
those two MatMuls carry most of int8's error on item texts (catalogue minimum cosine 0.988 with
every MatMul in int8, 0.993 with these two in float32), for 2.3x instead of 2.7x float32's
speed at batch 1 (``benchmarks/bench_int8_sweep.py``)."""

_FFN_DOWN = re.compile(r"/encoder/layer\.(\d+)/output/dense/MatMul$")


def float32_nodes(
    model: Any, n_layers: int = FLOAT_FFN_LAYERS, source: str = "ONNX graph"
) -> list[str]:
    """Names of the MatMuls ``quantise_onnx`` keeps in float32 (see ``FLOAT_FFN_LAYERS``): the
    feed-forward down-projections of encoder layers ``0 .. n_layers - 1``.

    Raises:
        ValueError: ``n_layers`` is not a positive int, or the graph (``source``) lacks the
            down-projection of one of those layers under the name ``torch.onnx.export`` gives a
            BERT encoder's (the exclusion would silently keep less in float32 than measured).
    """
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
    found = {}
    for node in model.graph.node:
        m = _FFN_DOWN.search(node.name) if node.op_type == "MatMul" else None
        if m:
            found[int(m.group(1))] = node.name
    missing = [i for i in range(n_layers) if i not in found]
    if missing:
        raise ValueError(
            f"{source}: no feed-forward down-projection MatMul of layer(s) {missing} named like "
            f"{_FFN_DOWN.pattern!r}; cannot keep the sensitive layers in float32"
        )
    return [found[i] for i in range(n_layers)]


def quantise_onnx(src: Path, dst: Path, keep: Sequence[str] | None = None) -> list[str]:
    """ONNX Runtime dynamic int8 quantisation of ``src`` into ``dst`` (weights int8 per channel,
    activations uint8 per call), except the MatMuls ``float32_nodes`` names, or those named in
    ``keep`` (a sensitivity study: ``benchmarks/bench_int8_sweep.py``); returns the kept names.

    Raises:
        ValueError: a name in ``keep`` is not a MatMul of the graph.
    """
    import logging

    onnx, _ = require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src), load_external_data=False)
    if keep is None:
        keep = float32_nodes(model, source=str(src))
    else:
        matmuls = {n.name for n in model.graph.node if n.op_type == "MatMul"}
        unknown = [k for k in keep if k not in matmuls]
        if unknown:
            raise ValueError(f"{src}: keep names no MatMul of the graph: {unknown}")
        keep = list(keep)
    # quantize_dynamic logs a hint about optional shape pre-processing at WARNING level.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=keep,
        )
    finally:
        root.setLevel(level)
    return keep
