"""The hidden world in RecSim-style parts: catalog, users, choice, response, transition.

Pure NumPy: importing this package imports neither torch, transformers nor gymnasium (a test
checks). ``World`` (``core.py``) wires the parts; each part is a small object behind a
``Protocol`` and is registered by name (``recsim_llm/world_registries.py``) so a config can select it.
"""

from recsim_llm.world.catalog import Catalog, generate_catalog
from recsim_llm.world.choice import (
    Cascade,
    ChoiceModel,
    MultinomialLogit,
    item_utility,
    no_click_utility,
    position_penalty,
)
from recsim_llm.world.core import ExpectedResponse, Responses, World
from recsim_llm.world.response import DefaultResponse, ResponseModel
from recsim_llm.world.transition import (
    Consumption,
    DefaultTransition,
    TransitionModel,
    UserState,
)
from recsim_llm.world.users import NewUsers, SyntheticUserSampler, UserSampler
from recsim_llm.world_registries import (
    CHOICE_MODELS,
    RESPONSE_MODELS,
    TRANSITION_MODELS,
    USER_MODELS,
    make_choice_model,
    make_response_model,
    make_transition_model,
    make_user_model,
    register_choice_model,
    register_response_model,
    register_transition_model,
    register_user_model,
)

__all__ = [
    "CHOICE_MODELS",
    "RESPONSE_MODELS",
    "TRANSITION_MODELS",
    "USER_MODELS",
    "Cascade",
    "Catalog",
    "ChoiceModel",
    "Consumption",
    "DefaultResponse",
    "DefaultTransition",
    "ExpectedResponse",
    "MultinomialLogit",
    "NewUsers",
    "ResponseModel",
    "Responses",
    "SyntheticUserSampler",
    "TransitionModel",
    "UserSampler",
    "UserState",
    "World",
    "generate_catalog",
    "item_utility",
    "make_choice_model",
    "make_response_model",
    "make_transition_model",
    "make_user_model",
    "no_click_utility",
    "position_penalty",
    "register_choice_model",
    "register_response_model",
    "register_transition_model",
    "register_user_model",
]
