"""Registers the LM encoders (``lm-fast``, ``lm-exact``) by name; imports no torch.

``recsim_llm.encoders`` imports this module at its end, so ``EnvConfig(encoder='lm-fast')``
works wherever encoders are built. The factories import the LM code only when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recsim_llm.encoders import UserEncoder, register_encoder

if TYPE_CHECKING:
    from recsim_llm.config import EnvConfig
    from recsim_llm.world.catalog import Catalog


def _path(config: EnvConfig) -> str | None:
    return getattr(config, "encoder_path", "") or None


def make_lm_fast(config: EnvConfig, catalog: Catalog) -> UserEncoder:
    """``lm-fast``: the fine-tuned encoder at ``config.encoder_path`` (shipped one if empty)."""
    from recsim_llm.lm.state import LMFastEncoder

    return LMFastEncoder(_path(config))


def make_lm_exact(config: EnvConfig, catalog: Catalog) -> UserEncoder:
    """``lm-exact``: the same encoder running the LM on the history text at every step."""
    from recsim_llm.lm.state import LMExactEncoder

    return LMExactEncoder(_path(config))


register_encoder("lm-fast", make_lm_fast)
register_encoder("lm-exact", make_lm_exact)
