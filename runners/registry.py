"""One shape for every named, extensible choice of the harness: pruners, samplers, votes, crops,
heads and storage backends each keep their entries in a ``Registry``, and a new entry is one
``register`` call in one module (the registry's package imports its modules).

It lives in ``runners`` because this is the lowest layer: ``runners`` (heads) and every part of
``search`` can import it, and it imports nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in the order they were registered."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # what an entry is, for messages: "pruner", "vote", "crop", ...
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered.")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`: ``@REGISTRY.register("name")`` over the entry."""
        return lambda entry: self.add(name, entry)

    def remove(self, name: str) -> None:
        """Drop ``name`` (a test's throw-away entry)."""
        del self._entries[name]

    def get(self, name: str) -> T:
        """The entry ``name``; an unknown name is a ValueError listing the registered ones."""
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; one of {self.names()}.") from None

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
