"""Implausible fills, purely: refused (not applied) or applied and escalated (halted)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from gate.decide import decide
from gate.ledger import apply_events
from gate.portfolio import Snapshot
from schemas.config import AssetClassConfig
from schemas.messages import Fill, Resume, Status
from tests.builders import NOW, base_config, codes, intent, position, reservation, snapshot

D = Decimal
CFG = base_config()


def fill(intent_id: str, qty: str, price: str, **kw: Any) -> Fill:
    return Fill.model_validate(
        {
            "type": "fill",
            "event_id": kw.pop("event_id", f"f-{intent_id}"),
            "intent_id": intent_id,
            "symbol": kw.pop("symbol", "BTC/USDT"),
            "side": kw.pop("side", "buy"),
            "quantity": qty,
            "price": price,
            "at": kw.pop("at", NOW),
        }
    )


def approved(qty: str = "0.1") -> Snapshot:
    """100,000 cash, BTC marked at 100,000, an approval for ``qty`` BTC as intent i1."""
    return snapshot("100000", reservations=[reservation("i1", "BTC/USDT", qty, "100000", "94000")])


REFUSED = [
    (
        "unconfigured symbol",
        fill("i1", "1", "1", symbol="DOGE/XYZ", at=NOW - timedelta(hours=1)),
        "fill for DOGE/XYZ, a symbol that is not configured: nothing could mark, limit or "
        "value it (only a fill reducing a position left from an older config is accepted)",
    ),
    (
        "price far above the mark",
        fill("i1", "0.1", "116000"),
        "fill price 116000 is 16.00% from the BTC/USDT mark 100000 (2026-11-24T12:00:00+00:00); "
        "the crypto fill_band is 15%",
    ),
    (
        "price far below the mark",
        fill("i1", "0.1", "10000"),
        "fill price 10000 is 90.00% from the BTC/USDT mark 100000 (2026-11-24T12:00:00+00:00); "
        "the crypto fill_band is 15%",
    ),
]


@pytest.mark.parametrize(("case", "ev", "why"), REFUSED, ids=[c[0] for c in REFUSED])
def test_fill_when_implausible_then_refused_and_nothing_changes(
    case: str, ev: Fill, why: str
) -> None:
    """Refused with the reason; the snapshot (cash, positions, approval) is untouched."""
    before = approved()
    out = apply_events(before, [ev], CFG, NOW)
    assert out.refused == ((ev.event_id, why),)
    assert out.snapshot.account == before.account
    assert dict(out.snapshot.positions) == dict(before.positions)
    assert dict(out.snapshot.reservations) == dict(before.reservations)


def test_fill_when_within_the_band_then_applied() -> None:
    """14 % off the mark is slippage, not a typo: applied against the approval."""
    out = apply_events(approved(), [fill("i1", "0.1", "114000")], CFG, NOW)
    assert out.refused == () and out.escalations == ()
    assert out.snapshot.positions["BTC/USDT"].quantity == D("0.1")


def test_fill_when_dated_before_the_positions_last_fill_beyond_skew_then_refused() -> None:
    """A fill 6 s older than the position's last fill (skew 5 s) is refused; 5 s is not."""
    snap = apply_events(approved("0.3"), [fill("i1", "0.1", "100000", event_id="a")], CFG, NOW)
    late = fill("i1", "0.1", "100000", event_id="b", at=NOW - timedelta(seconds=6))
    out = apply_events(snap.snapshot, [late], CFG, NOW)
    assert out.refused == (
        (
            "b",
            "fill is dated 2026-11-24T11:59:54+00:00, 6s before the BTC/USDT position's last "
            "fill (2026-11-24T12:00:00+00:00); max_clock_skew_seconds is 5",
        ),
    )
    ok = fill("i1", "0.1", "100000", event_id="c", at=NOW - timedelta(seconds=5))
    out = apply_events(snap.snapshot, [ok], CFG, NOW)
    assert out.refused == () and out.snapshot.positions["BTC/USDT"].quantity == D("0.2")
    assert out.snapshot.positions["BTC/USDT"].changed_at == NOW  # never moves back


def test_fill_when_unconfigured_symbol_reduces_a_legacy_position_then_applied() -> None:
    """A position left from an older config can still be closed."""
    legacy = replace(position("BTC/USDT", "2", "10"), symbol="OLD/USD", asset_class=None)
    snap = snapshot("1000", positions=[legacy])
    sell = fill("x", "2", "10", symbol="OLD/USD", side="sell")
    out = apply_events(snap, [sell], CFG, NOW)
    assert out.refused == () and "OLD/USD" not in out.snapshot.positions
    grow = fill("y", "1", "10", symbol="OLD/USD")
    assert apply_events(snap, [grow], CFG, NOW).refused[0][1].startswith("fill for OLD/USD")


def test_fill_when_1000_btc_for_an_unknown_intent_then_applied_escalated_and_halted() -> None:
    """The reported case: a position now, so applied; unknown_fill; trading halted."""
    ev = fill("ghost", "1000", "100000", event_id="big")
    out = apply_events(approved(), [ev], CFG, NOW)
    why = "fill for ghost (buy 1000 BTC/USDT at 100000): no known approval"
    assert out.escalations == (("big", why),)
    assert out.snapshot.positions["BTC/USDT"].quantity == D(1000)
    halt = out.snapshot.account.halted_by
    assert halt is not None and (halt.at, halt.event_id) == (NOW, "big")
    assert halt.reason == f"unknown_fill: {why}"


def test_fill_when_exceeding_its_approval_by_more_than_a_lot_then_escalated() -> None:
    """0.1 approved, 0.5 filled: applied, halted; 0.10001 (one lot over) is only noted."""
    out = apply_events(approved(), [fill("i1", "0.5", "100000")], CFG, NOW)
    assert out.escalations == (
        (
            "f-i1",
            "fill for i1 (buy 0.5 BTC/USDT at 100000) exceeds the 0.1 left of its approval by 0.4",
        ),
    )
    assert out.snapshot.account.halted_by is not None
    out = apply_events(approved(), [fill("i1", "0.10001", "100000")], CFG, NOW)
    assert out.escalations == () and out.snapshot.account.halted_by is None
    assert [n for _, n in out.notes] == ["fill for i1 exceeds the approval"]


def test_fill_when_side_differs_from_the_approval_then_escalated() -> None:
    """Approved a buy, filled a sell (no position): a short nobody approved."""
    out = apply_events(approved(), [fill("i1", "0.1", "100000", side="sell")], CFG, NOW)
    assert [w for _, w in out.escalations] == [
        "fill for i1 (sell 0.1 BTC/USDT at 100000): differs from the approved order"
    ]
    assert out.snapshot.reservations["i1"].quantity == D("0.1")  # still held


def test_fill_when_unknown_but_only_reducing_then_noted_not_halted() -> None:
    """Closing part of a position without an approval lowers risk: a note, no halt."""
    snap = snapshot("100000", positions=[position("BTC/USDT", "1", "100000", "100000")])
    out = apply_events(snap, [fill("close", "0.4", "100000", side="sell")], CFG, NOW)
    assert out.escalations == () and out.snapshot.account.halted_by is None
    assert [n for _, n in out.notes] == [
        "fill for close (sell 0.4 BTC/USDT at 100000): no known approval"
    ]


def test_decide_when_halted_by_a_fill_then_openings_rejected_reduce_only_passes() -> None:
    """The ledger's halt gates like the kill switch until a resume event clears it."""
    snap = apply_events(approved(), [fill("ghost", "1", "100000", event_id="big")], CFG, NOW)
    halted = snap.snapshot
    opening = decide(intent("ETH/USDT", quantity="0.1", price="3900"), halted, CFG, NOW)
    assert opening.status is Status.REJECTED and codes(opening)[0] == "trading_halted"
    assert "by event big: unknown_fill" in opening.reasons[0].message
    assert opening.checks["halted"] is True
    closing = decide(
        intent(side="sell", quantity="0.3", price="100000", reduce_only=True), halted, CFG, NOW
    )
    assert closing.status is Status.APPROVED
    resume = Resume(type="resume", event_id="r", operator="alice", reason="reconciled", at=NOW)
    out = apply_events(halted, [resume], CFG, NOW)
    assert out.snapshot.account.halted_by is None
    assert "halt by event big" in out.notes[0][1]
    again = decide(intent("ETH/USDT", quantity="0.1", price="3900"), out.snapshot, CFG, NOW)
    assert "trading_halted" not in codes(again)


def test_config_when_fill_band_not_wider_than_the_collar_then_error() -> None:
    """A band inside the collar would refuse fills of approved prices."""
    with pytest.raises(ValueError, match=r"fill_band 0\.05 must be wider than price_collar 0\.05"):
        AssetClassConfig(
            enabled=True,
            description="x",
            max_allocation=D("0.4"),
            price_collar=D("0.05"),
            fill_band=D("0.05"),
            max_order_value=D("40000"),
        )
