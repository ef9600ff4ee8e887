"""The one small interface every data-source adapter implements, and what it returns.

A source serves some of seven kinds of data (:class:`Kind`): daily ``bars``, the
``latest`` prices (for marks), ``earnings`` dates, ``calendar`` events (macro, energy),
``sentiment``, ``options_flow`` and ``indicators``. Each method takes the assets it
is asked about and returns what it found for them; an asset missing from the answer
is one the source could not serve this time (the router asks the next source for it).

Failures are exceptions with a reason a person can read: :class:`NotConfigured`
(credentials or a library missing: reported, never a crash), :class:`SourceFailed`
(HTTP errors, timeouts: the router fails over), :class:`MalformedResponse` (a body
that is not what the provider documents: fail closed, nothing from it is used) and
:class:`RateLimited` (the shared limiter has no budget left in time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from consumers.market.prices import Bar
from schemas.config import AssetConfig

Clock = Callable[[], datetime]


class Kind(StrEnum):
    BARS = "bars"
    LATEST = "latest"
    EARNINGS = "earnings"
    CALENDAR = "calendar"
    SENTIMENT = "sentiment"
    OPTIONS = "options_flow"
    INDICATORS = "indicators"


class SourceError(Exception):
    """Anything that keeps a source from answering (the message says what)."""


class NotConfigured(SourceError):
    """Credentials (or an optional library) are missing: the source is skipped."""


class SourceFailed(SourceError):
    """The provider did not answer usably (HTTP error, timeout, refused): fail over."""


class MalformedResponse(SourceFailed):
    """The body is not shaped as the provider documents: nothing from it is used."""


class RateLimited(SourceError):
    """The shared limiter had no request left for this source within the wait allowed."""


@dataclass(frozen=True, slots=True)
class Asset:
    """A configured symbol as the adapters see it."""

    symbol: str
    asset_class: str
    config: AssetConfig


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    price: Decimal
    at: datetime  # when the provider observed it (UTC), never when we asked


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    event_time: datetime
    country: str
    event_name: str
    impact: str  # low | medium | high
    kind: str  # earnings | macro | energy
    symbol: str | None = None
    affected_classes: tuple[str, ...] = ()
    forecast: Decimal | None = None
    previous: Decimal | None = None
    actual: Decimal | None = None
    unit: str | None = None
    volatility_warning: bool = False


@dataclass(frozen=True, slots=True)
class Sentiment:
    time: datetime
    symbol: str
    platform: str
    mentions: int
    score: Decimal | None
    bullish_ratio: Decimal | None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OptionPrint:
    time: datetime
    symbol: str
    trade_id: str
    option_type: str  # call | put
    strike: Decimal
    expiry: date
    contracts: int
    premium: Decimal
    trade_type: str  # sweep | block | split | single
    side: str | None = None
    underlying_price: Decimal | None = None
    implied_volatility: Decimal | None = None
    open_interest: int | None = None
    sentiment: str | None = None
    unusual: bool = True


@dataclass(frozen=True, slots=True)
class Indicator:
    time: datetime
    symbol: str
    indicator: str
    value: Decimal | None
    text_value: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Source:
    """Base adapter: serves nothing until a subclass says what it serves."""

    name: str = ""
    serves: frozenset[Kind] = frozenset()
    classes: frozenset[str] = frozenset()  # asset classes it can price (empty: any)

    def problem(self) -> str | None:
        """Why the source cannot be used (missing credentials), or None."""
        return None

    def covers(self, asset: Asset) -> bool:
        return not self.classes or asset.asset_class in self.classes

    def bars(self, assets: Sequence[Asset], start: date, end: date) -> list[Bar]:
        raise SourceFailed(f"{self.name} serves no bars")

    def latest(self, assets: Sequence[Asset]) -> list[Quote]:
        raise SourceFailed(f"{self.name} serves no latest prices")

    def earnings(self, assets: Sequence[Asset], start: date, end: date) -> list[CalendarEvent]:
        raise SourceFailed(f"{self.name} serves no earnings calendar")

    def calendar(self, assets: Sequence[Asset], start: date, end: date) -> list[CalendarEvent]:
        raise SourceFailed(f"{self.name} serves no calendar")

    def sentiment(self, assets: Sequence[Asset]) -> list[Sentiment]:
        raise SourceFailed(f"{self.name} serves no sentiment")

    def options_flow(self, assets: Sequence[Asset]) -> list[OptionPrint]:
        raise SourceFailed(f"{self.name} serves no options flow")

    def indicators(self, assets: Sequence[Asset]) -> list[Indicator]:
        raise SourceFailed(f"{self.name} serves no indicators")

    def close(self) -> None:
        return None


# -- parsing helpers shared by the adapters ----------------------------------------------


def decimal(value: Any, what: str, *, positive: bool = True, signed: bool = False) -> Decimal:
    """A provider's number (string or JSON number) as an exact Decimal, or
    MalformedResponse naming the field."""
    if isinstance(value, bool) or value is None:
        raise MalformedResponse(f"{what} is {value!r}, expected a number")
    try:
        out = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise MalformedResponse(f"{what} is {value!r}, expected a number") from None
    if not out.is_finite():
        raise MalformedResponse(f"{what} is {value!r}, expected a finite number")
    if not signed and (out < 0 or (positive and out == 0)):
        sign = "positive" if positive else "non-negative"
        raise MalformedResponse(f"{what} is {value!r}, expected a {sign} number")
    return out


def field_of(obj: Any, key: str, what: str) -> Any:
    """``obj[key]`` of a JSON object, or MalformedResponse saying what is missing."""
    if not isinstance(obj, Mapping):
        raise MalformedResponse(f"{what} is {type(obj).__name__}, expected an object")
    if key not in obj:
        raise MalformedResponse(f"{what} has no {key!r}")
    return obj[key]


def list_of(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedResponse(f"{what} is {type(value).__name__}, expected a list")
    return value


def bar_of(asset: Asset, at: datetime, ohlcv: Sequence[Any], source: str, what: str) -> Bar:
    """A daily bar, checked like ``riskgate prices load`` checks a file's (high is the
    highest, low the lowest): a bar that breaks that is malformed, not stored."""
    o, h, low, c, v = ohlcv
    bar = Bar(
        time=at,
        symbol=asset.symbol,
        asset_class=asset.asset_class,
        interval="1d",
        open=decimal(o, f"{what} open"),
        high=decimal(h, f"{what} high"),
        low=decimal(low, f"{what} low"),
        close=decimal(c, f"{what} close"),
        volume=None if v is None else decimal(v, f"{what} volume", positive=False),
        source=source,
    )
    assert bar.open is not None and bar.high is not None and bar.low is not None
    if bar.high < max(bar.open, bar.close, bar.low) or bar.low > min(bar.open, bar.close):
        raise MalformedResponse(f"{what}: high/low do not bound open and close")
    return bar
