"""Named scenarios: environment configs that stress one behaviour each.

``SCENARIOS`` maps a name to a factory ``() -> EnvConfig`` (an object or a lazy ``"module:attr"``
entry point). Add one with ``SCENARIOS.register("my-world", "my_pkg.worlds:my_world")``; it is
then accepted by ``scenario_config``, ``gym.make(..., scenario=...)`` and the CLI's
``--scenario``/``--scenarios``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from recsim_llm.config import CatalogConfig, ChoiceConfig, DynamicsConfig, EnvConfig, WorldConfig
from recsim_llm.registry import Registry

__all__ = ["BUILTIN_SCENARIOS", "SCENARIOS", "scenario_config", "scenario_names"]


def default() -> EnvConfig:
    """The calibrated trade-off world."""
    return EnvConfig()


def taste_shift() -> EnvConfig:
    """Half the users redraw their interests at step 40."""
    return EnvConfig(world=WorldConfig(dynamics=DynamicsConfig(shift_step=40, shift_fraction=0.5)))


def cascade() -> EnvConfig:
    """The cascade choice model instead of the multinomial logit."""
    return EnvConfig(world=WorldConfig(choice=ChoiceConfig(model="cascade")))


def new_items() -> EnvConfig:
    """A stream of cold-start items (6 new items per step, 6 new-item candidates)."""
    return EnvConfig(
        world=WorldConfig(catalog=CatalogConfig(n_new_items=600, new_items_per_step=6)),
        n_new_candidates=6,
    )


SCENARIOS: Registry[Callable[[], EnvConfig]] = Registry("scenario")
"""Scenario name -> factory of its EnvConfig."""

BUILTIN_SCENARIOS = ("default", "taste-shift", "cascade", "new-items")
"""The scenarios shipped with the package (their catalogs are in the shipped encoder's cache)."""

for _name in BUILTIN_SCENARIOS:
    SCENARIOS.register(_name, f"recsim_llm.scenarios:{_name.replace('-', '_')}")
del _name


def scenario_names() -> list[str]:
    """Registered scenario names."""
    return SCENARIOS.names()


def scenario_config(name: str, **overrides: object) -> EnvConfig:
    """The config of scenario ``name``, with top-level EnvConfig fields overridden."""
    config = SCENARIOS.make(name)
    if not isinstance(config, EnvConfig):
        raise TypeError(f"scenario {name!r} must build an EnvConfig, got {type(config).__name__}")
    return replace(config, **overrides)  # type: ignore[arg-type]
