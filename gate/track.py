"""The track record: portfolio events turned into fills, round trips and daily closes. Pure.

The book is kept with :func:`gate.ledger.apply_events`, the gate's own average-cost
accounting, one event at a time so each event's effect can be read off: a fill's
realized PnL is the change in the account's realized PnL, a mark's close is the
equity right after it. On top of the snapshot a :class:`Track` keeps cumulative
net deposits, realized PnL per symbol and the open round trip per symbol.

A **round trip** runs from flat to flat: the fill that opens a position starts it,
fills that add or partly close continue it, the fill that brings the position to
zero closes it; a fill that flips the position closes one and opens the next.

**Fees.** A fill's ``fee`` is in the symbol's quote currency, like its price, and is
converted with the same fx rate the ledger uses for that fill's price. The track
charges it: cash (so equity, daily PnL and returns), the symbol's realized PnL (so
per-asset and per-class daily PnL) and the round trip's PnL (so win rate) are all
net of fees. The fee of a fill that flips a position is split between the trip it
closes and the one it opens in proportion to the quantity of each.
(:func:`gate.ledger.apply_events` charges fees to cash and realized PnL; the track
splits them over round trips.)

Only money events change the track: deposits, fills, cancels and marks. Anything
else on the events stream (``resume``, an operator's reset of the gate's latched
stops) is no profit, loss or capital and leaves the track as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from gate.ledger import PortfolioEvent, apply_events
from gate.portfolio import Position, Snapshot, equity, fx_rate
from schemas.config import AssetsConfig
from schemas.messages import Cancel, Deposit, Fill, Mark, Side

TRACKED = (Deposit, Fill, Cancel, Mark)  # the events that move money or marks

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class OpenTrip:
    opened_at: datetime
    direction: str  # "long" | "short"
    max_quantity: Decimal
    fills: int
    realized: Decimal  # net of the fees charged to the trip so far
    fees: Decimal = ZERO  # account currency


@dataclass(frozen=True, slots=True)
class Track:
    snapshot: Snapshot = field(default_factory=Snapshot)
    net_deposits: Decimal = ZERO
    realized: Mapping[str, Decimal] = field(default_factory=dict)  # per symbol, all time
    trips: Mapping[str, OpenTrip] = field(default_factory=dict)
    classes: Mapping[str, str | None] = field(default_factory=dict)  # symbol -> asset class


@dataclass(frozen=True, slots=True)
class FillRow:
    event_id: str
    intent_id: str
    symbol: str
    asset_class: str | None
    side: Side
    quantity: Decimal
    price: Decimal
    executed_at: datetime
    position_before: Decimal
    position_after: Decimal
    avg_price_after: Decimal | None
    realized_pnl: Decimal  # account currency, net of this fill's fee
    closes_trip: bool
    fee: Decimal = ZERO  # as on the fill: quote currency
    fee_account: Decimal = ZERO  # the same in the account currency


@dataclass(frozen=True, slots=True)
class TripRow:
    close_event_id: str
    symbol: str
    asset_class: str | None
    direction: str
    opened_at: datetime
    closed_at: datetime
    max_quantity: Decimal
    fills: int
    realized_pnl: Decimal  # net of fees
    fees: Decimal = ZERO  # account currency


@dataclass(frozen=True, slots=True)
class CloseRow:
    day: date
    at: datetime
    equity: Decimal
    net_deposits: Decimal
    asset_pnl: Mapping[str, Decimal]  # symbol -> realized to date + unrealized now


@dataclass(frozen=True, slots=True)
class Derived:
    fills: tuple[FillRow, ...] = ()
    trips: tuple[TripRow, ...] = ()
    closes: tuple[CloseRow, ...] = ()
    notes: tuple[tuple[str, str], ...] = ()


def _direction(quantity: Decimal) -> str:
    return "long" if quantity > 0 else "short"


def class_of(symbol: str, config: AssetsConfig, position: Position | None = None) -> str | None:
    """The configured asset class, else the position's (None for unknown symbols)."""
    asset = config.assets.get(symbol)
    if asset is not None:
        return asset.asset_class.value
    return position.asset_class if position is not None else None


def unrealized(p: Position, snapshot: Snapshot, config: AssetsConfig) -> Decimal:
    """Open PnL at the mark, in the account currency."""
    return (
        (p.mark_price - p.avg_price)
        * p.quantity
        * fx_rate(p.quote_currency, snapshot.account, config)
    )


def asset_pnl(track: Track, config: AssetsConfig) -> dict[str, Decimal]:
    """Cumulative PnL per symbol ever traded: realized so far plus unrealized now."""
    snap = track.snapshot
    out = dict(track.realized)
    for symbol, p in snap.positions.items():
        out[symbol] = out.get(symbol, ZERO) + unrealized(p, snap, config)
    return out


class _Recorder:
    def __init__(self, track: Track, config: AssetsConfig) -> None:
        self.track = track
        self.config = config
        self.realized = dict(track.realized)
        self.trips = dict(track.trips)
        self.classes = dict(track.classes)
        self.fills: list[FillRow] = []
        self.closed: list[TripRow] = []
        self.closes: list[CloseRow] = []
        self.notes: list[tuple[str, str]] = []

    def apply(self, ev: PortfolioEvent, now: datetime) -> None:
        if not isinstance(ev, TRACKED):
            return  # resume: no money moved, nothing to record
        before = self.track.snapshot
        applied = apply_events(before, [ev], self.config, now)
        self.notes.extend(applied.notes)
        if applied.refused:  # what the gate refuses (dated in its future, ...) never happened
            self.notes.extend(applied.refused)
            return
        after = applied.snapshot
        # the ledger charges the fee to cash and realized PnL, at the fill's fx
        fee = after.account.fees - before.account.fees
        net = self.track.net_deposits + (ev.amount if isinstance(ev, Deposit) else ZERO)
        self.track = replace(self.track, snapshot=after, net_deposits=net)
        if isinstance(ev, Fill):
            self._fill(ev, min(ev.at or now, now), before, after, fee)
        elif isinstance(ev, Mark):
            self._close(min(ev.at, now), after)

    def _quote(self, symbol: str, snapshot: Snapshot) -> str:
        """The quote currency the ledger values this symbol's fills in."""
        asset = self.config.assets.get(symbol)
        if asset is not None:
            return asset.trading.quote_currency
        pos = snapshot.positions.get(symbol)
        return pos.quote_currency if pos else self.config.risk_management.account_currency

    def _fill(
        self, ev: Fill, at: datetime, before: Snapshot, after: Snapshot, fee: Decimal
    ) -> None:
        symbol = ev.symbol
        old, new = before.positions.get(symbol), after.positions.get(symbol)
        gained = after.account.realized_pnl - before.account.realized_pnl  # net of the fee
        self.realized[symbol] = self.realized.get(symbol, ZERO) + gained
        cls = class_of(symbol, self.config, new or old)
        self.classes[symbol] = cls
        qty_before = old.quantity if old else ZERO
        qty_after = new.quantity if new else ZERO
        closes = old is not None and (new is None or (new.quantity > 0) != (old.quantity > 0))
        # a flip's fee is shared by the trip it closes and the one it opens, by quantity
        opening_fee = ZERO
        if closes and new is not None:
            opening_fee = fee * abs(new.quantity) / ev.quantity
        elif old is None:
            opening_fee = fee
        if old is not None:
            trip = self.trips.get(symbol) or OpenTrip(  # opened before the track began
                old.opened_at, _direction(old.quantity), abs(old.quantity), 1, ZERO
            )
            trip = replace(
                trip,
                fills=trip.fills + 1,
                realized=trip.realized + gained + opening_fee,
                fees=trip.fees + fee - opening_fee,
            )
            if closes:
                self.trips.pop(symbol, None)
                self.closed.append(
                    TripRow(
                        close_event_id=ev.event_id,
                        symbol=symbol,
                        asset_class=cls,
                        direction=trip.direction,
                        opened_at=trip.opened_at,
                        closed_at=max(at, trip.opened_at),
                        max_quantity=trip.max_quantity,
                        fills=trip.fills,
                        realized_pnl=trip.realized,
                        fees=trip.fees,
                    )
                )
            else:
                self.trips[symbol] = replace(
                    trip, max_quantity=max(trip.max_quantity, abs(qty_after))
                )
        if new is not None and (old is None or closes):
            self.trips[symbol] = OpenTrip(
                at, _direction(new.quantity), abs(new.quantity), 1, -opening_fee, opening_fee
            )
        self.fills.append(
            FillRow(
                event_id=ev.event_id,
                intent_id=ev.intent_id,
                symbol=symbol,
                asset_class=cls,
                side=ev.side,
                quantity=ev.quantity,
                price=ev.price,
                executed_at=at,
                position_before=qty_before,
                position_after=qty_after,
                avg_price_after=new.avg_price if new else None,
                realized_pnl=gained,
                closes_trip=closes,
                fee=ev.fee or ZERO,
                fee_account=fee,
            )
        )

    def _close(self, at: datetime, after: Snapshot) -> None:
        track = replace(self.track, realized=self.realized)
        self.closes.append(
            CloseRow(
                day=at.date(),
                at=at,
                equity=equity(after, self.config),
                net_deposits=self.track.net_deposits,
                asset_pnl=asset_pnl(track, self.config),
            )
        )

    def result(self) -> tuple[Track, Derived]:
        track = replace(self.track, realized=self.realized, trips=self.trips, classes=self.classes)
        derived = Derived(
            tuple(self.fills), tuple(self.closed), tuple(self.closes), tuple(self.notes)
        )
        return track, derived


def record(
    track: Track, events: Iterable[tuple[PortfolioEvent, datetime]], config: AssetsConfig
) -> tuple[Track, Derived]:
    """Apply events in order; ``datetime`` stands in for an event that carries no ``at``."""
    recorder = _Recorder(track, config)
    for ev, now in events:
        recorder.apply(ev, now)
    return recorder.result()
