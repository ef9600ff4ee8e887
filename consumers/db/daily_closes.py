"""Daily closes: each symbol's close of its last bar of each UTC day (any interval).

Every database has ``price_data_daily`` (``sql/006_timescaledb.sql``). On TimescaleDB's
community edition it is a real-time continuous aggregate: buckets past its watermark
are aggregated from ``price_data`` at query time, buckets before it are read from the
materialization, which is refreshed hourly by a policy. Bars written or replaced
before the watermark since the last refresh would be missing from it, so
:func:`daily_closes` refreshes the days it is about to read first (only the ranges
that changed are recomputed; a no-op otherwise), stopping at the start of the current
UTC day so the day still filling stays real time for every reader. Elsewhere (plain
PostgreSQL, TimescaleDB's apache edition) it reads ``price_data`` with the plain query
the view is made of, bounded by time so only the window's partitions or chunks are read.
Both give the same rows (tests/integration/test_db_timescale.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from consumers.db.connection import Connection

AGGREGATE = "price_data_daily"

PLAIN = """
SELECT DISTINCT ON (symbol, day) symbol, (time AT TIME ZONE 'UTC')::date AS day, close, time
  FROM price_data
 WHERE symbol = ANY(%s) AND time >= %s AND time < %s
 ORDER BY symbol, day, time DESC
"""

FROM_AGGREGATE = """
SELECT symbol, (day AT TIME ZONE 'UTC')::date, close, close_at
  FROM price_data_daily
 WHERE symbol = ANY(%s) AND day >= %s AND day < %s
 ORDER BY symbol, day
"""

TIMESCALEDB = "SELECT to_regclass('timescaledb_information.continuous_aggregates') IS NOT NULL"

Close = tuple[str, date, Decimal, datetime]  # symbol, UTC day, close, that bar's time


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def is_aggregate(conn: Connection) -> bool:
    """True when ``price_data_daily`` is a continuous aggregate in this database."""
    row = conn.execute(TIMESCALEDB).fetchone()
    if not (row and row[0]):
        return False
    found = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates "
        "WHERE view_schema = current_schema() AND view_name = %s)",
        (AGGREGATE,),
    ).fetchone()
    return bool(found and found[0])


def refresh(conn: Connection, first: date, last: date) -> bool:
    """Materialize the aggregate's complete days in [first, last] (not today's, still
    filling); False when there is no complete day to refresh. Outside a transaction."""
    row = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()
    end = min(last + timedelta(days=1), row[0]) if row else first  # the server's today
    if end <= first:
        return False
    conn.execute(
        "CALL refresh_continuous_aggregate(%s, %s, %s)", (AGGREGATE, midnight(first), midnight(end))
    )
    return True


def daily_closes(conn: Connection, symbols: Sequence[str], first: date, last: date) -> list[Close]:
    """The closes of ``symbols`` on the UTC days ``first`` .. ``last`` (inclusive), ordered
    by symbol and day. Uses the continuous aggregate where there is one (refreshed first;
    ``conn`` must not be inside a transaction then), else the plain query."""
    start, stop = midnight(first), midnight(last + timedelta(days=1))
    if is_aggregate(conn):
        refresh(conn, first, last)
        cur = conn.execute(FROM_AGGREGATE, (list(symbols), start, stop))
    else:
        cur = conn.execute(PLAIN, (list(symbols), start, stop))
    return [(str(s), d, c, at) for s, d, c, at in cur]
