"""Portfolio events (deposit, fill, cancel, mark, resume) applied to a snapshot, purely.

``now`` is the gate's clock (Redis's, never a worker host's). An event dated more
than ``max_clock_skew_seconds`` ahead of it is *refused*: not applied, reported in
:attr:`Applied.refused` for the worker to dead-letter. Accepted times are clamped to
``now``, so nothing an executor writes lies in the future: not a mark (which would
freeze the symbol's price and move the day), not a fill's ``opened_at``.

The executor's fills are the truth: a fill is applied even when no approval is
known for it, and the oddity is reported as a note for the worker to log.

After every event the deposit-free return index (:class:`gate.portfolio.Account`)
is settled: its peak follows the nav, and a drawdown at the emergency stop, or a
day's loss at the daily limit, *latches* until an operator's ``resume`` event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from gate.money import ONE, ZERO
from gate.portfolio import (
    Latch,
    Position,
    Quote,
    Reservation,
    Snapshot,
    default_stop,
    equity,
    fx_rate,
    latched_today,
    nav,
    nav_drawdown,
    wider_stop,
)
from schemas.config import AssetsConfig
from schemas.messages import AnyEvent, Cancel, Deposit, Fill, Mark, Resume, Side

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
    marks_touched: frozenset[str] = frozenset()
    refused: tuple[tuple[str, str], ...] = ()  # (event_id, why): not applied

    @property
    def reservations_touched(self) -> frozenset[str]:
        return frozenset(r.intent_id for r in (*self.released, *self.reserved))


def future_dated(
    ev: PortfolioEvent, reference: datetime, config: AssetsConfig, clock: str = "Redis TIME"
) -> str | None:
    """Why ``ev`` is dated too far ahead of ``reference`` (a Redis time), or None."""
    skew = config.risk_management.max_clock_skew_seconds
    at = getattr(ev, "at", None)
    if at is None or at - reference <= timedelta(seconds=skew):
        return None
    ahead = int((at - reference).total_seconds())
    return (
        f"{ev.type} is dated {at.isoformat()}, {ahead}s ahead of the gate's clock "
        f"({clock} {reference.isoformat()}); max_clock_skew_seconds is {skew}"
    )


def refusal(ev: PortfolioEvent, cash: Decimal, config: AssetsConfig, now: datetime) -> str | None:
    """Why ``ev`` may not be applied, with ``cash`` in the account at ``now``, or None."""
    ahead = future_dated(ev, now, config)
    if ahead is not None:
        return ahead
    if isinstance(ev, Deposit) and ev.amount < 0 and -ev.amount > cash:
        return f"withdrawal of {-ev.amount} is larger than the cash {cash}; close positions first"
    return None


class _Book:
    """Mutable working copy of one snapshot, private to :func:`apply_events`."""

    def __init__(self, snapshot: Snapshot, config: AssetsConfig, now: datetime) -> None:
        self.base = snapshot
        self.config = config
        self.now = now
        self.account = snapshot.account
        self.positions = dict(snapshot.positions)
        self.reservations = dict(snapshot.reservations)
        self.marks = dict(snapshot.marks)
        self.notes: list[tuple[str, str]] = []
        self.refused: list[tuple[str, str]] = []
        self.touched: set[str] = set()
        self.marks_touched: set[str] = set()
        self.released: list[Reservation] = []
        self.reserved: list[Reservation] = []
        self.fx_changed = False

    def snapshot(self) -> Snapshot:
        return replace(
            self.base,
            account=self.account,
            positions=self.positions,
            reservations=self.reservations,
            marks=self.marks,
        )

    def equity(self) -> Decimal:
        return equity(self.snapshot(), self.config)

    def when(self, at: datetime | None) -> datetime:
        """An event's time on the gate's clock: never after ``now``."""
        return self.now if at is None or at > self.now else at

    # -- the return index and the stops ------------------------------------------------

    def roll_day(self, at: datetime) -> None:
        """A new UTC day starts from the last equity (and nav) of the previous one."""
        acc = self.account
        if acc.day is None or at.date() > acc.day:
            eq = self.equity()
            self.account = replace(
                acc, day=at.date(), day_start_equity=eq, day_start_nav=nav(acc, eq)
            )

    def settle(self, at: datetime) -> None:
        """Peaks follow equity and nav; a stop reached latches."""
        acc = self.account
        eq = self.equity()
        value = nav(acc, eq)
        peak_nav = max(acc.peak_nav, value)
        rm = self.config.risk_management
        stopped, day_stopped = acc.stopped, acc.day_stopped
        dd = nav_drawdown(value, peak_nav)
        if stopped is None and dd >= rm.emergency_stop_drawdown:
            stopped = Latch(at, dd)
        day_nav = acc.day_start_nav if acc.day_start_nav > 0 else value
        loss = nav_drawdown(value, day_nav)
        if latched_today(acc, at.date()) is None and loss >= rm.daily_loss_limit:
            day_stopped = Latch(at, loss)
        self.account = replace(
            acc,
            peak_equity=max(acc.peak_equity, eq),
            peak_nav=peak_nav,
            stopped=stopped,
            day_stopped=day_stopped,
        )

    # -- events ------------------------------------------------------------------------

    def deposit(self, ev: Deposit) -> None:
        at = self.when(ev.at)
        self.roll_day(at)
        before = self.equity()
        acc = self.account
        per_unit = nav(acc, before)
        if acc.units <= 0 or per_unit <= 0:
            # first money in (or a wiped-out portfolio): units at 1; a latched stop holds
            units = acc.units + ev.amount
            peak_nav = acc.peak_nav if acc.units > 0 else ONE
            day_nav = acc.day_start_nav if acc.units > 0 else ONE
        else:
            units = acc.units + ev.amount / per_unit
            peak_nav, day_nav = acc.peak_nav, acc.day_start_nav
        after = before + ev.amount
        self.account = replace(
            acc,
            cash=acc.cash + ev.amount,
            peak_equity=max(acc.peak_equity + ev.amount, after),
            day_start_equity=acc.day_start_equity + ev.amount,
            units=max(ZERO, units),
            peak_nav=peak_nav,
            day_start_nav=day_nav,
        )
        self.settle(at)

    def resume(self, ev: Resume) -> None:
        """An operator clears the latches; the reference peak restarts from here."""
        at = self.when(ev.at)
        self.roll_day(at)
        acc = self.account
        eq = self.equity()
        value = nav(acc, eq)
        cleared = []
        if acc.stopped is not None:
            cleared.append(
                f"emergency stop latched {acc.stopped.at.isoformat()} at drawdown "
                f"{acc.stopped.value:.4f}"
            )
        if acc.day_stopped is not None:
            cleared.append(
                f"daily-loss stop latched {acc.day_stopped.at.isoformat()} at a loss of "
                f"{acc.day_stopped.value:.4f}"
            )
        self.account = replace(
            acc,
            stopped=None,
            day_stopped=None,
            peak_nav=value,
            day_start_nav=value,
            peak_equity=eq,
            day_start_equity=eq,
        )
        what = "; ".join(cleared) or "no stop was latched"
        self.notes.append(
            (
                ev.event_id,
                f"resume by {ev.operator} ({ev.reason}): cleared {what}; reference peak "
                f"reset from nav {acc.peak_nav} to {value} (equity {eq})",
            )
        )

    def cancel(self, ev: Cancel) -> None:
        gone = self.reservations.pop(ev.intent_id, None)
        if gone is None:
            self.notes.append((ev.event_id, f"cancel for {ev.intent_id}: no open reservation"))
        else:
            self.released.append(gone)

    def fill(self, ev: Fill) -> None:
        at = self.when(ev.at)
        self.roll_day(at)
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
        fee = (ev.fee or ZERO) * fx
        acc = self.account
        self.account = replace(
            acc,
            cash=acc.cash - signed * ev.price * fx - fee,
            realized_pnl=acc.realized_pnl - fee,
            fees=acc.fees + fee,
        )
        # valued at the latest trusted mark when there is one: the fill's price is what
        # was paid, not what the position is worth
        mark = self.marks.get(ev.symbol)
        value, valued_at = (mark.price, mark.at) if mark is not None else (ev.price, at)
        if pos is None:
            self.positions[ev.symbol] = Position(
                symbol=ev.symbol,
                asset_class=asset_class,
                quote_currency=quote,
                quantity=signed,
                avg_price=ev.price,
                mark_price=value,
                marked_at=valued_at,
                opened_at=at,
                stop_price=stop,
            )
        elif (pos.quantity > 0) == (signed > 0):
            self._add_to(pos, signed, ev.price, (value, valued_at), stop)
        else:
            self._reduce(pos, signed=signed, price=ev.price, at=at, stop=stop, fx=fx)
            moved = self.positions.get(ev.symbol)
            if moved is not None and mark is not None:
                self.positions[ev.symbol] = replace(moved, mark_price=value, marked_at=valued_at)
        self.settle(at)

    def mark(self, ev: Mark) -> None:
        at = self.when(ev.at)
        acc = self.account
        if ev.fx and any(acc.fx.get(c) != v for c, v in ev.fx.items()):
            self.account = replace(acc, fx={**acc.fx, **ev.fx})
            self.fx_changed = True
        self.roll_day(at)
        ignored = []
        for symbol, price in ev.prices.items():
            pos = self.positions.get(symbol)
            if symbol not in self.config.assets and pos is None:
                ignored.append(symbol)  # unbounded state from unknown names: no
                continue
            last = self.marks.get(symbol)
            if last is None or at >= last.at:
                self.marks[symbol] = Quote(price, at)
                self.marks_touched.add(symbol)
            if pos is not None and at >= pos.marked_at:
                self.positions[symbol] = replace(pos, mark_price=price, marked_at=at)
                self.touched.add(symbol)
        if ignored:
            shown = ", ".join(sorted(ignored)[:5])
            self.notes.append((ev.event_id, f"marks for unconfigured symbols ignored: {shown}"))
        acc = self.account
        marked_at = at if acc.marked_at is None else max(acc.marked_at, at)
        self.account = replace(acc, marked_at=marked_at)
        self.settle(at)

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

    def _known_stop(self, stop: Decimal | None, price: Decimal, pos: Position) -> Decimal | None:
        """A part's stop: its own, else the asset's rule at its price (None if unknown)."""
        if stop is not None:
            return stop
        if pos.symbol not in self.config.assets:
            return None
        side = Side.BUY if pos.is_long else Side.SELL
        return default_stop(price, side, pos.symbol, self.config)

    def _add_to(
        self,
        pos: Position,
        signed: Decimal,
        price: Decimal,
        valued: tuple[Decimal, datetime],
        stop: Decimal | None,
    ) -> None:
        old, add = abs(pos.quantity), abs(signed)
        avg = (old * pos.avg_price + add * price) / (old + add)
        if stop is None and pos.stop_price is None:
            new_stop = None  # no known stop at all: the asset's rule at the mark applies
        else:  # the wider stop, a missing one standing in by the asset's rule
            a = self._known_stop(stop, price, pos)
            b = self._known_stop(pos.stop_price, pos.mark_price, pos)
            known = [s for s in (a, b) if s is not None]
            new_stop = wider_stop(pos.is_long, *known) if known else None
        value, valued_at = valued
        newer = valued_at >= pos.marked_at
        self.positions[pos.symbol] = replace(
            pos,
            quantity=pos.quantity + signed,
            avg_price=avg,
            mark_price=value if newer else pos.mark_price,
            marked_at=max(valued_at, pos.marked_at),
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
    """Apply events in order at the gate's clock ``now``; implausible ones are refused."""
    book = _Book(snapshot, config, now)
    for ev in events:
        why = refusal(ev, book.account.cash, config, now)
        if why is not None:
            book.refused.append((ev.event_id, why))
        elif isinstance(ev, Deposit):
            book.deposit(ev)
        elif isinstance(ev, Fill):
            book.fill(ev)
        elif isinstance(ev, Cancel):
            book.cancel(ev)
        elif isinstance(ev, Mark):
            book.mark(ev)
        else:
            book.resume(ev)
    return Applied(
        book.snapshot(),
        tuple(book.notes),
        frozenset(book.touched),
        tuple(book.released),
        tuple(book.reserved),
        book.fx_changed,
        frozenset(book.marks_touched),
        tuple(book.refused),
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
