"""Aggregated exposure of a snapshot: heat, notional by class and symbol, reducible size.

Built once per batch from a snapshot, then grown as the batch's approvals reserve
risk, so every intent in a batch is decided against everything approved before it.
Opening orders count gross (a sell against a long is new exposure until filled);
only ``reduce_only`` orders shrink a position, and they never add exposure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from gate.money import ZERO
from gate.portfolio import (
    Reservation,
    Snapshot,
    equity,
    fx_rate,
    position_risk,
)
from schemas.config import AssetsConfig
from schemas.messages import Side


@dataclass(slots=True)
class Exposure:
    equity: Decimal
    heat: Decimal = ZERO
    class_notional: dict[str, Decimal] = field(default_factory=dict)
    symbol_notional: dict[str, Decimal] = field(default_factory=dict)
    symbol_quantity: dict[str, Decimal] = field(default_factory=dict)
    symbol_class: dict[str, str | None] = field(default_factory=dict)
    pending_reduce: dict[str, Decimal] = field(default_factory=dict)
    oldest_mark: datetime | None = None

    @classmethod
    def of(cls, snapshot: Snapshot, config: AssetsConfig, now: datetime) -> Exposure:
        acc = snapshot.account
        exp = cls(equity=equity(snapshot, config))
        for p in snapshot.positions.values():
            fx = fx_rate(p.quote_currency, acc, config)
            exp._add(p.symbol, p.asset_class, abs(p.quantity), abs(p.quantity) * p.mark_price * fx)
            exp.heat += position_risk(p, acc, config)
            if exp.oldest_mark is None or p.marked_at < exp.oldest_mark:
                exp.oldest_mark = p.marked_at
        for r in snapshot.reservations.values():
            if r.expires_at > now:
                exp.reserve(r, snapshot, config)
        return exp

    def reserve(self, r: Reservation, snapshot: Snapshot, config: AssetsConfig) -> None:
        """Count an approved order's risk (or, if reduce-only, its claim on the position)."""
        if r.reduce_only:
            self.pending_reduce[r.symbol] = self.pending_reduce.get(r.symbol, ZERO) + r.quantity
            return
        fx = fx_rate(r.quote_currency, snapshot.account, config)
        self._add(r.symbol, r.asset_class, r.quantity, r.quantity * r.price * fx)
        if r.stop_price is None:
            self.heat += r.quantity * r.price * fx
        else:
            self.heat += r.quantity * abs(r.price - r.stop_price) * fx

    def reducible(self, snapshot: Snapshot, symbol: str, side: Side) -> Decimal:
        """How much of the position a reduce-only order on ``side`` may still close."""
        pos = snapshot.positions.get(symbol)
        if pos is None or (side is Side.SELL) != pos.is_long:
            return ZERO
        return max(ZERO, abs(pos.quantity) - self.pending_reduce.get(symbol, ZERO))

    def _add(self, symbol: str, asset_class: str | None, qty: Decimal, notional: Decimal) -> None:
        self.symbol_quantity[symbol] = self.symbol_quantity.get(symbol, ZERO) + qty
        self.symbol_notional[symbol] = self.symbol_notional.get(symbol, ZERO) + notional
        self.symbol_class[symbol] = asset_class
        if asset_class is not None:
            self.class_notional[asset_class] = self.class_notional.get(asset_class, ZERO) + notional
