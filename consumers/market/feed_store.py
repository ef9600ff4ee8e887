"""What ``riskgate feed`` writes to PostgreSQL and reads back: bars (``price_data``,
through :func:`consumers.market.prices.load_bars`), the calendar, sentiment, options
flow, indicators, coverage; and the daily candles the regimes are computed from (the
same ``price_data`` the correlation job reads)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from consumers.db.connection import Connection, ensure_partitions, jsonb
from consumers.market.regime import Candle
from consumers.market.router import Coverage
from consumers.market.sources.base import CalendarEvent, Indicator, OptionPrint, Sentiment

UPSERT_EVENT = """
INSERT INTO economic_calendar (event_time, country, event_name, impact, forecast, previous,
                               actual, unit, affected_classes, volatility_warning, source,
                               symbol, kind, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (country, event_name, event_time) DO UPDATE SET
    impact = excluded.impact, forecast = coalesce(excluded.forecast, economic_calendar.forecast),
    previous = coalesce(excluded.previous, economic_calendar.previous),
    actual = coalesce(excluded.actual, economic_calendar.actual), unit = excluded.unit,
    affected_classes = excluded.affected_classes,
    volatility_warning = excluded.volatility_warning, source = excluded.source,
    symbol = excluded.symbol, kind = excluded.kind, updated_at = now()
"""


def store_calendar(
    conn: Connection,
    items: Sequence[tuple[str, CalendarEvent]],
    *,
    answered: Iterable[tuple[str, str]] = (),
    today: date | None = None,
) -> int:
    """Upsert events. For each (source, symbol) in ``answered`` the source's answer is the
    truth about that symbol's coming earnings: its earlier future dates are removed (a
    rescheduled report), so the flag follows the provider."""
    unique = {(e.country, e.event_name, e.event_time): (src, e) for src, e in items}
    with conn.transaction(), conn.cursor() as cur:
        if today is not None:
            for src, sym in sorted(set(answered)):
                cur.execute(
                    "DELETE FROM economic_calendar WHERE kind = 'earnings' AND source = %s "
                    "AND symbol = %s AND event_time >= %s",
                    (src, sym, today),
                )
        cur.executemany(
            UPSERT_EVENT,
            [(e.event_time, e.country, e.event_name, e.impact, e.forecast, e.previous,
              e.actual, e.unit, list(e.affected_classes), e.volatility_warning, src, e.symbol,
              e.kind) for src, e in unique.values()],
        )  # fmt: skip
    return len(unique)


def next_earnings(conn: Connection, symbols: Sequence[str], today: date) -> dict[str, date]:
    """Each symbol's next earnings day on record (today or later), from the calendar."""
    rows = conn.execute(
        "SELECT symbol, min((event_time AT TIME ZONE 'UTC')::date) FROM economic_calendar "
        "WHERE kind = 'earnings' AND symbol = ANY(%s) "
        "AND (event_time AT TIME ZONE 'UTC')::date >= %s GROUP BY symbol",
        (list(symbols), today),
    ).fetchall()
    return {sym: day for sym, day in rows}


def store_sentiment(
    conn: Connection, items: Sequence[tuple[str, Sentiment]], classes: dict[str, str]
) -> int:
    if not items:
        return 0
    ensure_partitions(conn, "social_sentiment", [s.time for _, s in items])
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO social_sentiment (time, symbol, asset_class, platform, mentions, "
            "sentiment_score, bullish_ratio, source, metadata) VALUES (%s, %s, %s, %s, %s, %s, "
            "%s, %s, %s) ON CONFLICT (symbol, platform, time) DO UPDATE SET "
            "mentions = excluded.mentions, sentiment_score = excluded.sentiment_score, "
            "bullish_ratio = excluded.bullish_ratio, metadata = excluded.metadata",
            [(s.time, s.symbol, classes[s.symbol], s.platform, s.mentions, s.score,
              s.bullish_ratio, src, jsonb(dict(s.metadata))) for src, s in items],
        )  # fmt: skip
    return len(items)


def store_options(
    conn: Connection, items: Sequence[tuple[str, OptionPrint]], classes: dict[str, str]
) -> int:
    if not items:
        return 0
    ensure_partitions(conn, "options_flow", [o.time for _, o in items])
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO options_flow (time, symbol, asset_class, trade_id, option_type, strike, "
            "expiry, side, contracts, premium, trade_type, underlying_price, implied_volatility, "
            "open_interest, sentiment, unusual, source) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (symbol, trade_id, time) DO NOTHING",
            [(o.time, o.symbol, classes[o.symbol], o.trade_id, o.option_type, o.strike, o.expiry,
              o.side, o.contracts, o.premium, o.trade_type, o.underlying_price,
              o.implied_volatility, o.open_interest, o.sentiment, o.unusual, src)
             for src, o in items],
        )  # fmt: skip
    return len(items)


def store_indicators(
    conn: Connection, items: Sequence[tuple[str, Indicator]], classes: dict[str, str]
) -> int:
    if not items:
        return 0
    ensure_partitions(conn, "leading_indicators", [i.time for _, i in items])
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO leading_indicators (time, symbol, asset_class, indicator, value, "
            "text_value, source, metadata) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (symbol, indicator, time) DO UPDATE SET value = excluded.value, "
            "text_value = excluded.text_value, source = excluded.source, "
            "metadata = excluded.metadata",
            [(i.time, i.symbol, classes[i.symbol], i.indicator, i.value, i.text_value, src,
              jsonb(dict(i.metadata))) for src, i in items],
        )  # fmt: skip
    return len(items)


def store_coverage(conn: Connection, coverage: Sequence[Coverage], at: datetime) -> None:
    if not coverage:
        return
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO feed_coverage (symbol, kind, source, ok, last_success_at, "
            "last_attempt_at, reason) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (symbol, kind) DO UPDATE SET "
            "source = coalesce(excluded.source, feed_coverage.source), ok = excluded.ok, "
            "last_success_at = coalesce(excluded.last_success_at, feed_coverage.last_success_at), "
            "last_attempt_at = excluded.last_attempt_at, reason = excluded.reason",
            [(c.symbol, str(c.kind), c.source, c.ok, at if c.ok else None, at, c.reason)
             for c in coverage],
        )  # fmt: skip


def daily_candles(
    conn: Connection, symbols: Sequence[str], since: datetime
) -> dict[str, list[Candle]]:
    """Each symbol's daily bars since ``since``, oldest first (rows without high/low
    are left out: ADX needs the range)."""
    out: dict[str, list[Candle]] = defaultdict(list)
    rows = conn.execute(
        "SELECT symbol, time, high, low, close FROM price_data WHERE interval = '1d' "
        "AND symbol = ANY(%s) AND time >= %s AND high IS NOT NULL AND low IS NOT NULL "
        "ORDER BY symbol, time",
        (list(symbols), since),
    )
    for symbol, at, high, low, close in rows:
        out[symbol].append(Candle(at, high, low, close))
    return dict(out)
