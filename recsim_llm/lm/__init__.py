"""Language-model user encoder: pretrained MiniLM, fine-tuning (full and LoRA), env states.

Importing this package is cheap (no torch). Entry points:

* ``recsim_llm.lm.logs.write_behaviour_logs`` / ``recsim-llm write-logs``: behaviour logs;
* ``recsim_llm.lm.finetune.finetune`` / ``recsim-llm finetune``: fine-tune (LoRA or full);
* ``recsim_llm.lm.evaluate.evaluate_encoders`` / ``recsim-llm encoder-eval``: quality table;
* ``recsim_llm.lm.store.load_encoder`` / ``merge_encoder``: encoder directories;
* ``recsim_llm.lm.quantise.quantise_encoder`` / ``recsim-llm quantise``: serving encoders (int8, bf16);
* ``recsim_llm.lm.explain.explain`` / ``explain_step`` / ``recsim-llm explain``: why an item
  scores as it does (history items and item words with weights, one sentence);
* ``EnvConfig(encoder='lm-fast' | 'lm-exact', encoder_path=...)``: the env's user state;
* ``quickstart_encoder``: a fine-tuned encoder for the default world, shipped or trained now.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recsim_llm.config import EnvConfig
    from recsim_llm.encoders import UserEncoder
    from recsim_llm.world.catalog import Catalog

__all__ = ["make_lm_exact", "make_lm_fast", "quickstart_encoder", "shipped_encoder_path"]


def make_lm_fast(config: EnvConfig, catalog: Catalog) -> UserEncoder:
    """``lm-fast``: the fine-tuned encoder at ``config.encoder_path`` (shipped one if empty)."""
    from recsim_llm.lm.state import LMFastEncoder

    return LMFastEncoder(config.encoder_path or None)


def make_lm_exact(config: EnvConfig, catalog: Catalog) -> UserEncoder:
    """``lm-exact``: the same encoder running the LM on the history text at every step."""
    from recsim_llm.lm.state import LMExactEncoder

    return LMExactEncoder(config.encoder_path or None)


def shipped_encoder_path() -> Path:
    """The LoRA encoder shipped with the package (fine-tuned on the default synthetic world)."""
    from recsim_llm.lm.state import shipped_encoder_path as _path

    return _path()


def quickstart_encoder(
    out_dir: str | os.PathLike[str] | None = None,
    train: bool = False,
    n_users: int = 2048,
    n_steps: int = 40,
    max_train_rows: int = 960,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Directory of a fine-tuned encoder for the default world, for ``recsim-llm quickstart``.

    Without ``train``: the shipped encoder (instant). With ``train``: behaviour logs of the
    default world (in a temporary folder; slates in random order) and a short LoRA fine-tune
    with the shipped recipe (projection started as the PCA whitening of the items, item bias,
    separate softmax temperature, logQ, position offsets; one epoch over ``max_train_rows``
    rows, validated every 20 steps, early-stopped on per-row validation AUC; the fast head fit
    on the click objective over every training row, ~60k), written
    as the encoder directory ``out_dir`` (an ``"encoder"`` output of ``recsim_llm.io``, checked
    before any work), with the catalog's item embeddings cached. Progress bars and lines
    throughout; under 10 minutes on 2 idle CPU cores. Pass the result as
    ``EnvConfig(encoder='lm-fast', encoder_path=str(path))``.
    """
    if not train:
        return shipped_encoder_path()
    if out_dir is None:
        raise ValueError("out_dir is required when train=True")
    import tempfile

    from recsim_llm.config import EnvConfig
    from recsim_llm.io import check_out_dir
    from recsim_llm.lm.finetune import FinetuneConfig, finetune
    from recsim_llm.lm.logs import write_behaviour_logs
    from recsim_llm.lm.state import world_texts

    out = check_out_dir(out_dir, "encoder")
    config = FinetuneConfig(
        lora=True,
        epochs=1,
        max_train_rows=max_train_rows,
        max_val_rows=150,
        val_every=20,
        patience=2,
        fast_rows=200,
        seed=seed,
    )
    with tempfile.TemporaryDirectory(prefix="recsim-llm-logs-") as tmp:
        logs = write_behaviour_logs(
            Path(tmp) / "logs",
            EnvConfig(),
            n_users=n_users,
            n_steps=n_steps,
            seed=seed,
            progress=progress,
        )
        cache = {"items": world_texts(logs)["items"]}
        return finetune(logs, out, config, progress=progress, cache_texts=cache)
