"""Replaying the providers' recorded responses (tests/fixtures/providers/) at the HTTP
layer: respx routes for the httpx adapters, a ``requests`` adapter for ccxt.

``shift`` re-dates a recording to a new moment: every time in it (Unix ms and ns,
``created_utc`` seconds, ISO dates and times, Alpha Vantage's US/Eastern local times,
dates as keys) moves by the same ``timedelta``, so a market recorded on
:data:`RECORDED_AT` reads as today's. Nothing else in a body changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import requests
import respx
from requests.adapters import BaseAdapter
from requests.models import PreparedRequest, Response

from tests.fixtures.providers.generate import RECORDED_AT

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "providers"
NEW_YORK = ZoneInfo("America/New_York")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
LOCAL = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
ISO = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?Z")


def _text(value: str, shift: timedelta) -> str:
    if LOCAL.fullmatch(value):
        local = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=NEW_YORK)
        return f"{(local + shift).astimezone(NEW_YORK):%Y-%m-%d %H:%M:%S}"
    if DATE.fullmatch(value) and value < "9000":  # 9999-12-31 means "open-ended"
        return str((datetime.combine(date.fromisoformat(value), time(12)) + shift).date())
    m = ISO.fullmatch(value)
    if m:
        moved = datetime.fromisoformat(m.group(1)) + shift
        return f"{moved:%Y-%m-%dT%H:%M:%S}{m.group(2) or ''}Z"
    return value


def redate(body: Any, shift: timedelta, key: str = "") -> Any:
    if isinstance(body, dict):
        return {_text(k, shift): redate(v, shift, k) for k, v in body.items()}
    if isinstance(body, list):
        return [redate(v, shift, key) for v in body]
    if isinstance(body, str):
        return _text(body, shift)
    if isinstance(body, bool):
        return body
    if isinstance(body, int) and 10**12 <= body < 4 * 10**12:
        return body + int(shift.total_seconds() * 1000)
    if isinstance(body, int) and 10**18 <= body < 4 * 10**18:
        return body + int(shift.total_seconds()) * 10**9
    if key == "created_utc" and isinstance(body, int | float):
        return body + shift.total_seconds()
    return body


def body(rel: str, shift: timedelta = timedelta(0)) -> str:
    raw = (FIXTURES / rel).read_text()
    if rel.endswith(".csv"):
        return DATE.sub(lambda m: _text(m.group(0), shift), raw)
    return json.dumps(redate(json.loads(raw), shift))


def shift_to(now: datetime) -> timedelta:
    return now - RECORDED_AT


Fail = Callable[[str], int | None]  # provider -> an HTTP status to fail with, or None


def install(router: respx.Router, shift: timedelta, fail: Fail = lambda _: None) -> None:
    """Routes for every httpx provider; ``fail(provider)`` makes one answer an error."""

    def reply(provider: str, pick: Callable[[httpx.Request], str | None]) -> Any:
        def handler(request: httpx.Request, **_: Any) -> httpx.Response:
            status = fail(provider)
            if status is not None:
                return httpx.Response(status, text=f"recorded {provider} outage")
            rel = pick(request)
            if rel is None:
                return httpx.Response(404, json={"status": "NOT_FOUND"})
            ctype = "text/csv" if rel.endswith(".csv") else "application/json"
            return httpx.Response(200, text=body(rel, shift), headers={"Content-Type": ctype})

        return handler

    def av(request: httpx.Request) -> str | None:
        q = request.url.params
        return {
            "TIME_SERIES_DAILY": f"alpha_vantage/time_series_daily_{q.get('symbol')}.json",
            "TIME_SERIES_INTRADAY": f"alpha_vantage/intraday_{q.get('symbol')}.json",
            "EARNINGS_CALENDAR": "alpha_vantage/earnings_calendar.csv",
        }.get(q.get("function", ""))

    def exists(rel: str | None) -> str | None:
        return rel if rel and (FIXTURES / rel).exists() else None

    polygon = re.compile(r"https://api\.polygon\.io/v2/aggs/ticker/(?P<sym>[A-Z]+)/range/.*")

    def aggs(r: httpx.Request) -> str | None:
        m = polygon.match(str(r.url))
        return exists(f"polygon/aggs_{m.group('sym')}.json") if m else None

    router.route(url__regex=polygon.pattern).mock(side_effect=reply("polygon_io", aggs))
    router.route(host="api.polygon.io", path__startswith="/v2/snapshot/").mock(
        side_effect=reply("polygon_io", lambda r: "polygon/snapshot.json")
    )
    router.route(host="www.alphavantage.co").mock(
        side_effect=reply("alpha_vantage", lambda r: exists(av(r)))
    )
    router.route(host="api-fxpractice.oanda.com", path__regex=r"/v3/instruments/.*/candles").mock(
        side_effect=reply(
            "oanda_api", lambda r: exists(f"oanda/candles_{r.url.path.split('/')[3]}.json")
        )
    )
    router.route(host="api-fxpractice.oanda.com", path__regex=r"/v3/accounts/.*/pricing").mock(
        side_effect=reply("oanda_api", lambda r: "oanda/pricing.json")
    )
    router.route(host="api.stlouisfed.org", path="/fred/releases/dates").mock(
        side_effect=reply("fred_api", lambda r: "fred/releases_dates.json")
    )
    router.route(host="api.stlouisfed.org", path="/fred/series/observations").mock(
        side_effect=reply(
            "fred_api",
            lambda r: exists(f"fred/series_observations_{r.url.params.get('series_id')}.json"),
        )
    )
    router.route(host="api.eia.gov").mock(
        side_effect=reply(
            "eia_api",
            lambda r: (
                "eia/natural_gas_storage.json"
                if "natural-gas" in r.url.path
                else "eia/crude_stocks.json"
            ),
        )
    )
    router.route(host="www.reddit.com", path="/api/v1/access_token").mock(
        side_effect=reply("reddit_api", lambda r: "reddit/access_token.json")
    )
    router.route(host="oauth.reddit.com").mock(
        side_effect=reply(
            "reddit_api", lambda r: exists(f"reddit/{r.url.path.split('/')[2]}_new.json")
        )
    )
    router.route(host="api.unusualwhales.com").mock(
        side_effect=reply("unusual_whales", lambda r: "unusual_whales/flow_alerts.json")
    )


class BinanceReplay(BaseAdapter):
    """Binance's recorded responses for ccxt's ``requests`` session."""

    def __init__(self, shift: timedelta, fail: Fail = lambda _: None) -> None:
        super().__init__()
        self.shift = shift
        self.fail = fail
        self.paths: list[str] = []

    def send(self, request: PreparedRequest, **kw: Any) -> Response:  # type: ignore[override]
        url = requests.utils.urlparse(request.url or "")
        self.paths.append(url.path)
        params = dict(p.split("=", 1) for p in url.query.split("&") if "=" in p)
        rel = {
            "/api/v3/exchangeInfo": "binance/exchangeInfo.json",
            "/api/v3/klines": f"binance/klines_{params.get('symbol')}.json",
            "/api/v3/ticker/24hr": "binance/ticker_24hr.json",
        }.get(url.path)
        resp = Response()
        resp.url, resp.request = request.url or "", request
        resp.headers["Content-Type"] = "application/json"
        status = self.fail("ccxt_binance")
        if status is not None or rel is None or not (FIXTURES / rel).exists():
            resp.status_code = status or 404
            resp._content = b'{"code": -1121, "msg": "Invalid symbol."}'
        else:
            resp.status_code = 200
            resp._content = body(rel, self.shift).encode()
        return resp

    def close(self) -> None:
        return None
