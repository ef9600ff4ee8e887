"""OANDA v20 REST: forex pairs and commodity CFDs (``oanda_api``). Plain httpx: the
Python wrappers (``oandapyV20``, ``v20``) have not been released since 2021 and 2018,
and we use two GET endpoints.

* Bars: ``GET /v3/instruments/{instrument}/candles?granularity=D&price=M&from=..&to=..``
  (documented at https://developer.oanda.com/rest-live-v20/instrument-ep/): ``candles[]``
  of ``{time (RFC 3339), mid {o, h, l, c}, volume, complete}``, prices as strings.
* Latest: ``GET /v3/accounts/{accountID}/pricing?instruments=A,B`` (documented at
  https://developer.oanda.com/rest-live-v20/pricing-ep/): ``prices[]`` of
  ``{instrument, time, closeoutBid, closeoutAsk, tradeable}``; the mark is the mid.

Our symbols map to instruments by ``/`` -> ``_`` (``GBP/JPY`` -> ``GBP_JPY``,
``XAG/USD`` -> ``XAG_USD``, ``NATGAS/USD`` -> ``NATGAS_USD``). Credentials:
``OANDA_API_KEY`` (a personal access token) and ``OANDA_ACCOUNT_ID``;
``OANDA_ENVIRONMENT`` = ``practice`` (default) or ``live`` picks the host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta

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

HOSTS = {
    "practice": "https://api-fxpractice.oanda.com",
    "live": "https://api-fxtrade.oanda.com",
}
RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z$")


def instrument(symbol: str) -> str:
    return symbol.replace("/", "_")


def rfc3339(value: object, what: str) -> datetime:
    """OANDA's times carry nanoseconds (``2016-10-17T15:16:40.000000000Z``)."""
    m = RFC3339.match(value) if isinstance(value, str) else None
    if m is None:
        raise MalformedResponse(f"{what} is {value!r}, expected an RFC 3339 UTC time")
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(m.group(1)).replace(microsecond=int(frac), tzinfo=UTC)


class Oanda(Source):
    name = "oanda_api"
    serves = frozenset({Kind.BARS, Kind.LATEST})
    classes = frozenset({"forex", "commodities"})

    def __init__(self, gateway: Gateway, env: Mapping[str, str]) -> None:
        self.gateway = gateway
        self.key = env.get("OANDA_API_KEY", "").strip()
        self.account = env.get("OANDA_ACCOUNT_ID", "").strip()
        self.environment = env.get("OANDA_ENVIRONMENT", "practice").strip() or "practice"

    def problem(self) -> str | None:
        missing = [n for n, v in (("OANDA_API_KEY", self.key), ("OANDA_ACCOUNT_ID", self.account))
                   if not v]  # fmt: skip
        if missing:
            return f"{' and '.join(missing)} not set"
        if self.environment not in HOSTS:
            return f"OANDA_ENVIRONMENT must be practice or live, not {self.environment!r}"
        return None

    def _get(self, path: str, params: Mapping[str, str], *, missing_ok: bool = False) -> object:
        why = self.problem()
        if why:
            raise NotConfigured(f"{self.name}: {why}")
        headers = {"Authorization": f"Bearer {self.key}", "Accept-Datetime-Format": "RFC3339"}
        return self.gateway.json(
            self.name, HOSTS[self.environment] + path, params=params, headers=headers,
            missing_ok=missing_ok,
        )  # fmt: skip

    def bars(self, assets: Sequence[Asset], start: date, end: date) -> list[Bar]:
        out: list[Bar] = []
        begin = datetime.combine(start, time(), UTC)
        # "to" may not be in the future (OANDA refuses it): at most now, our clock
        finish = min(datetime.combine(end + timedelta(days=1), time(), UTC), self.gateway.clock())
        for asset in assets:
            body = self._get(
                f"/v3/instruments/{instrument(asset.symbol)}/candles",
                {"granularity": "D", "price": "M", "from": begin.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "to": finish.strftime("%Y-%m-%dT%H:%M:%SZ")},
                missing_ok=True,
            )  # fmt: skip
            if body is None:
                continue  # an instrument this account cannot see: the next source
            what = f"{self.name} {asset.symbol}"
            for i, c in enumerate(list_of(field_of(body, "candles", what), f"{what} candles")):
                cw = f"{what} candles[{i}]"
                mid = field_of(c, "mid", cw)
                at = rfc3339(field_of(c, "time", cw), f"{cw}.time")
                ohlc = tuple(field_of(mid, x, cw) for x in "ohlc")
                out.append(bar_of(asset, at, (*ohlc, None), self.name, cw))
        return out

    def latest(self, assets: Sequence[Asset]) -> list[Quote]:
        by_instrument = {instrument(a.symbol): a for a in assets}
        body = self._get(
            f"/v3/accounts/{self.account}/pricing", {"instruments": ",".join(by_instrument)}
        )
        what = f"{self.name} pricing"
        out: list[Quote] = []
        for i, p in enumerate(list_of(field_of(body, "prices", what), f"{what} prices")):
            pw = f"{what} prices[{i}]"
            asset = by_instrument.get(field_of(p, "instrument", pw))
            if asset is None:
                continue
            bid = decimal(field_of(p, "closeoutBid", pw), f"{pw}.closeoutBid")
            ask = decimal(field_of(p, "closeoutAsk", pw), f"{pw}.closeoutAsk")
            if ask < bid:
                raise MalformedResponse(f"{pw}: ask {ask} below bid {bid}")
            out.append(Quote(asset.symbol, (bid + ask) / 2, rfc3339(field_of(p, "time", pw), pw)))
        return out
