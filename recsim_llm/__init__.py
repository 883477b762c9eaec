"""recsim_llm: a Gymnasium simulator for dynamic slate recommendation.

Importing the package registers its environment ids with Gymnasium (string entry points, so no
torch import happens here). Gymnasium itself is not imported here either: if it is not loaded yet,
the ids are registered the moment it is (``recsim_llm.registration``), so ``recsim_llm.world``
stays free of it.
"""

from recsim_llm.config import (
    CatalogConfig,
    ChoiceConfig,
    DynamicsConfig,
    EnvConfig,
    ResponseConfig,
    UserConfig,
    WorldConfig,
)
from recsim_llm.registration import ENV_IDS, register_envs_when_gymnasium_loads

__version__ = "0.1.0"

register_envs_when_gymnasium_loads()

__all__ = [
    "CatalogConfig",
    "ChoiceConfig",
    "DynamicsConfig",
    "ENV_IDS",
    "EnvConfig",
    "ResponseConfig",
    "UserConfig",
    "WorldConfig",
    "__version__",
]
