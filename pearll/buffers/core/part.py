"""The protocol of a buffer's parts that own state, and how a buffer puts their states together.

A buffer is a composition of parts: its transition store, its ring, and what its class adds
(PER's priorities, HER's episode index, a rollout's estimate flag). Each part owns its arrays
and says, through this protocol, how many bytes they take, how to empty them, and what of them
a checkpoint keeps. The buffer never reaches into a part for these: ``nbytes``, ``reset``,
``save`` and ``load`` go over its parts in order (see :class:`Parts`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Part(Protocol):
    """A piece of a buffer with state of its own."""

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays the part allocated (its capacity, not what is filled)."""
        ...

    def reset(self) -> None:
        """Empty the part, as after construction."""
        ...

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the part: entries of the buffer's state tree (names
        distinct from every other part's), arrays and JSON values (see persistence.py)."""
        ...

    def set_state(self, state: dict[str, Any]) -> None:
        """Put back the part's entries of ``state`` (the whole tree :meth:`state` went into)."""
        ...


class Parts:
    """A buffer's stateful parts, by name, in the order they are saved and reset."""

    def __init__(self) -> None:
        self._parts: dict[str, Part] = {}

    def add(self, name: str, part: Part) -> None:
        if name in self._parts:
            raise ValueError(f"part {name!r}: already added")
        self._parts[name] = part

    def __iter__(self) -> Iterator[Part]:
        return iter(self._parts.values())

    @property
    def nbytes(self) -> int:
        return sum(part.nbytes for part in self)

    def reset(self) -> None:
        for part in self:
            part.reset()

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for name, part in self._parts.items():
            entries = part.state()
            clash = state.keys() & entries.keys()
            if clash:
                raise ValueError(f"part {name!r}: state entries {sorted(clash)} already taken")
            state |= entries
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        for part in self:
            part.set_state(state)
