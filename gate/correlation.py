"""Correlated exposure of a symbol, from class totals and the known correlations.

Two assets count as correlated when ``|correlation| >= threshold``. A symbol always
counts with itself. An unknown correlation, or any correlation once the set is older
than ``correlation_max_age_hours``, follows ``unknown_correlation``:

- ``correlated`` (the default, fail closed): it counts. The correlated exposure of S
  is then the whole notional minus the symbols *known* to be uncorrelated with S.
- ``uncorrelated``: it counts within one class only. The correlated exposure of S is
  its class's notional, minus same-class symbols known to be uncorrelated with S, plus
  other-class symbols known to be correlated.

Either way the cost follows the number of known pairs of S, not the number of assets.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import chain

from gate.exposure import Exposure
from gate.portfolio import Correlations, Snapshot
from schemas.config import AssetsConfig


def correlations_fresh(snapshot: Snapshot, config: AssetsConfig, now: datetime) -> bool:
    corr = snapshot.correlations
    max_age = timedelta(hours=config.risk_management.correlation_max_age_hours)
    return corr.as_of is not None and now - corr.as_of <= max_age


class Correlated:
    """Correlated exposure per symbol against a (growing) exposure."""

    def __init__(
        self, snapshot: Snapshot, exposure: Exposure, config: AssetsConfig, now: datetime
    ) -> None:
        self.fresh = correlations_fresh(snapshot, config, now)
        self.corr = snapshot.correlations if self.fresh else Correlations()
        self.threshold = config.risk_management.correlation_threshold
        self.unknown_counts = config.risk_management.unknown_correlation == "correlated"
        self.exposure = exposure
        self.config = config
        self._members: dict[str, tuple[tuple[int, int], list[str]]] = {}
        # the symbols with notional found so far, in order, and where the search stopped
        self._exposed_key = (-1, -1)
        self._exposed: list[str] = []
        self._unsearched: Iterator[str] = iter(())

    def _class(self, symbol: str) -> str | None:
        if symbol in self.exposure.symbol_class:
            return self.exposure.symbol_class[symbol]
        asset = self.config.assets.get(symbol)
        return asset.asset_class.value if asset is not None else None

    def related(self, a: str, b: str) -> bool:
        if a == b:
            return True
        c = self.corr.get(a, b)
        if c is not None:
            return abs(c) >= self.threshold
        if self.unknown_counts:
            return True
        cls = self._class(a)
        return cls is not None and cls == self._class(b)

    def _known(self, symbol: str) -> Iterator[tuple[str, bool]]:
        """(other symbol, correlated?) for every known pair of ``symbol``."""
        for other, c in self.corr.partners(symbol):
            yield other, abs(c) >= self.threshold

    def used(self, symbol: str) -> Decimal:
        """Notional in ``symbol`` and everything correlated with it."""
        exp = self.exposure
        if self.unknown_counts:
            total = exp.total_notional
            for other, correlated in self._known(symbol):
                if not correlated:
                    total -= exp.symbol_notional(other)
            return total
        cls = self._class(symbol)
        total = exp.class_notional(cls) if cls is not None else exp.symbol_notional(symbol)
        for other, correlated in self._known(symbol):
            same = cls is not None and self._class(other) == cls
            if same and not correlated:
                total -= exp.symbol_notional(other)
            elif correlated and not same:
                total += exp.symbol_notional(other)
        return total

    def members(self, symbol: str, limit: int) -> list[str]:
        """Up to ``limit`` other symbols with exposure that count as correlated.

        Within a batch exposure only grows, so the list changes only when a symbol gains
        exposure from none: cached on the exposure's revision.
        """
        key = (self.exposure.revision, limit)
        cached = self._members.get(symbol)
        if cached is not None and cached[0] == key:
            return cached[1]
        if self.unknown_counts:
            out = self._exposed_but_apart(symbol, limit)
        else:
            cls = self._class(symbol)
            same_class = self.exposure.class_symbols.get(cls, {}) if cls is not None else {}
            out = self._collect(symbol, same_class, limit)
        self._members[symbol] = (key, out)
        return out

    def _exposed_but_apart(self, symbol: str, limit: int) -> list[str]:
        """:meth:`_collect` when unknown correlations count: every symbol with exposure
        (every symbol with notional has been seen), but those known to be uncorrelated,
        in the order they were first exposed."""
        apart = {other for other, correlated in self._known(symbol) if not correlated}
        apart.add(symbol)
        # among the first limit + len(apart) exposed symbols, at least limit are not apart
        exposed = self._with_notional(limit + len(apart))
        return [other for other in exposed if other not in apart][:limit]

    def _with_notional(self, need: int) -> list[str]:
        """The first ``need`` symbols with notional (fewer if there are not as many), in
        the order first exposed.

        Found lazily, only as far as callers need, and remembered while the exposure has
        the same revision and the same symbols: a book exposed in thousands of symbols
        costs the ~``limit`` a decision lists, not a pass over all of them each time one
        more symbol gains exposure.
        """
        exp = self.exposure
        key = (exp.revision, len(exp.symbol_class))
        if key != self._exposed_key:
            self._exposed_key, self._exposed = key, []
            self._unsearched = iter(exp.symbol_class)
        found = self._exposed
        if len(found) < need:
            notional = exp.symbol_notional
            for other in self._unsearched:
                if notional(other) > 0:
                    found.append(other)
                    if len(found) >= need:
                        break
        return found[:need]

    def _collect(self, symbol: str, same_class: dict[str, None], limit: int) -> list[str]:
        out: list[str] = []
        known = (o for o, correlated in self._known(symbol) if correlated)
        for other in chain(same_class, known):
            if len(out) >= limit:
                break
            if (
                other != symbol
                and other not in out
                and self.related(symbol, other)
                and (self.exposure.symbol_notional(other) > 0)
            ):
                out.append(other)
        return out
