"""The int8 sensitivity sweep and the ``keep_float32`` override it drives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bench_loader import load_benchmark
from test_serving import needs_onnx


def test_variant_nodes_names_the_exported_matmuls():
    mod = load_benchmark("bench_int8_sweep")
    assert mod.variant_nodes("none", 6) == []
    assert mod.variant_nodes("ffn01", 6) == [
        f"/model/encoder/layer.{i}/output/dense/MatMul" for i in (0, 1)
    ]
    both = mod.variant_nodes("ffn-attn-qkv", 6)
    assert len(both) == len(set(both)) == 6 * 5
    with pytest.raises(ValueError, match="unknown variant 'ffn9'"):
        mod.variant_nodes("ffn9", 6)
    # The top-5 check: a swap beyond the tie fails, one within it passes.
    ref = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.1])
    assert mod.same_top(ref, ref, 0.005)
    swapped = ref.copy()
    swapped[5] = 0.55  # item 5 (0.4 in float32) enters the served top-5
    assert not mod.same_top(ref, swapped, 0.005) and mod.same_top(ref, swapped, 0.2)


def test_keep_float32_is_checked_before_work(tmp_path, lora_dir):
    from recsim_llm.lm.quantise import quantise_encoder

    with pytest.raises(ValueError, match="applies to 'onnx-int8' only"):
        quantise_encoder(lora_dir, tmp_path / "a", "bf16", keep_float32=[])
    with pytest.raises(ValueError, match="must be a list of MatMul names"):
        quantise_encoder(lora_dir, tmp_path / "b", "onnx-int8", keep_float32="layer.0")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@needs_onnx
def test_sweep_on_the_tiny_encoder(tmp_path, lora_dir):
    from recsim_llm.lm.quantise import quantise_encoder

    mod = load_benchmark("bench_int8_sweep")
    rows = mod.sweep(str(lora_dir), ["none", "ffn01"], users=6, tie=0.01)
    assert [r["variant"] for r in rows] == ["none", "ffn01"]
    assert [r["kept_float32"] for r in rows] == [0, 2]
    for r in rows:
        assert 0.0 < r["item_cos_min"] <= 1.0 + 1e-6 and 0.0 < r["user_cos_min"] <= 1.0 + 1e-6
        assert 0.0 <= r["top5_met"] <= 1.0 and r["speed_b1"] > 0 and r["onnx_mb"] > 0
    # Keeping MatMuls in float32 keeps their weights float: a bigger file.
    assert rows[1]["onnx_mb"] > rows[0]["onnx_mb"]
    # The override is recorded; a name that is no MatMul of the graph is refused, nothing written.
    out = quantise_encoder(lora_dir, tmp_path / "none", "onnx-int8", keep_float32=[])
    assert json.loads((out / "encoder.json").read_text())["serving"]["float32_nodes"] == []
    with pytest.raises(ValueError, match="keep names no MatMul of the graph"):
        quantise_encoder(lora_dir, tmp_path / "bad", "onnx-int8", keep_float32=["/nope/MatMul"])
    assert not (tmp_path / "bad").exists()
