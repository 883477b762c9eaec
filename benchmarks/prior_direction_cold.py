"""How well the item click-prior direction alone ranks held-out rows, all and cold-item ones.

For each split seed, the direction is fit on the warm training items of ``--logs`` (the pooled
outputs of the pretrained MiniLM, as a heads-only fine-tune sees them) by
``recsim_llm.lm.finetune.click_prior_direction`` ('rate') and ``slate_prior_direction``
('slate'); each item is then scored by its pooled output along the direction, and the script
prints the per-row AUC of the test rows (the responded-to item against the others shown with
it) over all rows with a response and over the rows whose responded-to item is cold.

    python benchmarks/prior_direction_cold.py --logs LOGS [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse

import numpy as np


def row_auc(scores: np.ndarray, slates: np.ndarray, y: np.ndarray, focus=None) -> float:
    """Mean per-row AUC of ``scores[slates]`` against ``y`` (rows with a positive and a
    negative; with ``focus`` (bool per item) only rows whose positive is a focus item)."""
    values = []
    for items, labels in zip(slates, y, strict=True):
        pos = labels > 0
        if not pos.any() or pos.all() or (focus is not None and not focus[items[pos]].any()):
            continue
        p, n = scores[items[pos]], scores[items[~pos]]
        values.append((p[:, None] > n[None]).mean() + 0.5 * (p[:, None] == n[None]).mean())
    return float(np.mean(values)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", required=True, help="logs from recsim-llm write-logs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--label", default="click", choices=("click", "liked"))
    args = parser.parse_args(argv)

    import torch

    from recsim_llm.lm.finetune import click_prior_direction, slate_prior_direction
    from recsim_llm.lm.logs import labels, load_logs, split_logs
    from recsim_llm.lm.model import load_backbone, mean_pool

    torch.set_num_threads(2)
    data = load_logs(args.logs)
    y = labels(data, args.label)
    tokenizer, backbone = load_backbone(None)
    pooled = []
    with torch.no_grad():
        for i in range(0, data.n_items, 64):
            batch = tokenizer(
                list(data.item_texts[i : i + 64]),
                padding=True,
                truncation=True,
                max_length=64,
                return_tensors="pt",
            )
            out = backbone(**batch).last_hidden_state
            pooled.append(mean_pool(out, batch["attention_mask"]).numpy())
    x = np.concatenate(pooled).astype(np.float64)
    print("| split | fit | per-row AUC, all test rows | per-row AUC, cold-item rows |")
    print("|---|---|---|---|")
    for seed in args.seeds:
        split = split_logs(data, "user", 0.1, 0.2, 0.1, seed)
        cold = split.cold_mask(data.n_items)
        train = split.train[~cold[data.slates[split.train]].all(axis=1)]
        warm = np.flatnonzero(~cold)
        for name, fit in (("rate", click_prior_direction), ("slate", slate_prior_direction)):
            torch.manual_seed(seed)
            direction = fit(x, data.slates[train], y[train], warm)
            score = x @ direction
            test_s, test_y = data.slates[split.test], y[split.test]
            print(
                f"| {seed} | {name} | {row_auc(score, test_s, test_y):.3f} | "
                f"{row_auc(score, test_s, test_y, cold):.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
