"""Real-time serving path of the LM encoder: faster backbones and per-request latency.

For a fine-tuned encoder (default: the shipped one) this script builds serving variants of its
backbone and measures, in one run, on one CPU thread:

* encode throughput (texts/s) of history texts and item texts at batch sizes 1 and 32, as a ratio
  to float32 (variants interleaved round-robin, ``--repeats`` times, medians);
* held-out AUC / NDCG@10 of the exact user tower on the encoder's own test split (logs rebuilt
  from the settings in its ``encoder.json``), with the variant's user vectors against the float32
  cached item embeddings (the serving configuration), the change vs float32 with a paired
  bootstrap interval over users; for the kept variants also with their own item vectors;
* cosine of each variant's user and item vectors to float32's;
* size of the backbone weights;
* per-request latency (p50 / p99 over ``--requests`` requests) of scoring one user's 20 candidates:
  the ``lm-fast`` path (cached item embeddings + incremental fast-head state in NumPy) and the exact
  tower (history text rendered and tokenised, LM run, dot with cached item embeddings) in float32
  and in the kept variants.

Variants: ``float32`` (LoRA merged), ``onnx-int8`` and ``bf16`` (``recsim-llm quantise``, kept),
and, measured but not offered: ``torch-dynamic-int8`` (``torch.ao.quantization.quantize_dynamic``,
deprecated in torch 2.13), ``bf16-autocast`` (float32 weights under ``torch.autocast``),
``onnx-fp32`` (ONNX Runtime without quantisation), and a history token budget of 64 instead of
128 (``float32@64``, ``onnx-int8@64``).

    python benchmarks/bench_serving.py --out serving.md          # about 3 minutes on 2 cores
    python benchmarks/bench_serving.py --encoder DIR --out serving.md

Needs the optional extra ``serve`` (``pip install -e '.[serve]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

KEPT = ("onnx-int8", "bf16")
TOP = 5


@dataclass
class Variant:
    """One way of running the encoder's backbone."""

    name: str
    model: Any
    user_len: int
    kept: bool = False
    autocast: bool = False
    size_mb: float = float("nan")
    results: dict[str, Any] = field(default_factory=dict)

    def context(self) -> Any:
        import torch

        if self.autocast:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_flags() -> list[str]:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
                return [f for f in wanted if f in have]
    return []


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def build_variants(src: Path, tmp: Path) -> tuple[Any, list[Variant]]:
    """The float32 reference (loaded encoder) and every variant."""
    import torch

    from recsim_llm.lm.backends import export_onnx, onnx_backbone
    from recsim_llm.lm.model import rec_lm_class
    from recsim_llm.lm.quantise import quantise_encoder
    from recsim_llm.lm.store import load_encoder

    ref = load_encoder(src, n_threads=1)
    if ref.config["lora"]:
        ref.model.backbone = ref.model.backbone.merge_and_unload()
    model = ref.model
    budget = ref.user_max_length
    heads = model.head_state_dict()
    f32_mb = sum(p.numel() * p.element_size() for p in model.backbone.parameters()) / 1e6
    variants = [Variant("float32", model, budget, size_mb=f32_mb)]
    for method in KEPT:
        out = quantise_encoder(src, tmp / method, method)
        loaded = load_encoder(out, n_threads=1)
        mb = dir_mb(out / ("onnx" if method.startswith("onnx") else "backbone"))
        variants.append(Variant(method, loaded.model, budget, kept=True, size_mb=mb))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dyn = copy.deepcopy(model)
        dyn.backbone = torch.ao.quantization.quantize_dynamic(
            dyn.backbone, {torch.nn.Linear}, dtype=torch.qint8
        )
    variants.append(Variant("torch-dynamic-int8", dyn, budget, size_mb=float("nan")))
    variants.append(Variant("bf16-autocast", model, budget, autocast=True, size_mb=f32_mb))
    export_onnx(copy.deepcopy(model.backbone), ref.tokenizer, tmp / "onnx-fp32")
    fp32 = rec_lm_class()(onnx_backbone(tmp / "onnx-fp32", 1), ref.config["proj_dim"], 0.0)
    fp32.load_state_dict(heads, strict=False)
    fp32.eval()
    variants.append(Variant("onnx-fp32", fp32, budget, size_mb=dir_mb(tmp / "onnx-fp32")))
    int8 = next(v for v in variants if v.name == "onnx-int8")
    variants.append(Variant(f"float32@{budget // 2}", model, budget // 2, size_mb=f32_mb))
    variants.append(
        Variant(f"onnx-int8@{budget // 2}", int8.model, budget // 2, size_mb=int8.size_mb)
    )
    return ref, variants


def encode(variant: Variant, tokenizer: Any, texts: list[str], max_len: int, bs: int) -> np.ndarray:
    from recsim_llm.lm.model import encode_texts

    with variant.context():
        return encode_texts(variant.model, tokenizer, texts, max_len, bs)


def throughput(
    ref: Any, variants: list[Variant], hist: dict[int, list[str]], items: list[str], repeats: int
) -> None:
    """texts/s per (variant, kind, batch size): medians of round-robin repeats."""
    cases = [("history", 1, 24), ("history", 32, 64), ("item", 1, 48), ("item", 32, 128)]
    times: dict[tuple[str, str, int], list[float]] = {}
    for v in variants:  # warm-up (first calls allocate, ORT plans)
        encode(v, ref.tokenizer, hist[v.user_len][:4], v.user_len, 4)
        encode(v, ref.tokenizer, items[:4], ref.item_max_length, 4)
    for _ in range(repeats):
        for kind, bs, n in cases:
            for v in variants:
                texts = hist[v.user_len][:n] if kind == "history" else items[:n]
                max_len = v.user_len if kind == "history" else ref.item_max_length
                start = time.perf_counter()
                encode(v, ref.tokenizer, texts, max_len, bs)
                times.setdefault((v.name, kind, bs), []).append(n / (time.perf_counter() - start))
    for v in variants:
        v.results["texts_per_s"] = {
            f"{kind}@{bs}": float(np.median(times[(v.name, kind, bs)])) for kind, bs, _ in cases
        }


def paired_auc_delta(
    s_ref: np.ndarray, s_var: np.ndarray, y: np.ndarray, users: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float, float]:
    """AUC(var) - AUC(ref) on impressions, 95% percentile bootstrap over users (paired)."""
    from recsim_llm.lm.metrics import auc

    delta = auc(s_var, y) - auc(s_ref, y)
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(users, return_inverse=True)
    groups = [np.flatnonzero(inv == i) for i in range(uniq.size)]
    deltas = []
    for _ in range(n_boot):
        pick = np.concatenate([groups[i] for i in rng.integers(uniq.size, size=uniq.size)])
        deltas.append(auc(s_var[pick], y[pick]) - auc(s_ref[pick], y[pick]))
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return float(delta), float(lo), float(hi)


def top_overlap(ref: np.ndarray, other: np.ndarray, candidates: np.ndarray) -> dict[str, float]:
    """Per row: share of float32's top-5 candidates kept, and whether the top-5 set is identical."""
    shares = []
    for r_s, o_s, cand in zip(ref, other, candidates, strict=True):
        ok = cand >= 0
        a = set(np.argsort(-r_s[ok])[:TOP].tolist())
        b = set(np.argsort(-o_s[ok])[:TOP].tolist())
        shares.append(len(a & b) / TOP)
    shares_arr = np.asarray(shares)
    return {"mean_share": float(shares_arr.mean()), "identical": float((shares_arr == 1).mean())}


def quality(ref: Any, variants: list[Variant], data: Any, ev: Any, hist: Any) -> None:
    """Held-out AUC / NDCG@10 of the exact tower per variant, and the change vs float32.

    ``ev`` is the evaluation set of ``recsim_llm.lm.evaluate.build_eval_set`` (the rows and
    segments ``recsim-llm encoder-eval`` uses); the figures are its "all" segment.
    """
    from recsim_llm.lm.evaluate import K, score_metrics
    from recsim_llm.lm.logs import labels

    rows = ev.rows

    cand_items = np.unique(data.candidates[rows][data.candidates[rows] >= 0])
    item_texts = [data.item_texts[i] for i in cand_items.tolist()]
    f32 = variants[0]

    def item_table(v: Variant) -> np.ndarray:
        table = np.zeros((data.n_items, ref.dim), dtype=np.float32)
        table[cand_items] = encode(v, ref.tokenizer, item_texts, ref.item_max_length, 64)
        return table

    items_f32 = item_table(f32)
    texts: dict[int, list[str]] = {}
    y = labels(data, ref.config["label"])[rows]
    slate_col = np.argmax(data.candidates[rows][:, None, :] == data.slates[rows][:, :, None], 2)
    users_of_imp = np.repeat(data.user[rows], data.slates.shape[1])
    shown_ref = None
    scores_ref = None
    user_f32 = None
    for v in variants:
        if v.user_len not in texts:
            texts[v.user_len] = [hist.text(int(r), ref.n_tokens, v.user_len) for r in rows]
        users = encode(v, ref.tokenizer, texts[v.user_len], v.user_len, 32)
        if user_f32 is None:
            user_f32 = users
        tables = {"serving": items_f32}
        if v.kept:
            tables["own items"] = item_table(v)
            v.results["item_cosine_min"] = float(
                (tables["own items"][cand_items] * items_f32[cand_items]).sum(1).min()
            )
        v.results["user_cosine_min"] = float((users * user_f32).sum(1).min())
        v.results["user_cosine_mean"] = float((users * user_f32).sum(1).mean())
        for label, table in tables.items():
            scores = np.einsum("nd,ncd->nc", users, table[np.maximum(data.candidates[rows], 0)])
            metrics = score_metrics(ev, scores)["all"]
            shown = np.take_along_axis(scores, slate_col, 1).ravel()
            if shown_ref is None:
                shown_ref = shown
            delta, lo, hi = paired_auc_delta(shown_ref, shown, y.ravel(), users_of_imp, 200, 0)
            if scores_ref is None:
                scores_ref = scores
            v.results[f"top{TOP}_{label}"] = top_overlap(scores_ref, scores, data.candidates[rows])
            v.results[label] = {
                "auc": float(metrics["auc"][0]),
                f"ndcg@{K}": float(metrics[f"ndcg@{K}"][0]),
                "auc_delta": delta,
                "auc_delta_ci": [lo, hi],
                "n_impressions": int(ev.segments["all"][1].sum()),
            }


def latency(
    ref: Any,
    variants: list[Variant],
    data: Any,
    rows: np.ndarray,
    hist: Any,
    n_requests: int,
) -> dict[str, dict[str, float]]:
    """Per-request latency (ms) of scoring one user's candidates: fast path and exact towers."""
    from recsim_llm.lm.store import read_cache, text_key

    head = ref.model.fast.export()
    w_p, w_h = head["w_profile"].T.copy(), head["w_history"].T.copy()
    cache = read_cache(ref.path, ref.config)
    by_key = dict(zip(cache["item_keys"].tolist(), cache["item_emb"], strict=True)) if cache else {}
    item_emb = np.stack(
        [
            by_key.get(text_key(t), np.zeros(ref.dim, np.float32)).astype(np.float32)
            for t in data.item_texts
        ]
    )
    missing = [i for i, t in enumerate(data.item_texts) if text_key(t) not in by_key]
    if missing:  # not this world's catalog: embed the rest once, offline, in float32
        item_emb[missing] = ref.encode_items([data.item_texts[i] for i in missing])
    req_rows = rows[np.arange(n_requests) % rows.size]
    k = data.slates.shape[1]
    out: dict[str, dict[str, float]] = {}

    # lm-fast: state (p, h, w) kept per user; a request applies the user's newest step (slate and
    # response) to h and w, recomputes u with the fast head and scores 20 cached embeddings.
    rng = np.random.default_rng(0)
    p = rng.standard_normal(ref.dim).astype(np.float32)
    h = np.zeros(ref.dim, np.float32)
    w = np.float32(0.0)
    gate, decay = head["gate"], head["decay"]
    lat = np.empty(n_requests)
    for i, r in enumerate(req_rows.tolist()):
        slate, pos = data.slates[r], int(data.click_pos[r])
        start = time.perf_counter()
        types = np.full(k, 2)
        if pos >= 0:
            types[pos] = 0 if data.rating[r] >= 4.0 else 1
        step = (gate[types] * item_emb[slate]).sum(0)
        w_new = decay * w + k
        h = (decay * h * max(w, 1.0) + step) / max(w_new, 1.0)
        w = w_new
        u = p @ w_p + h @ w_h + head["bias"]
        u /= max(float(np.sqrt(u @ u)), 1e-12)
        scores = item_emb[data.candidates[r]] @ u
        np.argpartition(-scores, 5)[:5]
        lat[i] = time.perf_counter() - start
    out["lm-fast (NumPy, cached items)"] = _summary(lat)

    for v in variants:
        if not (v.kept or v.name == "float32"):
            continue
        lat = np.empty(n_requests)
        for i, r in enumerate(req_rows.tolist()):
            start = time.perf_counter()
            text = hist.text(int(r), ref.n_tokens, v.user_len)
            u = encode(v, ref.tokenizer, [text], v.user_len, 1)[0]
            scores = item_emb[data.candidates[r]] @ u
            np.argpartition(-scores, 5)[:5]
            lat[i] = time.perf_counter() - start
        out[f"exact tower, {v.name}"] = _summary(lat)
    return out


def _summary(lat: np.ndarray) -> dict[str, float]:
    ms = lat * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "requests": int(ms.size),
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Encoder `{result['encoder']}`; CPU: {result['cpu']} ({', '.join(result['cpu_flags'])}); "
        f"1 thread; {result['repeats']} interleaved repeats, medians; run time "
        f"{result['seconds']:.0f} s.",
        "",
        "| variant | kept | weights MB | history texts/s b=1 | b=32 | item texts/s b=1 | b=32 "
        "| user cos min | AUC (serving) | ΔAUC [95% CI] | top-5 kept (identical) "
        "| AUC (own items) | ΔAUC [95% CI] | top-5 kept (identical) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|",
    ]
    base = result["variants"]["float32"]["texts_per_s"]
    for name, v in result["variants"].items():
        tp = v["texts_per_s"]

        def cell(key: str, tp: dict[str, float] = tp) -> str:
            return f"{tp[key]:.0f} ({tp[key] / base[key]:.2f}×)"

        def aucs(label: str, v: dict[str, Any] = v) -> str:
            if label not in v:
                return "— | — | —"
            r, top = v[label], v[f"top{TOP}_{label}"]
            lo, hi = r["auc_delta_ci"]
            return (
                f"{r['auc']:.4f} | {r['auc_delta']:+.4f} [{lo:+.4f}, {hi:+.4f}] | "
                f"{top['mean_share']:.1%} ({top['identical']:.0%})"
            )

        size = "—" if np.isnan(v["weights_mb"]) else f"{v['weights_mb']:.1f}"
        lines.append(
            f"| {name} | {'yes' if v['kept'] else 'no'} | {size} | {cell('history@1')} | "
            f"{cell('history@32')} | {cell('item@1')} | {cell('item@32')} | "
            f"{v['user_cosine_min']:.4f} | {aucs('serving')} | {aucs('own items')} |"
        )
    lines += [
        "",
        f"Test rows: {result['rows']} ({result['impressions']} impressions); history texts "
        f"mean {result['history_tokens_mean']:.0f} tokens (budget {result['budget']}); item "
        f"texts mean {result['item_tokens_mean']:.0f} tokens.",
        "",
        "| request path (one user, 20 candidates) | p50 ms | p99 ms | mean ms | requests |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in result["latency"].items():
        lines.append(
            f"| {name} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {s['mean_ms']:.3f} | "
            f"{s['requests']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="", help="encoder directory (default: shipped)")
    parser.add_argument("--logs", default="", help="its training logs (default: rewritten)")
    parser.add_argument("--rows", type=int, default=300, help="test rows for AUC")
    parser.add_argument("--requests", type=int, default=1000, help="requests per latency path")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved throughput repeats")
    parser.add_argument("--out", default="", help="write the markdown table here (+ .json)")
    args = parser.parse_args(argv)

    from recsim_llm.lm.backends import MissingExtraError, require_onnx

    try:
        require_onnx()
    except MissingExtraError as err:
        print(f"bench_serving: {err}", file=sys.stderr)
        return 2
    import torch

    from recsim_llm.lm.evaluate import build_eval_set
    from recsim_llm.lm.logs import Histories, load_logs, split_logs, write_behaviour_logs
    from recsim_llm.lm.state import shipped_encoder_path

    torch.set_num_threads(1)
    start = time.perf_counter()
    src = Path(args.encoder) if args.encoder else shipped_encoder_path()
    cfg = json.loads((src / "encoder.json").read_text())
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp_name:
        tmp = Path(tmp_name)
        if args.logs:
            logs = Path(args.logs)
        else:
            from recsim_llm.config import EnvConfig

            meta = cfg["logs"]
            if meta.get("source") != "synthetic":
                raise SystemExit("--logs is required for an encoder not trained on synthetic logs")
            logs = write_behaviour_logs(
                tmp / "logs",
                EnvConfig(),
                n_users=meta["n_users"],
                n_steps=meta["n_steps"],
                seed=meta["seed"],
                progress=False,
            )
        data = load_logs(logs)
        ft = cfg["finetune"]
        split = split_logs(
            data,
            ft["split"],
            ft["val_fraction"],
            ft["test_fraction"],
            ft["cold_item_fraction"],
            ft["seed"],
        )
        ev = build_eval_set(data, split, cfg["label"], args.rows, ft["seed"], n_boot=200)
        rows = ev.rows
        ref, variants = build_variants(src, tmp)
        hist = Histories(data, cfg["history_steps"])
        lens = sorted({v.user_len for v in variants})
        deep = np.flatnonzero(data.t >= 10)  # long histories: the budget is what matters
        pick = np.random.default_rng(0).choice(deep, 64, replace=False)
        hist_texts = {n: [hist.text(int(r), ref.n_tokens, n) for r in pick] for n in lens}
        items = list(np.random.default_rng(1).permutation(data.item_texts)[:128])
        print(f"built {len(variants)} variants in {time.perf_counter() - start:.0f} s", flush=True)
        throughput(ref, variants, hist_texts, items, args.repeats)
        print(f"throughput done at {time.perf_counter() - start:.0f} s", flush=True)
        quality(ref, variants, data, ev, hist)
        print(f"quality done at {time.perf_counter() - start:.0f} s", flush=True)
        lat = latency(ref, variants, data, rows, hist, args.requests)
    budget = ref.user_max_length
    result = {
        "encoder": str(src),
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "repeats": args.repeats,
        "rows": int(rows.size),
        "impressions": int(variants[0].results["serving"]["n_impressions"]),
        "budget": budget,
        "history_tokens_mean": float(np.mean([ref.n_tokens(t) for t in hist_texts[budget]])),
        "item_tokens_mean": float(np.mean([ref.n_tokens(t) for t in items])),
        "variants": {
            v.name: {"kept": v.kept, "weights_mb": v.size_mb, "user_len": v.user_len, **v.results}
            for v in variants
        },
        "latency": lat,
        "seconds": time.perf_counter() - start,
    }
    table = markdown(result)
    print(table)
    if args.out:
        from recsim_llm.io import atomic_write_json, atomic_write_text

        atomic_write_text(args.out, table + "\n")
        atomic_write_json(Path(args.out).with_suffix(".json"), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
