"""Named extension points: a name maps to an object or a lazy ``"module:attr"`` entry point.

Every extension point (encoders, scenarios, policies, CLI commands) is a ``Registry``. As with
Gymnasium's env ids, a string entry point is imported only when its name is first resolved, so
registering a heavy implementation (torch, SB3) costs nothing until it is used.

An entry point string follows the packaging entry-point grammar ``module[:attr[.attr...]]``;
without ``:attr`` it resolves to the module itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry", "load_entry_point"]


def load_entry_point(entry_point: str) -> Any:
    """The object named by ``"module:attr"`` (or the module, for ``"module"``)."""
    module_name, _, attr = entry_point.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"entry point {entry_point!r}: no attribute {part!r}") from None
    return obj


class Registry(Generic[T]):
    """Names of one kind of extension (``kind`` is used in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, str | T] = {}
        self._loaded: dict[str, T] = {}

    def register(self, name: str, entry_point: str | T, *, overwrite: bool = False) -> None:
        """Register ``name``; a string is resolved lazily as ``"module:attr"``."""
        if not isinstance(name, str) or not name or ":" in name or "," in name:
            raise ValueError(f"{self.kind} name must be a non-empty string without ':' or ','")
        if name in self._entries and not overwrite:
            raise ValueError(
                f"{self.kind} {name!r} is already registered (pass overwrite=True to replace it)"
            )
        if isinstance(entry_point, str) and not entry_point.partition(":")[0]:
            raise ValueError(f"{self.kind} {name!r}: entry point {entry_point!r} has no module")
        self._entries[name] = entry_point
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (an unknown name is an error)."""
        self._check(name)
        del self._entries[name]
        self._loaded.pop(name, None)

    def resolve(self, name: str) -> T:
        """The registered object, importing a string entry point on first use."""
        self._check(name)
        if name not in self._loaded:
            entry = self._entries[name]
            self._loaded[name] = load_entry_point(entry) if isinstance(entry, str) else entry
        return self._loaded[name]

    def make(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the registered factory of ``name`` with the given arguments."""
        return self.resolve(name)(*args, **kwargs)  # type: ignore[operator]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def _check(self, name: str) -> None:
        if name not in self._entries:
            raise ValueError(f"{self.kind} must be one of {self.names()}, got {name!r}")

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
