"""``riskgate feed`` end to end on recorded provider responses (re-dated to now) with a
real Redis, a real PostgreSQL (a temp database) and the gate deciding in process: the
registry tables fill, the gate trades NVDA outside its blackout and TQQQ in a trending
regime with no hand-set flag; failover, missing credentials, and every source down
(openings rejected, ``riskgate sources status`` says why)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
import respx
from redis import Redis

from consumers.cli.main import main
from consumers.market.feed import Feed, FeedSettings
from consumers.market.feed_service import build
from consumers.state.control import redis_now
from schemas.messages import Status
from tests.builders import ROOT
from tests.harness import Harness
from tests.integration.pg import query, scalar, temp_database
from tests.provider_replay import BinanceReplay, Fail, install, shift_to
from tests.unit.test_market_sources import ENV

pytestmark = pytest.mark.pg  # once per server: PostgreSQL, TimescaleDB

SYMBOLS = ("NVDA", "TQQQ", "GME", "BTC/USDT", "ETH/USDT", "GBP/JPY", "NATGAS/USD", "WTICO/USD")


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temp_database("feed") as url:
        yield url


@pytest.fixture
def h(redis: Redis, portfolio: str) -> Harness:
    harness = Harness(redis, portfolio, enable_all=True)
    harness.fund(market=False)  # money, and no mark: the feed brings every price
    return harness


def run_feed(
    redis: Redis, url: str, h: Harness, *, fail: Fail = lambda _: None, env: dict[str, str] = ENV,
    symbols: tuple[str, ...] = SYMBOLS,
) -> Feed:  # fmt: skip
    """One turn of every job over the recorded responses, then the gate applies it."""
    shift = shift_to(redis_now(redis))
    with respx.mock(assert_all_called=False) as router:
        install(router, shift, fail)
        feed = build(
            redis, url, h.keys, h.config, FeedSettings(symbols=symbols), env=env,
            binance_adapter=BinanceReplay(shift, fail), max_wait_s=0,
            limiter_prefix=f"lim{uuid.uuid4().hex[:8]}",
        )  # fmt: skip
        feed.turn()
    h.pump()
    return feed


def mark_of(h: Harness, symbol: str) -> Decimal:
    return h.state().snapshot.marks[symbol].price


def test_feed_when_recorded_responses_then_tables_filled_and_nvda_and_tqqq_trade(
    redis: Redis, pg_url: str, h: Harness
) -> None:
    """Every registry table the feed owns is written; the gate's flags come from it (NVDA's
    earnings 40 days out, TQQQ trending): both trade with no hand-set flag."""
    feed = run_feed(redis, pg_url, h)
    tables = ("price_data", "economic_calendar", "social_sentiment", "options_flow",
              "leading_indicators", "feed_coverage")  # fmt: skip
    counts = {t: scalar(pg_url, f"SELECT count(*) FROM {t}") for t in tables}
    assert all(n > 0 for n in counts.values()), counts
    kinds = {k for (k,) in query(pg_url, "SELECT DISTINCT kind FROM economic_calendar")}
    assert kinds == {"earnings", "macro", "energy"}
    used = dict(query(pg_url, "SELECT name, requests_total FROM data_source_registry "
                      "WHERE last_success_at IS NOT NULL"))  # fmt: skip
    assert set(used) >= {"polygon_io", "alpha_vantage", "oanda_api", "fred_api", "eia_api",
                         "reddit_api", "unusual_whales", "ccxt_binance"}  # fmt: skip
    assert all(n > 0 for n in used.values())
    control = {k.decode(): v.decode() for k, v in redis.hgetall(h.keys.control).items()}
    assert control["regime:TQQQ"].startswith("trending|")
    today = redis_now(redis).date()
    assert control["earnings:NVDA"] > (today + timedelta(days=30)).isoformat()
    for symbol in ("NVDA", "TQQQ"):
        iid = h.intent(symbol, "buy", "1", price=str(mark_of(h, symbol)))
        h.pump()
        decision = h.decision(iid)
        assert decision.status is Status.APPROVED, decision.reasons
    # every symbol with a recorded price is marked (none is recorded for the two CFDs)
    assert feed.stats.counts["marks"] == len(SYMBOLS) - 2


def test_feed_when_polygon_fails_then_alpha_vantage_serves_and_switch_counted(
    redis: Redis, pg_url: str, h: Harness
) -> None:
    """Polygon answers 503: NVDA's bars and price come from Alpha Vantage, the switch is
    counted, and the registry records Polygon's error."""
    feed = run_feed(redis, pg_url, h, fail=lambda p: 503 if p == "polygon_io" else None,
                    symbols=("NVDA",))  # fmt: skip
    assert feed.router.failovers[("latest", "polygon_io", "alpha_vantage")] == 1
    assert feed.router.failovers[("bars", "polygon_io", "alpha_vantage")] == 1
    sources = dict(query(pg_url, "SELECT DISTINCT symbol, source FROM price_data"))
    assert sources == {"NVDA": "alpha_vantage"}
    row = query(pg_url, "SELECT errors_total, feed_state, last_error FROM data_source_registry "
                "WHERE name = 'polygon_io'")[0]  # fmt: skip
    assert row[0] >= 1 and row[1] == "failing" and "HTTP 503" in row[2]
    assert "NVDA" in h.state().snapshot.marks


def test_feed_when_no_credentials_then_not_configured_and_no_crash(
    redis: Redis, pg_url: str, h: Harness
) -> None:
    """No environment at all: every keyed source is reported not configured with the
    variable it needs; public crypto data still flows."""
    run_feed(redis, pg_url, h, env={})
    states = dict(query(pg_url, "SELECT name, feed_reason FROM data_source_registry "
                        "WHERE feed_state = 'not_configured'"))  # fmt: skip
    assert states["polygon_io"] == "POLYGON_API_KEY is not set"
    assert states["reddit_api"] == "REDDIT_CLIENT_ID and REDDIT_SECRET not set"
    assert "BTC/USDT" in h.state().snapshot.marks and "NVDA" not in h.state().snapshot.marks


def test_feed_when_every_source_fails_then_openings_rejected_and_status_says_why(
    redis: Redis, pg_url: str, h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every provider down: no mark, no flag; an NVDA opening is rejected (no market
    price) and ``riskgate sources status`` names each source's failure for NVDA."""
    run_feed(redis, pg_url, h, fail=lambda _: 503)
    iid = h.intent("NVDA", "buy", "1", price="132")
    h.pump()
    decision = h.decision(iid)
    assert decision.status is Status.REJECTED
    assert "no_market_price" in {r.code for r in decision.reasons}
    assert scalar(pg_url, "SELECT count(*) FROM price_data") == 0
    assert main(["sources", "status", "--portfolio", h.portfolio, "--database-url", pg_url]) == 0
    out = capsys.readouterr().out
    nvda = next(line for line in out.splitlines() if line.strip().startswith("NVDA "))
    assert "STALE" in nvda and "openings rejected" in nvda
    assert "polygon_io: HTTP 503" in nvda and "alpha_vantage: HTTP 503" in nvda
    polygon = next(line for line in out.splitlines() if line.strip().startswith("polygon_io "))
    assert "failing" in polygon


def test_feed_cli_when_sim_once_then_marks_flags_and_tables_and_exit_0(
    redis: Redis, pg_url: str, h: Harness
) -> None:
    """``riskgate feed --source sim --once``: one turn of every job, exit 0; the gate
    then holds a mark for every symbol and the sim's regimes (SOXL sideways)."""
    done = cli("feed", "--source", "sim", "--once", "--portfolio", h.portfolio,
               "--database-url", pg_url, "--no-migrate")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    h.pump()
    assert set(h.state().snapshot.marks) == set(h.config.assets)
    regime = redis.hget(h.keys.control, "regime:SOXL")
    assert regime is not None and regime.decode().startswith("sideways|")
    assert scalar(pg_url, "SELECT count(DISTINCT source) FROM price_data") == 1


def test_feed_cli_when_source_or_symbol_unknown_then_exit_2_naming_it(
    pg_url: str, portfolio: str
) -> None:
    """Bad arguments: one line naming the problem and the expected form, exit 2."""
    done = cli("feed", "--symbols", "NVDA,DOGE", "--database-url", pg_url)
    assert done.returncode == 2 and "--symbols: DOGE not configured" in done.stderr
    done = cli("feed", "--source", "bloomberg", "--once", "--portfolio", portfolio,
               "--database-url", pg_url, "--no-migrate")  # fmt: skip
    assert done.returncode == 2
    assert "--source bloomberg: no such source" in done.stderr and "polygon_io" in done.stderr


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``riskgate ...`` in a process of its own (the feed configures logging for its
    process; in this one it would outlive the test)."""
    return subprocess.run([sys.executable, "-m", "consumers.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
