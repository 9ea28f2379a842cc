"""One registry type for every "name -> implementation" table (checks, targets, modes, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A read-only mapping filled by a decorator; a name can be registered once.

    Example:
        CHECKS: Registry[Check] = Registry("gate check")

        @CHECKS.register("quality")
        def quality(...): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that adds ``name``.

        Raises:
            ValueError: ``name`` is already registered (two modules claiming one name is a bug).
        """

        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add

    def lookup(self, name: str) -> T:
        """The item called ``name``.

        Raises:
            ValueError: no such name; the message lists the registered ones.
        """
        if name not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {sorted(self._items)}")
        return self._items[name]

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._items)})"
