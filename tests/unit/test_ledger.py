"""Portfolio events applied to a snapshot: deposits, fills, cancels, marks."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from gate.ledger import apply_events, overdue
from gate.portfolio import Snapshot, equity
from schemas.messages import Cancel, Deposit, Expired, Fill, Mark, Release
from tests.builders import NOW, all_enabled, base_config, reservation, snapshot

D = Decimal
CFG = base_config()


def fill(intent_id: str, side: str, qty: str, price: str, **kw: Any) -> Fill:
    return Fill.model_validate(
        {
            "type": "fill",
            "event_id": f"f-{intent_id}-{qty}-{price}",
            "intent_id": intent_id,
            "symbol": kw.pop("symbol", "BTC/USDT"),
            "side": side,
            "quantity": qty,
            "price": price,
            "at": kw.pop("at", NOW),
        }
    )


def mark(prices: dict[str, str], at: Any = NOW, **kw: Any) -> Mark:
    return Mark.model_validate(
        {"type": "mark", "event_id": f"m-{at.isoformat()}", "prices": prices, "at": at, **kw}
    )


def apply(snap: Snapshot, *events: Any) -> tuple[Snapshot, list[str]]:
    """Apply at the gate's clock, which is at least the latest event's time."""
    now = max([NOW, *(e.at for e in events if getattr(e, "at", None) is not None)])
    out = apply_events(snap, events, CFG, now)
    return out.snapshot, [n for _, n in out.notes]


def test_deposit_when_applied_then_cash_peak_and_day_start_rise() -> None:
    """A deposit is not PnL: peak and start-of-day equity move with it."""
    snap, _ = apply(snapshot("1000"), Deposit(type="deposit", event_id="d1", amount=D(500)))
    assert (snap.account.cash, snap.account.peak_equity, snap.account.day_start_equity) == (
        D(1500),
        D(1500),
        D(1500),
    )


def test_fill_when_reserved_then_position_opens_and_reservation_is_consumed() -> None:
    """A full fill converts the reservation into a position with the approved stop."""
    snap = snapshot(
        "100000", reservations=[reservation("i1", "BTC/USDT", "0.1", "100000", "94000")]
    )
    snap, notes = apply(snap, fill("i1", "buy", "0.1", "100000"))
    pos = snap.positions["BTC/USDT"]
    assert (pos.quantity, pos.avg_price, pos.stop_price, notes) == (
        D("0.1"),
        D(100000),
        D(94000),
        [],
    )
    assert snap.reservations == {}
    assert snap.account.cash == D(90000)


def test_fill_when_partial_then_remainder_stays_reserved() -> None:
    """A partial fill leaves the unfilled quantity reserved."""
    snap = snapshot(
        "100000", reservations=[reservation("i1", "BTC/USDT", "0.1", "100000", "94000")]
    )
    snap, _ = apply(snap, fill("i1", "buy", "0.04", "100000"))
    assert snap.reservations["i1"].quantity == D("0.06")
    assert snap.positions["BTC/USDT"].quantity == D("0.04")


def test_reservation_when_compared_copied_or_decoded_then_a_value() -> None:
    """A reservation is a value, as the frozen dataclass was: equal and hashed by its
    fields, changed only by copying, and the codec's order is its constructor's."""
    import inspect

    from consumers.state.codec import decode_reservation, encode_reservation
    from gate.portfolio import Reservation

    r = reservation("i1", "BTC/USDT", "0.1", "100000", "94000")
    twin = reservation("i1", "BTC/USDT", "0.1", "100000", "94000")
    assert r == twin and hash(r) == hash(twin) and len({r, twin}) == 1
    assert r != reservation("i1", "BTC/USDT", "0.1", "100000", None)
    assert r != "i1" and r != tuple(getattr(r, f) for f in Reservation.FIELDS)
    left = r.with_quantity(D("0.06"))
    assert (left.quantity, r.quantity) == (D("0.06"), D("0.1"))
    assert all(getattr(left, f) == getattr(r, f) for f in Reservation.FIELDS if f != "quantity")
    assert tuple(inspect.signature(Reservation).parameters) == Reservation.FIELDS
    assert decode_reservation(json.loads(encode_reservation(r))) == r
    assert repr(r).startswith("Reservation(intent_id='i1', agent_id='agent-1', symbol='BTC/USDT'")
    with pytest.raises(AttributeError):
        r.other = 1  # type: ignore[attr-defined]  # slotted: no stray attributes


def test_fill_when_no_approval_known_then_applied_and_trading_halted() -> None:
    """The executor's fills are the truth: applied, escalated (unknown_fill), halted."""
    ev = fill("ghost", "buy", "1", "3900", symbol="ETH/USDT")
    out = apply_events(snapshot("100000"), [ev], CFG, NOW)
    assert out.snapshot.positions["ETH/USDT"].quantity == D(1)
    why = "fill for ghost (buy 1 ETH/USDT at 3900): no known approval"
    assert out.escalations == ((ev.event_id, why),)
    halt = out.snapshot.account.halted_by
    assert halt is not None and (halt.event_id, halt.reason) == (
        ev.event_id,
        f"unknown_fill: {why}",
    )


def test_fill_when_closing_then_realized_pnl_and_position_gone() -> None:
    """Buy 1 at 100,000, sell 1 at 110,000: 10,000 realised, flat."""
    snap, _ = apply(snapshot("200000"), fill("a", "buy", "1", "100000"))
    snap, _ = apply(snap, fill("b", "sell", "1", "110000"))
    assert "BTC/USDT" not in snap.positions
    assert snap.account.realized_pnl == D(10000)
    assert snap.account.cash == D(210000)


def test_fill_when_adding_then_average_price_is_weighted() -> None:
    """Adding at a new price averages the entry."""
    snap, _ = apply(
        snapshot("500000"), fill("a", "buy", "1", "100000"), fill("b", "buy", "3", "110000")
    )
    assert snap.positions["BTC/USDT"].avg_price == D(107500)


def test_fill_when_selling_through_zero_then_short_opens_at_fill_price() -> None:
    """Long 1, sell 3: 1 closes, a 2-unit short opens at the fill price."""
    snap, _ = apply(snapshot("500000"), fill("a", "buy", "1", "100000"))
    snap, _ = apply(snap, fill("b", "sell", "3", "90000"))
    pos = snap.positions["BTC/USDT"]
    assert (pos.quantity, pos.avg_price, snap.account.realized_pnl) == (D(-2), D(90000), D(-10000))


def test_cancel_when_reserved_then_released_else_noted() -> None:
    """Cancel releases a reservation; an unknown one is only noted."""
    snap = snapshot(reservations=[reservation("i1", "BTC/USDT", "0.1", "100000", "94000")])
    snap, notes = apply(
        snap,
        Cancel(type="cancel", event_id="c1", intent_id="i1"),
        Cancel(type="cancel", event_id="c2", intent_id="i1"),
    )
    assert snap.reservations == {}
    assert notes == ["cancel for i1: no open reservation"]


def test_mark_when_price_moves_then_equity_and_peak_follow() -> None:
    """Marks revalue positions; a new high raises the peak, a fall does not lower it."""
    snap, _ = apply(snapshot("100000"), fill("a", "buy", "1", "100000"))
    up, _ = apply(snap, mark({"BTC/USDT": "120000"}))
    down, _ = apply(up, mark({"BTC/USDT": "90000"}, at=NOW + timedelta(minutes=1)))
    assert (equity(up, CFG), up.account.peak_equity) == (D(120000), D(120000))
    assert (equity(down, CFG), down.account.peak_equity) == (D(90000), D(120000))


def test_mark_when_new_utc_day_then_day_starts_from_last_equity() -> None:
    """The first mark of a UTC day sets start-of-day equity to the previous close."""
    snap, _ = apply(snapshot("100000"), fill("a", "buy", "1", "100000"))
    snap, _ = apply(snap, mark({"BTC/USDT": "104000"}))
    tomorrow = NOW + timedelta(days=1)
    snap, _ = apply(snap, mark({"BTC/USDT": "99000"}, at=tomorrow))
    assert (snap.account.day, snap.account.day_start_equity) == (tomorrow.date(), D(104000))


def test_mark_when_late_then_newer_price_is_kept() -> None:
    """A mark older than the position's last mark does not overwrite it."""
    snap, _ = apply(snapshot("100000"), fill("a", "buy", "1", "100000"))
    snap, _ = apply(snap, mark({"BTC/USDT": "101000"}, at=NOW + timedelta(minutes=5)))
    snap, _ = apply(snap, mark({"BTC/USDT": "50000"}, at=NOW + timedelta(minutes=1)))
    assert snap.positions["BTC/USDT"].mark_price == D(101000)


def test_mark_when_fx_given_then_foreign_positions_revalue() -> None:
    """A mark's fx rates replace the configured reference rates."""
    cfg = all_enabled()
    out = apply_events(
        snapshot("100000"),
        [
            fill("g", "buy", "1000", "200", symbol="GBP/JPY"),
            mark({"GBP/JPY": "200"}, fx={"JPY": "0.007"}),
        ],
        cfg,
        NOW,
    )
    # cash paid 1000*200*0.0066 = 1320; the position is now worth 1000*200*0.007 = 1400
    assert equity(out.snapshot, cfg) == D(100080)


def test_overdue_when_good_till_passed_then_listed_and_still_held() -> None:
    """A reservation past its order's good_till is overdue, not dropped: the order may
    still fill until an executor or an operator says how it ended."""
    snap = snapshot(
        reservations=[
            reservation("old", "BTC/USDT", "0.1", "100000", "94000", expires_at=NOW),
            reservation("new", "BTC/USDT", "0.1", "100000", "94000"),
        ]
    )
    assert [r.intent_id for r in overdue(snap, NOW)] == ["old"]
    assert overdue(snap, NOW - timedelta(seconds=1)) == ()
    assert set(snap.reservations) == {"old", "new"}


@pytest.mark.parametrize(
    ("event", "note"),
    [
        (lambda: Cancel(type="cancel", event_id="c1", intent_id="old"), None),
        (lambda: Expired(type="expired", event_id="x1", intent_id="old"), None),
        (
            lambda: Release(
                type="release", event_id="r1", intent_id="old", operator="ann", reason="dead"
            ),
            "release by ann (dead): reservation of old",
        ),
    ],
    ids=["cancel", "expired", "release"],
)
def test_terminal_event_when_applied_then_reservation_released(
    event: Any, note: str | None
) -> None:
    """cancel, expired and an operator's release end a reservation, overdue or not."""
    snap = snapshot(
        reservations=[reservation("old", "BTC/USDT", "0.1", "100000", "94000", expires_at=NOW)]
    )
    out = apply_events(snap, [event()], CFG, NOW)
    assert out.snapshot.reservations == {}
    assert [r.intent_id for r in out.released] == ["old"]
    notes = [n for _, n in out.notes]
    assert (note is None and notes == []) or (note is not None and note in notes[0])
    again = apply_events(out.snapshot, [event()], CFG, NOW)
    assert again.released == () and "no open reservation" in again.notes[0][1]


def test_apply_events_when_fill_and_mark_then_reports_what_it_touched() -> None:
    """Callers update only what changed: touched positions, released and new reservations."""
    snap = snapshot(
        "100000", reservations=[reservation("i1", "BTC/USDT", "0.1", "100000", "94000")]
    )
    out = apply_events(
        snap, [fill("i1", "buy", "0.04", "100000"), mark({"ETH/USDT": "3900"})], CFG, NOW
    )
    assert out.positions_touched == {"BTC/USDT"}
    assert [r.quantity for r in out.released] == [D("0.1")]
    assert [r.quantity for r in out.reserved] == [D("0.06")]
    assert out.reservations_touched == {"i1"}
    assert not out.fx_changed
    assert apply_events(snap, [mark({"BTC/USDT": "1"}, fx={"JPY": "0.007"})], CFG, NOW).fx_changed


def test_overdue_when_in_good_till_order_then_scan_stops_at_first_in_force() -> None:
    """overdue() walks reservations oldest first and stops at the first still in force."""
    snap = snapshot(
        reservations=[
            reservation(
                f"r{i}",
                "BTC/USDT",
                "0.01",
                "100000",
                "94000",
                expires_at=NOW + timedelta(minutes=i),
            )
            for i in range(-3, 4)
        ]
    )
    assert [r.intent_id for r in overdue(snap, NOW)] == ["r-3", "r-2", "r-1", "r0"]


def test_decode_state_when_hash_unordered_then_reservations_in_expiry_order() -> None:
    """A state read from Redis comes back in expiry order (the hash keeps none)."""
    from consumers.state.codec import encode_reservation
    from consumers.state.snapshot_codec import decode_state

    fields = {
        f"res:r{i}": encode_reservation(
            reservation(
                f"r{i}",
                "BTC/USDT",
                "0.01",
                "100000",
                "94000",
                expires_at=NOW + timedelta(minutes=m),
            )
        )
        for i, m in ((1, 30), (2, 10), (3, 20))
    }
    reservations = decode_state(fields).reservations
    assert list(reservations) == ["r2", "r3", "r1"]
