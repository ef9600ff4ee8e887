"""TimescaleDB for real, and the same results on plain PostgreSQL: the amended migration,
what each server's edition sets up, daily closes and correlations (every server)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from redis import Redis

from consumers.cli.main import main
from consumers.db import connection as db
from consumers.db.daily_closes import PLAIN, daily_closes, is_aggregate
from consumers.db.layout import Layout, inspect
from consumers.db.migrate import AMENDMENTS, default_directory
from consumers.market.correlations import pair_correlations
from tests.integration.pg import POSTGRESQL, Server, query, scalar, temp_database

pytestmark = pytest.mark.pg  # once per server: PostgreSQL, TimescaleDB

D = Decimal
TODAY = datetime.now(UTC).date()
AMENDED = "002_market_data.sql"


@pytest.fixture
def empty_db() -> Iterator[str]:
    with temp_database("tsdb", prepared=False) as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temp_database("tsdb") as url:
        yield url


def layout_of(url: str) -> Layout:
    with db.connect(url) as conn:
        return inspect(conn)


def before_amendment(tmp_path: Path) -> Path:
    """The migrations 001-005 as riskgate shipped them before 002 was amended."""
    target = tmp_path / "sql-before"
    target.mkdir()
    for entry in default_directory().iterdir():
        if entry.name.endswith(".sql") and entry.name < "006":
            text = entry.read_bytes()
            if entry.name == AMENDED:
                lines = text.decode().splitlines(keepends=True)
                text = "".join(x for x in lines if "-- amended" not in x).encode()
            (target / entry.name).write_bytes(text)
    return target


def test_migrate_when_002_applied_before_its_amendment_then_accepted_and_rest_applied(
    empty_db: str, pg_server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database migrated by the riskgate before the fix: on PostgreSQL its 002 row (the
    earlier text) is accepted as is and 006 applied; on TimescaleDB the earlier 002 failed
    (the bug: create_hypertable's own index) and the amended one now applies."""
    old = before_amendment(tmp_path)
    earlier = hashlib.sha256((old / AMENDED).read_bytes()).hexdigest()
    assert earlier in AMENDMENTS[AMENDED].earlier  # the amendment is exactly the marked lines
    code = main(["migrate", "--database-url", empty_db, "--migrations-dir", str(old)])
    err = capsys.readouterr().err
    if pg_server.name == POSTGRESQL:
        assert code == 0
    else:
        assert code == 1
        assert (
            f'{AMENDED} failed and was rolled back: relation "price_data_time_idx" already' in err
        )
    assert main(["migrate", "--database-url", empty_db]) == 0
    out = capsys.readouterr().out
    assert "applied 006_timescaledb.sql" in out
    recorded = scalar(
        empty_db, "SELECT checksum FROM schema_migrations WHERE name = %s", (AMENDED,)
    )
    assert main(["migrate", "--status", "--database-url", empty_db]) == 0
    status = capsys.readouterr().out
    assert "6 migrations applied" in status and "0 pending" in status
    if pg_server.name == POSTGRESQL:
        assert recorded == earlier  # history untouched
        assert f"{AMENDED} recorded with the text it had before it was amended" in status
    else:
        assert recorded == AMENDMENTS[AMENDED].checksum
        assert "amended" not in status
        assert layout_of(empty_db).hypertables


def test_migrate_status_when_migrations_pending_then_exit_1_and_nothing_changed(
    empty_db: str, pg_server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--status lists what is pending and applies nothing."""
    old = [
        "migrate",
        "--database-url",
        empty_db,
        "--migrations-dir",
        str(before_amendment(tmp_path)),
    ]
    assert main(old) == (0 if pg_server.name == POSTGRESQL else 1)  # 001-005; 001 only
    applied = scalar(empty_db, "SELECT count(*) FROM schema_migrations")
    assert applied == (5 if pg_server.name == POSTGRESQL else 1)
    capsys.readouterr()
    assert main(["migrate", "--status", "--database-url", empty_db]) == 1
    out = capsys.readouterr().out
    assert "006_timescaledb.sql" in out and f"{applied} migrations applied" in out
    assert scalar(empty_db, "SELECT count(*) FROM schema_migrations") == applied


def test_migrate_when_server_has_an_edition_then_what_it_offers_is_set_up_and_reported(
    pg_url: str, pg_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """Community edition: price_data compressed by policy, daily closes a continuous
    aggregate refreshed by policy, retention on the raw feeds. Apache edition: those do
    not exist on the server (tried: refused as unsupported), so hypertables and a plain
    view, said so. PostgreSQL: partitions and the plain view."""
    layout = layout_of(pg_url)
    assert main(["migrate", "--database-url", pg_url]) == 0
    out = capsys.readouterr().out
    if layout.edition == "none":
        assert pg_server.name == POSTGRESQL and layout.daily_closes == "view"
        assert "daily closes: price_data_daily, a plain view" in out
        return
    if layout.edition == "apache":
        with db.connect(pg_url) as conn, pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("SELECT add_compression_policy('price_data', interval '7 days')")
        assert (layout.compressed, layout.aggregates, layout.policies) == ((), (), ())
        assert layout.daily_closes == "view"
        assert "compression, continuous aggregates, policies: none (the apache edition" in out
        return
    assert layout.edition == "timescale" and layout.compressed == ("price_data",)
    assert layout.aggregates == ("price_data_daily",)
    assert layout.daily_closes == "continuous aggregate"
    policies = {(p.kind, p.relation): p.setting for p in layout.policies}
    assert policies == {
        ("compression", "price_data"): "after 7 days",
        ("refresh", "price_data_daily"): "every 1 hour, from the start to 01:00:00 ago",
        ("retention", "asset_correlations"): "drop after 1 year",
        ("retention", "options_flow"): "drop after 1 year",
        ("retention", "social_sentiment"): "drop after 1 year",
    }
    assert "policy: compression on price_data, after 7 days" in out
    with db.connect(pg_url) as conn:  # run again: nothing left to add
        assert conn.execute("SELECT riskgate_use_timescaledb()").fetchone() == ([],)


# --- daily closes and correlations: the same on every server ------------------------------

Bar = tuple[str, datetime, str, Decimal]  # symbol, time, interval, close


def gappy_bars(seed: int, days: int) -> list[Bar]:
    """Random walks ending yesterday: BTC and ETH hourly bars (the last one of a day at
    23:00, one at 23:59:59), NVDA and TSLA daily bars on weekdays only, NVDA with a day
    missing, and a few 4h bars beside the hourly ones."""
    rng = random.Random(seed)
    bars: list[Bar] = []
    first = TODAY - timedelta(days=days)
    for symbol in ("BTC/USDT", "ETH/USDT", "NVDA", "TSLA"):
        price = D(100)
        for n in range(days):
            day = first + timedelta(days=n)
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if symbol in ("NVDA", "TSLA"):
                if day.weekday() >= 5 or (symbol == "NVDA" and n == days // 2):
                    continue
                price = (price * (1 + D(rng.randint(-300, 300)) / 10000)).quantize(D("0.0001"))
                bars.append((symbol, midnight + timedelta(hours=14, minutes=30), "1d", price))
                continue
            for hour in range(0, 24, 6 if n % 3 else 1):
                price = (price * (1 + D(rng.randint(-100, 100)) / 10000)).quantize(D("0.01"))
                bars.append((symbol, midnight + timedelta(hours=hour), "1h", price))
            if n % 5 == 0:
                bars.append((symbol, midnight + timedelta(hours=23, minutes=59, seconds=59),
                             "1m", price + 1))  # fmt: skip
            if n % 7 == 0:
                bars.append((symbol, midnight + timedelta(hours=4), "4h", price + 2))
    return bars


def reference_closes(bars: list[Bar]) -> dict[str, dict[date, Decimal]]:
    """The close of each symbol's last bar of each UTC day, in Python."""
    last: dict[tuple[str, date], tuple[datetime, Decimal]] = {}
    for symbol, at, _interval, close in bars:
        key = (symbol, at.date())
        if key not in last or at > last[key][0]:
            last[key] = (at, close)
    closes: dict[str, dict[date, Decimal]] = {}
    for (symbol, day), (_at, close) in sorted(last.items()):
        closes.setdefault(symbol, {})[day] = close
    return closes


def load(url: str, bars: list[Bar], path: Path) -> None:
    lines = ["symbol,time,interval,close"]
    lines += [f"{s},{at.isoformat()},{interval},{close}" for s, at, interval, close in bars]
    path.write_text("\n".join(lines) + "\n")
    assert main(["prices", "load", str(path), "--database-url", url]) == 0


def as_closes(rows: list[tuple[str, date, Decimal, datetime]]) -> dict[str, dict[date, Decimal]]:
    closes: dict[str, dict[date, Decimal]] = {}
    for symbol, day, close, _at in rows:
        closes.setdefault(symbol, {})[day] = close
    return closes


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_daily_closes_when_bars_gappy_and_revised_then_aggregate_view_and_query_agree(
    pg_url: str, tmp_path: Path
) -> None:
    """price_data_daily (a continuous aggregate or a view), the plain query and the
    correlations' reader return the Python reference's closes, also after an old closing
    bar is revised and a later bar added on an old day once the aggregate was
    materialized (which a continuous aggregate shows only once refreshed: the reader
    refreshes the days it reads)."""
    bars = gappy_bars(seed=14, days=40)
    load(pg_url, bars, tmp_path / "bars.csv")
    symbols = ["BTC/USDT", "ETH/USDT", "NVDA", "TSLA"]
    first, last = TODAY - timedelta(days=40), TODAY
    old_day = first + timedelta(days=3)
    closing = max((b for b in bars if b[0] == "BTC/USDT" and b[1].date() == old_day),
                  key=lambda b: b[1])  # fmt: skip
    changes = [
        (*closing[:3], D("55.55")),  # the same bar, a new close
        ("ETH/USDT", midnight(old_day) + timedelta(days=1, seconds=86399), "1m", D("77.7")),
    ]
    replaced = {c[:3] for c in changes}
    bars = [b for b in bars if b[:3] not in replaced] + changes
    expected = reference_closes(bars)
    assert expected["BTC/USDT"][old_day] == D("55.55")
    assert expected["ETH/USDT"][old_day + timedelta(days=1)] == D("77.7")
    read_view = (
        "SELECT symbol, (day AT TIME ZONE 'UTC')::date, close, close_at "
        "FROM price_data_daily WHERE symbol = ANY(%s) ORDER BY symbol, day"
    )
    with db.connect(pg_url) as conn:
        aggregate = is_aggregate(conn)
        assert aggregate == (inspect(conn).edition == "timescale")
        if aggregate:  # materialize everything before today, then revise under it
            conn.execute("CALL refresh_continuous_aggregate('price_data_daily', NULL, %s)",
                         (midnight(TODAY),))  # fmt: skip
        load(pg_url, changes, tmp_path / "changes.csv")
        stale = as_closes(conn.execute(read_view, (symbols,)).fetchall())
        assert (stale != expected) == aggregate  # materialized buckets wait for a refresh
        assert as_closes(daily_closes(conn, symbols, first, last)) == expected
        plain = conn.execute(PLAIN, (symbols, midnight(first), midnight(TODAY))).fetchall()
        view = conn.execute(read_view, (symbols,)).fetchall()
    assert as_closes(plain) == expected
    assert as_closes(view) == expected
    assert [r[3] for r in view] == [r[3] for r in plain]  # close_at: the closing bar's time


def test_correlations_when_prices_gappy_then_equal_to_the_python_reference(
    pg_url: str, redis: Redis, portfolio: str, tmp_path: Path
) -> None:
    """Hourly crypto, weekday stocks with a hole: riskgate correlations stores exactly
    what the Python reference computes from the same bars, so every server stores the
    same values."""
    bars = gappy_bars(seed=5, days=75)
    load(pg_url, bars, tmp_path / "bars.csv")
    args = ["correlations", "--portfolio", portfolio, "--database-url", pg_url, "--window", "60"]
    assert main(args) == 0
    newest = max(b[1] for b in bars).date()
    window = {
        s: {d: c for d, c in days.items() if d >= newest - timedelta(days=60)}
        for s, days in reference_closes(bars).items()
    }
    expected, skipped = pair_correlations(window, 30)
    assert len(expected) == 6 and skipped == 0
    stored = query(pg_url, "SELECT symbol_a, symbol_b, correlation, observations "
                   "FROM asset_correlations ORDER BY 1, 2")  # fmt: skip
    assert stored == [(p.a, p.b, p.value, p.observations) for p in expected]
