"""Phase metrics and asset performance from the phase monitor's tables.

Reads what :mod:`consumers.phase.track_store` wrote and hands it to the pure
:mod:`gate.performance`; writes ``asset_performance``. Call inside a transaction to
read one consistent state.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from consumers.db.connection import Connection
from consumers.phase.track_store import load_track
from gate.performance import AssetDays, PhaseMetrics, TripResult, asset_performance, phase_metrics
from gate.portfolio import equity
from gate.stats import WINDOW_DAYS, DailyClose
from schemas.config import AssetsConfig


def load_closes(conn: Connection, portfolio: str) -> list[DailyClose]:
    rows = conn.execute(
        "SELECT day, close_equity, net_deposits FROM daily_equity WHERE portfolio = %s "
        "ORDER BY day",
        (portfolio,),
    ).fetchall()
    return [DailyClose(day, eq, dep) for day, eq, dep in rows]


def load_asset_days(conn: Connection, portfolio: str) -> dict[str, AssetDays]:
    rows = conn.execute(
        "SELECT symbol, asset_class, day, cumulative_pnl FROM daily_asset_pnl "
        "WHERE portfolio = %s ORDER BY symbol, day",
        (portfolio,),
    ).fetchall()
    series: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    classes: dict[str, str | None] = {}
    for symbol, cls, day, cum in rows:
        series[symbol].append((day, cum))
        classes[symbol] = cls
    return {s: AssetDays(classes[s], tuple(points)) for s, points in series.items()}


def load_trips(conn: Connection, portfolio: str) -> list[TripResult]:
    rows = conn.execute(
        "SELECT symbol, asset_class, realized_pnl FROM round_trips WHERE portfolio = %s "
        "ORDER BY closed_at, close_event_id",
        (portfolio,),
    ).fetchall()
    return [TripResult(s, c, pnl) for s, c, pnl in rows]


def current_capital(conn: Connection, portfolio: str, config: AssetsConfig) -> Decimal:
    """Equity of the monitor's ledger at its latest marks (0 for a new portfolio)."""
    return equity(load_track(conn, portfolio, lock=False).snapshot, config)


def current_metrics(
    conn: Connection,
    portfolio: str,
    config: AssetsConfig,
    today: date,
    window_days: int = WINDOW_DAYS,
) -> PhaseMetrics:
    return phase_metrics(
        load_closes(conn, portfolio),
        load_asset_days(conn, portfolio),
        load_trips(conn, portfolio),
        capital=current_capital(conn, portfolio, config),
        today=today,
        window_days=window_days,
    )


UPSERT_PERFORMANCE = """
INSERT INTO asset_performance (portfolio, scope, name, asset_class, trades, wins, losses,
                               win_rate, gross_profit, gross_loss, profit_factor, realized_pnl,
                               sharpe_ratio, sharpe_days, window_days, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (portfolio, scope, name) DO UPDATE SET
    asset_class = excluded.asset_class, trades = excluded.trades, wins = excluded.wins,
    losses = excluded.losses, win_rate = excluded.win_rate,
    gross_profit = excluded.gross_profit, gross_loss = excluded.gross_loss,
    profit_factor = excluded.profit_factor, realized_pnl = excluded.realized_pnl,
    sharpe_ratio = excluded.sharpe_ratio, sharpe_days = excluded.sharpe_days,
    window_days = excluded.window_days, updated_at = excluded.updated_at
"""


def refresh_asset_performance(
    conn: Connection, portfolio: str, today: date, window_days: int = WINDOW_DAYS
) -> int:
    """Recompute every asset and class row of the portfolio; returns the row count."""
    rows = asset_performance(
        load_trips(conn, portfolio), load_asset_days(conn, portfolio), today, window_days
    )
    with conn.cursor() as cur:
        cur.executemany(
            UPSERT_PERFORMANCE,
            [
                (portfolio, r.scope, r.name, r.asset_class, r.trades, r.wins, r.losses,
                 r.win_rate, r.gross_profit, r.gross_loss, r.profit_factor, r.realized_pnl,
                 r.sharpe_ratio, r.sharpe_days, window_days)
                for r in rows
            ],
        )  # fmt: skip
    return len(rows)
