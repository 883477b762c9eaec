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
of the observation (the comparison row: SB3's ``MlpPolicy`` as ``recsim_llm.agents.flat.
SlateMlpPolicy``, its slate distribution computed in one pass, trained bit for bit alike);
``MultiInputPolicy`` the ``Dict`` through SB3's stock per-key extractor."""


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
    encoder_prior: float = 0.0,
    **algo_kwargs: Any,
) -> Any:
    """Train ``algorithm`` on ``n_envs`` concurrent users of ``config``; returns the SB3 model.

    ``policy="scorer"`` trains ``CandidateScorerPolicy`` on the ``Dict`` observation;
    ``"MlpPolicy"`` (the comparison row) on the flat view of the observation
    (``SB3VecEnv(flatten=True)``); ``"MultiInputPolicy"`` on the ``Dict`` observation.
    ``encoder_prior`` > 0 (scorer, LM state): the scorer starts from the encoder's click logit
    at that gain (see ``scorer_kwargs``; it reads the encoder ``config.encoder_path`` names,
    not an ``encoder`` object passed here). The batched world and the encoder stay in this
    process (no subprocess per env). With
    ``progress`` a bar on stderr counts the user-steps trained (it draws no random numbers, so
    the model is the same with or without it).
    """
    if total_timesteps < 1:
        raise ValueError(f"total_timesteps must be >= 1, got {total_timesteps}")
    model = make_sb3_model(
        config, algorithm, n_envs, seed, encoder, policy, encoder_prior=encoder_prior, **algo_kwargs
    )
    callback = _progress_callback(total_timesteps, f"train {algorithm}") if progress else None
    model.learn(total_timesteps=total_timesteps, callback=callback)
    return model


PPO_DEFAULTS: dict[str, Any] = {
    "n_steps": 64,
    "batch_size": 256,
    "n_epochs": 4,
    "learning_rate": 3e-4,
    "gamma": 0.99,
}
"""Our PPO defaults (SB3's for everything else): short rollouts over many concurrent users."""

NOT_HYPERPARAMETERS = frozenset(
    {
        "self",
        "policy",
        "env",
        "seed",
        "verbose",
        "device",
        "_init_setup_model",
        "tensorboard_log",
        "policy_kwargs",
        "rollout_buffer_class",
        "rollout_buffer_kwargs",
    }
)
"""Keywords of an algorithm's ``__init__`` that a run sets itself or that are not plain values."""


def sb3_hyperparameters(algorithm: str, **algo_kwargs: Any) -> dict[str, Any]:
    """The keyword arguments ``train_sb3`` passes to ``algorithm`` (its defaults, then ours).

    ``seed``, ``verbose`` and ``device`` are left out (the caller sets them); the result is
    what a run records and what ``make_sb3_model`` uses.
    """
    kwargs: dict[str, Any] = {}
    if algorithm == "PPO":
        kwargs.update(PPO_DEFAULTS)
    kwargs.update(algo_kwargs)
    return kwargs


def algorithm_defaults(algorithm: str) -> dict[str, Any]:
    """SB3's default of every plain hyperparameter of ``algorithm`` (its ``__init__`` signature)."""
    import inspect

    import stable_baselines3 as sb3

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    parameters = inspect.signature(getattr(sb3, algorithm).__init__).parameters
    return {
        name: p.default
        for name, p in parameters.items()
        if name not in NOT_HYPERPARAMETERS and p.default is not inspect.Parameter.empty
    }


def effective_hyperparameters(algorithm: str, **algo_kwargs: Any) -> dict[str, Any]:
    """Every plain hyperparameter ``algorithm`` is built with: SB3's defaults, ours, then given."""
    return {**algorithm_defaults(algorithm), **sb3_hyperparameters(algorithm, **algo_kwargs)}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` (a number, or text from the command line) as the type of ``default``."""
    import math

    if isinstance(default, bool):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if default is None and (value is None or str(value).strip().lower() == "none"):
        return None
    if isinstance(default, int):
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(default, float) or default is None:
        if isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            none = " or none" if default is None else ""
            raise ValueError(f"{name} must be a number{none}, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        return number
    return value  # pragma: no cover - every plain SB3 hyperparameter is a bool, number or None


_RANGES: dict[str, tuple[str, Any]] = {
    "learning_rate": ("> 0", lambda v: v > 0),
    "gamma": ("in (0, 1]", lambda v: 0 < v <= 1),
    "gae_lambda": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "ent_coef": (">= 0", lambda v: v >= 0),
    "vf_coef": (">= 0", lambda v: v >= 0),
    "clip_range": ("> 0", lambda v: v > 0),
    "clip_range_vf": ("> 0 (or none)", lambda v: v is None or v > 0),
    "target_kl": ("> 0 (or none)", lambda v: v is None or v > 0),
    "max_grad_norm": ("> 0", lambda v: v > 0),
    "rms_prop_eps": ("> 0", lambda v: v > 0),
    "n_steps": (">= 1", lambda v: v >= 1),
    "batch_size": (">= 1", lambda v: v >= 1),
    "n_epochs": (">= 1", lambda v: v >= 1),
    "stats_window_size": (">= 1", lambda v: v >= 1),
}


def check_hyperparameters(
    algorithm: str,
    algo_kwargs: Any,
    n_envs: int | None = None,
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Check and type ``algo_kwargs`` (a mapping or ``(key, value)`` pairs) for ``algorithm``.

    Each key must be a plain hyperparameter of the algorithm's ``__init__`` (not one the run
    sets: ``NOT_HYPERPARAMETERS``); a value is converted to the type of SB3's default (text
    from the command line included) and range-checked; with ``n_envs``, PPO's ``batch_size``
    divide its rollout buffer ``n_steps * n_envs`` when it is smaller (SB3 only warns, and trains
    on a truncated last mini-batch); a batch at least the buffer's size trains on the whole buffer. ``names`` gives the name an error uses for a key (a CLI flag).
    Returns the typed keyword arguments (sorted by key).

    Raises:
        ValueError: naming the key (or its flag) and the value.
    """
    names = names or {}
    label = names.get
    pairs = list(algo_kwargs.items() if hasattr(algo_kwargs, "items") else algo_kwargs)
    keys = [str(k) for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"hyperparameter {repeated[0]} given more than once")
    typed: dict[str, Any] = {}
    if pairs:
        defaults = algorithm_defaults(algorithm)
        for key, value in sorted(zip(keys, (v for _, v in pairs), strict=True)):
            if key not in defaults:
                why = (
                    "it is set by the run itself"
                    if key in NOT_HYPERPARAMETERS
                    else f"choose from {', '.join(sorted(defaults))}"
                )
                raise ValueError(
                    f"{label(key, key)}: {key!r} is not a hyperparameter of {algorithm} ({why})"
                )
            typed[key] = _coerce(label(key, key), value, defaults[key])
    values = sb3_hyperparameters(algorithm, **typed)
    for key, value in values.items():
        if key in _RANGES and not _RANGES[key][1](value):
            raise ValueError(f"{label(key, key)} must be {_RANGES[key][0]}, got {value!r}")
    if algorithm == "PPO":
        batch, n_steps = values.get("batch_size", 64), values.get("n_steps", 2048)
        if batch < 2 and values.get("normalize_advantage", True):
            raise ValueError(
                f"{label('batch_size', 'batch_size')} must be >= 2 when advantages are "
                f"normalised per mini-batch, got {batch}"
            )
        buffer = None if n_envs is None else n_steps * n_envs
        # A batch at least the buffer's size is one whole-buffer mini-batch (nothing truncated).
        if buffer is not None and batch < buffer and buffer % batch:
            raise ValueError(
                f"{label('batch_size', 'batch_size')} {batch} must divide the rollout buffer "
                f"{label('n_steps', 'n_steps')} x {label('n_envs', 'n_envs')} = "
                f"{n_steps} x {n_envs} = {n_steps * n_envs} (SB3 would train on a truncated "
                f"last mini-batch); choose a {label('batch_size', 'batch_size')} dividing it, or "
                f"another {label('n_steps', 'n_steps')} or {label('n_envs', 'n_envs')}"
            )
    return typed


def make_sb3_model(
    config: EnvConfig,
    algorithm: str = "PPO",
    n_envs: int = 16,
    seed: int = 0,
    encoder: Any = None,
    policy: str = "MlpPolicy",
    encoder_prior: float = 0.0,
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
    check_encoder_prior(encoder_prior, policy, config)  # before the env is built
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
            **scorer_kwargs(config, venv.observation_space, encoder_prior),
            **(kwargs.get("policy_kwargs") or {}),
        }
    return getattr(sb3, algorithm)(policy_class(policy), venv, **kwargs)


def check_encoder_prior(encoder_prior: Any, policy: str, config: EnvConfig | None = None) -> None:
    """Refuse a bad ``encoder_prior`` gain before any work (``ValueError`` naming it).

    It must be a finite number >= 0 (not a bool); > 0 needs ``policy="scorer"`` and, when
    ``config`` is given, an LM state (``config.encoder`` 'lm-fast' or 'lm-exact'; the prior is
    read from the encoder ``config.encoder_path`` names, '' = the shipped one).
    """
    if (
        isinstance(encoder_prior, bool)
        or not isinstance(encoder_prior, (int, float))
        or not (np.isfinite(encoder_prior) and encoder_prior >= 0)
    ):
        raise ValueError(f"encoder_prior must be a finite number >= 0, got {encoder_prior!r}")
    if encoder_prior and policy != "scorer":
        raise ValueError(f"encoder_prior needs policy 'scorer', got {policy!r}")
    if encoder_prior and config is not None and config.encoder not in ("lm-fast", "lm-exact"):
        raise ValueError(
            f"encoder_prior needs an LM state (encoder 'lm-fast' or 'lm-exact'), got encoder "
            f"{config.encoder!r}"
        )


def policy_class(policy: str) -> Any:
    """The SB3 policy (a name SB3 resolves, or the scorer class) for a ``SB3_POLICIES`` entry."""
    if policy not in SB3_POLICIES:
        raise ValueError(f"policy must be one of {SB3_POLICIES}, got {policy!r}")
    if policy == "scorer":
        from recsim_llm.agents.scorer import CandidateScorerPolicy

        return CandidateScorerPolicy
    if policy == "MlpPolicy":
        # SB3's MlpPolicy with the slate's distribution computed in one pass (same parameters).
        from recsim_llm.agents.flat import SlateMlpPolicy

        return SlateMlpPolicy
    return policy


def scorer_kwargs(
    config: EnvConfig, observation_space: Any, encoder_prior: float = 0.0
) -> dict[str, Any]:
    """Policy kwargs the scorer gets: with an LM encoder, ``affinity_dim``; and the prior.

    The LM state starts with ``u`` and each candidate with ``v``, one space: the scorer gets the
    encoder's own affinity ``u·v`` as an input (see ``CandidateScorerPolicy``). With
    ``encoder_prior`` > 0 it also gets ``encoder_prior={"scale", "w", "b", "gain"}``: the click
    logit ``s·u·v + w·v + b`` of the encoder ``config`` names (``encoder_path``; '' = the
    shipped one), at that starting gain.

    Raises:
        ValueError: a bad ``encoder_prior``, or one > 0 without an LM state.
    """
    check_encoder_prior(encoder_prior, "scorer", config)
    if config.encoder not in ("lm-fast", "lm-exact"):
        return {}
    kwargs: dict[str, Any] = {
        "affinity_dim": int(observation_space["candidates"].shape[1]) - N_ITEM_SCALARS
    }
    if encoder_prior:
        from recsim_llm.lm.state import load_bundle

        bundle = load_bundle(config.encoder_path or None)
        kwargs["encoder_prior"] = {
            "scale": float(bundle.click_scale),
            "w": [float(x) for x in np.asarray(bundle.item_bias_w).reshape(-1)],
            "b": float(bundle.item_bias_b),
            "gain": float(encoder_prior),
        }
    return kwargs


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
