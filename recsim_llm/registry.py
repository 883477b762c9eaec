"""The one registry style for extension points: names mapped to lazy ``"module:attr"`` entry points.

As Gymnasium registers env ids, a name maps to a string ``"package.module:attr"`` (or a callable)
that is imported only when the name is first used, so registering costs no import. Choice models,
user models, transition and response models use it today (``recsim_llm.world.registries``);
encoders, scenarios, policies and CLI commands are meant to move onto the same class.

This module imports only the standard library, so any module can hold a registry without
pulling anything heavy in.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class Registry(Generic[T]):
    """Names of one kind of extension (e.g. ``"choice model"``) mapped to entry points.

    Args:
        kind: what the registry holds, in words; every error message names it.

    Example:
        >>> CHOICE_MODELS = Registry("choice model")
        >>> CHOICE_MODELS.register("mnl", "recsim_llm.world.choice:MultinomialLogit.from_config")
        >>> model = CHOICE_MODELS.make("mnl", config)  # imports the module on first use
    """

    def __init__(self, kind: str) -> None:
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty string, got {kind!r}")
        self.kind = kind
        self._entry_points: dict[str, str | Callable[..., T]] = {}
        # Resolved callables, so a string entry point is imported once.
        self._resolved: dict[str, Callable[..., T]] = {}

    def register(
        self,
        name: str,
        entry_point: str | Callable[..., T],
        *,
        overwrite: bool = False,
    ) -> None:
        """Map ``name`` to ``entry_point``: ``"package.module:attr"`` (attr may be dotted) or a callable.

        A string is checked for its form now and imported on first use. Registering a name twice
        is an error unless ``overwrite=True`` (so two plug-ins cannot silently shadow each other).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if isinstance(entry_point, str):
            if not _ENTRY_POINT.match(entry_point):
                raise ValueError(
                    f"{self.kind} {name!r}: entry point must look like 'package.module:attr', "
                    f"got {entry_point!r}"
                )
        elif not callable(entry_point):
            raise ValueError(
                f"{self.kind} {name!r}: entry point must be a 'module:attr' string or a callable, "
                f"got {type(entry_point).__name__}"
            )
        if name in self._entry_points and not overwrite:
            raise ValueError(
                f"{self.kind} {name!r} is already registered (to {self._entry_points[name]!r}); "
                "pass overwrite=True to replace it"
            )
        self._entry_points[name] = entry_point
        self._resolved.pop(name, None)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and plug-ins that clean up after themselves)."""
        self._check_known(name)
        del self._entry_points[name]
        self._resolved.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        return tuple(sorted(self._entry_points))

    def entry_point(self, name: str) -> str | Callable[..., T]:
        """What ``name`` is registered to, unresolved."""
        self._check_known(name)
        return self._entry_points[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entry_points

    def check(self, name: Any, field: str) -> None:
        """Raise ``ValueError`` naming config ``field`` unless ``name`` is registered."""
        if not isinstance(name, str) or name not in self._entry_points:
            raise ValueError(
                f"{field} must be a registered {self.kind} {self.names()}, got {name!r}"
            )

    def resolve(self, name: str) -> Callable[..., T]:
        """The callable behind ``name``, importing its module on first use."""
        self._check_known(name)
        if name not in self._resolved:
            entry_point = self._entry_points[name]
            self._resolved[name] = (
                entry_point if callable(entry_point) else self._load(name, entry_point)
            )
        return self._resolved[name]

    def make(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Resolve ``name`` and call it with ``args`` and ``kwargs``."""
        return self.resolve(name)(*args, **kwargs)

    def _check_known(self, name: Any) -> None:
        if not isinstance(name, str) or name not in self._entry_points:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {self.names()}")

    def _load(self, name: str, entry_point: str) -> Callable[..., T]:
        module_name, _, attr_path = entry_point.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(
                f"{self.kind} {name!r}: cannot import module {module_name!r} of entry point "
                f"{entry_point!r}: {err}"
            ) from err
        for attr in attr_path.split("."):
            try:
                target = getattr(target, attr)
            except AttributeError as err:
                raise ValueError(
                    f"{self.kind} {name!r}: entry point {entry_point!r} names no attribute {attr!r}"
                ) from err
        if not callable(target):
            raise ValueError(
                f"{self.kind} {name!r}: entry point {entry_point!r} is not callable "
                f"({type(target).__name__})"
            )
        return target

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"
