"""Frozen configuration dataclasses for the world and the environments.

Every field is validated in ``__post_init__``; an invalid value raises ``ValueError`` naming the
field and the allowed range, before anything is built. Configs round-trip through plain dicts
(``to_dict`` / ``from_dict``) so that every run can write its full config as JSON.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, TypeVar

from recsim_llm.sizes import MAX_STEPS, check_memory

T = TypeVar("T")


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        upper = "inf" if high is None else str(high)
        raise ValueError(f"{name} must be in [{low}, {upper}], got {value}")


def check_float(
    name: str, value: Any, low: float, high: float = math.inf, *, open_low: bool = False
) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number in [low, high]
    (``(low, high]`` with ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value}")
    if (value <= low if open_low else value < low) or value > high:
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value}")


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _check_registered(name: str, value: Any, registry: str) -> None:
    """``value`` must be a name in the world registry ``registry`` (e.g. 'CHOICE_MODELS')."""
    # Imported here: the registries module is light, but the world package imports this module.
    from recsim_llm import world_registries as registries

    getattr(registries, registry).check(value, name)


@dataclass(frozen=True)
class CatalogConfig:
    """The synthetic item catalog."""

    n_items: int = 1200
    """Items present from the start."""
    n_new_items: int = 200
    """Items that arrive during a run (cold-start items), on a fixed schedule."""
    new_items_per_step: int = 2
    """How many of the new items arrive at each world step, from step 1 on."""
    n_topics: int = 16
    """Hidden topics; also the dimension of the interest space. At most 16 (built-in vocabulary)."""
    clickbait_fraction: float = 0.3
    """Share of items with high appeal and low quality."""
    text_noise: float = 0.25
    """Probability that a topic word in an item's text is drawn from another topic."""
    genre_label_noise: float = 0.1
    """Probability that an item's observable genre label is wrong."""
    seed: int = 0
    """Seed of the catalog generator: the same seed gives the same catalog (and item texts)."""

    def __post_init__(self) -> None:
        check_int("catalog.n_items", self.n_items, 1)
        check_int("catalog.n_new_items", self.n_new_items, 0)
        check_int("catalog.new_items_per_step", self.new_items_per_step, 1)
        check_int("catalog.n_topics", self.n_topics, 2, 16)
        # Per item: latent vector, four scalar arrays, three texts (~1 KiB as Python strings) and
        # a cached embedding (up to 384 float32): a generous 3 KiB plus the latent vector.
        check_memory(
            f"catalog.n_items + catalog.n_new_items ({self.n_items} + {self.n_new_items})",
            float(self.n_items + self.n_new_items) * (3 * 1024 + 8 * self.n_topics),
            "the catalog (arrays, texts and item embeddings)",
        )
        check_float("catalog.clickbait_fraction", self.clickbait_fraction, 0.0, 1.0)
        check_float("catalog.text_noise", self.text_noise, 0.0, 1.0)
        check_float("catalog.genre_label_noise", self.genre_label_noise, 0.0, 1.0)
        check_int("catalog.seed", self.seed, 0)


@dataclass(frozen=True)
class UserConfig:
    """How new users are sampled."""

    model: str = "synthetic"
    """User model: a name registered with ``recsim_llm.world.register_user_model``."""
    interest_topics_max: int = 3
    """A new user likes between 1 and this many topics."""
    interest_noise: float = 0.15
    """Gaussian noise added to a new user's interest vector before normalisation."""
    satisfaction_low: float = 0.6
    """New users' satisfaction is uniform in [satisfaction_low, satisfaction_high]."""
    satisfaction_high: float = 0.9
    """Upper end of the initial satisfaction range."""
    profile_taste_accuracy: float = 0.7
    """Probability that the stated-taste sentence of the profile names the user's top topic."""
    bot_fraction: float = 0.0
    """Share of new users that are bots: they click a uniformly random slot or nothing (each of
    the ``slate_size + 1`` outcomes equally likely), whatever the slate (hidden, like interests)."""

    def __post_init__(self) -> None:
        _check_registered("users.model", self.model, "USER_MODELS")
        check_int("users.interest_topics_max", self.interest_topics_max, 1, 16)
        check_float("users.interest_noise", self.interest_noise, 0.0, 10.0)
        check_float("users.satisfaction_low", self.satisfaction_low, 0.0, 1.0)
        check_float("users.satisfaction_high", self.satisfaction_high, 0.0, 1.0)
        if self.satisfaction_low > self.satisfaction_high:
            raise ValueError(
                "users.satisfaction_low must be <= users.satisfaction_high, got "
                f"{self.satisfaction_low} > {self.satisfaction_high}"
            )
        check_float("users.profile_taste_accuracy", self.profile_taste_accuracy, 0.0, 1.0)
        check_float("users.bot_fraction", self.bot_fraction, 0.0, 1.0)


@dataclass(frozen=True)
class ChoiceConfig:
    """The user choice model over a slate."""

    model: str = "mnl"
    """Choice model: 'mnl' (multinomial logit with a no-click option), 'cascade', or another name
    registered with ``recsim_llm.world.register_choice_model``."""
    match_weight: float = 4.0
    """Utility per unit of interest match (cosine of interest and item latent vector)."""
    appeal_weight: float = 3.0
    """Utility per unit of appeal (clickbait level)."""
    boredom_weight: float = 1.5
    """Utility lost per unit of boredom with the item's topic."""
    position_bias: float = 0.5
    """Utility lost is position_bias * log(1 + position): lower slots are seen less."""
    no_click_base: float = 3.0
    """Utility of not clicking for a fully satisfied user."""
    no_click_dissatisfaction: float = 3.0
    """Extra no-click utility per unit of missing satisfaction (1 - satisfaction)."""
    cascade_continue: float = 0.8
    """Cascade model: probability of examining the next slot after skipping one."""
    cascade_share: float = 0.0
    """'mnl-cascade' model: weight of the cascade model's click probabilities in a mixture with
    the multinomial logit's (0: pure logit, 1: pure cascade)."""

    def __post_init__(self) -> None:
        _check_registered("choice.model", self.model, "CHOICE_MODELS")
        for name in ("match_weight", "appeal_weight", "boredom_weight", "position_bias"):
            check_float(f"choice.{name}", getattr(self, name), 0.0, 100.0)
        check_float("choice.no_click_base", self.no_click_base, -100.0, 100.0)
        check_float("choice.no_click_dissatisfaction", self.no_click_dissatisfaction, 0.0, 100.0)
        check_float("choice.cascade_continue", self.cascade_continue, 0.0, 1.0)
        check_float("choice.cascade_share", self.cascade_share, 0.0, 1.0)


@dataclass(frozen=True)
class ResponseConfig:
    """Responses to a consumed item: engagement (watch time) and a 1-5 rating."""

    model: str = "default"
    """Response model: a name registered with ``recsim_llm.world.register_response_model``."""
    engagement_scale: float = 10.0
    """Watch time in minutes of an item with engagement score 1."""
    engagement_appeal_weight: float = 1.0
    """Weight of appeal in watch time: clickbait holds attention without giving value."""
    engagement_value_weight: float = 1.0
    """Weight of consumed value in watch time."""
    engagement_noise: float = 0.2
    """Log-normal sigma of watch time."""
    rating_noise: float = 0.5
    """Gaussian noise of the latent rating before rounding to 1..5."""

    def __post_init__(self) -> None:
        _check_registered("response.model", self.model, "RESPONSE_MODELS")
        check_float("response.engagement_scale", self.engagement_scale, 0.0, 1e6, open_low=True)
        check_float("response.engagement_appeal_weight", self.engagement_appeal_weight, 0.0, 100.0)
        check_float("response.engagement_value_weight", self.engagement_value_weight, 0.0, 100.0)
        check_float("response.engagement_noise", self.engagement_noise, 0.0, 10.0)
        check_float("response.rating_noise", self.rating_noise, 0.0, 10.0)


@dataclass(frozen=True)
class DynamicsConfig:
    """How hidden user state moves between steps."""

    model: str = "default"
    """Transition model: a name registered with
    ``recsim_llm.world.register_transition_model``."""
    filter_bubble_rate: float = 0.05
    """Step of the interest vector toward a consumed item's latent vector."""
    drift_std: float = 0.01
    """Standard deviation of the exogenous random walk of interests, per step."""
    shift_step: int = -1
    """Session step at which a taste-shift event happens; -1 for none."""
    shift_fraction: float = 0.0
    """Fraction of users whose interests are redrawn at the shift event."""
    trend_step: int = -1
    """Session step at which a trend event happens (every user's interest in ``trend_topic``
    rises by ``trend_strength``, then the interest is renormalised); -1 for none."""
    trend_topic: int = 0
    """Topic that the trend event makes everyone like more (an index < catalog.n_topics)."""
    trend_strength: float = 0.0
    """Interest added to ``trend_topic`` at the trend event, before renormalising (unit-length
    interests: 1.0 makes the topic about as strong as a user's own top topic)."""
    boredom_increase: float = 0.25
    """Boredom added to the topic of a consumed item."""
    boredom_decay: float = 0.85
    """Per-step multiplicative decay of boredom."""
    satisfaction_rate: float = 0.1
    """Step of satisfaction per unit of (consumed value - value_reference)."""
    value_reference: float = 0.15
    """Consumed value above which satisfaction rises."""
    churn_base: float = 0.002
    """Per-step churn probability of a satisfied user."""
    churn_max: float = 0.3
    """Additional per-step churn probability of a fully dissatisfied user."""
    churn_threshold: float = 0.3
    """Satisfaction around which churn rises steeply."""
    churn_width: float = 0.05
    """Width of the churn sigmoid in satisfaction units."""

    @property
    def event_step(self) -> int:
        """Session step of the first shift or trend event that happens; -1 for none (what the
        evaluation's before/after-shift metrics and the drift benchmarks split at)."""
        steps = [
            step
            for step, size in (
                (self.shift_step, self.shift_fraction),
                (self.trend_step, self.trend_strength),
            )
            if step >= 0 and size > 0.0
        ]
        return min(steps) if steps else -1

    def __post_init__(self) -> None:
        _check_registered("dynamics.model", self.model, "TRANSITION_MODELS")
        check_float("dynamics.filter_bubble_rate", self.filter_bubble_rate, 0.0, 1.0)
        check_float("dynamics.drift_std", self.drift_std, 0.0, 10.0)
        check_int("dynamics.shift_step", self.shift_step, -1)
        check_float("dynamics.shift_fraction", self.shift_fraction, 0.0, 1.0)
        check_int("dynamics.trend_step", self.trend_step, -1)
        check_int("dynamics.trend_topic", self.trend_topic, 0)
        check_float("dynamics.trend_strength", self.trend_strength, 0.0, 100.0)
        check_float("dynamics.boredom_increase", self.boredom_increase, 0.0, 1.0)
        check_float("dynamics.boredom_decay", self.boredom_decay, 0.0, 1.0)
        check_float("dynamics.satisfaction_rate", self.satisfaction_rate, 0.0, 1.0)
        check_float("dynamics.value_reference", self.value_reference, 0.0, 1.0)
        check_float("dynamics.churn_base", self.churn_base, 0.0, 1.0)
        check_float("dynamics.churn_max", self.churn_max, 0.0, 1.0)
        if self.churn_base + self.churn_max > 1.0:
            raise ValueError(
                "dynamics.churn_base + dynamics.churn_max must be <= 1, got "
                f"{self.churn_base + self.churn_max}"
            )
        check_float("dynamics.churn_threshold", self.churn_threshold, 0.0, 1.0)
        check_float("dynamics.churn_width", self.churn_width, 0.0, 1.0, open_low=True)


@dataclass(frozen=True)
class WorldConfig:
    """The hidden world: catalog, users, choice model, responses and dynamics."""

    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    """Catalog generator settings."""
    users: UserConfig = field(default_factory=UserConfig)
    """User sampler settings."""
    choice: ChoiceConfig = field(default_factory=ChoiceConfig)
    """Choice model settings."""
    response: ResponseConfig = field(default_factory=ResponseConfig)
    """Response model settings."""
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    """User state transition settings."""

    def __post_init__(self) -> None:
        for name, kind in (
            ("catalog", CatalogConfig),
            ("users", UserConfig),
            ("choice", ChoiceConfig),
            ("response", ResponseConfig),
            ("dynamics", DynamicsConfig),
        ):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"world.{name} must be a {kind.__name__}")
        d = self.dynamics
        if d.trend_strength > 0.0 and d.trend_topic >= self.catalog.n_topics:
            raise ValueError(
                f"dynamics.trend_topic must be < catalog.n_topics ({self.catalog.n_topics}), "
                f"got {d.trend_topic}"
            )


@dataclass(frozen=True)
class EnvConfig:
    """A recommendation environment: a world, a candidate generator, a slate and an encoder."""

    world: WorldConfig = field(default_factory=WorldConfig)
    """The hidden world."""
    slate_size: int = 5
    """Items shown per step."""
    n_candidates: int = 20
    """Candidate items offered to the policy per step; the action indexes into these."""
    n_popular_candidates: int = 4
    """Candidates drawn from the most clicked items so far (observable popularity)."""
    n_new_candidates: int = 2
    """Candidates drawn from items that arrived in the last new_item_window steps."""
    popular_pool: int = 50
    """Size of the popular pool that popular candidates are drawn from."""
    new_item_window: int = 20
    """Steps during which an arrived item counts as new."""
    horizon: int = 100
    """Steps per session before truncation."""
    history_length: int = 20
    """Past steps kept in the observable interaction log."""
    encoder: str = "lm-fast"
    """User encoder: 'lm-fast' (the fine-tuned LM encoder: cached item and profile embeddings
    and an incremental user state; the default), 'lm-exact' (the LM re-encodes the history text
    every step; slow reference) or 'bow' (hashed bag of words of the history text; non-LM)."""
    encoder_path: str = ""
    """Directory of a fine-tuned LM encoder (``recsim-llm finetune``) for the 'lm-*' encoders;
    '' = the encoder shipped with the package (fine-tuned on the default world)."""
    encoder_dim: int = 32
    """Embedding dimension of the bag-of-words encoder."""
    history_decay: float = 0.8
    """Per-step decay of past events in incremental user states."""
    duplicate_policy: str = "repair"
    """What a slate with a repeated candidate does: 'repair' or 'error'."""
    observation_noise: float = 0.0
    """Robustness: Gaussian noise added to the encoder-state part of ``obs['user']``, with a
    standard deviation of this times each row's root-mean-square (0: none). The encoder's own
    state is not changed: only what the policy sees is noisy."""
    feedback_drop: float = 0.0
    """Robustness: probability that a click is missing from the observable log (its position,
    rating and watch time are not recorded, nor counted in popularity); the world is unchanged."""
    feedback_delay: int = 0
    """Robustness: steps by which the observed user state (encoder state, history fill and
    feedback scalars of ``obs['user']``) lags the log; a new user shows the arrival state until
    ``feedback_delay`` steps have passed. Session progress stays current."""

    def __post_init__(self) -> None:
        if not isinstance(self.world, WorldConfig):
            raise ValueError("world must be a WorldConfig")
        check_int("slate_size", self.slate_size, 1)
        check_int("n_candidates", self.n_candidates, 1)
        if self.slate_size > self.n_candidates:
            raise ValueError(
                f"slate_size must be <= n_candidates, got {self.slate_size} > {self.n_candidates}"
            )
        if self.n_candidates > self.world.catalog.n_items:
            raise ValueError(
                f"n_candidates must be <= catalog.n_items, got {self.n_candidates} > "
                f"{self.world.catalog.n_items}"
            )
        check_int("n_popular_candidates", self.n_popular_candidates, 0)
        check_int("n_new_candidates", self.n_new_candidates, 0)
        if self.n_popular_candidates + self.n_new_candidates > self.n_candidates:
            raise ValueError(
                "n_popular_candidates + n_new_candidates must be <= n_candidates, got "
                f"{self.n_popular_candidates + self.n_new_candidates} > {self.n_candidates}"
            )
        check_int("popular_pool", self.popular_pool, 1)
        check_int("new_item_window", self.new_item_window, 1)
        check_int("horizon", self.horizon, 1, MAX_STEPS)
        shift = self.world.dynamics
        if shift.shift_step >= self.horizon and shift.shift_fraction > 0.0:
            raise ValueError(
                f"dynamics.shift_step must be < horizon ({self.horizon}) for the shift event to "
                f"happen, got {shift.shift_step}"
            )
        if shift.trend_step >= self.horizon and shift.trend_strength > 0.0:
            raise ValueError(
                f"dynamics.trend_step must be < horizon ({self.horizon}) for the trend event to "
                f"happen, got {shift.trend_step}"
            )
        check_int("history_length", self.history_length, 1)
        # The log keeps, per user slot, history_length slates and 3 scalars (int64/float64);
        # this checks one slot, the simulator checks all of them once n_users is known.
        check_memory(
            f"history_length ({self.history_length})",
            float(self.history_length) * (self.slate_size + 3) * 8,
            "the interaction log of one user slot",
        )
        if not isinstance(self.encoder, str) or not self.encoder:
            raise ValueError(f"encoder must be a non-empty string, got {self.encoder!r}")
        if not isinstance(self.encoder_path, str):
            raise ValueError(f"encoder_path must be a string, got {self.encoder_path!r}")
        check_int("encoder_dim", self.encoder_dim, 2, 4096)
        check_float("history_decay", self.history_decay, 0.0, 1.0)
        check_choice("duplicate_policy", self.duplicate_policy, ("repair", "error"))
        check_float("observation_noise", self.observation_noise, 0.0, 10.0)
        check_float("feedback_drop", self.feedback_drop, 0.0, 1.0)
        check_int("feedback_delay", self.feedback_delay, 0, 1000)


def to_dict(config: Any) -> dict[str, Any]:
    """A config as a plain, JSON-ready dict."""
    return dataclasses.asdict(config)


def from_dict(kind: type[T], values: dict[str, Any]) -> T:
    """Build config ``kind`` from a (possibly partial) nested dict; unknown keys are errors."""
    if not isinstance(values, dict):
        raise ValueError(f"{kind.__name__} values must be a dict, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"unknown {kind.__name__} fields: {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        sub = fields[name].type
        sub_kind = _NESTED.get(sub if isinstance(sub, str) else getattr(sub, "__name__", ""))
        kwargs[name] = from_dict(sub_kind, value) if sub_kind and isinstance(value, dict) else value
    return kind(**kwargs)


_NESTED: dict[str, type] = {
    "CatalogConfig": CatalogConfig,
    "UserConfig": UserConfig,
    "ChoiceConfig": ChoiceConfig,
    "ResponseConfig": ResponseConfig,
    "DynamicsConfig": DynamicsConfig,
    "WorldConfig": WorldConfig,
}
