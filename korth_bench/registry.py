"""One registry pattern for regularizers, model families and data sets.

A module-private dict of named entries; ``register(name)`` is a decorator that refuses a duplicate
name, ``get(name)`` refuses an unknown one with the sorted list of choices, ``names()`` lists them.
A registry given ``plugins`` calls it once, at its first look-up (the regularizers' entry points
and ``--plugin`` modules, ``korth_bench.plugins``).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional
from korth_bench.errors import ConfigError


class Registry:
    """Named entries of one kind (``"regularizer"``, ``"model family"``, ``"dataset"``)."""

    def __init__(self, kind: str, plugins: Optional[Callable[["Registry"], None]] = None,
                 hint: str = ""):
        self.kind = kind
        self.hint = hint  # appended to the refusal of an unknown name
        self._entries: Dict[str, Any] = {}
        self._plugins = plugins  # called once, at the first look-up (korth_bench.plugins)

    def _load_plugins(self) -> None:
        load, self._plugins = self._plugins, None
        if load is not None:
            try:
                load(self)
            except BaseException:
                self._plugins = load  # a failed load is retried, and fails the same way
                raise

    def values(self) -> List[Any]:
        return list(self._entries.values())

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
        self._load_plugins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}"
                + (f" ({self.hint})" if self.hint else "")
            ) from None

    def names(self) -> List[str]:
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries
