"""The world's registries: choice, user, transition and response models by name.

Each name maps to a lazy ``"module:attr"`` entry point (``recsim_llm.registry.Registry``); the
config fields ``ChoiceConfig.model``, ``UserConfig.model``, ``DynamicsConfig.model`` and
``ResponseConfig.model`` are validated against these names. A new model is one class and one
``register_*`` line; the factories are called as

* choice model: ``factory(config: ChoiceConfig) -> ChoiceModel``
* user model: ``factory(config: UserConfig, n_topics: int) -> UserSampler``
* transition model: ``factory(config: DynamicsConfig) -> TransitionModel``
* response model: ``factory(config: ResponseConfig) -> ResponseModel``

This module imports only the registry mechanism, so the config can validate names against it
without importing the world (it lives outside the `world` package for that reason: importing
`recsim_llm.world.*` runs the package, which imports the config).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from recsim_llm.registry import Registry

if TYPE_CHECKING:
    from recsim_llm.config import ChoiceConfig, DynamicsConfig, ResponseConfig, UserConfig
    from recsim_llm.world.choice import ChoiceModel
    from recsim_llm.world.response import ResponseModel
    from recsim_llm.world.transition import TransitionModel
    from recsim_llm.world.users import UserSampler

CHOICE_MODELS: Registry[Any] = Registry("choice model")
USER_MODELS: Registry[Any] = Registry("user model")
TRANSITION_MODELS: Registry[Any] = Registry("transition model")
RESPONSE_MODELS: Registry[Any] = Registry("response model")


def register_choice_model(
    name: str, entry_point: str | Callable[..., Any], *, overwrite: bool = False
) -> None:
    """Register a choice model: ``entry_point(config: ChoiceConfig) -> ChoiceModel``."""
    CHOICE_MODELS.register(name, entry_point, overwrite=overwrite)


def register_user_model(
    name: str, entry_point: str | Callable[..., Any], *, overwrite: bool = False
) -> None:
    """Register a user model: ``entry_point(config: UserConfig, n_topics: int) -> UserSampler``."""
    USER_MODELS.register(name, entry_point, overwrite=overwrite)


def register_transition_model(
    name: str, entry_point: str | Callable[..., Any], *, overwrite: bool = False
) -> None:
    """Register a transition model: ``entry_point(config: DynamicsConfig) -> TransitionModel``."""
    TRANSITION_MODELS.register(name, entry_point, overwrite=overwrite)


def register_response_model(
    name: str, entry_point: str | Callable[..., Any], *, overwrite: bool = False
) -> None:
    """Register a response model: ``entry_point(config: ResponseConfig) -> ResponseModel``."""
    RESPONSE_MODELS.register(name, entry_point, overwrite=overwrite)


def make_choice_model(name: str, config: ChoiceConfig) -> ChoiceModel:
    """The choice model registered as ``name``, built from ``config``."""
    return CHOICE_MODELS.make(name, config)


def make_user_model(name: str, config: UserConfig, n_topics: int) -> UserSampler:
    """The user sampler registered as ``name``, built from ``config`` for ``n_topics`` topics."""
    return USER_MODELS.make(name, config, n_topics)


def make_transition_model(name: str, config: DynamicsConfig) -> TransitionModel:
    """The transition model registered as ``name``, built from ``config``."""
    return TRANSITION_MODELS.make(name, config)


def make_response_model(name: str, config: ResponseConfig) -> ResponseModel:
    """The response model registered as ``name``, built from ``config``."""
    return RESPONSE_MODELS.make(name, config)


# The built-in models (where to add a new one: docs/design.md, "Extending the world").
register_choice_model("mnl", "recsim_llm.world.choice:MultinomialLogit.from_config")
register_choice_model("cascade", "recsim_llm.world.choice:Cascade.from_config")
register_choice_model("mnl-cascade", "recsim_llm.world.choice:LogitCascadeMixture.from_config")
register_user_model("synthetic", "recsim_llm.world.users:SyntheticUserSampler")
register_transition_model("default", "recsim_llm.world.transition:DefaultTransition")
register_response_model("default", "recsim_llm.world.response:DefaultResponse")
