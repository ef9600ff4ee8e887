"""The portfolio snapshot a decision is made against, and how it is valued.

Everything here is immutable data plus pure arithmetic. The workers build a
:class:`Snapshot` from Redis; tests build one by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import ClassVar, Final

from gate.money import ONE, ZERO, ratio
from schemas.config import AssetsConfig
from schemas.messages import Side

EMPTY: Mapping[str, Decimal] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Position:
    """An open position. ``quantity`` is signed: positive long, negative short."""

    symbol: str
    asset_class: str | None
    quote_currency: str
    quantity: Decimal
    avg_price: Decimal
    mark_price: Decimal
    marked_at: datetime
    opened_at: datetime
    stop_price: Decimal | None = None
    changed_at: datetime | None = None  # its last fill (None: written before; opened_at)

    @property
    def last_change(self) -> datetime:
        return self.changed_at or self.opened_at

    @property
    def is_long(self) -> bool:
        return self.quantity > 0


class Reservation:
    """Risk held by an approved, not yet (fully) filled order.

    Immutable like the state's other values (snapshots share them), but a plain class
    rather than a frozen dataclass: every approval makes one, and a frozen dataclass's
    ``__init__`` sets each of its eleven fields through ``object.__setattr__`` (compiled,
    ``riskgate compile``, this constructor is native). The fields are ``Final``: mypy
    refuses any assignment outside ``__init__``; :meth:`with_quantity` makes a changed copy.
    """

    #: its fields in order: its constructor's, its repr's and the state codec's
    FIELDS: ClassVar[tuple[str, ...]] = (
        "intent_id",
        "agent_id",
        "symbol",
        "asset_class",
        "quote_currency",
        "side",
        "quantity",
        "price",
        "stop_price",
        "reduce_only",
        "expires_at",
    )
    __slots__ = (
        "agent_id",
        "asset_class",
        "expires_at",
        "intent_id",
        "price",
        "quantity",
        "quote_currency",
        "reduce_only",
        "side",
        "stop_price",
        "symbol",
    )

    def __init__(  # noqa: PLR0917 (the order the codec writes)
        self,
        intent_id: str,
        agent_id: str,
        symbol: str,
        asset_class: str,
        quote_currency: str,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        stop_price: Decimal | None,
        reduce_only: bool,
        expires_at: datetime,
    ) -> None:
        self.intent_id: Final = intent_id
        self.agent_id: Final = agent_id
        self.symbol: Final = symbol
        self.asset_class: Final = asset_class
        self.quote_currency: Final = quote_currency
        self.side: Final = side
        self.quantity: Final = quantity
        self.price: Final = price
        self.stop_price: Final = stop_price
        self.reduce_only: Final = reduce_only
        self.expires_at: Final = expires_at

    def _fields(self) -> tuple[object, ...]:
        return (
            self.intent_id,
            self.agent_id,
            self.symbol,
            self.asset_class,
            self.quote_currency,
            self.side,
            self.quantity,
            self.price,
            self.stop_price,
            self.reduce_only,
            self.expires_at,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reservation):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(self.FIELDS, self._fields(), strict=True))
        return f"Reservation({inner})"

    def with_quantity(self, quantity: Decimal) -> Reservation:
        """The same reservation holding ``quantity`` (what a partial fill leaves)."""
        return Reservation(
            self.intent_id,
            self.agent_id,
            self.symbol,
            self.asset_class,
            self.quote_currency,
            self.side,
            quantity,
            self.price,
            self.stop_price,
            self.reduce_only,
            self.expires_at,
        )


@dataclass(frozen=True, slots=True)
class Quote:
    """The latest trusted market price of a symbol (from a mark event) and its time."""

    price: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class Latch:
    """A tripped stop: it holds until an operator resumes, whatever the numbers do."""

    at: datetime
    value: Decimal  # the drawdown (or the day's loss) that tripped it


@dataclass(frozen=True, slots=True)
class Halt:
    """Trading halted by the ledger itself (an escalated fill) until an operator resumes."""

    at: datetime
    event_id: str  # the event that escalated
    reason: str


@dataclass(frozen=True, slots=True)
class Account:
    """Money and the deposit-free return index.

    ``units`` are fund units: a deposit buys units at the current value per unit
    (``nav = equity / units``) and a withdrawal sells them, so money in or out moves
    neither the nav nor its peak. The emergency stop and the daily-loss limit are
    measured on the nav, never on money.
    """

    cash: Decimal = ZERO
    peak_equity: Decimal = ZERO
    day_start_equity: Decimal = ZERO
    day: date | None = None
    realized_pnl: Decimal = ZERO
    marked_at: datetime | None = None
    fx: Mapping[str, Decimal] = field(default_factory=lambda: EMPTY)
    units: Decimal = ZERO
    peak_nav: Decimal = ZERO
    day_start_nav: Decimal = ZERO
    stopped: Latch | None = None  # emergency stop latched
    day_stopped: Latch | None = None  # daily-loss limit latched (for ``day``)
    fees: Decimal = ZERO  # fees paid, account currency
    halted_by: Halt | None = None  # an escalation halted trading (cleared by resume)


@dataclass(frozen=True, slots=True)
class Regime:
    """A market-regime flag and when it was assessed (it expires, see checks)."""

    value: str
    as_of: datetime | None  # None: written without a time (treated as expired)


@dataclass(frozen=True, slots=True)
class Flags:
    """Operator and market flags: kill switch, earnings dates, market regimes."""

    halted: bool = False
    earnings: Mapping[str, date] = field(default_factory=dict)
    regimes: Mapping[str, Regime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Correlations:
    """Pairwise correlations of daily returns, keyed by the sorted symbol pair."""

    pairs: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)
    as_of: datetime | None = None
    _by_symbol: Mapping[str, tuple[tuple[str, Decimal], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index: dict[str, list[tuple[str, Decimal]]] = {}
        for (a, b), c in self.pairs.items():
            index.setdefault(a, []).append((b, c))
            index.setdefault(b, []).append((a, c))
        object.__setattr__(self, "_by_symbol", {s: tuple(v) for s, v in index.items()})

    def partners(self, symbol: str) -> tuple[tuple[str, Decimal], ...]:
        """Every symbol with a known correlation to ``symbol``, and its value."""
        return self._by_symbol.get(symbol, ())

    def get(self, a: str, b: str) -> Decimal | None:
        if a == b:
            return ONE
        return self.pairs.get((a, b) if a < b else (b, a))

    @staticmethod
    def key(a: str, b: str) -> tuple[str, str]:
        return (a, b) if a < b else (b, a)


@dataclass(frozen=True, slots=True)
class RateCount:
    window: int
    count: int


#: One remembered approval of an agent in a symbol: side, requested quantity, decided at.
Approval = tuple[Side, Decimal, datetime]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a decision reads, as of one portfolio ``version``."""

    version: int = 0
    account: Account = field(default_factory=Account)
    positions: Mapping[str, Position] = field(default_factory=dict)
    reservations: Mapping[str, Reservation] = field(default_factory=dict)
    rates: Mapping[str, RateCount] = field(default_factory=dict)
    flags: Flags = field(default_factory=Flags)
    correlations: Correlations = field(default_factory=Correlations)
    marks: Mapping[str, Quote] = field(default_factory=dict)  # latest mark per symbol
    # (agent, symbol) -> its approved openings within the duplicate window, oldest first
    # (at most duplicates.DEPTH): what duplicate_order compares an opening with
    approvals: Mapping[tuple[str, str], tuple[Approval, ...]] = field(default_factory=dict)

    def quote(self, symbol: str) -> Quote | None:
        """The symbol's latest mark: the mark events', else an open position's."""
        q = self.marks.get(symbol)
        if q is not None:
            return q
        pos = self.positions.get(symbol)
        return Quote(pos.mark_price, pos.marked_at) if pos is not None else None


# --- valuation ------------------------------------------------------------------------


def fx_rate(currency: str, account: Account, config: AssetsConfig) -> Decimal:
    """Account-currency value of one unit of ``currency`` (live rate, else configured)."""
    rm = config.risk_management
    if currency == rm.account_currency:
        return ONE
    live = account.fx.get(currency)
    if live is not None:
        return live
    configured = rm.fx_rates.get(currency)
    if configured is None:
        raise KeyError(f"no fx rate for {currency}")
    return configured


def position_value(p: Position, account: Account, config: AssetsConfig) -> Decimal:
    """Signed market value in account currency."""
    return p.quantity * p.mark_price * fx_rate(p.quote_currency, account, config)


def equity(snapshot: Snapshot, config: AssetsConfig) -> Decimal:
    """Cash plus every position at its mark."""
    acc = snapshot.account
    return acc.cash + sum(
        (position_value(p, acc, config) for p in snapshot.positions.values()), ZERO
    )


def default_stop(price: Decimal, side: Side, symbol: str, config: AssetsConfig) -> Decimal:
    """The asset's stop rule applied to ``price``: percent, or pips for forex."""
    distance = stop_distance(price, symbol, config)
    return price - distance if side is Side.BUY else price + distance


def position_stop(p: Position, config: AssetsConfig) -> Decimal | None:
    """The position's own stop, else the asset's rule at the mark (None if unknown asset)."""
    if p.stop_price is not None:
        return p.stop_price
    if p.symbol not in config.assets:
        return None
    return default_stop(p.mark_price, Side.BUY if p.is_long else Side.SELL, p.symbol, config)


def stop_distance(price: Decimal, symbol: str, config: AssetsConfig) -> Decimal:
    """The asset's default stop distance at ``price`` (percent, or pips for forex)."""
    risk = config.assets[symbol].risk
    if risk.stop_loss_pips is not None:
        pip = config.assets[symbol].trading.pip_size
        assert pip is not None  # schema guarantees it
        return risk.stop_loss_pips * pip
    assert risk.stop_loss_pct is not None
    return price * risk.stop_loss_pct


def position_risk(p: Position, account: Account, config: AssetsConfig) -> Decimal:
    """Loss if the position were stopped out now. Unknown stop: the whole value (fail closed).

    A position at or through its stop (the stop may gap, or never fill) counts at
    least the asset's default stop distance from the mark: never about zero.
    """
    fx = fx_rate(p.quote_currency, account, config)
    stop = position_stop(p, config)
    if stop is None:
        return abs(p.quantity) * p.mark_price * fx
    through = p.mark_price <= stop if p.is_long else p.mark_price >= stop
    distance = abs(p.mark_price - stop)
    if through:
        distance = max(distance, stop_distance(p.mark_price, p.symbol, config))
    return abs(p.quantity) * distance * fx


def wider_stop(is_long: bool, *stops: Decimal) -> Decimal:
    """The stop farther from the price: more risk counted, never less."""
    return min(stops) if is_long else max(stops)


def nav(account: Account, current: Decimal) -> Decimal:
    """Value per fund unit at equity ``current`` (1 before the first deposit)."""
    if account.units <= 0:
        return ONE
    return current / account.units


def drawdown(current: Decimal, peak: Decimal) -> Decimal:
    """Fraction below the peak (0 at or above it)."""
    if peak <= 0 or current >= peak:
        return ZERO
    return ratio(peak - current, peak)


def daily_loss(current: Decimal, day_start: Decimal) -> Decimal:
    """Fraction lost since the start of the UTC day (0 when up)."""
    if day_start <= 0 or current >= day_start:
        return ZERO
    return ratio(day_start - current, day_start)


@dataclass(frozen=True, slots=True)
class Vitals:
    """Portfolio-level numbers that hold for a whole batch (reservations move none).

    ``drawdown`` and ``daily_loss`` are deposit-free: measured on the nav per unit.
    """

    equity: Decimal
    cash: Decimal
    peak_equity: Decimal
    drawdown: Decimal
    day_start_equity: Decimal
    daily_pnl: Decimal
    daily_loss: Decimal
    nav: Decimal = ONE
    peak_nav: Decimal = ONE
    stopped: Latch | None = None
    day_stopped: Latch | None = None

    @classmethod
    def of(cls, snapshot: Snapshot, current: Decimal, today: date) -> Vitals:
        acc = snapshot.account
        # no event yet today: equity has not moved since the last one, the day starts here
        same_day = acc.day == today
        day_start = acc.day_start_equity if same_day else current
        value = nav(acc, current)
        peak_nav = max(acc.peak_nav, value)
        day_nav = acc.day_start_nav if same_day and acc.day_start_nav > 0 else value
        return cls(
            equity=current,
            cash=acc.cash,
            peak_equity=max(acc.peak_equity, current),
            drawdown=nav_drawdown(value, peak_nav),
            day_start_equity=day_start,
            daily_pnl=current - day_start,
            daily_loss=nav_drawdown(value, day_nav),
            nav=value,
            peak_nav=peak_nav,
            stopped=acc.stopped,
            day_stopped=latched_today(acc, today),
        )


def latched_today(acc: Account, today: date) -> Latch | None:
    """The daily-loss latch if it was tripped ``today`` (a new UTC day clears it)."""
    latch = acc.day_stopped
    return latch if latch is not None and latch.at.date() == today else None


def nav_drawdown(value: Decimal, reference: Decimal) -> Decimal:
    """Fraction of ``reference`` lost; a nav at or below zero has lost everything."""
    if reference <= 0:
        return ZERO if value > 0 else ONE
    if value >= reference:
        return ZERO
    return min(ONE, ratio(reference - value, reference))
