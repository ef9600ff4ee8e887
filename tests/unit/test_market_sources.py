"""Every adapter against its provider's recorded responses, replayed at the HTTP layer
(respx for httpx, a requests adapter for ccxt): parsing, missing credentials, malformed
and partial bodies, HTTP errors. No network."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import respx

from consumers.market.sources.alpha_vantage import AlphaVantage
from consumers.market.sources.base import (
    Asset,
    MalformedResponse,
    NotConfigured,
    SourceFailed,
)
from consumers.market.sources.ccxt_binance import CcxtBinance
from consumers.market.sources.eia import Eia
from consumers.market.sources.fred import Fred
from consumers.market.sources.gateway import Gateway, UsageBook
from consumers.market.sources.oanda import Oanda
from consumers.market.sources.polygon import Polygon
from consumers.market.sources.reddit import Reddit
from consumers.market.sources.unusual_whales import UnusualWhales
from tests.builders import base_config
from tests.fixtures.providers.generate import RECORDED_AT
from tests.provider_replay import BinanceReplay, install

D = Decimal
ENV = {
    "POLYGON_API_KEY": "pk-secret-123", "ALPHA_VANTAGE_KEY": "av-secret-456",
    "OANDA_API_KEY": "oa-secret", "OANDA_ACCOUNT_ID": "101-001-1-001", "FRED_API_KEY": "fr-key",
    "EIA_API_KEY": "eia-key", "REDDIT_CLIENT_ID": "rid", "REDDIT_SECRET": "rsecret",
    "UNUSUAL_WHALES_API_KEY": "uw-key",
}  # fmt: skip
START, END = RECORDED_AT.date() - timedelta(days=90), RECORDED_AT.date()


def asset(symbol: str) -> Asset:
    cfg = base_config().assets[symbol]
    return Asset(symbol, cfg.asset_class.value, cfg)


@pytest.fixture
def router() -> Iterator[respx.Router]:
    with respx.mock(assert_all_called=False) as r:
        install(r, timedelta(0))
        yield r


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    g = Gateway(None, {}, UsageBook(), lambda: RECORDED_AT, secrets=ENV.values)
    yield g
    g.close()


def test_polygon_bars_when_recorded_aggs_then_exact_daily_bars(
    router: respx.Router, gateway: Gateway
) -> None:
    """60 daily bars of NVDA, prices exact decimals, dated by the bar's start."""
    bars = Polygon(gateway, ENV).bars([asset("NVDA")], START, END)
    assert len(bars) == 60 and {b.source for b in bars} == {"polygon_io"}
    assert bars[-1].time.date() == RECORDED_AT.date() and bars[-1].interval == "1d"
    assert all(isinstance(b.close, Decimal) and b.low <= b.close <= b.high for b in bars)  # type: ignore[operator]


def test_polygon_latest_when_snapshot_then_last_trade_at_its_time(
    router: respx.Router, gateway: Gateway
) -> None:
    """The mark is the last trade, dated by the trade (30 s before the recording)."""
    quotes = {q.symbol: q for q in Polygon(gateway, ENV).latest([asset("NVDA"), asset("TQQQ")])}
    assert set(quotes) == {"NVDA", "TQQQ"}
    assert quotes["NVDA"].at == RECORDED_AT - timedelta(seconds=30)


def test_polygon_when_no_key_then_not_configured_and_no_request(
    gateway: Gateway, router: respx.Router
) -> None:
    """Without POLYGON_API_KEY: reported as not configured, nothing is sent."""
    source = Polygon(gateway, {})
    assert source.problem() == "POLYGON_API_KEY is not set"
    with pytest.raises(NotConfigured):
        source.latest([asset("NVDA")])
    assert not router.calls


def test_polygon_when_a_bar_lacks_its_close_then_malformed_naming_it(gateway: Gateway) -> None:
    """A bar without ``c``: the whole answer is refused, the message names the field."""
    with respx.mock() as r:
        r.get(url__regex=r".*/v2/aggs/.*").respond(json={"status": "OK", "results": [{"t": 1}]})
        with pytest.raises(MalformedResponse, match=r"results\[0\] has no 'c'"):
            Polygon(gateway, ENV).bars([asset("NVDA")], START, END)


def test_polygon_when_http_503_then_source_failed_without_the_key(gateway: Gateway) -> None:
    """A server error fails the call; the reason never carries the credential."""
    with respx.mock() as r:
        r.get(url__regex=r".*").respond(503, text="unavailable for pk-secret-123")
        with pytest.raises(SourceFailed, match="HTTP 503") as err:
            Polygon(gateway, ENV).latest([asset("NVDA")])
    assert "pk-secret-123" not in str(err.value) and "***" in str(err.value)


def test_polygon_when_body_is_not_json_then_malformed(gateway: Gateway) -> None:
    """HTML from a proxy instead of JSON: malformed, nothing used."""
    with respx.mock() as r:
        r.get(url__regex=r".*").respond(200, text="<html>gateway</html>")
        with pytest.raises(MalformedResponse, match="not JSON"):
            Polygon(gateway, ENV).latest([asset("NVDA")])


def test_polygon_when_a_ticker_has_no_trade_then_left_out(gateway: Gateway) -> None:
    """A partial snapshot (no trade, no minute bar): that symbol is simply not served."""
    with respx.mock() as r:
        r.get(url__regex=r".*").respond(json={"status": "OK", "tickers": [{"ticker": "NVDA"}]})
        assert Polygon(gateway, ENV).latest([asset("NVDA")]) == []


def test_alpha_vantage_bars_when_recorded_daily_series_then_bars_in_range(
    router: respx.Router, gateway: Gateway
) -> None:
    """TIME_SERIES_DAILY's date-keyed series becomes bars (only the asked range)."""
    bars = AlphaVantage(gateway, ENV).bars([asset("NVDA")], END - timedelta(days=9), END)
    assert len(bars) == 10 and bars[0].time < bars[-1].time
    assert bars[-1].volume is not None and bars[-1].source == "alpha_vantage"


def test_alpha_vantage_latest_when_intraday_then_dated_at_the_minute_end(
    router: respx.Router, gateway: Gateway
) -> None:
    """The newest 1-minute bar's close, dated at the end of its minute (US/Eastern -> UTC)."""
    (quote,) = AlphaVantage(gateway, ENV).latest([asset("NVDA")])
    assert quote.at == RECORDED_AT


def test_alpha_vantage_when_rate_note_then_failed_not_data(gateway: Gateway) -> None:
    """A ``Note`` with HTTP 200 is the provider's refusal: a failure, never an empty series."""
    with respx.mock() as r:
        r.get(url__regex=r".*").respond(json={"Note": "5 calls per minute"})
        with pytest.raises(SourceFailed, match="5 calls per minute"):
            AlphaVantage(gateway, ENV).bars([asset("NVDA")], START, END)


def test_alpha_vantage_earnings_when_calendar_csv_then_configured_symbols_only(
    router: respx.Router,
    gateway: Gateway,
) -> None:
    """The CSV lists every US company; only the asked symbols become events."""
    events = AlphaVantage(gateway, ENV).earnings(
        [asset("NVDA"), asset("AMD"), asset("GME")], END, END + timedelta(days=90)
    )
    by = {e.symbol: e for e in events}
    assert set(by) == {"NVDA", "AMD", "GME"}
    assert by["AMD"].event_time.date() == END + timedelta(days=2) and by["AMD"].kind == "earnings"
    assert by["GME"].forecast == D("-0.03")


def test_alpha_vantage_earnings_when_header_changes_then_malformed(gateway: Gateway) -> None:
    """A CSV with another header is not trusted."""
    with respx.mock() as r:
        r.get(url__regex=r".*").respond(200, text="ticker,date\nNVDA,2026-12-01\n")
        with pytest.raises(MalformedResponse, match="header"):
            AlphaVantage(gateway, ENV).earnings([asset("NVDA")], END, END)


def test_oanda_when_candles_and_pricing_then_bars_and_mid_quote(
    router: respx.Router, gateway: Gateway
) -> None:
    """Daily mid candles become bars; the mark is the closeout mid at its nanosecond time."""
    source = Oanda(gateway, ENV)
    bars = source.bars([asset("GBP/JPY")], START, END)
    assert len(bars) == 60 and bars[0].volume is None
    (quote,) = source.latest([asset("GBP/JPY")])
    assert quote.at == RECORDED_AT - timedelta(seconds=5) + timedelta(microseconds=123456)
    assert quote.price == (D(bars[-1].close) - D("0.01") + D(bars[-1].close) + D("0.01")) / 2


def test_oanda_when_account_missing_then_not_configured(gateway: Gateway) -> None:
    """Both the token and the account id are needed (the pricing route is per account)."""
    assert Oanda(gateway, {"OANDA_API_KEY": "x"}).problem() == "OANDA_ACCOUNT_ID not set"


def test_fred_when_release_dates_then_known_releases_only(
    router: respx.Router, gateway: Gateway
) -> None:
    """Scheduled CPI, payrolls and FOMC become events; an unlisted release is ignored."""
    events = Fred(gateway, ENV).calendar([asset("TQQQ")], END, END + timedelta(days=90))
    assert sorted(e.event_name for e in events) == [
        "Consumer Price Index", "Employment Situation", "FOMC Press Release"]  # fmt: skip
    assert all(e.impact == "high" and e.kind == "macro" for e in events)


def test_fred_indicators_when_newest_is_missing_then_previous_value(
    router: respx.Router, gateway: Gateway
) -> None:
    """FRED's ``"."`` (no value) is skipped: the newest real observation is used."""
    rows = Fred(gateway, ENV).indicators([asset("TQQQ"), asset("NVDA")])
    assert sorted((i.symbol, i.indicator, i.value) for i in rows) == [
        ("TQQQ", "Fed policy", D("3.90")), ("TQQQ", "VIX level", D("15.10"))]  # fmt: skip


def test_eia_when_weekly_reports_then_indicators_and_calendar(
    router: respx.Router, gateway: Gateway
) -> None:
    """Storage and crude stocks: an indicator each, the published and the next report."""
    source = Eia(gateway, ENV)
    rows = {i.symbol: i for i in source.indicators([asset("NATGAS/USD"), asset("WTICO/USD")])}
    assert (
        rows["NATGAS/USD"].value == 3946 and rows["WTICO/USD"].indicator == "EIA crude inventories"
    )
    events = source.calendar(
        [asset("NATGAS/USD")], END - timedelta(days=7), END + timedelta(days=8)
    )
    assert [e.actual for e in events] == [D(3946), None] and events[1].previous == D(3946)
    assert events[1].event_time > RECORDED_AT and events[1].event_time.weekday() == 3


def test_reddit_when_listings_then_mentions_and_score(
    router: respx.Router, gateway: Gateway
) -> None:
    """GME is mentioned twice (bullish words only), AMC once as $AMC (bearish), OPEN never
    (an English word counts only as $OPEN)."""
    rows = {s.symbol: s for s in Reddit(gateway, ENV).sentiment(
        [asset("GME"), asset("AMC"), asset("OPEN")])}  # fmt: skip
    assert (rows["GME"].mentions, rows["GME"].score) == (2, D(1))
    assert (rows["AMC"].mentions, rows["AMC"].score) == (1, D(-1))
    assert (rows["OPEN"].mentions, rows["OPEN"].score) == (0, None)


def test_reddit_when_token_refused_then_failed(gateway: Gateway) -> None:
    """A 401 on the token: the source fails (the router fails closed: no rows)."""
    with respx.mock() as r:
        r.post(url__regex=r".*access_token").respond(401, json={"error": 401})
        with pytest.raises(SourceFailed, match="HTTP 401"):
            Reddit(gateway, ENV).sentiment([asset("GME")])


def test_unusual_whales_when_flow_alerts_then_prints_with_side_and_sentiment(
    router: respx.Router,
    gateway: Gateway,
) -> None:
    """Sweeps bought at the ask on calls are bullish; puts sold at the bid are bullish too;
    alerts for unconfigured tickers are dropped."""
    rows = {o.symbol: o for o in UnusualWhales(gateway, ENV).options_flow(
        [asset("NVDA"), asset("AMD")])}  # fmt: skip
    assert set(rows) == {"NVDA", "AMD"}
    nvda, amd = rows["NVDA"], rows["AMD"]
    assert (nvda.trade_type, nvda.side, nvda.sentiment) == ("sweep", "buy", "bullish")
    assert (amd.trade_type, amd.side, amd.sentiment) == ("block", "sell", "bullish")
    assert nvda.premium == D("310000.5") and nvda.expiry == date(2026, 12, 18)


def test_binance_when_recorded_klines_and_tickers_then_bars_and_exact_quotes() -> None:
    """ccxt over the recorded exchangeInfo, klines and 24 h tickers: no network."""
    replay = BinanceReplay(timedelta(0))
    g = Gateway(None, {}, UsageBook(), lambda: RECORDED_AT)
    source = CcxtBinance(g, {}, adapter=replay)
    bars = source.bars([asset("BTC/USDT")], START, END)
    quotes = source.latest([asset("BTC/USDT"), asset("ETH/USDT")])
    assert len(bars) == 60 and bars[-1].source == "ccxt_binance"
    assert {q.symbol for q in quotes} == {"BTC/USDT", "ETH/USDT"}
    assert all(q.at == RECORDED_AT - timedelta(seconds=20) for q in quotes)
    assert "/api/v3/exchangeInfo" in replay.paths and "/api/v3/klines" in replay.paths
    assert g.usage.take()["ccxt_binance"].requests == len(replay.paths)  # each one admitted


def test_binance_when_exchange_down_then_source_failed() -> None:
    """HTTP 503 from the exchange: ccxt's error becomes a SourceFailed."""
    g = Gateway(None, {}, UsageBook(), lambda: RECORDED_AT)
    source = CcxtBinance(g, {}, adapter=BinanceReplay(timedelta(0), lambda _: 503))
    with pytest.raises(SourceFailed, match="ccxt_binance"):
        source.latest([asset("BTC/USDT")])


def test_gateway_when_request_times_out_then_source_failed(gateway: Gateway) -> None:
    """A timeout is a failure with a plain reason."""
    with respx.mock() as r:
        r.get(url__regex=r".*").mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(SourceFailed, match="timed out"):
            Polygon(gateway, ENV).latest([asset("NVDA")])


def test_bar_check_when_high_below_close_then_malformed() -> None:
    """A bar whose high is below its close is not a bar."""
    from consumers.market.sources.base import bar_of

    with pytest.raises(MalformedResponse, match="high/low"):
        bar_of(asset("NVDA"), datetime(2026, 1, 5, tzinfo=UTC), ("10", "9", "8", "9.5", "1"),
               "polygon_io", "bar")  # fmt: skip
