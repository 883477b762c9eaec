"""Stable-Baselines3 glue: train an SB3 algorithm on the batched env, use it as a SlatePolicy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm.config import EnvConfig
from recsim_llm.context import N_ITEM_SCALARS, SlateContext, flatten_observation

ALGORITHMS = ("PPO", "A2C")
"""SB3 algorithms that take the MultiDiscrete slate action directly."""
SB3_POLICIES = ("scorer", "MlpPolicy", "MultiInputPolicy")
"""``scorer``: ``recsim_llm.agents.scorer.CandidateScorerPolicy`` (one shared scorer per
candidate, Plackett-Luce slates) on the ``Dict`` observation; ``MlpPolicy`` reads the flat view
of the observation (the comparison row); ``MultiInputPolicy`` the ``Dict`` through SB3's stock
per-key extractor."""


class SB3Policy:
    """A trained SB3 model behind the SlatePolicy interface (deterministic actions).

    A model with a ``Box`` observation space (``MlpPolicy``, trained on the flat view) gets the
    flattened observation; one with a ``Dict`` space (``MultiInputPolicy``) the ``Dict``.
    """

    privileged = False

    def __init__(self, model: Any, name: str | None = None) -> None:
        self.model = model
        self.name = name or type(model).__name__.lower()
        self._flat = not hasattr(model.observation_space, "spaces")

    def reset(self, seed: int) -> None:
        self.model.set_random_seed(seed)

    def act(self, observation: dict[str, np.ndarray], context: SlateContext) -> np.ndarray:
        if self._flat and isinstance(observation, dict):
            observation = flatten_observation(observation)
        elif not self._flat:
            observation = {k: observation[k] for k in self.model.observation_space.spaces}
        action, _ = self.model.predict(observation, deterministic=True)
        return np.asarray(action, dtype=np.int64).reshape(-1, context.slate_size)


def train_sb3(
    config: EnvConfig,
    algorithm: str = "PPO",
    total_timesteps: int = 20_000,
    n_envs: int = 16,
    seed: int = 0,
    encoder: Any = None,
    progress: bool = False,
    policy: str = "MlpPolicy",
    **algo_kwargs: Any,
) -> Any:
    """Train ``algorithm`` on ``n_envs`` concurrent users of ``config``; returns the SB3 model.

    ``policy="scorer"`` trains ``CandidateScorerPolicy`` on the ``Dict`` observation;
    ``"MlpPolicy"`` (the comparison row) on the flat view of the observation
    (``SB3VecEnv(flatten=True)``); ``"MultiInputPolicy"`` on the ``Dict`` observation.
    The batched world and the encoder stay in this process (no subprocess per env). With
    ``progress`` a bar on stderr counts the user-steps trained (it draws no random numbers, so
    the model is the same with or without it).
    """
    if total_timesteps < 1:
        raise ValueError(f"total_timesteps must be >= 1, got {total_timesteps}")
    model = make_sb3_model(config, algorithm, n_envs, seed, encoder, policy, **algo_kwargs)
    callback = _progress_callback(total_timesteps, f"train {algorithm}") if progress else None
    model.learn(total_timesteps=total_timesteps, callback=callback)
    return model


def sb3_hyperparameters(algorithm: str, **algo_kwargs: Any) -> dict[str, Any]:
    """The keyword arguments ``train_sb3`` passes to ``algorithm`` (its defaults, then ours).

    ``seed``, ``verbose`` and ``device`` are left out (the caller sets them); the result is
    what a run records and what ``make_sb3_model`` uses.
    """
    kwargs: dict[str, Any] = {}
    if algorithm == "PPO":
        kwargs.update(n_steps=64, batch_size=256, n_epochs=4, learning_rate=3e-4, gamma=0.99)
    kwargs.update(algo_kwargs)
    return kwargs


def make_sb3_model(
    config: EnvConfig,
    algorithm: str = "PPO",
    n_envs: int = 16,
    seed: int = 0,
    encoder: Any = None,
    policy: str = "MlpPolicy",
    **algo_kwargs: Any,
) -> Any:
    """A fresh, seeded SB3 model on ``n_envs`` concurrent users of ``config`` (not trained).

    Seeds torch, builds the batched env (``SB3VecEnv``, flat for ``MlpPolicy``) seeded with
    ``seed`` and the model with ``sb3_hyperparameters``; ``model.get_env()`` is the env.
    """
    import stable_baselines3 as sb3
    import torch

    from recsim_llm.envs.sb3 import SB3VecEnv
    from recsim_llm.envs.vector import SlateVectorEnv

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if policy not in SB3_POLICIES:
        raise ValueError(f"policy must be one of {SB3_POLICIES}, got {policy!r}")
    torch.manual_seed(seed)
    venv = SB3VecEnv(
        SlateVectorEnv(num_envs=n_envs, config=config, encoder=encoder),
        flatten=policy == "MlpPolicy",
    )
    venv.seed(seed)
    kwargs: dict[str, Any] = {"seed": seed, "verbose": 0, "device": "cpu"}
    kwargs.update(sb3_hyperparameters(algorithm, **algo_kwargs))
    if policy == "scorer":
        kwargs["policy_kwargs"] = {
            **scorer_kwargs(config, venv.observation_space),
            **(kwargs.get("policy_kwargs") or {}),
        }
    return getattr(sb3, algorithm)(policy_class(policy), venv, **kwargs)


def policy_class(policy: str) -> Any:
    """The SB3 policy (a name SB3 resolves, or the scorer class) for a ``SB3_POLICIES`` entry."""
    if policy not in SB3_POLICIES:
        raise ValueError(f"policy must be one of {SB3_POLICIES}, got {policy!r}")
    if policy == "scorer":
        from recsim_llm.agents.scorer import CandidateScorerPolicy

        return CandidateScorerPolicy
    return policy


def scorer_kwargs(config: EnvConfig, observation_space: Any) -> dict[str, Any]:
    """Policy kwargs the scorer gets by default: with an LM encoder, ``affinity_dim``.

    The LM state starts with ``u`` and each candidate with ``v``, one space: the scorer gets the
    encoder's own affinity ``u·v`` as an input (see ``CandidateScorerPolicy``).
    """
    if config.encoder in ("lm-fast", "lm-exact"):
        return {"affinity_dim": int(observation_space["candidates"].shape[1]) - N_ITEM_SCALARS}
    return {}


def _progress_callback(total: int, desc: str) -> Any:
    """An SB3 callback drawing a tqdm bar of user-steps on stderr."""
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    class _Progress(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = tqdm(total=total, desc=desc, unit="step", leave=False, mininterval=0.5)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return _Progress()


def env_dims(config: EnvConfig) -> dict[str, list[int]]:
    """The flat observation shape and slate action ``nvec`` of the env ``config`` builds.

    The shape is the flat view's (user, then candidates row-major), which a model needs
    whether it reads the flat ``Box`` or the ``Dict``.
    """
    from recsim_llm.envs.vector import SlateVectorEnv

    env = SlateVectorEnv(num_envs=1, config=config)
    return {
        "observation_shape": [int(env.sim.flat_dim)],
        "action_nvec": [int(n) for n in env.single_action_space.nvec],
    }


def _model_observation_shape(space: Any) -> list[int]:
    """The flat observation shape a model's space stands for (``Box`` or slate ``Dict``)."""
    if hasattr(space, "spaces"):
        return [int(space["user"].shape[0]) + int(np.prod(space["candidates"].shape))]
    return [int(d) for d in space.shape]


def save_sb3_model(model: Any, path: Path, config: EnvConfig, option: str = "--out") -> None:
    """Save ``model`` to ``path`` (.zip) atomically, with a sidecar ``PATH.json``.

    The sidecar records what ``load_sb3_policy`` checks before it unpickles the zip: the
    model's name (the file stem), its algorithm, the env config it was trained on, its encoder,
    the observation shape and the slate action's ``nvec``. It is a ``"model"`` output of
    ``recsim_llm.io``: the sidecar carries the marker keys, and an existing ``path`` is replaced
    only when its sidecar marks it as ours.

    Raises:
        OutputError: ``path`` (or ``PATH.json``) exists and was not written by recsim-llm.
    """
    from recsim_llm.io import output_file

    path = Path(path)
    meta = model_metadata(model, path.stem, config)
    with output_file(path, "model", meta=meta, option=option) as tmp:
        model.save(tmp)


def model_metadata(model: Any, name: str, config: EnvConfig) -> dict[str, Any]:
    """The sidecar of a model saved as ``NAME.zip`` (what ``check_sb3_model`` reads)."""
    from recsim_llm.config import to_dict

    return {
        "name": name,
        "algorithm": type(model).__name__,
        "encoder": config.encoder,
        "encoder_path": config.encoder_path,
        "slate_size": int(config.slate_size),
        "n_candidates": int(config.n_candidates),
        "observation_shape": _model_observation_shape(model.observation_space),
        "action_nvec": [int(n) for n in model.action_space.nvec],
        "env": to_dict(config),
    }


def check_sb3_model(path: Path, config: EnvConfig | None = None) -> dict[str, Any]:
    """Read and check the sidecar of a saved model without unpickling anything.

    Refuses (``ValueError`` naming the file and the field) a sidecar of another model (its
    ``name`` is not the file's stem), an unknown algorithm, and, when ``config`` is given, a
    model whose encoder or env dimensions differ from the env ``config`` builds. Returns the
    sidecar.
    """
    import json

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if not meta_path.is_file():
        raise FileNotFoundError(f"model metadata not found: {meta_path} (written beside the model)")
    meta = json.loads(meta_path.read_text())
    missing = [
        k
        for k in ("name", "algorithm", "encoder", "observation_shape", "action_nvec")
        if k not in meta
    ]
    if missing:
        raise ValueError(
            f"model {path}: its metadata {meta_path} lacks {', '.join(missing)} "
            "(saved by an older version: train it again)"
        )
    if meta["name"] != path.stem:
        raise ValueError(
            f"model {path}: name differs: the metadata records {meta['name']!r}, the file is "
            f"{path.stem!r} (a renamed model or another model's metadata)"
        )
    if meta["algorithm"] not in ALGORITHMS:
        raise ValueError(
            f"model {path}: algorithm must be one of {ALGORITHMS}, got {meta['algorithm']!r}"
        )
    if config is not None:
        want = {
            "encoder": config.encoder,
            "encoder_path": config.encoder_path,
            "slate_size": config.slate_size,
            "n_candidates": config.n_candidates,
            **env_dims(config),
        }
        for field, value in want.items():
            if field in ("slate_size", "n_candidates") and field not in meta:
                continue  # sidecars before these fields: action_nvec checks both
            if meta.get(field, "") != value:
                raise ValueError(
                    f"model {path}: {field} differs: the model was trained with "
                    f"{meta.get(field, '')!r}, the env to evaluate has {value!r}"
                )
    return meta


def load_sb3_policy(path: Path, config: EnvConfig | None = None) -> SB3Policy:
    """A saved SB3 model (written by ``save_sb3_model``) as a SlatePolicy.

    Loading a zip unpickles code stored in it: load only files you trust. The sidecar is
    checked first (``check_sb3_model``, against ``config`` when given), so a model for another
    env is refused before anything is unpickled.
    """
    import stable_baselines3 as sb3

    path = Path(path)
    meta = check_sb3_model(path, config)
    model = getattr(sb3, meta["algorithm"]).load(path, device="cpu")
    shape = _model_observation_shape(model.observation_space)
    if shape != meta["observation_shape"]:
        raise ValueError(
            f"model {path}: observation_shape differs: the zip holds {shape}, its metadata "
            f"records {meta['observation_shape']}"
        )
    return SB3Policy(model, f"{meta['algorithm'].lower()}:{path.stem}")
