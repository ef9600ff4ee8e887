"""Prices into PostgreSQL, correlations out to PostgreSQL and to the gate (real servers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from redis import Redis

from consumers.cli.main import main
from consumers.state.snapshot_codec import decode_correlations
from tests.builders import ROOT
from tests.harness import Harness
from tests.integration.pg import query, scalar, temp_database

pytestmark = pytest.mark.pg  # once per server: PostgreSQL, TimescaleDB

D = Decimal
DAYS = 60
MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
# Two zero-mean, orthogonal return patterns (4-day blocks): sum(x * y) = 0 per block.
X = [D(v) / 100 for v in (1, -1, 2, -2)] * (DAYS // 4)
Y = [D(v) * D("0.015") for v in (1, 1, -1, -1)] * (DAYS // 4)
SX, SY = sum(x * x for x in X), sum(y * y for y in Y)
RETURNS = {
    "BTC/USDT": X,
    "ETH/USDT": [2 * x for x in X],  # r = 1
    "NVDA": [-x for x in X],  # r = -1
    "TSLA": Y,  # r = 0
    "AMD": [x + y for x, y in zip(X, Y, strict=True)],  # r = sqrt(SX / (SX + SY))
}
EXPECTED = {
    ("BTC/USDT", "ETH/USDT"): D(1),
    ("BTC/USDT", "NVDA"): D(-1),
    ("BTC/USDT", "TSLA"): D(0),
    ("AMD", "BTC/USDT"): (SX / (SX + SY)).sqrt(),
}


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temp_database("corr") as url:
        yield url


def price_csv(path: Path, returns: dict[str, list[Decimal]], days: int = DAYS) -> Path:
    """Daily bars ending today whose close-to-close returns are exactly ``returns``."""
    lines = ["symbol,time,close,volume"]
    for symbol, all_returns in returns.items():
        price = D(100)
        rs = all_returns[-days:]
        first = MIDNIGHT - timedelta(days=len(rs))
        lines.append(f"{symbol},{first.isoformat()},{price},1")
        for i, r in enumerate(rs, start=1):
            price = price * (1 + r)
            lines.append(f"{symbol},{(first + timedelta(days=i)).isoformat()},{price},1")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_correlations_when_prices_have_known_correlation_then_stored_and_published(
    pg_url: str, redis: Redis, portfolio: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """r = 1, -1, 0 and sqrt(10/19) recovered to 6 places, in asset_correlations and in the
    gate's key, with as_of = the newest bar and the state version bumped."""
    csv = price_csv(tmp_path / "bars.csv", RETURNS)
    assert main(["prices", "load", str(csv), "--database-url", pg_url]) == 0
    assert f"{5 * (DAYS + 1)} bars loaded, 0 replaced (5 symbols)" in capsys.readouterr().out
    redis.hset(f"riskgate:{{{portfolio}}}:state", "version", 7)

    args = ["correlations", "--portfolio", portfolio, "--database-url", pg_url, "--window", "60"]
    assert main(args) == 0
    stored = {
        (a, b): (c, n)
        for a, b, c, n in query(
            pg_url, "SELECT symbol_a, symbol_b, correlation, observations FROM asset_correlations"
        )
    }
    assert len(stored) == 10  # every pair of the five symbols
    for pair, expected in EXPECTED.items():
        value, observations = stored[pair]
        assert abs(value - expected) <= D("0.000001"), pair
        assert observations == DAYS
    assert stored[("AMD", "BTC/USDT")][0] == D("0.725476")
    published = decode_correlations(redis.get(f"riskgate:{{{portfolio}}}:correlations"))
    assert published.as_of == MIDNIGHT
    assert published.get("ETH/USDT", "BTC/USDT") == D(1)
    assert published.get("TSLA", "BTC/USDT") == D(0)
    assert redis.hget(f"riskgate:{{{portfolio}}}:state", "version") == b"8"
    as_of = scalar(pg_url, "SELECT DISTINCT as_of FROM asset_correlations")
    assert as_of == MIDNIGHT


def test_correlations_when_published_then_gate_decisions_show_their_age(
    pg_url: str, redis: Redis, portfolio: str, tmp_path: Path
) -> None:
    """The gate reads the published correlations: fresh, with their age in the checks."""
    h = Harness(redis, portfolio)
    h.fund()
    main(["prices", "load", str(price_csv(tmp_path / "b.csv", RETURNS)), "--database-url", pg_url])
    assert main(["correlations", "--portfolio", portfolio, "--database-url", pg_url]) == 0
    iid = h.intent("ETH/USDT", quantity="0.1", price="3900")
    h.pump()
    decision = h.decision(iid)
    age = decision.checks["correlations_age_s"]
    assert isinstance(age, int) and 0 <= age <= (datetime.now(UTC) - MIDNIGHT).total_seconds() + 5
    assert decision.checks["correlations_fresh"] is True


def test_correlations_when_too_few_common_days_then_pair_left_unknown(
    pg_url: str, redis: Redis, portfolio: str, tmp_path: Path
) -> None:
    """A pair with fewer common days than --min-observations is not published (unknown:
    the gate's fail-closed rule applies to it)."""
    short = {"BTC/USDT": X, "ETH/USDT": [2 * x for x in X][-5:]}
    csv = price_csv(tmp_path / "bars.csv", short)
    main(["prices", "load", str(csv), "--database-url", pg_url])
    assert main(["correlations", "--portfolio", portfolio, "--database-url", pg_url]) == 0
    published = decode_correlations(redis.get(f"riskgate:{{{portfolio}}}:correlations"))
    assert published.pairs == {} and published.as_of == MIDNIGHT
    assert scalar(pg_url, "SELECT count(*) FROM asset_correlations") == 0


def test_prices_load_when_a_row_is_bad_then_exit_1_and_nothing_loaded(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One bad row among good ones: the line and problem named, no row written."""
    path = tmp_path / "bars.csv"
    path.write_text("symbol,time,close\nBTC/USDT,2026-01-01,100\nBTC/USDT,2026-01-02,-1\n")
    assert main(["prices", "load", str(path), "--database-url", pg_url]) == 1
    assert f"{path}:3: close must be > 0" in capsys.readouterr().err
    assert scalar(pg_url, "SELECT count(*) FROM price_data") == 0


def test_prices_load_when_loaded_twice_then_bars_replaced_not_doubled(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Loading the same bars again replaces them (same symbol, interval and time)."""
    csv = price_csv(tmp_path / "bars.csv", {"BTC/USDT": X[:4]}, days=4)
    assert main(["prices", "load", str(csv), "--database-url", pg_url]) == 0
    assert main(["prices", "load", str(csv), "--database-url", pg_url]) == 0
    assert "0 bars loaded, 5 replaced" in capsys.readouterr().out
    assert scalar(pg_url, "SELECT count(*) FROM price_data") == 5
    parts = {
        r[0] for r in query(pg_url, "SELECT DISTINCT tableoid::regclass::text FROM price_data")
    }
    assert "price_data_default" not in parts  # months were prepared before the insert


def test_correlations_process_when_every_given_then_repeats_until_sigterm_exit_0(
    pg_url: str, redis_url: str, redis: Redis, portfolio: str, tmp_path: Path
) -> None:
    """riskgate correlations --every runs on a schedule and stops cleanly on SIGTERM."""
    main(["prices", "load", str(price_csv(tmp_path / "b.csv", RETURNS)), "--database-url", pg_url])
    key = f"riskgate:{{{portfolio}}}:correlations"
    cmd = [sys.executable, "-m", "consumers.cli", "correlations", "--portfolio", portfolio,
           "--database-url", pg_url, "--redis-url", redis_url, "--every", "0.2"]  # fmt: skip
    log = tmp_path / "corr.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=os.environ)
        try:
            deadline = time.monotonic() + 60
            while log.read_text().count("correlations published") < 2:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    assert code == 0 and redis.exists(key)


def test_correlations_when_stock_skips_weekends_then_common_close_days_give_true_value(
    pg_url: str, redis: Redis, portfolio: str, tmp_path: Path
) -> None:
    """A coin closing daily and a stock closing on weekdays whose returns over the same
    intervals correlate exactly 0.8: the job stores 0.800000 over 60 intervals (pairing
    the stock's Friday-to-Monday return with the coin's Sunday-to-Monday read 0.749503)."""
    from tests.unit.test_phase_evidence import weekday_pair

    newest = MIDNIGHT.date() - timedelta(days=1)
    monday = newest - timedelta(days=84 + newest.weekday())
    crypto, stock = weekday_pair(monday, 12)
    lines = ["symbol,time,close,volume"]
    for symbol, closes in (("BTC/USDT", crypto), ("NVDA", stock)):
        lines += [f"{symbol},{day.isoformat()}T12:00:00+00:00,{px},1" for day, px in closes.items()]
    csv = tmp_path / "bars.csv"
    csv.write_text("\n".join(lines) + "\n")
    assert main(["prices", "load", str(csv), "--database-url", pg_url]) == 0
    args = ["correlations", "--portfolio", portfolio, "--database-url", pg_url, "--window", "100"]
    assert main(args) == 0
    stored = query(pg_url, "SELECT symbol_a, symbol_b, correlation, observations "
                   "FROM asset_correlations")  # fmt: skip
    assert stored == [("BTC/USDT", "NVDA", D("0.800000"), 60)]
    published = decode_correlations(redis.get(f"riskgate:{{{portfolio}}}:correlations"))
    assert published.get("NVDA", "BTC/USDT") == D("0.800000")
