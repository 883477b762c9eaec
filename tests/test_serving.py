"""Serving encoders (``recsim-llm quantise``): ONNX Runtime int8 and bfloat16 backbones.

A serving encoder must load offline through ``load_encoder`` and the env's LM encoders, and score
like its float32 source within a stated tolerance: every user and item vector at cosine >= 0.99
to the float32 one, and, scoring each user's candidates as served (serving user vector against
the float32 item embeddings the directory carries), the same top-5 as float32 up to near-ties
(``TIE``). The tiny random BERT covers the mechanics; the shipped MiniLM encoder (slow) the real
tolerance.
"""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from recsim_llm.config import EnvConfig
from recsim_llm.lm.finetune import FinetuneConfig, finetune
from recsim_llm.lm.logs import Histories, load_logs, write_behaviour_logs

COSINE_MIN = 0.99
"""Tolerance: cosine of a serving encoder's vectors to its float32 source's."""
TOP = 5
TIE = 0.005
"""Top-5 tolerance: items whose float32 score (a cosine) is within this of float32's 5th best
may swap in or out of the serving top-5 (the shipped encoder's candidate scores lie close
together, so int8 noise reorders near-ties; measured in docs/benchmarks.md)."""
TINY_TIE = 0.01
"""The same for the tiny random BERT, whose candidate scores lie even closer together."""


def _has_onnx() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


needs_onnx = pytest.mark.skipif(
    not _has_onnx(), reason="needs the optional extra 'serve' (onnxruntime, onnx)"
)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return write_behaviour_logs(
        tmp_path_factory.mktemp("logs") / "logs", n_users=24, n_steps=8, seed=3
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory, logs):
    """A tiny LoRA two-tower encoder (random BERT, MiniLM's tokenizer) with an item cache."""
    from recsim_llm.lm.model import make_tiny_backbone

    root = tmp_path_factory.mktemp("serve")
    tiny = make_tiny_backbone(root / "bert", seed=0, hidden=64)
    cfg = FinetuneConfig(
        model_path=str(tiny),
        lora=True,
        epochs=1,
        max_train_rows=48,
        max_val_rows=16,
        batch_size=8,
        fast_rows=32,
        fast_epochs=20,
        user_max_length=64,
        item_max_length=32,
        proj_dim=16,
        threads=1,
    )
    data = load_logs(logs)
    return finetune(
        logs, root / "lora", cfg, progress=False, cache_texts={"items": data.item_texts[:50]}
    )


def _fixed_set(logs, n_users=12):
    """History texts of the last rows of ``n_users`` users, their candidates, all item texts."""
    data = load_logs(logs)
    hist = Histories(data, 20)
    last = np.flatnonzero(np.r_[data.user[1:] != data.user[:-1], True])[:n_users]
    return data, [hist.text(int(r)) for r in last], data.candidates[last]


def _same_top(ref_scores, srv_scores, tie):
    """Serving top-k == float32 top-k, except items within ``tie`` of float32's k-th score."""
    order = np.argsort(-ref_scores)
    kth = ref_scores[order[TOP - 1]]
    sure = set(np.flatnonzero(ref_scores > kth + tie).tolist())  # must be in the top-k
    allowed = set(np.flatnonzero(ref_scores >= kth - tie).tolist())  # may be in the top-k
    top_srv = set(np.argsort(-srv_scores)[:TOP].tolist())
    return sure <= top_srv <= allowed


def _compare(src_dir, serving_dir, logs, tie=0.0):
    from recsim_llm.lm.store import load_encoder

    ref, served = load_encoder(src_dir, n_threads=1), load_encoder(serving_dir, n_threads=1)
    data, histories, candidates = _fixed_set(logs)
    items = list(data.item_texts)
    u_ref, u_srv = ref.encode_users(histories), served.encode_users(histories)
    v_ref, v_srv = ref.encode_items(items), served.encode_items(items)
    assert u_srv.dtype == np.float32 and v_srv.shape == v_ref.shape
    assert (u_ref * u_srv).sum(1).min() >= COSINE_MIN
    assert (v_ref * v_srv).sum(1).min() >= COSINE_MIN
    # Serving scores: the serving user tower against the float32 item embeddings it carries.
    overlap = []
    for u_r, u_s, cand in zip(u_ref, u_srv, candidates, strict=True):
        cand = cand[cand >= 0]
        s_ref, s_srv = v_ref[cand] @ u_r, v_ref[cand] @ u_s
        assert _same_top(s_ref, s_srv, tie)
        top = set(np.argsort(-s_ref)[:TOP].tolist()) & set(np.argsort(-s_srv)[:TOP].tolist())
        overlap.append(len(top) / TOP)
    # Not vacuous: most of each top-5 is shared exactly, whatever the tie slack allows.
    assert np.mean(overlap) >= 0.8
    return ref, served


def _quantise(src, dst, method, **kw):
    from recsim_llm.lm.quantise import quantise_encoder

    return quantise_encoder(src, dst, method, **kw)


@needs_onnx
def test_onnx_int8_encoder_loads_offline_and_scores_like_float32(tmp_path, source, logs):
    out = _quantise(source, tmp_path / "int8", "onnx-int8")
    config = json.loads((out / "encoder.json").read_text())
    assert config["serving"]["method"] == "onnx-int8" and config["lora"] is False
    assert (out / "onnx" / "model.onnx").is_file() and not (out / "backbone").exists()
    assert json.loads((out / ".recsim-llm.json").read_text())["kind"] == "encoder"
    ref, served = _compare(source, out, logs, tie=TINY_TIE)
    assert type(served.model.backbone).__name__ == "OnnxBackbone"
    # The tiny BERT has two layers: both feed-forward down-projections stay float32, the rest
    # of its MatMuls with a weight are int8.
    import onnx

    graph = onnx.load(str(out / "onnx" / "model.onnx")).graph
    kept = config["serving"]["float32_nodes"]
    assert kept == [f"/model/encoder/layer.{i}/output/dense/MatMul" for i in (0, 1)]
    float_matmuls = {n.name for n in graph.node if n.op_type == "MatMul"}
    # Left float: the two kept ones and attention's two activation products per layer.
    assert set(kept) <= float_matmuls and len(float_matmuls) == 2 + 2 * 2
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in graph.node)
    # The float32 item cache is carried over unchanged (items are embedded offline).
    from recsim_llm.lm.store import read_cache

    a, b = read_cache(source), read_cache(out)
    np.testing.assert_array_equal(a["item_emb"], b["item_emb"])


@needs_onnx
def test_float32_nodes_refuses_a_graph_without_the_measured_layers():
    import onnx
    from onnx import TensorProto, helper

    from recsim_llm.lm.backends import float32_nodes

    def graph(*names):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
        w = helper.make_tensor("w", TensorProto.FLOAT, [2, 2], [1.0, 0.0, 0.0, 1.0])
        outs = [
            helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, 2])
            for i in range(len(names))
        ]
        nodes = [
            helper.make_node("MatMul", ["x", "w"], [f"y{i}"], name=n) for i, n in enumerate(names)
        ]
        model = helper.make_model(helper.make_graph(nodes, "g", [x], outs, [w]))
        onnx.checker.check_model(model)
        return model

    ffn = "/model/encoder/layer.{}/output/dense/MatMul"
    with pytest.raises(ValueError, match=r"model.onnx: no feed-forward .* layer\(s\) \[0, 1\]"):
        float32_nodes(graph("/dense/MatMul"), source="model.onnx")
    # Layer 0's is missing: keeping less in float32 than measured is refused, not silent.
    with pytest.raises(ValueError, match=r"layer\(s\) \[0\]"):
        float32_nodes(graph(ffn.format(1), ffn.format(3)))
    # The attention output projection has a like name and is not taken for it.
    attn = "/model/encoder/layer.0/attention/output/dense/MatMul"
    assert float32_nodes(graph(attn, ffn.format(1), ffn.format(0), ffn.format(2))) == [
        ffn.format(0),
        ffn.format(1),
    ]
    for bad in (0, True, 1.5):
        with pytest.raises(ValueError, match="n_layers must be a positive int"):
            float32_nodes(graph(ffn.format(0)), n_layers=bad)


def test_bf16_encoder_loads_offline_and_scores_like_float32(tmp_path, source, logs):
    out = _quantise(source, tmp_path / "bf16", "bf16")
    config = json.loads((out / "encoder.json").read_text())
    assert config["serving"] == {
        **config["serving"],
        "method": "bf16",
        "backend": "torch",
        "dtype": "bfloat16",
    }
    from safetensors import safe_open

    with safe_open(str(out / "backbone" / "model.safetensors"), "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.bfloat16"}
    _compare(source, out, logs, tie=TINY_TIE)


@pytest.fixture(scope="module")
def bf16_short(tmp_path_factory, source):
    """A bfloat16 serving copy of ``source`` with a 48-token history budget."""
    return _quantise(source, tmp_path_factory.mktemp("bf16") / "enc", "bf16", user_max_length=48)


@pytest.mark.parametrize("encoder", ["lm-exact", "lm-fast"])
def test_env_runs_on_a_serving_encoder(bf16_short, encoder):
    from recsim_llm.envs.vector import SlateVectorEnv

    out = bf16_short
    assert json.loads((out / "encoder.json").read_text())["user_max_length"] == 48
    env = SlateVectorEnv(
        num_envs=3, config=EnvConfig(encoder=encoder, encoder_path=str(out), horizon=20)
    )
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        action = np.argsort(rng.random((3, env.config.n_candidates)), axis=1)[:, :5]
        obs, *_ = env.step(action)
    assert all(np.isfinite(v).all() for v in obs.values())


def test_quantise_refuses_foreign_out_before_any_work(tmp_path, source, logs, monkeypatch, capsys):
    import recsim_llm.lm.quantise as quantise
    from recsim_llm.cli import main

    def no_work(*args, **kwargs):
        raise AssertionError("loaded the encoder before checking --out")

    monkeypatch.setattr(quantise, "load_encoder", no_work)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    rc = main(["quantise", "--encoder", str(source), "--out", str(foreign), "--method", "bf16"])
    assert rc == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    # Another kind of recsim-llm output is refused too.
    with pytest.raises(ValueError, match="'logs' folder"):
        quantise.quantise_encoder(source, logs, "bf16")


def test_missing_serve_extra_names_the_extra(tmp_path, source, monkeypatch, capsys):
    from recsim_llm.cli import main
    from recsim_llm.lm.backends import MissingExtraError, require_onnx

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError, match=r"recsim-llm\[serve\]"):
        require_onnx()
    out = tmp_path / "int8"
    rc = main(["quantise", "--encoder", str(source), "--out", str(out), "--method", "onnx-int8"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "'serve'" in err and "onnxruntime" in err
    assert not out.exists()


def test_serving_records_are_checked_and_not_requantised(tmp_path, source):
    from recsim_llm.lm.store import EncoderFormatError, load_encoder

    out = _quantise(source, tmp_path / "bf16", "bf16")
    with pytest.raises(ValueError, match="already a serving encoder"):
        _quantise(out, tmp_path / "again", "bf16")
    with pytest.raises(ValueError, match="method must be one of"):
        _quantise(source, tmp_path / "x", "int4")
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    cfg = json.loads((bad / "encoder.json").read_text())
    cfg["serving"]["backend"] = "tflite"
    (bad / "encoder.json").write_text(json.dumps(cfg))
    with pytest.raises(EncoderFormatError, match="encoder.json: serving backend"):
        load_encoder(bad)
    cfg["serving"].update(backend="torch", weights="onnx/model.onnx")
    (bad / "encoder.json").write_text(json.dumps(cfg))
    with pytest.raises(EncoderFormatError, match="serving weights"):
        load_encoder(bad)


@pytest.mark.slow
@needs_onnx
@pytest.mark.xfail(
    strict=True,
    reason="measured (docs/benchmarks.md, session 9): ONNX int8 with the first two feed-forward "
    "down-projections in float32 keeps every vector at cosine >= 0.993 of float32, but its user "
    "vectors (min cosine 0.997) still move candidate scores by up to ~0.01, beyond the 0.005 top-5 "
    "tie (benchmarks/bench_int8_sweep.py: 92% of 300 users keep their top-5; every MatMul in "
    "int8: 86%, items at 0.988). Only keeping most MatMuls in float32 gets close (97%, at 1.5x, "
    "slower than bf16); bf16 (the "
    "default) meets the tolerance. Strict: passing means int8 is fixed.",
)
def test_shipped_encoder_int8_within_tolerance(tmp_path, logs):
    from recsim_llm.lm.state import shipped_encoder_path

    out = _quantise(None, tmp_path / "int8", "onnx-int8")
    assert (out / "onnx" / "model.onnx").stat().st_size < 30e6  # float32 backbone: 90 MB
    _compare(shipped_encoder_path(), out, logs, tie=TIE)


@pytest.mark.slow
def test_shipped_encoder_bf16_within_tolerance(tmp_path, logs):
    from recsim_llm.lm.state import shipped_encoder_path

    out = _quantise(None, tmp_path / "bf16", "bf16")
    _compare(shipped_encoder_path(), out, logs, tie=TIE)
