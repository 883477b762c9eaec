"""Which MatMuls must ONNX dynamic int8 leave in float32 for an encoder to stay within tolerance?

For each variant, ``recsim-llm quantise --method onnx-int8`` of the encoder (default: the
shipped one) with a chosen set of MatMuls kept in float32 (``quantise_encoder(...,
keep_float32=...)``; the default variant ``ffn01`` is what the command keeps on its own), then,
against the float32 encoder:

* the minimum cosine of the item vectors over every item text of the logs' catalogue;
* the minimum cosine of the user vectors over the last history of ``--users`` users;
* the share of those users whose served top-5 among their candidates (serving user vector
  against the float32 item vectors) is float32's up to near-ties of ``--tie`` (the tolerance of
  ``tests/test_serving.py``);
* history texts/s at batch 1 relative to float32, measured in the same run (interleaved);
* the ONNX file's size.

The logs are written here (default world, ``--users`` users x 8 steps, seed 0): no data to fetch.
Needs the optional extra ``serve``.

    python benchmarks/bench_int8_sweep.py [--encoder DIR] [--users 300] [--variants none,ffn01,...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

TOP = 5


def variant_nodes(name: str, n_layers: int) -> list[str]:
    """Exact MatMul names (``torch.onnx.export`` of a BERT encoder) a variant keeps in float32."""
    layer = "/model/encoder/layer.{}/"
    ffn = [layer.format(i) + "output/dense/MatMul" for i in range(n_layers)]
    attn_out = [layer.format(i) + "attention/output/dense/MatMul" for i in range(n_layers)]
    qkv = [
        layer.format(i) + f"attention/self/{p}/MatMul"
        for i in range(n_layers)
        for p in ("query", "key", "value")
    ]
    table = {
        "none": [],
        "ffn0": ffn[:1],
        "ffn01": ffn[:2],
        "ffn-all": ffn,
        "qkv": qkv,
        "ffn-attn-qkv": ffn + attn_out + qkv,
    }
    if name not in table:
        raise ValueError(f"--variants: unknown variant {name!r}; one of {sorted(table)}")
    return table[name]


VARIANTS = ("none", "ffn0", "ffn01", "ffn-all", "qkv", "ffn-attn-qkv")


def same_top(ref: np.ndarray, served: np.ndarray, tie: float) -> bool:
    """Served top-k == float32 top-k, except items within ``tie`` of float32's k-th score."""
    kth = ref[np.argsort(-ref)[TOP - 1]]
    sure = set(np.flatnonzero(ref > kth + tie).tolist())
    allowed = set(np.flatnonzero(ref >= kth - tie).tolist())
    top = set(np.argsort(-served)[:TOP].tolist())
    return sure <= top <= allowed


def sweep(encoder: str | None, variants: list[str], users: int, tie: float) -> list[dict]:
    """One record per variant (see the module docstring)."""
    from recsim_llm.lm.logs import Histories, load_logs, write_behaviour_logs
    from recsim_llm.lm.quantise import quantise_encoder
    from recsim_llm.lm.state import shipped_encoder_path
    from recsim_llm.lm.store import load_encoder

    source = Path(encoder) if encoder else shipped_encoder_path()
    ref = load_encoder(source, n_threads=1)
    n_layers = int(ref.model.backbone.config.num_hidden_layers)
    keeps = {v: variant_nodes(v, n_layers) for v in variants}  # unknown names refused here
    out = []
    with tempfile.TemporaryDirectory(prefix="recsim-llm-int8-sweep-") as work:
        data = load_logs(write_behaviour_logs(Path(work) / "logs", n_users=users, n_steps=8))
        hist = Histories(data, 20)
        last = np.flatnonzero(np.r_[data.user[1:] != data.user[:-1], True])
        texts = [hist.text(int(r)) for r in last]
        cands = data.candidates[last]
        items = list(data.item_texts)
        u_ref, v_ref = ref.encode_users(texts), ref.encode_items(items)
        for name, keep in keeps.items():
            path = quantise_encoder(source, Path(work) / name, "onnx-int8", keep_float32=keep)
            served = load_encoder(path, n_threads=1)
            u, v = served.encode_users(texts), served.encode_items(items)
            ok = [
                same_top(v_ref[c[c >= 0]] @ a, v_ref[c[c >= 0]] @ b, tie)
                for a, b, c in zip(u_ref, u, cands, strict=True)
            ]
            # Batch-1 speed, interleaved with float32 so that load changes hit both alike.
            t_ref = t_srv = 0.0
            for h in texts[:60]:
                t0 = time.perf_counter()
                ref.encode_users([h])
                t1 = time.perf_counter()
                served.encode_users([h])
                t_ref += t1 - t0
                t_srv += time.perf_counter() - t1
            out.append(
                {
                    "variant": name,
                    "kept_float32": len(keep),
                    "item_cos_min": float((v * v_ref).sum(1).min()),
                    "user_cos_min": float((u * u_ref).sum(1).min()),
                    "top5_met": float(np.mean(ok)),
                    "speed_b1": t_ref / t_srv,
                    "onnx_mb": (path / "onnx" / "model.onnx").stat().st_size / 1e6,
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="", help="encoder directory (default: shipped)")
    parser.add_argument("--users", type=int, default=300, help="users whose histories count")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--tie", type=float, default=0.005, help="top-5 near-tie tolerance")
    args = parser.parse_args(argv)
    if args.users < 2:
        parser.error(f"--users must be >= 2, got {args.users}")
    if not 0.0 <= args.tie < 1.0:
        parser.error(f"--tie must be in [0, 1), got {args.tie}")
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if not variants or unknown:
        parser.error(f"--variants must name some of {list(VARIANTS)}, got {args.variants!r}")
    if args.encoder and not (Path(args.encoder) / "encoder.json").is_file():
        parser.error(f"--encoder {args.encoder!r} is not an encoder directory")
    from recsim_llm.lm.backends import MissingExtraError, require_onnx

    try:
        require_onnx()
    except MissingExtraError as err:
        parser.error(str(err))
    rows = sweep(args.encoder or None, variants, args.users, args.tie)
    print(
        "| kept in float32 | MatMuls kept | item cos min | user cos min "
        f"| top-5 criterion met ({args.users} users) | history texts/s b=1 vs float32 | ONNX MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['kept_float32']} | {r['item_cos_min']:.4f} "
            f"| {r['user_cos_min']:.4f} | {100 * r['top5_met']:.1f}% | {r['speed_b1']:.2f}× "
            f"| {r['onnx_mb']:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
