"""One registry pattern for regularizers, model families and data sets.

A module-private dict of named entries; ``register(name)`` is a decorator that refuses a duplicate
name, ``get(name)`` refuses an unknown one with the sorted list of choices, ``names()`` lists them.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List
from korth_bench.errors import ConfigError


class Registry:
    """Named entries of one kind (``"regularizer"``, ``"model family"``, ``"dataset"``)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(entry: Any) -> Any:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            return entry

        return decorator

    def get(self, name: str) -> Any:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}"
            ) from None

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
