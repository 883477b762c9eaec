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


def evaluate(policies, scenarios, seeds, n_users=64, **options):  # noqa: ANN001, ANN201
    """Every policy spec on every scenario spec and seed; a tidy ``pandas.DataFrame``
    (``run_id, policy, scenario, seed, step, metric, value``; step -1 = per session).

    One call for scripts: ``recsim_llm.evaluate(["random", "oracle"], ["default",
    "bots@0.2"], [0, 1, 2])``. ``options`` are those of ``recsim_llm.grid.evaluate_grid``
    (``executor="local"|"ray"``, ``workers``, ``address``, ``horizon``, ``encoder``,
    ``log_fraction``, ``progress``). With ``workers > 1`` call it under
    ``if __name__ == "__main__":`` (worker processes are spawned and import the script).
    For the step log and task times use ``evaluate_grid`` itself.
    """
    from recsim_llm.grid import evaluate_grid

    return evaluate_grid(policies, scenarios, seeds, n_users, **options).table


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
    "evaluate",
]
