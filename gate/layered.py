"""A read-only mapping that costs what changed: a shared base plus one layer of changes.

A batch that reserves 256 orders on a portfolio holding 100,000 would otherwise copy
100,000 entries to make its snapshot (and free the old copy after). A
:class:`Layered` mapping shares its base dict with the snapshot it came from and holds
only the changes since: what was set (added or replaced) and what was removed. Each
new snapshot copies the layer, not the base; once the layer grows past a share of the
base it is folded into a new base, so a change costs O(1) amortized and a lookup O(1).

Order is a dict's: the base's keys in their order (a replaced key keeps its place),
then added keys in the order they were added. Nothing here is ever mutated after it is
made, so snapshots sharing a base stay independent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

FOLD_AT = 1024  # a layer up to this size is never folded
FOLD_SHARE = 8  # otherwise folded once it holds more than 1/FOLD_SHARE of the base


class Layered(Mapping[K, V]):
    __slots__ = ("_base", "_len", "_removed", "_set")

    def __init__(
        self, base: dict[K, V], set_: dict[K, V], removed: frozenset[K], length: int | None = None
    ) -> None:
        self._base = base  # shared: never mutated
        self._set = set_  # values set since the base: replaced in place, or added
        self._removed = removed  # base keys no longer at their place (gone, or re-added last)
        if length is None:
            last = sum(1 for k in set_ if k not in base or k in removed)
            length = len(base) - len(removed) + last
        self._len = length  # known when made: len() is asked every batch

    def __getitem__(self, key: K) -> V:
        found = self._set.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        if key in self._removed:
            raise KeyError(key)
        return self._base[key]

    def __contains__(self, key: object) -> bool:
        if key in self._set:
            return True
        return key not in self._removed and key in self._base

    def __iter__(self) -> Iterator[K]:
        removed, base = self._removed, self._base
        if removed:
            yield from (k for k in base if k not in removed)
        else:
            yield from base
        yield from (k for k in self._set if k not in base or k in removed)

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"Layered({dict(self)!r})"


class _Missing:
    pass


_MISSING = _Missing()


def changed(
    current: Mapping[K, V],
    set_: Mapping[K, V] | Iterable[tuple[K, V]] = (),
    removed: Iterable[K] = (),
) -> Mapping[K, V]:
    """``current`` with ``set_`` set and then ``removed`` removed (absent keys ignored),
    sharing ``current``'s storage where it can. ``current`` is not changed."""
    pairs = set_.items() if isinstance(set_, Mapping) else set_
    if isinstance(current, Layered):
        base, layer, gone = current._base, dict(current._set), set(current._removed)
    else:
        base, layer, gone = (current if isinstance(current, dict) else dict(current)), {}, set()
    length = len(current)
    for key, value in pairs:  # a removed base key set again comes last, as in a dict
        if key not in layer and (key not in base or key in gone):
            length += 1  # new here (a key in the layer, or in place in the base, is not)
        layer[key] = value
    for key in removed:
        if layer.pop(key, _MISSING) is not _MISSING:
            length -= 1
            if key in base:
                gone.add(key)
        elif key in base and key not in gone:
            gone.add(key)
            length -= 1
    if not layer and not gone:
        return base
    out = Layered(base, layer, frozenset(gone), length)
    if len(layer) + len(gone) > max(FOLD_AT, len(base) // FOLD_SHARE):
        return {k: out[k] for k in out}  # folded: a new base, in the same order
    return out


class Draft(Mapping[K, V]):
    """A mutable working copy of a mapping that copies nothing: reads go through to the
    original, writes are kept apart, and :meth:`done` makes the new mapping
    (:func:`changed`). Setting a key the draft removed puts it back in its place."""

    __slots__ = ("_done", "_gone", "_original", "_set")

    def __init__(self, original: Mapping[K, V]) -> None:
        self._original = original
        self._set: dict[K, V] = {}
        self._gone: set[K] = set()
        self._done: Mapping[K, V] | None = original

    def __getitem__(self, key: K) -> V:
        found = self._set.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        if key in self._gone:
            raise KeyError(key)
        return self._original[key]

    def __contains__(self, key: object) -> bool:
        return key in self._set or (key not in self._gone and key in self._original)

    def __iter__(self) -> Iterator[K]:
        return iter(self.done())

    def __len__(self) -> int:
        return len(self.done())

    def __setitem__(self, key: K, value: V) -> None:
        self._set[key] = value
        self._gone.discard(key)
        self._done = None

    def __delitem__(self, key: K) -> None:
        if key not in self:
            raise KeyError(key)
        self._set.pop(key, None)
        self._gone.add(key)
        self._done = None

    def pop(self, key: K, default: V | None = None) -> V | None:
        if key not in self:
            return default
        value = self[key]
        del self[key]
        return value

    def done(self) -> Mapping[K, V]:
        """The mapping as changed (the same object until the draft changes again)."""
        if self._done is None:
            self._done = changed(self._original, self._set, self._gone)
        return self._done
