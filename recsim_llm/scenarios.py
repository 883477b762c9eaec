"""Named scenarios: environment configs that stress one behaviour each."""

from __future__ import annotations

from dataclasses import replace

from recsim_llm.config import CatalogConfig, ChoiceConfig, DynamicsConfig, EnvConfig, WorldConfig


def _world(**parts: object) -> WorldConfig:
    return WorldConfig(**parts)  # type: ignore[arg-type]


SCENARIOS: dict[str, EnvConfig] = {
    "default": EnvConfig(),
    "taste-shift": EnvConfig(
        world=_world(dynamics=DynamicsConfig(shift_step=40, shift_fraction=0.5))
    ),
    "cascade": EnvConfig(world=_world(choice=ChoiceConfig(model="cascade"))),
    "new-items": EnvConfig(
        world=_world(catalog=CatalogConfig(n_new_items=600, new_items_per_step=6)),
        n_new_candidates=6,
    ),
}
"""default: the calibrated trade-off world. taste-shift: half the users redraw their interests at
step 40. cascade: cascade choice model instead of MNL. new-items: a stream of cold-start items."""


def scenario_config(name: str, **overrides: object) -> EnvConfig:
    """The config of scenario ``name``, with top-level EnvConfig fields overridden."""
    if name not in SCENARIOS:
        raise ValueError(f"scenario must be one of {sorted(SCENARIOS)}, got {name!r}")
    return replace(SCENARIOS[name], **overrides)  # type: ignore[arg-type]
