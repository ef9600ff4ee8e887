"""Polygon.io: US stocks and ETFs, daily bars and the latest trade (``polygon_io``).

Plain httpx, not Polygon's client: two GET endpoints and their JSON are all we use,
and every request must pass the shared limiter and the usage counters first, which
the client's own pooling and retries would go around. The key travels in the
``Authorization: Bearer`` header Polygon documents, never in a URL (logs stay clean).

* Bars: ``GET /v2/aggs/ticker/{ticker}/range/1/day/{from}/{to}`` (documented at
  https://polygon.io/docs/stocks/get_v2_aggs_ticker__stocksticker__range__multiplier___timespan___from___to):
  ``results[]`` of ``{o, h, l, c, v, t}``, ``t`` the bar's start in Unix ms.
* Latest: ``GET /v2/snapshot/locale/us/markets/stocks/tickers?tickers=A,B`` (documented at
  https://polygon.io/docs/stocks/get_v2_snapshot_locale_us_markets_stocks_tickers):
  ``tickers[]`` with ``lastTrade {p, t (ns)}``, else the last minute bar ``min {c, t (ms)}``
  dated by its start (the older time: a mark never looks fresher than it is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

from consumers.market.prices import Bar
from consumers.market.sources.base import (
    Asset,
    Kind,
    MalformedResponse,
    NotConfigured,
    Quote,
    Source,
    bar_of,
    decimal,
    field_of,
    list_of,
)
from consumers.market.sources.gateway import Gateway

BASE = "https://api.polygon.io"
ENV_KEY = "POLYGON_API_KEY"


def ms_time(value: object, what: str) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise MalformedResponse(f"{what} is {value!r}, expected Unix milliseconds")
    return datetime.fromtimestamp(value / 1000, UTC)


class Polygon(Source):
    name = "polygon_io"
    serves = frozenset({Kind.BARS, Kind.LATEST})
    classes = frozenset({"stocks", "leveraged_etfs", "meme_stocks"})

    def __init__(self, gateway: Gateway, env: Mapping[str, str]) -> None:
        self.gateway = gateway
        self.key = env.get(ENV_KEY, "").strip()

    def problem(self) -> str | None:
        return None if self.key else f"{ENV_KEY} is not set"

    def _get(self, path: str, params: Mapping[str, str], *, missing_ok: bool = False) -> object:
        if not self.key:
            raise NotConfigured(f"{self.name}: {ENV_KEY} is not set")
        headers = {"Authorization": f"Bearer {self.key}"}
        body = self.gateway.json(self.name, BASE + path, params=params, headers=headers,
                                 missing_ok=missing_ok)  # fmt: skip
        if body is None:
            return None
        status = field_of(body, "status", f"{self.name} response")
        if status not in ("OK", "DELAYED"):
            raise MalformedResponse(f"{self.name}: status {status!r}")
        return body

    def bars(self, assets: Sequence[Asset], start: date, end: date) -> list[Bar]:
        out: list[Bar] = []
        for asset in assets:
            path = f"/v2/aggs/ticker/{asset.symbol}/range/1/day/{start}/{end}"
            body = self._get(path, {"adjusted": "true", "sort": "asc", "limit": "50000"},
                             missing_ok=True)  # fmt: skip
            rows = body.get("results", []) if isinstance(body, dict) else []
            for i, r in enumerate(list_of(rows, f"{self.name} {asset.symbol} results")):
                what = f"{self.name} {asset.symbol} results[{i}]"
                at = ms_time(field_of(r, "t", what), f"{what}.t")
                ohlcv = (r.get("o"), r.get("h"), r.get("l"), field_of(r, "c", what), r.get("v"))
                out.append(bar_of(asset, at, ohlcv, self.name, what))
        return out

    def latest(self, assets: Sequence[Asset]) -> list[Quote]:
        wanted = {a.symbol: a for a in assets}
        body = self._get(
            "/v2/snapshot/locale/us/markets/stocks/tickers", {"tickers": ",".join(wanted)}
        )
        rows = list_of(field_of(body, "tickers", f"{self.name} snapshot"), f"{self.name} tickers")
        out: list[Quote] = []
        for i, row in enumerate(rows):
            what = f"{self.name} tickers[{i}]"
            symbol = field_of(row, "ticker", what)
            if symbol not in wanted:
                continue
            trade, minute = row.get("lastTrade") or {}, row.get("min") or {}
            if trade.get("p") is not None and trade.get("t"):
                t = trade["t"]
                if not isinstance(t, int) or t <= 0:
                    raise MalformedResponse(f"{what}.lastTrade.t is {t!r}, expected ns")
                price = decimal(trade["p"], f"{what}.lastTrade.p")
                at = datetime.fromtimestamp(t / 1e9, UTC)
            elif minute.get("c") is not None and minute.get("t"):
                price = decimal(minute["c"], f"{what}.min.c")
                at = ms_time(minute["t"], f"{what}.min.t")
            else:
                continue  # no trade yet: not served, the next source is asked
            out.append(Quote(symbol, price, at))
        return out
