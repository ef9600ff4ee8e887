"""Portfolio events (deposit, fill, cancel, mark) applied to a snapshot, purely.

The executor's fills are the truth: a fill is applied even when no approval is
known for it, and the oddity is reported as a note for the worker to log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from gate.portfolio import Position, Reservation, Snapshot, equity, fx_rate
from schemas.config import AssetsConfig
from schemas.messages import AnyEvent, Cancel, Deposit, Fill, Mark, Side

PortfolioEvent = AnyEvent


@dataclass(frozen=True, slots=True)
class Applied:
    """The new snapshot, and what changed, so callers update only that."""

    snapshot: Snapshot
    notes: tuple[tuple[str, str], ...]  # (event_id, what was odd about it)
    positions_touched: frozenset[str] = frozenset()
    released: tuple[Reservation, ...] = ()  # reservations removed (or replaced: old value)
    reserved: tuple[Reservation, ...] = ()  # replacements (what a partial fill left)
    fx_changed: bool = False

    @property
    def reservations_touched(self) -> frozenset[str]:
        return frozenset(r.intent_id for r in (*self.released, *self.reserved))


class _Book:
    """Mutable working copy of one snapshot, private to :func:`apply_events`."""

    def __init__(self, snapshot: Snapshot, config: AssetsConfig) -> None:
        self.base = snapshot
        self.config = config
        self.account = snapshot.account
        self.positions = dict(snapshot.positions)
        self.reservations = dict(snapshot.reservations)
        self.notes: list[tuple[str, str]] = []
        self.touched: set[str] = set()
        self.released: list[Reservation] = []
        self.reserved: list[Reservation] = []
        self.fx_changed = False

    def snapshot(self) -> Snapshot:
        return replace(
            self.base,
            account=self.account,
            positions=self.positions,
            reservations=self.reservations,
        )

    def equity(self) -> Decimal:
        return equity(self.snapshot(), self.config)

    # -- events ------------------------------------------------------------------------

    def deposit(self, ev: Deposit, now: datetime) -> None:
        before = self.equity()
        after = before + ev.amount
        acc = self.account
        day = acc.day or (ev.at or now).date()
        day_start = acc.day_start_equity + ev.amount if acc.day else after
        self.account = replace(
            acc,
            cash=acc.cash + ev.amount,
            peak_equity=max(acc.peak_equity + ev.amount, after),
            day_start_equity=day_start,
            day=day,
        )

    def cancel(self, ev: Cancel) -> None:
        gone = self.reservations.pop(ev.intent_id, None)
        if gone is None:
            self.notes.append((ev.event_id, f"cancel for {ev.intent_id}: no open reservation"))
        else:
            self.released.append(gone)

    def fill(self, ev: Fill, now: datetime) -> None:
        at = ev.at or now
        res = self._consume_reservation(ev)
        asset = self.config.assets.get(ev.symbol)
        pos = self.positions.get(ev.symbol)
        if asset is not None:
            asset_class: str | None = asset.asset_class.value
            quote = asset.trading.quote_currency
        elif pos is not None:
            asset_class, quote = pos.asset_class, pos.quote_currency
        else:
            asset_class, quote = None, self.config.risk_management.account_currency
            self.notes.append((ev.event_id, f"fill for unconfigured symbol {ev.symbol}"))
        fx = fx_rate(quote, self.account, self.config)
        self.touched.add(ev.symbol)
        signed = ev.quantity if ev.side is Side.BUY else -ev.quantity
        stop = res.stop_price if res is not None else None
        self.account = replace(self.account, cash=self.account.cash - signed * ev.price * fx)
        if pos is None:
            self.positions[ev.symbol] = Position(
                symbol=ev.symbol,
                asset_class=asset_class,
                quote_currency=quote,
                quantity=signed,
                avg_price=ev.price,
                mark_price=ev.price,
                marked_at=at,
                opened_at=at,
                stop_price=stop,
            )
        elif (pos.quantity > 0) == (signed > 0):
            self._add_to(pos, signed, ev.price, at, stop)
        else:
            self._reduce(pos, signed=signed, price=ev.price, at=at, stop=stop, fx=fx)

    def mark(self, ev: Mark) -> None:
        acc = self.account
        if ev.fx and any(acc.fx.get(c) != v for c, v in ev.fx.items()):
            acc = replace(acc, fx={**acc.fx, **ev.fx})
            self.account = acc
            self.fx_changed = True
        if acc.day is None or ev.at.date() > acc.day:
            # a new UTC day starts from the last equity of the previous one
            acc = replace(acc, day=ev.at.date(), day_start_equity=self.equity())
        for symbol, price in ev.prices.items():
            pos = self.positions.get(symbol)
            if pos is not None and ev.at >= pos.marked_at:
                self.positions[symbol] = replace(pos, mark_price=price, marked_at=ev.at)
                self.touched.add(symbol)
        marked_at = ev.at if acc.marked_at is None else max(acc.marked_at, ev.at)
        self.account = replace(acc, marked_at=marked_at)
        self.account = replace(
            self.account, peak_equity=max(self.account.peak_equity, self.equity())
        )

    # -- helpers -----------------------------------------------------------------------

    def _consume_reservation(self, ev: Fill) -> Reservation | None:
        res = self.reservations.get(ev.intent_id)
        if res is None:
            self.notes.append((ev.event_id, f"fill for {ev.intent_id}: no known approval"))
            return None
        if res.symbol != ev.symbol or res.side is not ev.side:
            self.notes.append(
                (ev.event_id, f"fill for {ev.intent_id} differs from the approved order")
            )
            return None
        remaining = res.quantity - ev.quantity
        self.released.append(res)
        if remaining > 0:
            left = replace(res, quantity=remaining)
            self.reservations[ev.intent_id] = left
            self.reserved.append(left)
        else:
            del self.reservations[ev.intent_id]
            if remaining < 0:
                self.notes.append((ev.event_id, f"fill for {ev.intent_id} exceeds the approval"))
        return res

    def _add_to(
        self, pos: Position, signed: Decimal, price: Decimal, at: datetime, stop: Decimal | None
    ) -> None:
        old, add = abs(pos.quantity), abs(signed)
        avg = (old * pos.avg_price + add * price) / (old + add)
        if stop is None or pos.stop_price is None:
            new_stop = None  # part of it has no known stop: the asset's rule applies
        else:  # the wider stop: more risk counted, never less
            new_stop = min(stop, pos.stop_price) if pos.is_long else max(stop, pos.stop_price)
        self.positions[pos.symbol] = replace(
            pos,
            quantity=pos.quantity + signed,
            avg_price=avg,
            mark_price=price,
            marked_at=max(at, pos.marked_at),
            stop_price=new_stop,
        )

    def _reduce(
        self,
        pos: Position,
        *,
        signed: Decimal,
        price: Decimal,
        at: datetime,
        stop: Decimal | None,
        fx: Decimal,
    ) -> None:
        closing = min(abs(pos.quantity), abs(signed))
        direction = 1 if pos.is_long else -1
        realized = closing * (price - pos.avg_price) * direction * fx
        self.account = replace(self.account, realized_pnl=self.account.realized_pnl + realized)
        remaining = pos.quantity + signed
        if remaining == 0:
            del self.positions[pos.symbol]
        elif (remaining > 0) == pos.is_long:
            self.positions[pos.symbol] = replace(
                pos, quantity=remaining, mark_price=price, marked_at=max(at, pos.marked_at)
            )
        else:  # flipped through zero: a new position at the fill price
            self.positions[pos.symbol] = replace(
                pos,
                quantity=remaining,
                avg_price=price,
                mark_price=price,
                marked_at=at,
                opened_at=at,
                stop_price=stop,
            )


def apply_events(
    snapshot: Snapshot, events: Iterable[PortfolioEvent], config: AssetsConfig, now: datetime
) -> Applied:
    """Apply events in order. ``now`` stands in for events that carry no ``at``."""
    book = _Book(snapshot, config)
    for ev in events:
        if isinstance(ev, Deposit):
            book.deposit(ev, now)
        elif isinstance(ev, Fill):
            book.fill(ev, now)
        elif isinstance(ev, Cancel):
            book.cancel(ev)
        elif isinstance(ev, Mark):
            book.mark(ev)
    return Applied(
        book.snapshot(),
        tuple(book.notes),
        frozenset(book.touched),
        tuple(book.released),
        tuple(book.reserved),
        book.fx_changed,
    )


def expire_reservations(
    snapshot: Snapshot, now: datetime
) -> tuple[Snapshot, tuple[Reservation, ...]]:
    """Drop reservations whose TTL has passed; returns the snapshot and what expired.

    Reservations are kept in expiry order (each is appended with ``now + TTL``; a
    loaded state is sorted once), so the scan stops at the first one still alive: it
    costs what expired, not what exists. Should that order ever be broken (clocks of
    two workers apart), a reservation expires late, never early: it holds risk longer.
    The same snapshot object comes back when nothing expired.
    """
    expired_list = []
    for r in snapshot.reservations.values():
        if r.expires_at > now:
            break
        expired_list.append(r)
    expired = tuple(expired_list)
    if not expired:
        return snapshot, ()
    live = dict(snapshot.reservations)
    for r in expired:
        del live[r.intent_id]
    return replace(snapshot, reservations=live), expired
