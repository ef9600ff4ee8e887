"""Portfolio events (deposit, fill, cancel, expired, mark, resume, release) applied to a
snapshot, purely.

A reservation lives as long as its order: it is released only by a terminal event for
that order (a fill of all of it, ``cancel`` or ``expired`` from the executor) or by an
operator's ``release``. Past its ``good_till`` an unconfirmed reservation keeps
counting (:func:`overdue` lists them): an order the gate cannot see may still fill.

``now`` is the gate's clock (Redis's, never a worker host's). An event dated more
than ``max_clock_skew_seconds`` ahead of it is *refused*: not applied, reported in
:attr:`Applied.refused` for the worker to dead-letter. Accepted times are clamped to
``now``, so nothing an executor writes lies in the future: not a mark (which would
freeze the symbol's price and move the day), not a fill's ``opened_at``.

Fills are facts, but not every report of one is plausible. A fill is *refused* when
it cannot be valued or placed in time: its symbol is not configured (unless it only
reduces a position left from an older config), it is dated more than
``max_clock_skew_seconds`` before the position's last fill, or its price is further
than the class's ``fill_band`` from the latest mark. A plausible fill the gate never
approved is *applied* (it is a position now) and, when it adds risk, *escalated*:
reported in :attr:`Applied.escalations` (``unknown_fill``) and the account is halted
(:attr:`gate.portfolio.Account.halted_by`) until an operator's ``resume`` event.
docs/PROTOCOL.md gives the case-by-case reasoning.

After every event the deposit-free return index (:class:`gate.portfolio.Account`)
is settled: its peak follows the nav, and a drawdown at the emergency stop, or a
day's loss at the daily limit, *latches* until an operator's ``resume`` event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from gate.layered import Draft
from gate.money import ONE, ZERO
from gate.portfolio import (
    Halt,
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
from schemas.messages import (
    AnyEvent,
    Cancel,
    Deposit,
    Expired,
    Fill,
    Mark,
    Release,
    Resume,
    Side,
)

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
    escalations: tuple[tuple[str, str], ...] = ()  # (event_id, why): applied, halted

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


#: How much sooner than its applied marker expires an event is refused as too old
#: (:func:`event_window`): more than any clock skew an event may carry, and than any
#: lag between an entry's arrival and the gate reading it.
STALE_MARGIN = timedelta(hours=1)


def event_window(dedupe_ttl_s: int, max_clock_skew_seconds: int) -> timedelta:
    """How old an event may be and still be applied: the dedupe TTL (how long an applied
    marker lives) less :data:`STALE_MARGIN`, or less half the TTL when it is under two
    hours. The margin must exceed the clock skew an event may carry (an event is at most
    that far ahead of its arrival), else ValueError."""
    ttl = timedelta(seconds=dedupe_ttl_s)
    margin = min(STALE_MARGIN, ttl / 2)
    if margin <= timedelta(seconds=max_clock_skew_seconds):
        raise ValueError(
            f"a dedupe TTL of {dedupe_ttl_s}s leaves no safe window for events: it must be "
            f"over twice max_clock_skew_seconds ({max_clock_skew_seconds})"
        )
    return ttl - margin


def too_old(
    ev: PortfolioEvent,
    reference: datetime,
    window: timedelta,
    clock: str = "its stream id",
    *,
    received: datetime | None = None,
) -> str | None:
    """Why ``ev`` is too old to apply at ``reference``, or None.

    Its ``at`` (without one, ``received``: when Redis took it in, if given) is more than
    ``window`` (:func:`event_window`) before ``reference``: its applied marker may be
    gone, so applying it could apply it a second time.
    """
    at = getattr(ev, "at", None) or received
    if at is None or reference - at <= window:
        return None
    age = int((reference - at).total_seconds())
    dated = "dated" if getattr(ev, "at", None) is not None else "received"
    return (
        f"{ev.type} {ev.event_id} is {dated} {at.isoformat()}, {age}s before {clock} "
        f"({reference.isoformat()}); events more than {int(window.total_seconds())}s old "
        "(the dedupe window less its margin) may have been applied already and are not "
        "applied again"
    )


def refusal(ev: PortfolioEvent, cash: Decimal, config: AssetsConfig, now: datetime) -> str | None:
    """Why ``ev`` may not be applied, with ``cash`` in the account at ``now``, or None."""
    ahead = future_dated(ev, now, config)
    if ahead is not None:
        return ahead
    if isinstance(ev, Deposit) and ev.amount < 0 and -ev.amount > cash:
        return f"withdrawal of {-ev.amount} is larger than the cash {cash}; close positions first"
    return None


def only_reduces(ev: Fill, position: Position | None) -> bool:
    """The fill shrinks ``position`` without flipping it: it can only lower risk."""
    if position is None:
        return False
    opposite = (position.quantity > 0) is (ev.side is Side.SELL)
    return opposite and ev.quantity <= abs(position.quantity)


def fill_refusal(
    ev: Fill,
    position: Position | None,
    mark: Quote | None,
    config: AssetsConfig,
    now: datetime,
) -> str | None:
    """Why the fill ``ev`` is implausible against the symbol's open ``position`` and
    latest trusted ``mark``, or None. Independent of reservations, so the gate and the
    phase monitor's track (which has none) refuse the same fills."""
    asset = config.assets.get(ev.symbol)
    at = now if ev.at is None or ev.at > now else ev.at
    if asset is None and not only_reduces(ev, position):
        return (
            f"fill for {ev.symbol}, a symbol that is not configured: nothing could mark, "
            "limit or value it (only a fill reducing a position left from an older config "
            "is accepted)"
        )
    skew = config.risk_management.max_clock_skew_seconds
    if position is not None and position.last_change - at > timedelta(seconds=skew):
        behind = int((position.last_change - at).total_seconds())
        return (
            f"fill is dated {at.isoformat()}, {behind}s before the {ev.symbol} position's "
            f"last fill ({position.last_change.isoformat()}); max_clock_skew_seconds is {skew}"
        )
    if asset is not None and mark is not None:
        band = config.asset_classes[asset.asset_class].fill_band
        off = abs(ev.price - mark.price) / mark.price
        if off > band:
            return (
                f"fill price {ev.price} is {off:.2%} from the {ev.symbol} mark {mark.price} "
                f"({mark.at.isoformat()}); the {asset.asset_class.value} fill_band is {band:.0%}"
            )
    return None


class _Book:
    """Mutable working copy of one snapshot, private to :func:`apply_events`."""

    def __init__(self, snapshot: Snapshot, config: AssetsConfig, now: datetime) -> None:
        self.base = snapshot
        self.config = config
        self.now = now
        self.account = snapshot.account
        self.positions = dict(snapshot.positions)
        self.reservations = Draft(snapshot.reservations)  # copies nothing
        self.marks = dict(snapshot.marks)
        self.notes: list[tuple[str, str]] = []
        self.refused: list[tuple[str, str]] = []
        self.escalations: list[tuple[str, str]] = []
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
            reservations=self.reservations.done(),
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
        if acc.halted_by is not None:
            cleared.append(
                f"halt by event {acc.halted_by.event_id} at {acc.halted_by.at.isoformat()} "
                f"({acc.halted_by.reason})"
            )
        self.account = replace(
            acc,
            stopped=None,
            day_stopped=None,
            halted_by=None,
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

    def end(self, ev: Cancel | Expired | Release) -> None:
        """The order ended (the executor says so) or an operator released it."""
        gone = self.reservations.pop(ev.intent_id, None)
        if gone is None:
            self.notes.append((ev.event_id, f"{ev.type} for {ev.intent_id}: no open reservation"))
            return
        self.released.append(gone)
        if isinstance(ev, Release):
            self.notes.append(
                (
                    ev.event_id,
                    f"release by {ev.operator} ({ev.reason}): reservation of {ev.intent_id} "
                    f"({gone.side.value} {gone.quantity} {gone.symbol}, good till "
                    f"{gone.expires_at.isoformat()}) released",
                )
            )

    def fill(self, ev: Fill) -> None:
        at = self.when(ev.at)
        self.roll_day(at)
        pos = self.positions.get(ev.symbol)
        res = self._consume_reservation(ev, pos)
        asset = self.config.assets.get(ev.symbol)
        if asset is not None:
            asset_class: str | None = asset.asset_class.value
            quote = asset.trading.quote_currency
        elif pos is not None:
            asset_class, quote = pos.asset_class, pos.quote_currency
        else:  # refused before this (fill_refusal); kept for direct callers
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
                changed_at=at,
            )
        elif (pos.quantity > 0) == (signed > 0):
            self._add_to(pos, signed, ev.price, (value, valued_at), stop)
        else:
            self._reduce(pos, signed=signed, price=ev.price, at=at, stop=stop, fx=fx)
            moved = self.positions.get(ev.symbol)
            if moved is not None and mark is not None:
                self.positions[ev.symbol] = replace(moved, mark_price=value, marked_at=valued_at)
        moved = self.positions.get(ev.symbol)
        if moved is not None:
            self.positions[ev.symbol] = replace(moved, changed_at=max(at, moved.last_change))
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

    def _consume_reservation(self, ev: Fill, pos: Position | None) -> Reservation | None:
        res = self.reservations.get(ev.intent_id)
        what = f"{ev.side.value} {ev.quantity} {ev.symbol} at {ev.price}"
        if res is None or res.symbol != ev.symbol or res.side is not ev.side:
            odd = "no known approval" if res is None else "differs from the approved order"
            if only_reduces(ev, pos):  # it only lowers risk: worth a note, not a halt
                self.notes.append((ev.event_id, f"fill for {ev.intent_id} ({what}): {odd}"))
            else:
                self._escalate(ev, f"fill for {ev.intent_id} ({what}): {odd}")
            return None
        remaining = res.quantity - ev.quantity
        self.released.append(res)
        if remaining > 0:
            left = res.with_quantity(remaining)
            self.reservations[ev.intent_id] = left
            self.reserved.append(left)
        else:
            del self.reservations[ev.intent_id]
            asset = self.config.assets.get(ev.symbol)
            slack = asset.risk.lot_size if asset is not None else ZERO
            if -remaining > slack:
                self._escalate(
                    ev,
                    f"fill for {ev.intent_id} ({what}) exceeds the {res.quantity} left of "
                    f"its approval by {-remaining}",
                )
            elif remaining < 0:
                self.notes.append((ev.event_id, f"fill for {ev.intent_id} exceeds the approval"))
        return res

    def _escalate(self, ev: Fill, why: str) -> None:
        """Applied, but the gate never approved this risk: halt until an operator resumes."""
        self.escalations.append((ev.event_id, why))
        if self.config.risk_management.halt_on_unknown_fill and self.account.halted_by is None:
            halt = Halt(self.when(ev.at), ev.event_id, f"unknown_fill: {why}")
            self.account = replace(self.account, halted_by=halt)

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
    """Apply events in order at the gate's clock ``now``; implausible ones are refused.
    No events: the snapshot itself (a batch of intents alone copies nothing)."""
    events = list(events)
    if not events:
        return Applied(snapshot, ())
    book = _Book(snapshot, config, now)
    for ev in events:
        why = refusal(ev, book.account.cash, config, now)
        if why is None and isinstance(ev, Fill):
            symbol = ev.symbol
            why = fill_refusal(ev, book.positions.get(symbol), book.marks.get(symbol), config, now)
        if why is not None:
            book.refused.append((ev.event_id, why))
        elif isinstance(ev, Deposit):
            book.deposit(ev)
        elif isinstance(ev, Fill):
            book.fill(ev)
        elif isinstance(ev, Cancel | Expired | Release):
            book.end(ev)
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
        tuple(book.escalations),
    )


def overdue(snapshot: Snapshot, now: datetime) -> tuple[Reservation, ...]:
    """Reservations past their order's ``good_till`` at ``now``, oldest first: still
    counted (the order may still fill), waiting for the executor's ``fill``, ``cancel``
    or ``expired``, or an operator's ``release``.

    Reservations are kept in ``good_till`` order (each is appended with ``now + TTL``;
    a loaded state is sorted once), so the scan stops at the first one still in force:
    it costs what is overdue, not what exists.
    """
    late = []
    for r in snapshot.reservations.values():
        if r.expires_at > now:
            break
        late.append(r)
    return tuple(late)
