"""Gymnasium ids, registered with string entry points (no torch import at registration).

``import recsim_llm`` registers the ids without importing gymnasium itself, so that the pure
NumPy parts (``recsim_llm.world``) stay free of it: if gymnasium is already imported the ids are
registered at once; otherwise a one-shot import hook registers them right after gymnasium's own
module has run, whoever imports it. Either way ``gym.make("RecSimLLM/Slate-v1")`` works after
``import recsim_llm``, in either import order, and so does the ``"recsim_llm:RecSimLLM/Slate-v1"``
form of ``gym.make``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

ENV_IDS = ("RecSimLLM/Slate-v1", "RecSimLLM/SlateScores-v1")

DATA_ENV_IDS = ("RecSimLLM/MovieLens-v3",)
"""Ids that need a data directory (``gym.make(id, data_dir=...)``); not in ``ENV_IDS``."""


def register_envs() -> None:
    """Register every recsim_llm id with gymnasium, importing it (idempotent)."""
    import gymnasium as gym

    if "RecSimLLM/Slate-v1" not in gym.registry:
        gym.register(
            id="RecSimLLM/Slate-v1",
            entry_point="recsim_llm.envs.slate:SlateEnv",
            vector_entry_point="recsim_llm.envs.vector:SlateVectorEnv",
        )
    if "RecSimLLM/SlateScores-v1" not in gym.registry:
        gym.register(
            id="RecSimLLM/SlateScores-v1",
            entry_point="recsim_llm.envs.wrappers:make_scores_env",
        )
    if "RecSimLLM/MovieLens-v3" not in gym.registry:
        gym.register(
            id="RecSimLLM/MovieLens-v3",
            entry_point="recsim_llm.envs.movielens:MovieLensEnv",
            vector_entry_point="recsim_llm.envs.movielens:MovieLensVectorEnv",
        )


class _RegisteringLoader(importlib.abc.Loader):
    """Wraps gymnasium's loader: runs gymnasium's module, then registers our ids."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        register_envs()

    def __getattr__(self, name: str) -> Any:
        # Resource readers, is_package, get_source, ...: gymnasium's own loader answers.
        return getattr(self._loader, name)


class _GymnasiumImportHook(importlib.abc.MetaPathFinder):
    """One-shot finder: on the first ``import gymnasium``, wraps its loader, then leaves."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "gymnasium":
            return None
        _remove_hook()
        # The hook is gone, so this asks the remaining finders in their order (no recursion).
        spec = None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


_hook_lock = threading.Lock()


def _remove_hook() -> None:
    with _hook_lock:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _GymnasiumImportHook)]


def register_envs_when_gymnasium_loads() -> None:
    """Register the ids now if gymnasium is imported, else as soon as it is (idempotent)."""
    if "gymnasium" in sys.modules:
        register_envs()
        return
    with _hook_lock:
        if not any(isinstance(f, _GymnasiumImportHook) for f in sys.meta_path):
            sys.meta_path.insert(0, _GymnasiumImportHook())
