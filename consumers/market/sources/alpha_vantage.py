"""Alpha Vantage: stocks, ETFs and forex (``alpha_vantage``), the failover for Polygon and
the earnings calendar. Plain httpx: there is no official Python client, and the API is
one ``GET /query?function=...`` (documentation: https://www.alphavantage.co/documentation/).

* Bars: ``TIME_SERIES_DAILY`` (``"Time Series (Daily)": {"YYYY-MM-DD": {"1. open", "2. high",
  "3. low", "4. close", "5. volume"}}``); forex ``FX_DAILY`` (``"Time Series FX (Daily)"``,
  no volume).
* Latest: stocks ``TIME_SERIES_INTRADAY`` 1min (the newest bar's close, dated at the end of
  its minute in ``"6. Time Zone"``; ``GLOBAL_QUOTE`` carries only a date, which cannot
  tell a mark's age); forex ``CURRENCY_EXCHANGE_RATE`` (``"5. Exchange Rate"`` at
  ``"6. Last Refreshed"`` in ``"7. Time Zone"``).
* Earnings: ``EARNINGS_CALENDAR`` (CSV: ``symbol,name,reportDate,fiscalDateEnding,
  estimate,currency``), every US listing for three months in one request.

Alpha Vantage answers limits and refusals with HTTP 200 and a JSON ``Note``,
``Information`` or ``Error Message``: each is a failure here, never data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from consumers.market.prices import Bar
from consumers.market.sources.base import (
    Asset,
    CalendarEvent,
    Kind,
    MalformedResponse,
    NotConfigured,
    Quote,
    Source,
    SourceFailed,
    bar_of,
    decimal,
    field_of,
)
from consumers.market.sources.gateway import Gateway

BASE = "https://www.alphavantage.co/query"
ENV_KEY = "ALPHA_VANTAGE_KEY"
EARNINGS_HEADER = ["symbol", "name", "reportDate", "fiscalDateEnding", "estimate", "currency"]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo({"US/Eastern": "America/New_York"}.get(name, name))
    except (ZoneInfoNotFoundError, ValueError):
        raise MalformedResponse(f"alpha_vantage: unknown time zone {name!r}") from None


class AlphaVantage(Source):
    name = "alpha_vantage"
    serves = frozenset({Kind.BARS, Kind.LATEST, Kind.EARNINGS})
    classes = frozenset({"stocks", "leveraged_etfs", "meme_stocks", "forex"})

    def __init__(self, gateway: Gateway, env: Mapping[str, str]) -> None:
        self.gateway = gateway
        self.key = env.get(ENV_KEY, "").strip()

    def problem(self) -> str | None:
        return None if self.key else f"{ENV_KEY} is not set"

    def covers(self, asset: Asset) -> bool:
        return asset.asset_class in self.classes and (
            asset.asset_class != "forex" or "/" in asset.symbol
        )

    def _params(self, function: str, **more: str) -> dict[str, str]:
        if not self.key:
            raise NotConfigured(f"{self.name}: {ENV_KEY} is not set")
        return {"function": function, **more, "apikey": self.key}

    def _json(self, function: str, **more: str) -> dict[str, Any] | None:
        """The body; None for an ``Error Message`` (Alpha Vantage's answer to a symbol it
        does not know: that symbol goes to the next source)."""
        body = self.gateway.json(self.name, BASE, params=self._params(function, **more),
                                 missing_ok=True)  # fmt: skip
        if body is None:
            return None
        if not isinstance(body, dict):
            raise MalformedResponse(f"{self.name} {function}: not a JSON object")
        if "Error Message" in body and len(body) == 1:
            return None
        for refusal in ("Note", "Information"):
            if refusal in body:
                text = " ".join(str(body[refusal]).split())[:160]
                raise SourceFailed(self.gateway.clean(f"{self.name} {function}: {text}"))
        return body

    def bars(self, assets: Sequence[Asset], start: date, end: date) -> list[Bar]:
        out: list[Bar] = []
        for asset in assets:
            if asset.asset_class == "forex":
                base, quote = asset.symbol.split("/", 1)
                body = self._json("FX_DAILY", from_symbol=base, to_symbol=quote)
                series_key = "Time Series FX (Daily)"
            else:
                body = self._json("TIME_SERIES_DAILY", symbol=asset.symbol, outputsize="compact")
                series_key = "Time Series (Daily)"
            if body is None:
                continue
            series = field_of(body, series_key, f"{self.name} {asset.symbol}")
            if not isinstance(series, dict):
                raise MalformedResponse(f"{self.name} {asset.symbol}: {series_key} not an object")
            for day, v in sorted(series.items()):
                what = f"{self.name} {asset.symbol} {day}"
                try:
                    d = date.fromisoformat(day)
                except ValueError:
                    raise MalformedResponse(f"{what}: not a date") from None
                if not start <= d <= end:
                    continue
                at = datetime(d.year, d.month, d.day, tzinfo=UTC)
                ohlcv = (field_of(v, "1. open", what), field_of(v, "2. high", what),
                         field_of(v, "3. low", what), field_of(v, "4. close", what),
                         v.get("5. volume"))  # fmt: skip
                out.append(bar_of(asset, at, ohlcv, self.name, what))
        return out

    def latest(self, assets: Sequence[Asset]) -> list[Quote]:
        quotes = [self._fx(a) if a.asset_class == "forex" else self._intraday(a) for a in assets]
        return [q for q in quotes if q is not None]

    def _fx(self, asset: Asset) -> Quote | None:
        base, quote = asset.symbol.split("/", 1)
        body = self._json("CURRENCY_EXCHANGE_RATE", from_currency=base, to_currency=quote)
        if body is None:
            return None
        what = f"{self.name} {asset.symbol}"
        rate = field_of(body, "Realtime Currency Exchange Rate", what)
        price = decimal(field_of(rate, "5. Exchange Rate", what), f"{what} rate")
        at = self._stamp(field_of(rate, "6. Last Refreshed", what),
                         field_of(rate, "7. Time Zone", what), what)  # fmt: skip
        return Quote(asset.symbol, price, at)

    def _intraday(self, asset: Asset) -> Quote | None:
        body = self._json("TIME_SERIES_INTRADAY", symbol=asset.symbol, interval="1min")
        if body is None:
            return None
        what = f"{self.name} {asset.symbol}"
        meta = field_of(body, "Meta Data", what)
        series = field_of(body, "Time Series (1min)", what)
        if not isinstance(series, dict) or not series:
            raise MalformedResponse(f"{what}: no 1min bars")
        newest = max(series)
        close = decimal(field_of(series[newest], "4. close", f"{what} {newest}"), what)
        at = self._stamp(newest, field_of(meta, "6. Time Zone", what), what)
        return Quote(asset.symbol, close, at + timedelta(minutes=1))  # the bar's end

    @staticmethod
    def _stamp(text: Any, zone: Any, what: str) -> datetime:
        try:
            local = datetime.strptime(str(text), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise MalformedResponse(f"{what}: time {text!r} is not YYYY-MM-DD HH:MM:SS") from None
        return local.replace(tzinfo=_zone(str(zone))).astimezone(UTC)

    def earnings(self, assets: Sequence[Asset], start: date, end: date) -> list[CalendarEvent]:
        wanted = {a.symbol: a for a in assets}
        text = self.gateway.text(
            self.name, BASE, params=self._params("EARNINGS_CALENDAR", horizon="3month")
        )
        if text.lstrip().startswith("{"):  # a JSON refusal instead of the CSV
            raise SourceFailed(self.gateway.clean(f"{self.name} EARNINGS_CALENDAR: {text[:160]}"))
        rows = csv.reader(io.StringIO(text))
        header = next(rows, None)
        if header is None or [h.strip() for h in header][:6] != EARNINGS_HEADER:
            raise MalformedResponse(f"{self.name} EARNINGS_CALENDAR: header {header!r}")
        out: list[CalendarEvent] = []
        for line, row in enumerate(rows, start=2):
            if not row or row[0] not in wanted:
                continue
            try:
                d = date.fromisoformat(row[2])
            except (ValueError, IndexError):
                raise MalformedResponse(
                    f"{self.name} EARNINGS_CALENDAR line {line}: reportDate {row[2:3]!r}"
                ) from None
            if start <= d <= end:
                out.append(earnings_event(wanted[row[0]], d, row[4] if len(row) > 4 else ""))
        return out


def earnings_event(asset: Asset, day: date, estimate: str = "") -> CalendarEvent:
    """An earnings report: one event per symbol and day, dated at the day's start (UTC)."""
    try:
        forecast = decimal(estimate, "estimate", signed=True) if estimate.strip() else None
    except MalformedResponse:
        forecast = None  # an unreadable EPS estimate is not a reason to lose the date
    return CalendarEvent(
        event_time=datetime(day.year, day.month, day.day, tzinfo=UTC),
        country="US",
        event_name=f"{asset.symbol} earnings",
        impact="high",
        kind="earnings",
        symbol=asset.symbol,
        affected_classes=(asset.asset_class,),
        forecast=forecast,
        unit="EPS",
        volatility_warning=True,
    )
