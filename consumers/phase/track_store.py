"""The phase monitor's tables: its ledger state, applied event ids and derived rows.

Everything here runs inside the caller's transaction. The state row is locked
(SELECT ... FOR UPDATE) for the whole batch, so the ledger and the rows derived from
it always move together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from consumers.db.connection import Connection, jsonb
from consumers.state.codec import (
    decode_account,
    decode_position,
    decode_quote,
    encode_account,
    encode_position,
    encode_quote,
)
from gate.portfolio import Snapshot
from gate.track import CloseRow, Derived, OpenTrip, Track
from schemas.config import AssetsConfig


def encode_track(t: Track) -> dict[str, Any]:
    snap = t.snapshot
    return {
        "account": json.loads(encode_account(snap.account)),
        "positions": {s: json.loads(encode_position(p)) for s, p in snap.positions.items()},
        "marks": {s: encode_quote(q) for s, q in snap.marks.items()},
        "net_deposits": str(t.net_deposits),
        "realized": {s: str(v) for s, v in t.realized.items()},
        "classes": dict(t.classes),
        "trips": {
            s: {
                "opened_at": trip.opened_at.isoformat(),
                "direction": trip.direction,
                "max_quantity": str(trip.max_quantity),
                "fills": trip.fills,
                "realized": str(trip.realized),
                "fees": str(trip.fees),
            }
            for s, trip in t.trips.items()
        },
    }


def decode_track(raw: dict[str, Any]) -> Track:
    if not raw:
        return Track()
    snapshot = Snapshot(
        account=decode_account(raw["account"]),
        positions={s: decode_position(p) for s, p in raw["positions"].items()},
        marks={s: decode_quote(q) for s, q in raw.get("marks", {}).items()},
    )
    return Track(
        snapshot=snapshot,
        net_deposits=Decimal(raw["net_deposits"]),
        realized={s: Decimal(v) for s, v in raw["realized"].items()},
        classes=dict(raw.get("classes", {})),
        trips={
            s: OpenTrip(
                datetime.fromisoformat(t["opened_at"]),
                t["direction"],
                Decimal(t["max_quantity"]),
                int(t["fills"]),
                Decimal(t["realized"]),
                Decimal(t.get("fees", "0")),  # states saved before fees were charged
            )
            for s, t in raw["trips"].items()
        },
    )


def load_track(conn: Connection, portfolio: str, *, lock: bool = True) -> Track:
    """The monitor's ledger (an empty one for a new portfolio), locked for the batch."""
    if lock:
        conn.execute(
            "INSERT INTO phase_monitor_state (portfolio, state) VALUES (%s, '{}') "
            "ON CONFLICT DO NOTHING",
            (portfolio,),
        )
        row = conn.execute(
            "SELECT state FROM phase_monitor_state WHERE portfolio = %s FOR UPDATE", (portfolio,)
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT state FROM phase_monitor_state WHERE portfolio = %s", (portfolio,)
        ).fetchone()
    return decode_track(row[0]) if row else Track()


def save_track(
    conn: Connection, portfolio: str, track: Track, applied: int, last_stream_id: str | None
) -> None:
    conn.execute(
        "UPDATE phase_monitor_state SET state = %s, events_applied = events_applied + %s, "
        "last_stream_id = COALESCE(%s, last_stream_id), updated_at = now() WHERE portfolio = %s",
        (jsonb(encode_track(track)), applied, last_stream_id, portfolio),
    )


@dataclass(frozen=True, slots=True)
class EventKey:
    event_id: str
    type: str
    at: datetime
    stream_id: str


def claim_events(conn: Connection, portfolio: str, keys: Sequence[EventKey]) -> set[str]:
    """Record event ids as applied; returns the ids that were new (the ones to apply)."""
    if not keys:
        return set()
    rows = conn.execute(
        "INSERT INTO applied_events (portfolio, event_id, type, event_at, stream_id) "
        "SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::text[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        (
            portfolio,
            [k.event_id for k in keys],
            [k.type for k in keys],
            [k.at for k in keys],
            [k.stream_id for k in keys],
        ),
    ).fetchall()
    return {str(r[0]) for r in rows}


INSERT_TRADES = """
INSERT INTO trades (portfolio, executed_at, event_id, intent_id, symbol, asset_class, side,
                    quantity, price, position_before, position_after, avg_price_after,
                    realized_pnl, closes_trip, fee, fee_account)
SELECT %s, * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[],
                         %s::text[], %s::numeric[], %s::numeric[], %s::numeric[],
                         %s::numeric[], %s::numeric[], %s::numeric[], %s::boolean[],
                         %s::numeric[], %s::numeric[])
"""

INSERT_TRIP = """
INSERT INTO round_trips (portfolio, close_event_id, symbol, asset_class, direction, opened_at,
                         closed_at, max_quantity, fills, realized_pnl, fees)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

# a close from an earlier mark (a late event) never replaces a later one of the same day
UPSERT_DAY = """
INSERT INTO daily_equity AS d (portfolio, day, close_equity, net_deposits, close_at, marks)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (portfolio, day) DO UPDATE SET
    close_equity = CASE WHEN excluded.close_at >= d.close_at
                        THEN excluded.close_equity ELSE d.close_equity END,
    net_deposits = CASE WHEN excluded.close_at >= d.close_at
                        THEN excluded.net_deposits ELSE d.net_deposits END,
    close_at = GREATEST(excluded.close_at, d.close_at),
    marks = d.marks + excluded.marks,
    updated_at = now()
"""

UPSERT_ASSET_DAY = """
INSERT INTO daily_asset_pnl AS a (portfolio, day, symbol, asset_class, cumulative_pnl, close_at)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (portfolio, day, symbol) DO UPDATE SET
    asset_class = excluded.asset_class, cumulative_pnl = excluded.cumulative_pnl,
    close_at = excluded.close_at
WHERE excluded.close_at >= a.close_at
"""


def _latest_per_day(closes: Sequence[CloseRow]) -> list[tuple[CloseRow, int]]:
    """The latest close of each day in the batch, with how many marks the day had."""
    best: dict[Any, tuple[CloseRow, int]] = {}
    for c in closes:
        kept, n = best.get(c.day, (c, 0))
        best[c.day] = (c if c.at >= kept.at else kept, n + 1)
    return [best[d] for d in sorted(best)]


def write_derived(
    conn: Connection, portfolio: str, derived: Derived, track: Track, config: AssetsConfig
) -> None:
    fills = derived.fills
    with conn.cursor() as cur:
        if fills:
            cur.execute(
                INSERT_TRADES,
                (portfolio, [f.executed_at for f in fills], [f.event_id for f in fills],
                 [f.intent_id for f in fills], [f.symbol for f in fills],
                 [f.asset_class for f in fills], [f.side.value for f in fills],
                 [f.quantity for f in fills], [f.price for f in fills],
                 [f.position_before for f in fills], [f.position_after for f in fills],
                 [f.avg_price_after for f in fills], [f.realized_pnl for f in fills],
                 [f.closes_trip for f in fills], [f.fee for f in fills],
                 [f.fee_account for f in fills]),
            )  # fmt: skip
        cur.executemany(
            INSERT_TRIP,
            [
                (portfolio, t.close_event_id, t.symbol, t.asset_class, t.direction, t.opened_at,
                 t.closed_at, t.max_quantity, t.fills, t.realized_pnl, t.fees)
                for t in derived.trips
            ],
        )  # fmt: skip
        for c, marks in _latest_per_day(derived.closes):
            cur.execute(UPSERT_DAY, (portfolio, c.day, c.equity, c.net_deposits, c.at, marks))
            cur.executemany(
                UPSERT_ASSET_DAY,
                [
                    (portfolio, c.day, s, _class(s, track, config), pnl, c.at)
                    for s, pnl in sorted(c.asset_pnl.items())
                ],
            )


def _class(symbol: str, track: Track, config: AssetsConfig) -> str | None:
    asset = config.assets.get(symbol)
    return asset.asset_class.value if asset else track.classes.get(symbol)
