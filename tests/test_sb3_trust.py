"""Saved SB3 models: the sidecar is checked against the env before the zip is unpickled."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from recsim_llm.cli import main
from recsim_llm.config import EnvConfig
from recsim_llm.results import read_results

pytest.importorskip("stable_baselines3")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny PPO model on the bow env, saved as ``models/ppo.zip`` with its sidecar."""
    from recsim_llm.agents.sb3 import save_sb3_model, train_sb3

    config = EnvConfig(encoder="bow", horizon=10)
    model = train_sb3(
        config, "PPO", total_timesteps=64, n_envs=2, seed=0, n_steps=32, batch_size=64
    )
    path = tmp_path_factory.mktemp("models") / "ppo.zip"
    save_sb3_model(model, path, config)
    return path, config


def test_sidecar_records_name_algorithm_encoder_and_dims(saved_model):
    from recsim_llm.agents.sb3 import env_dims

    path, config = saved_model
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["name"] == "ppo" and meta["algorithm"] == "PPO" and meta["encoder"] == "bow"
    dims = env_dims(config)
    assert meta["observation_shape"] == dims["observation_shape"]
    assert meta["action_nvec"] == [config.n_candidates] * config.slate_size == dims["action_nvec"]
    assert meta["env"]["horizon"] == 10


def test_a_model_loads_for_the_env_it_was_trained_on(saved_model):
    from recsim_llm.agents.sb3 import load_sb3_policy

    path, config = saved_model
    policy = load_sb3_policy(path, replace(config, horizon=50))  # horizon is not a dimension
    assert policy.name == "ppo:ppo"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"encoder_dim": 16}, "observation_shape"),
        ({"slate_size": 3}, "slate_size"),
        ({"n_candidates": 12}, "n_candidates"),
        ({"encoder": "lm-fast"}, "encoder"),
    ],
)
def test_a_model_for_another_env_is_refused_before_unpickling(
    saved_model, monkeypatch, change, field
):
    import stable_baselines3

    from recsim_llm.agents.sb3 import load_sb3_policy

    def no_unpickling(*args, **kwargs):
        raise AssertionError("the zip was opened")

    monkeypatch.setattr(stable_baselines3.PPO, "load", no_unpickling)
    path, config = saved_model
    with pytest.raises(ValueError, match=rf"model {path}: {field} differs"):
        load_sb3_policy(path, replace(config, **change))


def test_a_renamed_model_or_foreign_sidecar_is_refused(saved_model, tmp_path):
    from recsim_llm.agents.sb3 import load_sb3_policy

    path, config = saved_model
    renamed = tmp_path / "other.zip"
    shutil.copy(path, renamed)
    shutil.copy(path.with_suffix(".json"), renamed.with_suffix(".json"))
    with pytest.raises(ValueError, match="name differs"):
        load_sb3_policy(renamed, config)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta.update(name="other", algorithm="DQN")
    renamed.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="algorithm must be one of"):
        load_sb3_policy(renamed, config)
    del meta["observation_shape"]
    meta["algorithm"] = "PPO"
    renamed.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="lacks observation_shape"):
        load_sb3_policy(renamed, config)


def test_evaluate_warns_names_models_uniquely_and_checks_every_scenario(
    saved_model, tmp_path, capsys
):
    path, _ = saved_model
    twin = tmp_path / "b" / "ppo.zip"
    twin.parent.mkdir()
    shutil.copy(path, twin)
    shutil.copy(path.with_suffix(".json"), twin.with_suffix(".json"))
    out = tmp_path / "run"
    common = ["--users", "4", "--seeds", "0", "--horizon", "5", "--encoder", "bow"]
    args = ["evaluate", "--policies", f"model:{path},model:{twin}", *common, "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "unpickles code stored in it; load only files you trust" in captured.err
    assert {r.policy for r in read_results(out)} == {"ppo:ppo", "ppo:ppo#2"}
    config = json.loads((out / "config.json").read_text())
    assert config["policy_names"] == ["ppo:ppo", "ppo:ppo#2"]

    # A scenario with larger slates: the model does not fit it, refused before any rollout.
    from recsim_llm.scenarios import SCENARIOS

    SCENARIOS.register("three-slots", wide_slates)
    try:
        out2 = tmp_path / "run2"
        args = ["evaluate", "--policies", f"random,model:{path}"]
        args += ["--scenarios", "default,three-slots", *common, "--out", str(out2)]
        assert main(args) == 2
    finally:
        SCENARIOS.unregister("three-slots")
    captured = capsys.readouterr()
    assert f"model {path}: slate_size differs" in captured.err
    assert captured.out == "" and "rollout" not in captured.err and not out2.exists()


def wide_slates() -> EnvConfig:
    return EnvConfig(slate_size=3)


def test_progress_bars_do_not_change_results(capsys):
    import numpy as np

    from recsim_llm.agents.baselines import RandomPolicy
    from recsim_llm.agents.sb3 import train_sb3
    from recsim_llm.evaluation import evaluate

    config = EnvConfig(encoder="bow", horizon=5)
    quiet = evaluate([RandomPolicy()], config, [0, 1], 4)[1]
    loud = evaluate([RandomPolicy()], config, [0, 1], 4, progress=True)[1]
    assert quiet == loud
    kwargs = dict(total_timesteps=64, n_envs=2, seed=0, n_steps=32, batch_size=64)
    a = train_sb3(config, "PPO", **kwargs)
    b = train_sb3(config, "PPO", progress=True, **kwargs)
    for (name, pa), pb in zip(
        a.policy.state_dict().items(), b.policy.state_dict().values(), strict=True
    ):
        assert np.array_equal(pa.numpy(), pb.numpy()), name
    assert "train PPO" in capsys.readouterr().err
