"""Correlated exposure, kept as running sums for the symbols a batch trades.

Two assets count as correlated when ``|correlation| >= threshold``. An unknown (or
stale) correlation counts when both are in one class (fail closed) and not across
classes. A symbol always counts with itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from gate.exposure import Exposure
from gate.portfolio import Snapshot
from schemas.config import AssetsConfig


def correlations_fresh(snapshot: Snapshot, config: AssetsConfig, now: datetime) -> bool:
    corr = snapshot.correlations
    max_age = timedelta(hours=config.risk_management.correlation_max_age_hours)
    return corr.as_of is not None and now - corr.as_of <= max_age


class Correlated:
    """Correlated exposure per symbol for one batch; ``add`` as reservations are made."""

    def __init__(
        self, snapshot: Snapshot, exposure: Exposure, config: AssetsConfig, now: datetime
    ) -> None:
        self.corr = snapshot.correlations
        self.fresh = correlations_fresh(snapshot, config, now)
        self.threshold = config.risk_management.correlation_threshold
        self.exposure = exposure
        self.config = config
        self._sums: dict[str, Decimal] = {}
        self._members: dict[str, list[str]] = {}

    def _class(self, symbol: str) -> str | None:
        if symbol in self.exposure.symbol_class:
            return self.exposure.symbol_class[symbol]
        asset = self.config.assets.get(symbol)
        return asset.asset_class.value if asset is not None else None

    def related(self, a: str, b: str) -> bool:
        if a == b:
            return True
        c = self.corr.get(a, b) if self.fresh else None
        if c is not None:
            return abs(c) >= self.threshold
        return self._class(a) == self._class(b)

    def _load(self, symbol: str) -> None:
        used = self.exposure.symbol_notional(symbol)
        members = []
        for other in self.exposure.symbol_class:
            if other != symbol and self.related(symbol, other):
                notional = self.exposure.symbol_notional(other)
                if notional > 0:
                    used += notional
                    members.append(other)
        self._sums[symbol] = used
        self._members[symbol] = members

    def used(self, symbol: str) -> Decimal:
        """Notional in ``symbol`` and everything correlated with it."""
        if symbol not in self._sums:
            self._load(symbol)
        return self._sums[symbol]

    def members(self, symbol: str) -> list[str]:
        """The other symbols counted (with exposure), in the order they were first seen."""
        if symbol not in self._members:
            self._load(symbol)
        return self._members[symbol]

    def add(self, symbol: str, notional: Decimal) -> None:
        """A reservation in ``symbol`` was made: every running sum it moves with grows."""
        for other in self._sums:
            if self.related(other, symbol):
                self._sums[other] += notional
                if other != symbol and symbol not in self._members[other]:
                    self._members[other].append(symbol)
