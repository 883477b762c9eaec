"""What an encoder's item vectors keep of the clickbait wording (a diagnostic of the item space).

For the default world's catalog (every item; hidden labels are read for the diagnostic only):
5-fold cross-validated logistic probes (AUC) of the clickbait *opener* in the title (the
wording the world writes for 80% of clickbait items and 10% of the others) and of the hidden
clickbait class, from the encoder's ``dim``-d item vectors ``v`` and from the pretrained
MiniLM's 384-d mean-pooled outputs of the same texts.

    python benchmarks/probe_item_space.py [--encoder DIR]      # default: the shipped encoder
"""

from __future__ import annotations

import argparse

import numpy as np


def probe(x: np.ndarray, y: np.ndarray, c: float) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    model = LogisticRegression(C=c, max_iter=3000)
    return float(cross_val_score(model, z, y, scoring="roc_auc", cv=5).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="", help="encoder directory (default: shipped)")
    args = parser.parse_args(argv)

    import torch

    from recsim_llm import text
    from recsim_llm.config import EnvConfig
    from recsim_llm.envs.vector import SlateVectorEnv
    from recsim_llm.lm.model import load_backbone, mean_pool
    from recsim_llm.lm.state import load_bundle

    torch.set_num_threads(2)
    bundle = load_bundle(args.encoder or None)
    env = SlateVectorEnv(num_envs=2, config=EnvConfig(encoder="lm-fast", encoder_path=args.encoder))
    env.reset(seed=0)
    catalog = env.sim.world.catalog
    v = np.asarray(env.sim.item_embeddings, dtype=np.float64)
    n = v.shape[0]
    bait = np.asarray(catalog.clickbait[:n], dtype=bool)
    opener = np.array(
        [
            any(t.lower().startswith(p.lower()) for p in text.CLICKBAIT_PHRASES)
            for t in catalog.titles[:n]
        ]
    )
    texts = [
        text.item_text(catalog.titles[i], catalog.descriptions[i], catalog.genres[i])
        for i in range(n)
    ]
    tokenizer, backbone = load_backbone(None)
    pooled = []
    with torch.no_grad():
        for i in range(0, n, 64):
            batch = tokenizer(
                texts[i : i + 64], padding=True, truncation=True, max_length=64, return_tensors="pt"
            )
            hidden = backbone(**batch).last_hidden_state
            pooled.append(mean_pool(hidden, batch["attention_mask"]).numpy())
    raw = np.concatenate(pooled).astype(np.float64)
    print(
        f"encoder: {bundle.path}; {n} items, {bait.mean():.0%} clickbait, openers in "
        f"{opener[bait].mean():.0%} of clickbait and {opener[~bait].mean():.0%} of other titles"
    )
    print("| what | from the encoder's item vectors | from pretrained MiniLM (384-d) |")
    print("|---|---|---|")
    print(
        f"| probe: clickbait opener (CV AUC) | {probe(v, opener, 1.0):.3f} | "
        f"{probe(raw, opener, 0.1):.4f} |"
    )
    print(
        f"| probe: clickbait class (CV AUC) | {probe(v, bait, 1.0):.3f} | "
        f"{probe(raw, bait, 0.1):.3f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
