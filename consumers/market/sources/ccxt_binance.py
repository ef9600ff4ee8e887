"""Binance spot through ccxt (``ccxt_binance``): crypto daily bars and latest prices.

ccxt is the well-kept client for crypto exchanges (symbols as we write them,
``BTC/USDT``; the exchange's quirks handled), so it is used rather than raw HTTP. It
is heavy (~75 MB), so it is the optional extra ``riskgate[feeds]``; without it this
source reports "not configured" and nothing else changes. ccxt's own per-process
throttle is off: every HTTP request it makes goes through the shared limiter and the
usage counters first (:class:`_AdmittedSession`, the ``requests`` session ccxt uses).

* Bars: ``fetch_ohlcv(symbol, "1d", since)`` over ``GET /api/v3/klines`` (documented at
  https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints):
  ``[[open time ms, open, high, low, close, volume, ...]]``.
* Latest: ``fetch_tickers([...])`` over ``GET /api/v3/ticker/24hr``: the ticker's
  ``lastPrice`` (the raw string, exact) at its ``closeTime``.
* ``load_markets`` first reads ``GET /api/v3/exchangeInfo`` (spot markets only).

Public market data needs no key; ``BINANCE_API_KEY`` is not read.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

import requests

from consumers.market.prices import Bar
from consumers.market.sources.base import (
    Asset,
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


class _AdmittedSession(requests.Session):
    """ccxt's HTTP session: each request is admitted by the shared limiter first."""

    def __init__(self, gateway: Gateway, source: str) -> None:
        super().__init__()
        self._gateway = gateway
        self._source = source

    def request(self, method: Any, url: Any, *a: Any, **kw: Any) -> Any:
        self._gateway.admit(self._source)
        return super().request(method, url, *a, **kw)


class CcxtBinance(Source):
    name = "ccxt_binance"
    serves = frozenset({Kind.BARS, Kind.LATEST})
    classes = frozenset({"crypto"})

    def __init__(
        self,
        gateway: Gateway,
        env: Mapping[str, str],
        adapter: requests.adapters.BaseAdapter | None = None,
    ) -> None:
        self.gateway = gateway
        self.session = _AdmittedSession(gateway, self.name)
        if adapter is not None:  # tests: recorded responses at the HTTP layer
            self.session.mount("https://", adapter)
        self._exchange: Any = None
        self._missing: str | None = None
        if importlib.util.find_spec("ccxt") is None:  # imported on first use (~2 s)
            self._missing = "ccxt is not installed (pip install 'riskgate[feeds]')"

    def problem(self) -> str | None:
        return self._missing

    def _ex(self) -> Any:
        if self._missing:
            raise NotConfigured(f"{self.name}: {self._missing}")
        if self._exchange is None:
            import ccxt  # noqa: PLC0415 - the optional extra

            self._exchange = ccxt.binance({
                "session": self.session, "enableRateLimit": False, "timeout": 10_000,
                "options": {"fetchMarkets": {"types": ["spot"]}},
            })  # fmt: skip
        return self._exchange

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        import ccxt  # noqa: PLC0415 - the optional extra

        try:
            return fn(*args)
        except (ccxt.NetworkError, ccxt.ExchangeError) as exc:
            text = " ".join(str(exc).split())[:200]
            raise SourceFailed(self.gateway.clean(f"{self.name} {what}: {type(exc).__name__}: "
                                                  f"{text}")) from None  # fmt: skip
        except (TypeError, KeyError, ValueError, IndexError) as exc:  # ccxt parsing junk
            raise MalformedResponse(f"{self.name} {what}: unreadable response ({exc!r})") from None

    def bars(self, assets: Sequence[Asset], start: date, end: date) -> list[Bar]:
        ex = self._ex()
        since = int(datetime.combine(start, time(), UTC).timestamp() * 1000)
        days = (end - start).days + 1
        out: list[Bar] = []
        for asset in assets:
            rows = self._call(f"fetch_ohlcv {asset.symbol}", ex.fetch_ohlcv, asset.symbol, "1d",
                              since, min(days, 1000))  # fmt: skip
            if not isinstance(rows, list):
                raise MalformedResponse(f"{self.name} {asset.symbol}: OHLCV is not a list")
            for i, r in enumerate(rows):
                what = f"{self.name} {asset.symbol} ohlcv[{i}]"
                if not isinstance(r, list) or len(r) < 6 or not isinstance(r[0], int):
                    raise MalformedResponse(f"{what}: expected [ms, o, h, l, c, v]")
                at = datetime.fromtimestamp(r[0] / 1000, UTC)
                if at.date() > end:
                    continue
                out.append(bar_of(asset, at, tuple(r[1:6]), self.name, what))
        return out

    def latest(self, assets: Sequence[Asset]) -> list[Quote]:
        ex = self._ex()
        symbols = [a.symbol for a in assets]
        tickers = self._call("fetch_tickers", ex.fetch_tickers, symbols)
        if not isinstance(tickers, dict):
            raise MalformedResponse(f"{self.name}: tickers are not an object")
        out: list[Quote] = []
        for symbol in symbols:
            t = tickers.get(symbol)
            if t is None:
                continue  # not served: the next source (if any) is asked
            what = f"{self.name} ticker {symbol}"
            info = field_of(t, "info", what)
            price = decimal(field_of(info, "lastPrice", what), f"{what} lastPrice")
            close = field_of(info, "closeTime", what)
            if not isinstance(close, int) or close <= 0:
                raise MalformedResponse(f"{what}: closeTime {close!r}")
            out.append(Quote(symbol, price, datetime.fromtimestamp(close / 1000, UTC)))
        return out
