"""Named, versioned scenarios: environment configs that stress one behaviour each.

A scenario is a ``Scenario`` (name, version, description, and optionally a ``Strength``: one
parameter with a documented range, e.g. the share of bot users). ``SCENARIOS`` maps a name to a
``Scenario`` or to any factory ``() -> EnvConfig`` (an object or a lazy ``"module:attr"`` entry
point). A scenario is asked for by a *spec*: its name, optionally with a strength after ``@``
(``"obs-noise@0.5"``; without ``@`` the scenario's default strength). Add one with
``SCENARIOS.register("my-world", "my_pkg.worlds:my_world")``; it is then accepted by
``scenario_config``, ``gym.make(..., scenario=...)`` and the CLI's ``--scenario``/``--scenarios``,
and listed by ``recsim-llm scenarios``.

Every built-in scenario uses the default catalog except ``new-items`` and ``cold-start`` (both the
cold-start catalog), so the shipped encoder's cached item embeddings cover all of them. A
scenario's ``version`` is bumped whenever what it builds changes, and run files record it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from recsim_llm.config import (
    CatalogConfig,
    ChoiceConfig,
    DynamicsConfig,
    EnvConfig,
    UserConfig,
    WorldConfig,
)
from recsim_llm.registry import Registry

__all__ = [
    "BUILTIN_SCENARIOS",
    "SCENARIOS",
    "Scenario",
    "Strength",
    "parse_scenario",
    "scenario_config",
    "scenario_info",
    "scenario_names",
    "scenario_table",
]

STRENGTH_SEPARATOR = "@"
"""``name@strength`` selects a scenario's strength."""


@dataclass(frozen=True)
class Strength:
    """The one parameter a scenario is tuned by."""

    name: str
    """What the number is (e.g. 'bot share')."""
    default: float
    """Strength used when a spec names no strength."""
    low: float
    """Smallest allowed strength."""
    high: float
    """Largest allowed strength."""
    integer: bool = False
    """Whether the strength must be a whole number (e.g. a delay in steps)."""

    def check(self, value: float, scenario: str) -> float:
        """``value`` as a float, or ``ValueError`` naming the scenario, parameter and range."""
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise ValueError(
                f"scenario {scenario!r}: strength ({self.name}) must be in "
                f"[{self.low:g}, {self.high:g}], got {value:g}"
            )
        if self.integer and value != int(value):
            raise ValueError(
                f"scenario {scenario!r}: strength ({self.name}) must be a whole number, got {value:g}"
            )
        return float(value)


@dataclass(frozen=True)
class Scenario:
    """A named, versioned preset: ``scenario()`` or ``scenario(strength)`` builds its EnvConfig."""

    name: str
    version: int
    description: str
    build: Callable[..., EnvConfig]
    """``build()`` without a strength, ``build(strength)`` with one."""
    strength: Strength | None = None

    def __call__(self, strength: float | None = None) -> EnvConfig:
        if self.strength is None:
            if strength is not None:
                raise ValueError(f"scenario {self.name!r} takes no strength, got {strength:g}")
            return self.build()
        value = self.strength.check(
            self.strength.default if strength is None else float(strength), self.name
        )
        return self.build(value)


# -- builders ---------------------------------------------------------------------------------
def _dynamics(**fields: float) -> EnvConfig:
    return EnvConfig(world=WorldConfig(dynamics=DynamicsConfig(**fields)))  # type: ignore[arg-type]


def default() -> EnvConfig:
    """The calibrated trade-off world."""
    return EnvConfig()


def stationary() -> EnvConfig:
    """No drift at all: no filter bubble, no random walk, no shift."""
    return _dynamics(filter_bubble_rate=0.0, drift_std=0.0)


def gradual_drift(strength: float = 0.03) -> EnvConfig:
    """Interests take a Gaussian random-walk step of ``strength`` per step (default world 0.01)."""
    return _dynamics(drift_std=strength)


SHIFT_STEP = 40
"""Session step of the event of ``taste-shift`` and ``trend-shift``."""


def taste_shift(strength: float = 0.5) -> EnvConfig:
    """A ``strength`` share of users redraw their interests at session step 40."""
    return _dynamics(shift_step=SHIFT_STEP, shift_fraction=strength)


def trend_shift(strength: float = 1.0) -> EnvConfig:
    """At session step 40 every user's interest in topic 0 rises by ``strength`` (then
    renormalised): a population-wide trend, unlike ``taste-shift``'s per-user redraw."""
    return _dynamics(trend_step=SHIFT_STEP, trend_topic=0, trend_strength=strength)


def filter_bubble(strength: float = 0.2) -> EnvConfig:
    """Interests move ``strength`` of the way toward each consumed item (default world 0.05)."""
    return _dynamics(filter_bubble_rate=strength)


def cascade() -> EnvConfig:
    """The cascade choice model instead of the multinomial logit."""
    return EnvConfig(world=WorldConfig(choice=ChoiceConfig(model="cascade")))


def choice_misspec(strength: float = 0.5) -> EnvConfig:
    """Users click by a mixture: ``strength`` cascade, ``1 - strength`` multinomial logit."""
    return EnvConfig(
        world=WorldConfig(choice=ChoiceConfig(model="mnl-cascade", cascade_share=strength))
    )


NEW_ITEMS_CATALOG = CatalogConfig(n_new_items=600, new_items_per_step=6)
"""The cold-start catalog (600 items arriving, 6 per step) of new-items and cold-start."""


def new_items() -> EnvConfig:
    """A stream of cold-start items (6 new items per step, 6 new-item candidates)."""
    return EnvConfig(world=WorldConfig(catalog=NEW_ITEMS_CATALOG), n_new_candidates=6)


def cold_start(strength: float = 0.5) -> EnvConfig:
    """New users (profile only) meet a stream of new items: ``strength`` of the 20 candidates
    are newly arrived items; profiles name the user's true taste less often (50%)."""
    config = EnvConfig()
    return EnvConfig(
        world=WorldConfig(catalog=NEW_ITEMS_CATALOG, users=UserConfig(profile_taste_accuracy=0.5)),
        n_new_candidates=int(round(strength * config.n_candidates)),
        n_popular_candidates=min(
            config.n_popular_candidates,
            config.n_candidates - int(round(strength * config.n_candidates)),
        ),
    )


def obs_noise(strength: float = 0.5) -> EnvConfig:
    """Gaussian noise on the encoder state in observations, std = strength x the row's RMS."""
    return EnvConfig(observation_noise=strength)


def missing_feedback(strength: float = 0.3) -> EnvConfig:
    """A ``strength`` share of clicks never reach the observable log."""
    return EnvConfig(feedback_drop=strength)


def delayed_feedback(strength: float = 3.0) -> EnvConfig:
    """The observed user state lags the log by ``strength`` steps."""
    return EnvConfig(feedback_delay=int(strength))


def bots(strength: float = 0.2) -> EnvConfig:
    """A ``strength`` share of users are bots clicking at random."""
    return EnvConfig(world=WorldConfig(users=UserConfig(bot_fraction=strength)))


def population_shift(strength: float = 0.5) -> EnvConfig:
    """Evaluation users differ from the default (training) population by ``strength``:
    satisfaction starts lower by 0.3 s, interests are noisier (+0.15 s) and broader (up to
    3 + round(3 s) topics), profiles name the true taste less often (0.7 - 0.4 s)."""
    base = UserConfig()
    users = UserConfig(
        satisfaction_low=base.satisfaction_low - 0.3 * strength,
        satisfaction_high=base.satisfaction_high - 0.3 * strength,
        interest_noise=base.interest_noise + 0.15 * strength,
        interest_topics_max=base.interest_topics_max + int(round(3 * strength)),
        profile_taste_accuracy=base.profile_taste_accuracy - 0.4 * strength,
    )
    return EnvConfig(world=WorldConfig(users=users))


_BUILTIN = (
    Scenario("default", 1, "the calibrated trade-off world (gradual drift 0.01)", default),
    Scenario("stationary", 1, "no drift: no filter bubble, no random walk", stationary),
    Scenario(
        "gradual-drift",
        1,
        "interests take a random-walk step every step",
        gradual_drift,
        Strength("interest random-walk std per step", 0.03, 0.0, 0.2),
    ),
    Scenario(
        "taste-shift",
        1,
        "abrupt taste shift at session step 40",
        taste_shift,
        Strength("share of users whose interests are redrawn", 0.5, 0.0, 1.0),
    ),
    Scenario(
        "trend-shift",
        1,
        "a population-wide trend toward one topic at session step 40",
        trend_shift,
        Strength("interest added to the trending topic", 1.0, 0.0, 5.0),
    ),
    Scenario(
        "filter-bubble",
        1,
        "interests pulled toward consumed items",
        filter_bubble,
        Strength("pull toward a consumed item per click", 0.2, 0.0, 1.0),
    ),
    Scenario("cascade", 1, "the cascade choice model instead of the logit", cascade),
    Scenario(
        "choice-misspec",
        1,
        "misspecified choice model: a logit/cascade mixture",
        choice_misspec,
        Strength("cascade share of the click probabilities", 0.5, 0.0, 1.0),
    ),
    Scenario("new-items", 1, "a stream of cold-start items (6 per step)", new_items),
    Scenario(
        "cold-start",
        1,
        "new users (profile only) and a stream of new items",
        cold_start,
        Strength("share of candidates that are new items", 0.5, 0.0, 0.8),
    ),
    Scenario(
        "obs-noise",
        1,
        "noise on the encoder state the policy observes",
        obs_noise,
        Strength("noise std relative to the state's RMS", 0.5, 0.0, 10.0),
    ),
    Scenario(
        "missing-feedback",
        1,
        "clicks missing from the observable log",
        missing_feedback,
        Strength("share of clicks lost", 0.3, 0.0, 1.0),
    ),
    Scenario(
        "delayed-feedback",
        1,
        "the observed user state lags the log",
        delayed_feedback,
        Strength("delay in steps", 3.0, 0.0, 50.0, integer=True),
    ),
    Scenario(
        "bots",
        1,
        "bot users clicking at random",
        bots,
        Strength("share of users that are bots", 0.2, 0.0, 1.0),
    ),
    Scenario(
        "population-shift",
        1,
        "evaluation users drawn unlike the training users",
        population_shift,
        Strength("size of the shift of the user sampler's parameters", 0.5, 0.0, 1.0),
    ),
)

SCENARIOS: Registry[Callable[..., EnvConfig]] = Registry("scenario")
"""Scenario name -> ``Scenario`` (or a plain factory of its EnvConfig)."""

BUILTIN_SCENARIOS = ("default", "taste-shift", "cascade", "new-items")
"""The first scenarios shipped with the package (their catalogs are in the shipped encoder's
cache; every later built-in scenario reuses one of these catalogs)."""

for _scenario in _BUILTIN:
    SCENARIOS.register(_scenario.name, _scenario)
del _scenario


def scenario_names() -> list[str]:
    """Registered scenario names."""
    return SCENARIOS.names()


def parse_scenario(spec: str) -> tuple[str, float | None]:
    """``"name"`` or ``"name@strength"`` -> (name, strength or None), checked against the
    registry and the scenario's strength range (``ValueError`` naming what is wrong)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"scenario must be a non-empty string, got {spec!r}")
    name, sep, text = spec.strip().partition(STRENGTH_SEPARATOR)
    SCENARIOS.resolve(name)  # unknown name: ValueError listing the registered names
    if not sep:
        return name, None
    try:
        strength = float(text)
    except ValueError:
        raise ValueError(
            f"scenario {name!r}: strength after '{STRENGTH_SEPARATOR}' must be a number, "
            f"got {text!r}"
        ) from None
    info = scenario_info(name)
    if info.strength is None:
        raise ValueError(f"scenario {name!r} takes no strength, got {spec!r}")
    info.strength.check(strength, name)
    return name, strength


def scenario_info(name: str) -> Scenario:
    """The ``Scenario`` registered as ``name``; a plain factory is shown as version 0 with no
    strength and its docstring's first line as the description."""
    entry = SCENARIOS.resolve(name)
    if isinstance(entry, Scenario):
        return entry
    doc = (getattr(entry, "__doc__", None) or "").strip().splitlines()
    return Scenario(name, 0, doc[0] if doc else "", entry)


def scenario_config(name: str, **overrides: object) -> EnvConfig:
    """The config of scenario spec ``name`` (``"obs-noise@0.5"`` or a bare name), with top-level
    EnvConfig fields overridden."""
    base, strength = parse_scenario(name)
    entry = SCENARIOS.resolve(base)
    config = entry(strength) if strength is not None else entry()
    if not isinstance(config, EnvConfig):
        raise TypeError(f"scenario {base!r} must build an EnvConfig, got {type(config).__name__}")
    return replace(config, **overrides)  # type: ignore[arg-type]


def scenario_table() -> list[dict[str, object]]:
    """One row per registered scenario: name, version, description, strength and its range."""
    rows: list[dict[str, object]] = []
    for name in scenario_names():
        info = scenario_info(name)
        s = info.strength
        rows.append(
            {
                "name": name,
                "version": info.version,
                "description": info.description,
                "strength": s.name if s else "",
                "default": s.default if s else None,
                "range": f"[{s.low:g}, {s.high:g}]" if s else "",
            }
        )
    return rows
