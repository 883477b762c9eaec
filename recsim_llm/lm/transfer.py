"""Transfer: fine-tuning that starts from an existing encoder, and the cross-domain curve.

``FinetuneConfig(init_from=DIR)`` (``recsim-llm finetune --init-from DIR``) starts fine-tuning
from the encoder directory ``DIR`` instead of the pretrained backbone: its LoRA adapter (or, for a
full / merged encoder, its backbone weights), its heads (projection, logit scale and bias, pair
head, fast head) and its tokenizer. ``check_init_from`` reads and checks the directory before any
work (files against their sha256, same LoRA/full kind, projection size and LoRA rank/alpha, the
same base model); ``build_from_encoder`` builds the model to train; ``init_record`` is what
``encoder.json`` records about the start.

``transfer_curve`` (``benchmarks/bench_transfer.py``) measures the transfer curve: an encoder
from one domain (the synthetic world) used on MovieLens zero-shot, then fine-tuned on growing
shares of the MovieLens training users, against fine-tuning from the pretrained MiniLM with the
same budgets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build_from_encoder", "check_init_from", "init_record"]


class InitMismatchError(ValueError):
    """``init_from`` names an encoder that cannot be the start of this fine-tune."""


def check_init_from(config: Any) -> dict[str, Any]:
    """The checked ``encoder.json`` of ``config.init_from`` (a ``FinetuneConfig``).

    Cheap (no model is loaded): the files are verified against their recorded sha256 and the
    settings that fix the shapes of the trained weights must agree.

    Raises:
        FileNotFoundError: ``init_from`` is not a directory.
        EncoderFormatError: it is not a complete, intact encoder directory.
        InitMismatchError: LoRA vs full, ``proj_dim``, ``lora_r``/``lora_alpha`` or the base
            model differ (the message names the field and both values).
    """
    from recsim_llm.lm.model import resolve_model_path
    from recsim_llm.lm.store import read_encoder_config

    root = Path(config.init_from)
    if not root.is_dir():
        raise FileNotFoundError(f"init_from: encoder directory {str(root)!r} does not exist")
    enc = read_encoder_config(root)
    where = f"init_from {str(root)!r}"
    if bool(enc["lora"]) != bool(config.lora):
        kinds = ("LoRA", "full") if enc["lora"] else ("full/merged", "LoRA")
        hint = (
            " (merge it first: recsim-llm finetune --merge SRC --out DST, then --init-from DST)"
            if enc["lora"]
            else " (fine-tune it with --full)"
        )
        raise InitMismatchError(
            f"{where} is a {kinds[0]} encoder but this fine-tune is {kinds[1]}{hint}"
        )
    if int(enc["proj_dim"]) != int(config.proj_dim):
        raise InitMismatchError(
            f"{where}: proj_dim {enc['proj_dim']} in its encoder.json, but proj_dim="
            f"{config.proj_dim} here; the projection must match (pass --proj-dim "
            f"{enc['proj_dim']})"
        )
    if enc["lora"]:
        for field in ("lora_r", "lora_alpha"):
            if int(enc[field]) != int(getattr(config, field)):
                raise InitMismatchError(
                    f"{where}: {field} {enc[field]} in its encoder.json, but {field}="
                    f"{getattr(config, field)} here; the adapter shapes must match"
                )
        # The adapter sits on the base model it was trained on.
        if config.model_path:
            try:
                mine = resolve_model_path(config.model_path).resolve()
                theirs = resolve_model_path(enc["base_model"]).resolve()
            except (FileNotFoundError, ImportError) as err:
                raise InitMismatchError(f"{where}: base model unavailable: {err}") from err
            if mine != theirs:
                raise InitMismatchError(
                    f"{where} was trained on the base model {enc['base_model']!r}, but "
                    f"model_path={config.model_path!r} here; leave model_path empty to use its "
                    "base"
                )
    elif config.model_path:
        raise InitMismatchError(
            f"{where} is a full encoder: its own weights are the start, so model_path must be "
            f"empty, got {config.model_path!r}"
        )
    return enc


def build_from_encoder(config: Any) -> tuple[Any, Any]:
    """(tokenizer, RecLM) to train, initialised from ``config.init_from``.

    LoRA: the base model of the encoder with a fresh PEFT wrapper carrying this fine-tune's
    dropout, then the saved adapter weights. Full: the encoder's backbone weights. Then the heads
    and the tokenizer. The model is returned in eval mode; before any training step it gives the
    saved encoder's vectors.

    Raises:
        InitMismatchError / EncoderFormatError: as ``check_init_from``, or when the base model's
            architecture or the saved heads do not fit the model built here.
    """
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from recsim_llm.lm.model import build_model, resolve_model_path
    from recsim_llm.lm.store import EncoderFormatError, arch_of

    enc = check_init_from(config)
    root = Path(config.init_from)
    if enc["lora"]:
        try:
            base = resolve_model_path(enc["base_model"])
        except (FileNotFoundError, ImportError) as err:
            raise EncoderFormatError(
                f"init_from {str(root)!r}: base model {enc['base_model']!r} unavailable: {err}"
            ) from err
        tokenizer, model = build_model(
            base,
            config.proj_dim,
            config.dropout,
            lora=True,
            lora_r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            seed=config.seed,
        )
        backbone = model.backbone.base_model.model
    else:
        tokenizer, model = build_model(
            root / "backbone", config.proj_dim, config.dropout, seed=config.seed
        )
        backbone = model.backbone
    recorded, actual = enc["base_arch"], arch_of(backbone)
    diff = {k: (recorded.get(k), v) for k, v in actual.items() if recorded.get(k) != v}
    if diff:
        raise InitMismatchError(
            f"init_from {str(root)!r}: base model architecture differs (recorded vs here: {diff})"
        )
    if enc["lora"]:
        from peft import set_peft_model_state_dict

        state = load_file(str(root / "adapter" / "adapter_model.safetensors"))
        result = set_peft_model_state_dict(model.backbone, state)
        unexpected = list(getattr(result, "unexpected_keys", []))
        n_lora = sum(1 for n, _ in model.backbone.named_parameters() if "lora_" in n)
        if unexpected or len(state) != n_lora:
            raise InitMismatchError(
                f"init_from {str(root / 'adapter')!r}: adapter tensors do not fit this model "
                f"({len(state)} saved, {n_lora} LoRA tensors here, unexpected {unexpected[:3]})"
            )
    heads = load_file(str(root / "heads.safetensors"))
    expected = model.head_state_dict()
    if set(heads) != set(expected) or any(heads[k].shape != expected[k].shape for k in heads):
        missing = sorted(set(expected) - set(heads))[:3]
        extra = sorted(set(heads) - set(expected))[:3]
        raise InitMismatchError(
            f"init_from {str(root / 'heads.safetensors')!r}: heads do not fit this model "
            f"(missing {missing}, unexpected {extra}, or shapes differ)"
        )
    with torch.no_grad():
        model.load_state_dict(heads, strict=False)
    if (root / "tokenizer").is_dir():
        tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
    model.eval()
    return tokenizer, model


def init_record(init_from: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What ``encoder.json`` records about the start of a fine-tune (None: the pretrained model).

    The path, the start's kind and base model, the logs it was trained on, and the sha256 of its
    trained weights (adapter or backbone) and heads, so the start can be identified later.
    """
    if not init_from:
        return None
    from recsim_llm.lm.store import read_encoder_config

    root = Path(init_from)
    enc = read_encoder_config(root)
    weights = "adapter/adapter_model.safetensors" if enc["lora"] else "backbone/model.safetensors"
    return {
        "path": str(root.resolve()),
        "lora": bool(enc["lora"]),
        "base_model": enc["base_model"],
        "logs": enc.get("logs"),
        "world_hash": enc.get("world_hash"),
        "sha256": {k: enc["files"][k] for k in (weights, "heads.safetensors")},
    }


# -- the transfer curve ------------------------------------------------------------------------------


def subset_users(data: Any, users: np.ndarray) -> Any:
    """A ``LogData`` holding only the rows of ``users`` (order kept: by user, then step)."""
    import dataclasses

    keep = np.flatnonzero(np.isin(data.user, np.asarray(users)))
    pick = keep.tolist()
    return dataclasses.replace(
        data,
        meta={**data.meta, "n_rows": int(keep.size), "subset_users": int(np.size(users))},
        user=data.user[keep],
        t=data.t[keep],
        clock=data.clock[keep],
        profiles=[data.profiles[i] for i in pick],
        candidates=data.candidates[keep],
        slates=data.slates[keep],
        click_pos=data.click_pos[keep],
        rating=data.rating[keep],
        history_text=[data.history_text[i] for i in pick],
    )


def user_split(data: Any, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(training users in a seeded order, held-out test users): a share p of the training users
    is the first ``ceil(p * n)`` of the order, so smaller shares are subsets of larger ones."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7A5]))
    users = rng.permutation(np.unique(data.user))
    n_test = int(round(test_fraction * users.size))
    return users[n_test:], np.sort(users[:n_test])


def heldout_rows(
    data: Any, users: np.ndarray, label: str, per_user: int = 2, seed: int = 0
) -> np.ndarray:
    """A seeded sample of ``per_user`` rows with a positive response per held-out user."""
    from recsim_llm.lm.logs import labels

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7E5]))
    pos = labels(data, label).sum(1) > 0
    out = []
    for u in np.asarray(users).tolist():
        rows = np.flatnonzero((data.user == u) & pos)
        if rows.size:
            out.extend(rng.choice(rows, min(per_user, rows.size), replace=False).tolist())
    return np.sort(np.array(out, dtype=np.int64))


def encoder_scores(
    data: Any, rows: np.ndarray, path: str | os.PathLike[str], n_threads: int = 2
) -> dict[str, np.ndarray]:
    """{'exact': scores, 'fast': scores} of each row's candidates by a saved encoder.

    Exact: the user tower on the row's history text (within the encoder's token budget); fast:
    the fast head on the profile embedding and the events before the row. Both score
    ``u . v`` with the item tower's embeddings.
    """
    from recsim_llm import text
    from recsim_llm.lm.logs import Histories
    from recsim_llm.lm.model import fast_states_numpy
    from recsim_llm.lm.store import load_encoder

    enc = load_encoder(path, n_threads=n_threads)
    if enc.config["lora"]:  # the same function, faster to run
        enc.model.backbone = enc.model.backbone.merge_and_unload()
    cands = np.maximum(data.candidates[rows], 0)
    items = np.unique(cands)
    vec = np.zeros((data.n_items, enc.dim), dtype=np.float32)
    vec[items] = enc.encode_items([data.item_texts[i] for i in items.tolist()])
    hist = Histories(data, int(enc.config["history_steps"]))
    users = enc.encode_users(
        [hist.text(r, enc.n_tokens, enc.user_max_length) for r in rows.tolist()]
    )
    profiles = [text.history_text(data.profiles[r], []) for r in rows.tolist()]
    uniq = sorted(set(profiles))
    emb = dict(zip(uniq, enc.encode_users(uniq), strict=True))
    prof = np.stack([emb[p] for p in profiles])
    it, ty, ag, mk = hist.arrays(rows, int(enc.config["history_steps"]) * data.slates.shape[1])
    seen = np.unique(it[mk])
    todo = np.setdiff1d(seen, items)
    if todo.size:
        vec[todo] = enc.encode_items([data.item_texts[i] for i in todo.tolist()])
    fast = fast_states_numpy(enc.model.fast.export(), prof, vec[it], ty, ag, mk)
    return {
        "exact": np.einsum("nd,ncd->nc", users, vec[cands]),
        "fast": np.einsum("nd,ncd->nc", fast, vec[cands]),
    }


def zero_shot_scores(
    data: Any, rows: np.ndarray, user_len: int = 128, item_len: int = 64, history_steps: int = 20
) -> np.ndarray:
    """Scores of the pretrained MiniLM (mean-pooled, no fine-tuning) on the same texts."""
    from recsim_llm.lm.logs import Histories
    from recsim_llm.lm.model import build_model, encode_texts

    tok, model = build_model("", proj_dim=0, dropout=0.0)
    cands = np.maximum(data.candidates[rows], 0)
    items = np.unique(cands)
    vec = np.zeros((data.n_items, model.hidden), dtype=np.float32)
    vec[items] = encode_texts(
        model, tok, [data.item_texts[i] for i in items.tolist()], item_len, 128, raw=True
    )
    hist = Histories(data, history_steps)

    def n_tokens(s: str) -> int:
        return len(tok(s)["input_ids"])

    texts = [hist.text(r, n_tokens, user_len) for r in rows.tolist()]
    users = encode_texts(model, tok, texts, user_len, 32, raw=True)
    return np.einsum("nd,ncd->nc", users, vec[cands])


def score_table(
    data: Any,
    rows: np.ndarray,
    scores: dict[str, np.ndarray],
    label: str,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """{name: per-row AUC and NDCG@10 with bootstrap intervals over users}."""
    from recsim_llm.lm.logs import labels
    from recsim_llm.lm.rowmetrics import bootstrap_mean, per_row_metrics

    y = labels(data, label)[rows]
    cands, slates = data.candidates[rows], data.slates[rows]
    out = {}
    for name, s in scores.items():
        s = np.where(cands >= 0, np.asarray(s, dtype=np.float64), -np.inf)
        _, row_auc, ndcg = per_row_metrics(s, cands, slates, y)
        a = bootstrap_mean(row_auc, data.user[rows], n_boot, seed)
        g = bootstrap_mean(ndcg, data.user[rows], n_boot, seed)
        out[name] = {
            "auc": a["mean"],
            "auc_lo": a["lo"],
            "auc_hi": a["hi"],
            "ndcg@10": g["mean"],
            "ndcg@10_lo": g["lo"],
            "ndcg@10_hi": g["hi"],
            "n_users": a["n_users"],
            "n_rankings": a["n_rows"],
        }
    return out
