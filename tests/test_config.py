"""Config validation: invalid values raise ValueError naming the field, before anything is built."""

from __future__ import annotations

import json
import math

import pytest

from recsim_llm.config import (
    CatalogConfig,
    ChoiceConfig,
    DynamicsConfig,
    EnvConfig,
    ResponseConfig,
    UserConfig,
    WorldConfig,
    from_dict,
    to_dict,
)

INVALID = [
    (CatalogConfig, {"n_items": -5}, "catalog.n_items"),
    (CatalogConfig, {"n_items": 0}, "catalog.n_items"),
    (CatalogConfig, {"n_topics": 40}, "catalog.n_topics"),
    (CatalogConfig, {"clickbait_fraction": 1.5}, "catalog.clickbait_fraction"),
    (CatalogConfig, {"text_noise": math.nan}, "catalog.text_noise"),
    (CatalogConfig, {"n_items": 3.5}, "catalog.n_items"),
    (UserConfig, {"satisfaction_low": 0.9, "satisfaction_high": 0.1}, "users.satisfaction_low"),
    (UserConfig, {"interest_topics_max": 0}, "users.interest_topics_max"),
    (ChoiceConfig, {"model": "probit"}, "choice.model"),
    (ChoiceConfig, {"appeal_weight": -1.0}, "choice.appeal_weight"),
    (ChoiceConfig, {"cascade_continue": 2.0}, "choice.cascade_continue"),
    (ResponseConfig, {"engagement_scale": 0.0}, "response.engagement_scale"),
    (DynamicsConfig, {"churn_base": 0.8, "churn_max": 0.5}, "dynamics.churn_base"),
    (DynamicsConfig, {"shift_step": -3}, "dynamics.shift_step"),
    (DynamicsConfig, {"boredom_decay": math.inf}, "dynamics.boredom_decay"),
    (EnvConfig, {"slate_size": -1}, "slate_size"),
    (EnvConfig, {"slate_size": 30, "n_candidates": 20}, "slate_size"),
    (EnvConfig, {"n_candidates": 0}, "n_candidates"),
    (EnvConfig, {"horizon": 0}, "horizon"),
    (EnvConfig, {"n_popular_candidates": 15, "n_new_candidates": 10}, "n_popular_candidates"),
    (EnvConfig, {"duplicate_policy": "ignore"}, "duplicate_policy"),
    (EnvConfig, {"history_decay": -0.1}, "history_decay"),
    (EnvConfig, {"n_candidates": 5000}, "n_candidates"),
    (EnvConfig, {"encoder": ""}, "encoder"),
    (
        EnvConfig,
        {"world": WorldConfig(dynamics=DynamicsConfig(shift_step=200, shift_fraction=0.5))},
        "dynamics.shift_step",
    ),
]


@pytest.mark.parametrize(("kind", "kwargs", "field_name"), INVALID)
def test_invalid_values_name_the_field(kind, kwargs, field_name):
    with pytest.raises(ValueError, match=field_name.replace(".", r"\.")):
        kind(**kwargs)


def test_configs_are_frozen():
    config = EnvConfig()
    with pytest.raises(AttributeError):
        config.slate_size = 3  # type: ignore[misc]


def test_round_trip_through_json():
    config = EnvConfig(world=WorldConfig(dynamics=DynamicsConfig(shift_step=10)), slate_size=3)
    restored = from_dict(EnvConfig, json.loads(json.dumps(to_dict(config))))
    assert restored == config
    assert isinstance(restored.world.dynamics, DynamicsConfig)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown EnvConfig fields"):
        from_dict(EnvConfig, {"slate": 3})


def test_unknown_encoder_is_rejected_at_env_creation():
    from recsim_llm.envs.slate import SlateEnv

    with pytest.raises(ValueError, match="encoder must be one of"):
        SlateEnv(config=EnvConfig(encoder="nope"))


def test_numpy_scalars_are_accepted():
    import numpy as np

    config = EnvConfig(slate_size=np.int64(3), history_decay=np.float32(0.5))
    assert config.slate_size == 3
