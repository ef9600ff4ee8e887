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

    @property
    def is_long(self) -> bool:
        return self.quantity > 0


@dataclass(frozen=True, slots=True)
class Reservation:
    """Risk held by an approved, not yet (fully) filled order."""

    intent_id: str
    agent_id: str
    symbol: str
    asset_class: str
    quote_currency: str
    side: Side
    quantity: Decimal
    price: Decimal
    stop_price: Decimal | None
    reduce_only: bool
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Account:
    cash: Decimal = ZERO
    peak_equity: Decimal = ZERO
    day_start_equity: Decimal = ZERO
    day: date | None = None
    realized_pnl: Decimal = ZERO
    marked_at: datetime | None = None
    fx: Mapping[str, Decimal] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True, slots=True)
class Flags:
    """Operator and market flags: kill switch, earnings dates, market regimes."""

    halted: bool = False
    earnings: Mapping[str, date] = field(default_factory=dict)
    regimes: Mapping[str, str] = field(default_factory=dict)


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
    asset = config.assets[symbol]
    risk = asset.risk
    if risk.stop_loss_pips is not None:
        assert asset.trading.pip_size is not None  # schema guarantees it
        distance = risk.stop_loss_pips * asset.trading.pip_size
    else:
        assert risk.stop_loss_pct is not None
        distance = price * risk.stop_loss_pct
    return price - distance if side is Side.BUY else price + distance


def position_stop(p: Position, config: AssetsConfig) -> Decimal | None:
    """The position's own stop, else the asset's rule at the mark (None if unknown asset)."""
    if p.stop_price is not None:
        return p.stop_price
    if p.symbol not in config.assets:
        return None
    return default_stop(p.mark_price, Side.BUY if p.is_long else Side.SELL, p.symbol, config)


def position_risk(p: Position, account: Account, config: AssetsConfig) -> Decimal:
    """Loss if the position were stopped out now. Unknown stop: the whole value (fail closed).

    Measured as ``|mark - stop|`` even when the mark is already past the stop, so a
    position through its stop still counts as heat.
    """
    fx = fx_rate(p.quote_currency, account, config)
    stop = position_stop(p, config)
    if stop is None:
        return abs(p.quantity) * p.mark_price * fx
    return abs(p.quantity) * abs(p.mark_price - stop) * fx


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
    """Portfolio-level numbers that hold for a whole batch (reservations move none)."""

    equity: Decimal
    cash: Decimal
    peak_equity: Decimal
    drawdown: Decimal
    day_start_equity: Decimal
    daily_pnl: Decimal
    daily_loss: Decimal

    @classmethod
    def of(cls, snapshot: Snapshot, current: Decimal, today: date) -> Vitals:
        acc = snapshot.account
        # no mark yet today: the day starts from the equity we have now
        day_start = acc.day_start_equity if acc.day == today else current
        peak = max(acc.peak_equity, current)
        return cls(
            equity=current,
            cash=acc.cash,
            peak_equity=peak,
            drawdown=drawdown(current, peak),
            day_start_equity=day_start,
            daily_pnl=current - day_start,
            daily_loss=daily_loss(current, day_start),
        )
