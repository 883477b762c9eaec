"""Stable-Baselines3 glue: train an SB3 algorithm on the batched env, use it as a SlatePolicy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recsim_llm.agents.base import SlateContext
from recsim_llm.config import EnvConfig

ALGORITHMS = ("PPO", "A2C")
"""SB3 algorithms that take the MultiDiscrete slate action directly."""


class SB3Policy:
    """A trained SB3 model behind the SlatePolicy interface (deterministic actions)."""

    def __init__(self, model: Any, name: str | None = None) -> None:
        self.model = model
        self.name = name or type(model).__name__.lower()

    def reset(self, seed: int) -> None:
        self.model.set_random_seed(seed)

    def act(self, observation: np.ndarray, context: SlateContext) -> np.ndarray:
        action, _ = self.model.predict(observation, deterministic=True)
        return np.asarray(action, dtype=np.int64).reshape(-1, context.slate_size)


def train_sb3(
    config: EnvConfig,
    algorithm: str = "PPO",
    total_timesteps: int = 20_000,
    n_envs: int = 16,
    seed: int = 0,
    encoder: Any = None,
    **algo_kwargs: Any,
) -> Any:
    """Train ``algorithm`` on ``n_envs`` concurrent users of ``config``; returns the SB3 model.

    The batched world and the encoder stay in this process (no subprocess per env).
    """
    import stable_baselines3 as sb3
    import torch

    from recsim_llm.envs.sb3 import SB3VecEnv
    from recsim_llm.envs.vector import SlateVectorEnv

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if total_timesteps < 1:
        raise ValueError(f"total_timesteps must be >= 1, got {total_timesteps}")
    torch.manual_seed(seed)
    venv = SB3VecEnv(SlateVectorEnv(num_envs=n_envs, config=config, encoder=encoder))
    venv.seed(seed)
    kwargs: dict[str, Any] = {"seed": seed, "verbose": 0, "device": "cpu"}
    if algorithm == "PPO":
        kwargs.update(n_steps=64, batch_size=256, n_epochs=4, learning_rate=3e-4, gamma=0.99)
    kwargs.update(algo_kwargs)
    model = getattr(sb3, algorithm)("MlpPolicy", venv, **kwargs)
    model.learn(total_timesteps=total_timesteps)
    return model


def save_sb3_model(model: Any, path: Path, config: EnvConfig, option: str = "--out") -> None:
    """Save ``model`` to ``path`` (.zip) atomically, with its env config as ``PATH.json``.

    A ``"model"`` output of ``recsim_llm.io``: the sidecar ``PATH.json`` carries the marker keys,
    and an existing ``path`` is replaced only when its sidecar marks it as ours.

    Raises:
        OutputError: ``path`` (or ``PATH.json``) exists and was not written by recsim-llm.
    """
    from recsim_llm.config import to_dict
    from recsim_llm.io import output_file

    meta = {"algorithm": type(model).__name__, "env": to_dict(config)}
    with output_file(path, "model", meta=meta, option=option) as tmp:
        model.save(tmp)


def load_sb3_policy(path: Path) -> SB3Policy:
    """A saved SB3 model (written by ``save_sb3_model``) as a SlatePolicy."""
    import json

    import stable_baselines3 as sb3

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if not meta_path.is_file():
        raise FileNotFoundError(f"model metadata not found: {meta_path} (written beside the model)")
    meta = json.loads(meta_path.read_text())
    algorithm = meta.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{meta_path}: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    model = getattr(sb3, algorithm).load(path, device="cpu")
    return SB3Policy(model, f"{algorithm.lower()}:{path.stem}")
