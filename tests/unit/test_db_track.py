"""gate.track and gate.performance: events into fills, round trips, closes and metrics."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from consumers.phase.track_store import decode_track, encode_track
from gate.ledger import PortfolioEvent, apply_events
from gate.performance import AssetDays, TripResult, asset_performance, phase_metrics
from gate.stats import DailyClose
from gate.track import Track, record
from schemas.messages import Deposit, Fill, Mark
from tests.builders import base_config

D = Decimal
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_ids = iter(range(10**9))


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def fill(symbol: str, side: str, qty: str, price: str, hours: float = 0) -> Fill:
    n = next(_ids)
    return Fill(
        type="fill",
        event_id=f"f{n}",
        intent_id=f"i{n}",
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        quantity=D(qty),
        price=D(price),
        at=at(hours),
    )


def mark(prices: dict[str, str], hours: float) -> Mark:
    return Mark(
        type="mark",
        event_id=f"m{next(_ids)}",
        prices={s: D(p) for s, p in prices.items()},
        at=at(hours),
    )


def deposit(amount: str, hours: float = 0) -> Deposit:
    return Deposit(type="deposit", event_id=f"d{next(_ids)}", amount=D(amount), at=at(hours))


def run(events: Iterable[PortfolioEvent], track: Track | None = None) -> tuple[Track, Any]:
    # each event reaches the stream when it happens (the stream id is its clock)
    return record(
        track or Track(), [(e, getattr(e, "at", None) or T0) for e in events], base_config()
    )


def test_record_when_position_opened_added_reduced_closed_then_one_round_trip() -> None:
    """Open, add, partly close, close: four fills, one trip with the summed realized PnL."""
    track, out = run(
        [
            deposit("100000"),
            fill("ETH/USDT", "buy", "1", "3000", 1),
            fill("ETH/USDT", "buy", "1", "3200", 2),  # average 3100
            fill("ETH/USDT", "sell", "0.5", "3300", 3),  # +100
            fill("ETH/USDT", "sell", "1.5", "3000", 4),  # -150
        ]
    )
    assert [f.realized_pnl for f in out.fills] == [0, 0, D("100.0"), D("-150.0")]
    assert [f.position_after for f in out.fills] == [D(1), D(2), D("1.5"), D(0)]
    assert [f.closes_trip for f in out.fills] == [False, False, False, True]
    (trip,) = out.trips
    assert (trip.direction, trip.fills, trip.max_quantity) == ("long", 4, D(2))
    assert trip.realized_pnl == D(-50)
    assert (trip.opened_at, trip.closed_at) == (at(1), at(4))
    assert track.trips == {} and track.realized["ETH/USDT"] == D(-50)


def test_record_when_fill_flips_position_then_trip_closed_and_next_opened() -> None:
    """Long 1 then sell 3: the long trip closes with its PnL, a short of 2 opens."""
    track, out = run(
        [fill("BTC/USDT", "buy", "1", "100000", 1), fill("BTC/USDT", "sell", "3", "101000", 2)]
    )
    (trip,) = out.trips
    assert (trip.direction, trip.realized_pnl, trip.fills) == ("long", D(1000), 2)
    opened = track.trips["BTC/USDT"]
    assert (opened.direction, opened.max_quantity, opened.opened_at) == ("short", D(2), at(2))


def test_record_when_marks_then_daily_closes_value_equity_and_asset_pnl() -> None:
    """A mark's close: equity after it, net deposits, and realized + unrealized per asset."""
    _, out = run(
        [
            deposit("10000"),
            fill("BTC/USDT", "buy", "0.1", "100000", 1),
            fill("ETH/USDT", "buy", "1", "3000", 1),
            fill("ETH/USDT", "sell", "1", "3100", 2),  # +100 realized
            mark({"BTC/USDT": "102000"}, 3),  # +200 unrealized
            deposit("500", 4),
            mark({"BTC/USDT": "99000"}, 30),  # next day, -100 unrealized
        ]
    )
    first, second = out.closes
    assert (first.day, first.equity, first.net_deposits) == (date(2026, 3, 2), D(10300), D(10000))
    assert first.asset_pnl == {"BTC/USDT": D(200), "ETH/USDT": D(100)}
    assert (second.day, second.equity, second.net_deposits) == (
        date(2026, 3, 3),
        D(10500),
        D(10500),
    )
    assert second.asset_pnl == {"BTC/USDT": D(-100), "ETH/USDT": D(100)}
    assert sum(second.asset_pnl.values()) == second.equity - second.net_deposits


def test_record_when_compared_with_the_gate_ledger_then_same_realized_pnl() -> None:
    """The track's realized PnL per symbol adds up to the ledger's account realized PnL."""
    events: list[PortfolioEvent] = [deposit("50000")]
    for i, px in enumerate(["100", "104", "98", "110", "95", "101"]):
        side = "buy" if i % 3 != 2 else "sell"
        events.append(fill("NVDA", side, str(10 + i), px, i))
    events.append(fill("NVDA", "sell", "100", "99", 10))  # flips short
    track, _ = run(events)
    ledger = Track().snapshot
    for e in events:  # each applied when it happens, as the gate would
        ledger = apply_events(ledger, [e], base_config(), getattr(e, "at", None) or T0).snapshot
    assert sum(track.realized.values()) == ledger.account.realized_pnl
    assert track.snapshot == ledger


def test_track_when_encoded_and_decoded_then_equal() -> None:
    """The state the monitor keeps in PostgreSQL round-trips exactly."""
    track, _ = run(
        [deposit("1000"), fill("TSLA", "buy", "2", "400.5", 1), mark({"TSLA": "401.25"}, 2)]
    )
    assert decode_track(encode_track(track)) == track
    assert decode_track({}) == Track()


# --- metrics ----------------------------------------------------------------------------

TODAY = date(2026, 6, 30)


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


def test_phase_metrics_when_deposit_days_then_not_counted_as_profitable() -> None:
    """Profitable days come from PnL; a deposit that lifts equity is not a profit, and the
    losing day takes the profitable one back (net 0)."""
    closes = [
        DailyClose(days_ago(3), D(1000), D(1000)),
        DailyClose(days_ago(2), D(2000), D(2000)),  # deposit only
        DailyClose(days_ago(1), D(2020), D(2000)),  # +20
        DailyClose(days_ago(0), D(2010), D(2000)),  # -10
    ]
    m = phase_metrics(closes, {}, [], capital=D(2010), today=TODAY)
    assert (m.profitable_days, m.close_days, m.sharpe_days) == (0, 4, 4)
    assert (m.winning_days, m.losing_days) == (1, 1)
    assert m.max_drawdown == D(10) / D(2020)


def test_phase_metrics_when_crypto_and_stock_pnl_then_crypto_days_counted_alone() -> None:
    """Crypto profitable days use the crypto symbols' daily PnL only."""
    assets = {
        "BTC/USDT": AssetDays("crypto", ((days_ago(2), D(5)), (days_ago(1), D(3)))),
        "ETH/USDT": AssetDays("crypto", ((days_ago(1), D(10)),)),
        "NVDA": AssetDays("stocks", ((days_ago(2), D(-50)), (days_ago(1), D(100)))),
    }
    m = phase_metrics([], assets, [], capital=D(0), today=TODAY)
    # crypto: day -2: +5; day -1: -2 + 10 = +8
    assert m.crypto_profitable_days == 2


@pytest.mark.parametrize(
    ("pnls", "trades", "rate"),
    [([], 0, None), (["5", "-1"], 2, D("0.5")), (["5", "5", "0", "-1"], 4, D("0.5"))],
)
def test_phase_metrics_when_round_trips_then_trades_and_win_rate(
    pnls: list[str], trades: int, rate: Decimal | None
) -> None:
    """Trades counts closed round trips; the win rate is over them."""
    trips = [TripResult("BTC/USDT", "crypto", D(p)) for p in pnls]
    m = phase_metrics([], {}, trips, capital=D(1), today=TODAY)
    assert (m.trades, m.win_rate) == (trades, rate)
    assert ("win_rate" in m.values()) is (rate is not None)


def test_asset_performance_when_trips_and_days_then_rows_per_asset_and_class() -> None:
    """Per asset and per class: trades, wins, profit factor, realized PnL, PnL Sharpe."""
    trips = [
        TripResult("BTC/USDT", "crypto", D(30)),
        TripResult("BTC/USDT", "crypto", D(-10)),
        TripResult("ETH/USDT", "crypto", D(5)),
    ]
    assets = {
        "BTC/USDT": AssetDays("crypto", ((days_ago(2), D(30)), (days_ago(1), D(20)))),
        "ETH/USDT": AssetDays("crypto", ((days_ago(1), D(5)),)),
    }
    rows = {(r.scope, r.name): r for r in asset_performance(trips, assets, TODAY)}
    btc = rows[("asset", "BTC/USDT")]
    assert (btc.trades, btc.wins, btc.losses, btc.profit_factor) == (2, 1, 1, D(3))
    assert (btc.realized_pnl, btc.sharpe_days) == (D(20), 2)
    crypto = rows[("class", "crypto")]
    assert (crypto.trades, crypto.win_rate, crypto.gross_profit) == (3, D(2) / 3, D(35))
    assert rows[("asset", "ETH/USDT")].sharpe_ratio is None  # one day: undefined
