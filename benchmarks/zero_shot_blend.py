"""The fine-tuned fast score plus the zero-shot MiniLM cosine, blended on validation rows (issue 8).

For each encoder (its own split, as ``recsim-llm encoder-eval`` makes it): a logistic regression
over two features, the encoder's fast text-only score ``s·u·v + b`` and the pretrained MiniLM's
cosine between the history text and the item text, fit on a seeded sample of the split's
validation rows (their shown *warm* items: cold items never reach a fit). The blend, the encoder
alone and zero-shot MiniLM are scored like ``encoder-eval --max-rows 2000`` (per-row AUC over the
shown items, intervals over users): all test rows, the cold-item rows, and the cold-item rows
ranked among the new items only (``evaluate.NEW_METRIC``). Rows that show one item (MovieLens)
are not supported. The zero-shot term runs the LM on every history text, so this is an offline
reference, not the env's O(1) fast state.

    python benchmarks/zero_shot_blend.py --logs LOGS --encoders DIR [DIR ...] [--val-rows 1500]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

COLUMNS = (("all", "row_auc"), ("cold_items", "row_auc"), ("cold_items", "row_auc_among_new"))
"""(segment, metric) columns; the last is ``recsim_llm.lm.evaluate.NEW_METRIC`` (a test checks)."""


def blend(logs: str, encoder: str, val_rows: int) -> dict:
    """Weights of the blend and, per method, the difference to zero-shot MiniLM of every
    ``COLUMNS`` metric as [point, lo, hi] (the methods' own values under ``"value"``)."""
    from recsim_llm.lm import evaluate as E
    from recsim_llm.lm.logs import labels, load_logs
    from recsim_llm.lm.store import load_encoder

    if isinstance(val_rows, bool) or not isinstance(val_rows, int) or val_rows < 10:
        raise ValueError(f"val_rows must be an integer >= 10, got {val_rows!r}")
    data = load_logs(logs)
    if data.slates.shape[1] < 2:
        raise ValueError(f"--logs {logs!r}: rows show one item; the blend needs slates")
    enc = load_encoder(encoder)
    E.check_trained_on(data, logs, enc.config, encoder)
    f = enc.config["finetune"]
    label = f.get("label", "click")
    split = E._split_of(data, f)
    cold = split.cold_mask(data.n_items)
    # The fit's rows, items and labels first: refuse before any text goes through the LM.
    rng = np.random.default_rng(np.random.SeedSequence([f["seed"], 0xB1E7D]))
    val = np.sort(rng.choice(split.val, min(val_rows, split.val.size), replace=False))
    warm = ~cold[data.slates[val]]
    y = labels(data, label)[val][warm]
    if not 0 < y.sum() < y.size:
        raise ValueError(
            f"--val-rows {val_rows}: the sampled validation rows of {encoder} lack clicks or "
            "non-clicks on warm items to fit on"
        )
    ev = E.build_eval_set(data, split, label, 2000, f["seed"])
    states = E.EncoderStates(data, enc)
    zs_users, zs_items = E.zero_shot_states(
        data,
        f["model_path"],
        enc.config["user_max_length"],
        enc.config["item_max_length"],
        enc.config["history_steps"],
    )

    def scores(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        items = np.maximum(data.candidates[rows], 0)
        fast = states.scale * E.dot_scores(data, rows, states.fast(rows), states.items)
        return fast + states.bias[items], E.dot_scores(data, rows, zs_users(rows), zs_items)

    fast_v, zs_v = scores(val)
    col = np.argmax(data.candidates[val][:, None, :] == data.slates[val][:, :, None], axis=2)
    x = np.column_stack(
        [np.take_along_axis(fast_v, col, 1)[warm], np.take_along_axis(zs_v, col, 1)[warm]]
    )
    w = E.fit_logistic(x, y)
    fast, zs = scores(ev.rows)
    res = {
        "zero-shot MiniLM": E.score_metrics(ev, zs),
        "encoder fast": E.score_metrics(ev, fast),
        "blend": E.score_metrics(ev, w[0] * fast + w[1] * zs),
    }
    out = {"weights": {"fast": float(w[0]), "zero_shot": float(w[1])}, "methods": {}}
    for name in ("encoder fast", "blend"):
        row = {}
        for seg, m in COLUMNS:
            point, boot = res[name][seg][m]
            base_point, base_boot = res["zero-shot MiniLM"][seg][m]
            row[f"{seg}:{m}"] = [point - base_point, *E.interval(boot - base_boot)]
            row[f"{seg}:{m}:value"] = point
        out["methods"][name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", required=True, help="logs from recsim-llm write-logs")
    parser.add_argument("--encoders", nargs="+", required=True, help="encoder directories")
    parser.add_argument("--val-rows", type=int, default=1500, help="validation rows to fit on")
    args = parser.parse_args(argv)
    if args.val_rows < 10:
        parser.error(f"--val-rows must be >= 10, got {args.val_rows}")
    if not (Path(args.logs) / "impressions.jsonl").is_file():
        parser.error(f"--logs {args.logs!r} is not a logs directory (no impressions.jsonl)")
    for d in args.encoders:
        if not (Path(d) / "encoder.json").is_file():
            parser.error(f"--encoders: {d!r} is not an encoder directory (no encoder.json)")
    head = " | ".join(f"{seg} {m}" for seg, m in COLUMNS)
    print(f"| encoder | method | weights (fast, zero-shot) | − zero-shot: {head} |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    for d in args.encoders:
        r = blend(args.logs, d, args.val_rows)
        w = r["weights"]
        for name, row in r["methods"].items():
            cells = ["{:+.3f} [{:+.3f}, {:+.3f}]".format(*row[f"{seg}:{m}"]) for seg, m in COLUMNS]
            ws = f"{w['fast']:.3f}, {w['zero_shot']:.3f}" if name == "blend" else "–"
            print(f"| {Path(d).name} | {name} | {ws} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
