"""The one registry style for extension points: names mapped to lazy ``"module:attr"`` entry points.

Every extension point (choice, user, transition and response models; encoders; scenarios;
policies; CLI commands) is a ``Registry``. As with Gymnasium's env ids, a string entry point is
imported only when its name is first resolved, so registering a heavy implementation (torch,
SB3) costs nothing until it is used.

An entry point string follows the packaging entry-point grammar ``module[:attr[.attr...]]``;
without ``:attr`` it resolves to the module itself. This module imports only the standard
library, so any module can hold a registry without pulling anything heavy in.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry", "lazy_exports", "load_entry_point"]

_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?$")


def load_entry_point(entry_point: str) -> Any:
    """The object named by ``"module:attr"`` (or the module, for ``"module"``).

    Raises:
        ImportError: the module cannot be imported or has no such attribute; the message names
            the entry point.
    """
    module_name, _, attr = entry_point.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"entry point {entry_point!r}: cannot import {module_name!r}: {err}"
        ) from err
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"entry point {entry_point!r}: no attribute {part!r}") from None
    return obj


def lazy_exports(
    module_name: str, exports: dict[str, str], public: list[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose public names load on first use (PEP 562).

    ``exports`` maps each public name to its ``"module:attr"`` entry point; a loaded name is
    cached in the package's globals, so it is imported once.
    """
    import sys

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = load_entry_point(exports[name])
        setattr(sys.modules[module_name], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[module_name])) | set(public))

    return __getattr__, __dir__


class Registry(Generic[T]):
    """Names of one kind of extension mapped to objects or lazy entry points.

    Args:
        kind: what the registry holds, in words (e.g. ``"choice model"``); every error names it.

    Example:
        >>> CHOICE_MODELS = Registry("choice model")
        >>> CHOICE_MODELS.register("mnl", "recsim_llm.world.choice:MultinomialLogit.from_config")
        >>> model = CHOICE_MODELS.make("mnl", config)  # imports the module on first use
    """

    def __init__(self, kind: str) -> None:
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty string, got {kind!r}")
        self.kind = kind
        self._entries: dict[str, str | T] = {}
        self._loaded: dict[str, T] = {}

    def register(self, name: str, entry_point: str | T, *, overwrite: bool = False) -> None:
        """Map ``name`` to ``entry_point``: a ``"module:attr"`` string (imported on first use) or
        the object itself.

        Registering a name twice is an error unless ``overwrite=True``, so two plug-ins cannot
        silently shadow each other.
        """
        if not isinstance(name, str) or not name or ":" in name or "," in name:
            raise ValueError(
                f"{self.kind} name must be a non-empty string without ':' or ',', got {name!r}"
            )
        if isinstance(entry_point, str) and not _ENTRY_POINT.match(entry_point):
            raise ValueError(
                f"{self.kind} {name!r}: entry point must look like 'package.module:attr', "
                f"got {entry_point!r}"
            )
        if name in self._entries and not overwrite:
            raise ValueError(
                f"{self.kind} {name!r} is already registered (to {self._entries[name]!r}); "
                "pass overwrite=True to replace it"
            )
        self._entries[name] = entry_point
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and plug-ins that clean up after themselves)."""
        self._check_known(name)
        del self._entries[name]
        self._loaded.pop(name, None)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def entry_point(self, name: str) -> str | T:
        """What ``name`` is registered to, unresolved."""
        self._check_known(name)
        return self._entries[name]

    def check(self, name: Any, field: str) -> None:
        """Raise ``ValueError`` naming config ``field`` unless ``name`` is registered."""
        if not isinstance(name, str) or name not in self._entries:
            raise ValueError(f"{field} must be one of {self.names()}, got {name!r}")

    def resolve(self, name: str) -> T:
        """The registered object, importing a string entry point on first use.

        Raises:
            ValueError: ``name`` is unknown, or its entry point cannot be loaded (the message
                names the entry point).
        """
        self._check_known(name)
        if name not in self._loaded:
            entry = self._entries[name]
            if isinstance(entry, str):
                try:
                    self._loaded[name] = load_entry_point(entry)
                except ImportError as err:
                    raise ValueError(f"{self.kind} {name!r}: {err}") from err
            else:
                self._loaded[name] = entry
        return self._loaded[name]

    def make(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Resolve ``name`` and call it with ``args`` and ``kwargs``."""
        factory = self.resolve(name)
        if not callable(factory):
            raise ValueError(
                f"{self.kind} {name!r}: entry point {self._entries[name]!r} is not callable "
                f"({type(factory).__name__})"
            )
        return factory(*args, **kwargs)

    def _check_known(self, name: Any) -> None:
        if not isinstance(name, str) or name not in self._entries:
            raise ValueError(f"{self.kind} must be one of {self.names()}, got {name!r}")

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
