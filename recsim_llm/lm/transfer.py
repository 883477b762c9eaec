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
