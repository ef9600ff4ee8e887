"""Risk integrity, pure: nothing an agent or an executor writes loosens a limit.

Each test is one way the gate used to break its promise: the agent's own price valuing
exposure, an executor's clock moving the market or the day, a deposit lifting the
emergency stop, missing data passing, heat understated.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from gate.decide import decide
from gate.exposure import Exposure
from gate.ledger import apply_events
from gate.portfolio import Quote, Snapshot, Vitals, position_risk
from schemas.messages import Deposit, Fill, Mark, Resume, Status
from tests.builders import (
    NOW,
    base_config,
    codes,
    intent,
    marks,
    position,
    reservation,
    snapshot,
)

D = Decimal
CFG = base_config()


def btc_at(price: str, *, cash: str = "10000", age_s: int = 0, **kw: Any) -> Snapshot:
    """A 10,000 portfolio with BTC marked at ``price`` ``age_s`` seconds ago."""
    return snapshot(cash, quotes=marks({"BTC/USDT": price}, NOW - timedelta(seconds=age_s)), **kw)


def deposit(amount: str, event_id: str = "d", at: Any = NOW) -> Deposit:
    return Deposit(type="deposit", event_id=event_id, amount=D(amount), at=at)


def mark(prices: dict[str, str], at: Any = NOW, event_id: str | None = None) -> Mark:
    return Mark(
        type="mark",
        event_id=event_id or f"m-{at.isoformat()}",
        prices={s: D(p) for s, p in prices.items()},
        at=at,
    )


def buy_btc(qty: str, at: Any, event_id: str, intent_id: str) -> Fill:
    """An executor's fill: ``qty`` BTC bought at 100,000."""
    return Fill(
        type="fill",
        event_id=event_id,
        intent_id=intent_id,
        symbol="BTC/USDT",
        side="buy",  # type: ignore[arg-type]
        quantity=D(qty),
        price=D(100000),
        at=at,
    )


# --- the agent's price is a request, not a valuation ----------------------------------


def test_decide_when_opening_sell_priced_at_1_against_a_50k_mark_then_price_collar() -> None:
    """ "sell 0.5 BTC at 1" with BTC at 50,000 on 10,000: rejected, the reason naming the
    price, the mark and the band (it used to be approved: 250 % of equity at the mark)."""
    d = decide(intent(side="sell", quantity="0.5", price="1"), btc_at("50000"), CFG, NOW)
    # its default stop (6 % above 1) is also below the mark: invalid as well
    assert (d.status, codes(d)) == (Status.REJECTED, ["price_collar", "invalid_stop"])
    r = d.reasons[0]
    assert (r.value, r.limit) == ("0.99998", "0.05")
    assert "price 1 is 99.99% below the BTC/USDT mark 50000" in r.message
    assert "the collar is ±5%: 47500 to 52500" in r.message


def test_decide_when_buy_priced_at_a_tenth_of_the_mark_then_price_collar() -> None:
    """ "buy 0.2 BTC at 5,000" with BTC at 50,000: rejected (was 100 % of equity approved)."""
    d = decide(intent(quantity="0.2", price="5000"), btc_at("50000"), CFG, NOW)
    assert (d.status, codes(d)) == (Status.REJECTED, ["price_collar"])


@pytest.mark.parametrize(
    ("price", "status"),
    [("52500", Status.RESIZED), ("52500.01", Status.REJECTED), ("47500", Status.RESIZED)],
)
def test_decide_when_price_at_the_collar_edge_then_inside_passes_outside_fails(
    price: str, status: Status
) -> None:
    """The collar is inclusive: exactly 5 % off the mark is inside."""
    d = decide(intent(quantity="0.2", price=price), btc_at("50000"), CFG, NOW)
    assert d.status is status, codes(d)


def test_decide_when_priced_below_the_mark_then_position_valued_at_the_mark() -> None:
    """Buy at 48,000 with the mark at 50,000: max position 20 % of 10,000 is 0.04 BTC at
    the mark (0.0416 at the agent's price): resized to 0.04."""
    d = decide(intent(quantity="0.05", price="48000"), btc_at("50000"), CFG, NOW)
    assert (d.status, d.approved_quantity, codes(d)) == (
        Status.RESIZED,
        D("0.04"),
        ["max_position"],
    )


def test_decide_when_held_and_reserved_then_valued_at_the_mark_not_the_intent() -> None:
    """0.02 BTC held and 0.01 reserved at a mark of 50,000 (1,500 of the 2,000 cap): a buy
    priced 4 % lower still only gets the 0.01 that fits at the mark."""
    held = position("BTC/USDT", "0.02", "50000")
    res = reservation("r1", "BTC/USDT", "0.01", "50000", "47000")
    snap = btc_at("50000", cash="9000", positions=[held], reservations=[res])
    d = decide(intent(quantity="0.05", price="48000"), snap, CFG, NOW)
    assert (d.status, d.approved_quantity) == (Status.RESIZED, D("0.01"))


@pytest.mark.parametrize(
    ("age_s", "why"),
    [(901, "901s old"), (-30, "ahead of the gate's clock")],
)
def test_decide_when_mark_stale_or_future_dated_then_no_market_price(age_s: int, why: str) -> None:
    """An opening needs a mark not older than max_mark_age_seconds and not from the future."""
    d = decide(intent(), btc_at("100000", age_s=age_s), CFG, NOW)
    assert codes(d) == ["no_market_price"] and why in d.reasons[0].message


def test_decide_when_symbol_never_marked_then_no_market_price() -> None:
    """No mark on record at all: no opening."""
    d = decide(intent(), snapshot(quotes={}), CFG, NOW)
    assert (d.status, codes(d)) == (Status.REJECTED, ["no_market_price"])


def test_decide_when_reduce_only_without_a_recent_mark_then_exit_allowed() -> None:
    """An exit must always be possible: reduce-only passes without a recent mark."""
    old = NOW - timedelta(hours=2)
    held = position("BTC/USDT", "0.1", "100000", marked_at=old)
    snap = snapshot("90000", [held], quotes={})
    d = decide(intent(side="sell", quantity="0.1", reduce_only=True), snap, CFG, NOW)
    assert (d.status, d.approved_quantity) == (Status.APPROVED, D("0.1"))


def test_decide_when_reduce_only_priced_far_from_a_recent_mark_then_price_collar() -> None:
    """A fat-finger exit (sell at 1) is an erroneous order too."""
    held = position("BTC/USDT", "0.1", "100000")
    snap = snapshot("90000", [held])
    d = decide(intent(side="sell", quantity="0.1", price="1", reduce_only=True), snap, CFG, NOW)
    assert codes(d) == ["price_collar"]


def test_decide_when_stop_above_the_mark_for_a_buy_then_invalid_stop() -> None:
    """A buy priced 4 % above the mark with its stop between the mark and the price
    would be stopped out at once: invalid."""
    d = decide(intent(price="104000", stop_price="102000"), btc_at("100000"), CFG, NOW)
    assert codes(d) == ["invalid_stop"]
    assert "and the mark 100000" in d.reasons[0].message


def test_decide_when_priced_above_the_mark_then_heat_counts_the_larger_risk() -> None:
    """Heat per unit is the larger of |price - stop| and |mark - stop|: 0.1 BTC bought at
    95,100 (mark 100,000) with a stop at 90,000 risks 1,000 at the mark (1 % of equity),
    not 510 at its price."""
    d = decide(intent(price="95100", stop_price="90000"), btc_at("100000", cash="100000"), CFG, NOW)
    assert d.checks["heat_after"] == "0.01" and d.status is Status.APPROVED


# --- executors' clocks ------------------------------------------------------------------


def test_mark_when_dated_tomorrow_then_refused_and_true_marks_still_apply() -> None:
    """A mark dated tomorrow is refused (not applied, reported); the next true mark is
    the symbol's latest, and the day does not move."""
    snap = btc_at("100000")
    future = apply_events(snap, [mark({"BTC/USDT": "1"}, NOW + timedelta(days=1), "bad")], CFG, NOW)
    assert [e for e, _ in future.refused] == ["bad"]
    assert "ahead of the gate's clock" in future.refused[0][1]
    after = future.snapshot
    assert after.marks["BTC/USDT"] == Quote(D(100000), NOW) and after.account.day == NOW.date()
    later = NOW + timedelta(seconds=30)
    true = apply_events(after, [mark({"BTC/USDT": "101000"}, later)], CFG, later).snapshot
    assert true.marks["BTC/USDT"] == Quote(D(101000), later)


def test_mark_when_within_the_skew_then_applied_at_the_gate_clock() -> None:
    """A mark 3 s ahead (inside the 5 s skew) is accepted but dated at the gate's clock."""
    snap = btc_at("100000")
    out = apply_events(snap, [mark({"BTC/USDT": "100500"}, NOW + timedelta(seconds=3))], CFG, NOW)
    assert out.refused == () and out.snapshot.marks["BTC/USDT"] == Quote(D(100500), NOW)


def test_fill_when_dated_in_the_future_then_refused_and_max_hold_not_defeated() -> None:
    """A fill dated a year ahead would set opened_at in the future: refused."""
    ev = buy_btc("0.01", NOW + timedelta(days=365), "f", "i")
    out = apply_events(btc_at("100000"), [ev], CFG, NOW)
    assert [e for e, _ in out.refused] == ["f"] and out.snapshot.positions == {}


def test_fresh_marks_when_position_mark_is_in_the_future_then_stale_portfolio() -> None:
    """A negative age is never fresh."""
    ahead = position("ETH/USDT", "1", "3900", marked_at=NOW + timedelta(minutes=10))
    d = decide(intent(), snapshot("96100", [ahead]), CFG, NOW)
    assert "stale_portfolio" in codes(d)


# --- a real emergency stop ----------------------------------------------------------------


def _fallen(frac: str) -> Snapshot:
    """10,000 deposited, then BTC (0.1 bought at 100,000) marked down by ``frac``."""
    approved = reservation("i0", "BTC/USDT", "0.1", "100000", "94000")
    start = snapshot("0", quotes=marks(), reservations=[approved])
    snap = apply_events(
        start, [deposit("10000", "d0", NOW - timedelta(hours=2))], CFG, NOW
    ).snapshot
    fill = buy_btc("0.1", NOW - timedelta(hours=1), "f0", "i0")
    fallen = D(100000) * (1 - D(frac))  # 0.1 BTC is all of the 10,000: equity falls by frac
    return apply_events(snap, [fill, mark({"BTC/USDT": str(fallen)})], CFG, NOW).snapshot


def test_deposit_when_drawdown_28pct_then_emergency_stop_holds() -> None:
    """28 % down, then 30,000 paid in: the deposit-free drawdown stays 28 % and the stop,
    latched, still rejects openings (money-based drawdown read 7 % and resumed trading)."""
    fallen = _fallen("0.28")
    assert fallen.account.stopped is not None
    topped = apply_events(fallen, [deposit("30000", "d1")], CFG, NOW).snapshot
    v = Vitals.of(topped, Exposure.of(topped, CFG).equity, NOW.date())
    assert (v.equity, v.drawdown) == (D(37200), D("0.28"))
    d = decide(intent(quantity="0.01", price="72000"), topped, CFG, NOW)
    assert "emergency_stop" in codes(d) and "latched" in d.reasons[0].message


def test_mark_when_drawdown_recovers_below_the_stop_then_still_latched() -> None:
    """Down 28 %, back to 20 %: the stop does not lift by itself."""
    recovered = apply_events(_fallen("0.28"), [mark({"BTC/USDT": "80000"})], CFG, NOW).snapshot
    v = Vitals.of(recovered, Exposure.of(recovered, CFG).equity, NOW.date())
    assert v.drawdown == D("0.2")
    assert "emergency_stop" in codes(decide(intent(price="80000"), recovered, CFG, NOW))


def test_resume_when_latched_then_cleared_and_reference_peak_reset() -> None:
    """resume clears the latch, says what it cleared and who did it, and the drawdown
    starts again from the current value."""
    ev = Resume(type="resume", event_id="r", operator="alice", reason="reviewed the losses")
    out = apply_events(_fallen("0.28"), [ev], CFG, NOW)
    acc = out.snapshot.account
    assert (acc.stopped, acc.day_stopped) == (None, None)
    (note,) = [n for _, n in out.notes]
    assert "resume by alice (reviewed the losses): cleared emergency stop latched" in note
    d = decide(intent(quantity="0.001", price="72000"), out.snapshot, CFG, NOW)
    assert "emergency_stop" not in codes(d) and d.checks["drawdown"] == "0"


def test_withdrawal_when_drawdown_then_nav_unchanged() -> None:
    """Money out moves neither the nav nor its peak: a withdrawal is not a loss."""
    snap = apply_events(snapshot("0"), [deposit("10000", "d0")], CFG, NOW).snapshot
    out = apply_events(snap, [deposit("-4000", "w")], CFG, NOW).snapshot
    v = Vitals.of(out, Exposure.of(out, CFG).equity, NOW.date())
    assert (v.equity, v.drawdown, v.nav) == (D(6000), D(0), D(1))


def test_daily_loss_when_tripped_then_latched_for_the_day_not_the_next() -> None:
    """A day's loss of 6 % latches the daily limit; a mark the next UTC day clears it."""
    fallen = _fallen("0.06")
    assert fallen.account.day_stopped is not None
    back = apply_events(fallen, [mark({"BTC/USDT": "100000"})], CFG, NOW).snapshot
    assert "daily_loss_limit" in codes(decide(intent(quantity="0.001"), back, CFG, NOW))
    tomorrow = NOW + timedelta(days=1)
    nextday = apply_events(back, [mark(dict(marks_prices()), tomorrow)], CFG, tomorrow).snapshot
    d = decide(intent(quantity="0.001", created_at=tomorrow), nextday, CFG, tomorrow)
    assert "daily_loss_limit" not in codes(d)


def marks_prices() -> dict[str, str]:
    return {s: str(q.price) for s, q in marks().items()}


# --- heat never understated -------------------------------------------------------------


def test_fill_when_adding_without_a_stop_then_the_known_stop_is_kept_wider() -> None:
    """Adding to a position with a stop at 80,000 through a fill without one keeps the
    wider of 80,000 and the asset's rule (6 % under 100,000 = 94,000): 80,000."""
    held = position("BTC/USDT", "0.1", "100000", "80000")
    snap = snapshot("90000", [held])
    ev = buy_btc("0.1", NOW, "f", "unknown")
    pos = apply_events(snap, [ev], CFG, NOW).snapshot.positions["BTC/USDT"]
    assert (pos.quantity, pos.stop_price) == (D("0.2"), D(80000))


@pytest.mark.parametrize(
    ("mark_px", "risk"),
    [("94000", "564.000"), ("93000", "558.000"), ("95000", "100.0")],
)
def test_position_risk_when_at_or_through_its_stop_then_at_least_the_default_distance(
    mark_px: str, risk: str
) -> None:
    """0.1 BTC, stop 94,000: at the stop it counts 6 % of the mark (564), through it
    6 % of 93,000 (558), above it the plain distance (100)."""
    p = position("BTC/USDT", "0.1", mark_px, "94000")
    assert position_risk(p, snapshot().account, CFG) == D(risk)


def test_vitals_when_account_has_no_units_then_fresh_portfolio_not_in_drawdown() -> None:
    """Before the first deposit the nav is 1 and nothing is in drawdown."""
    snap = replace(snapshot("0"), account=replace(snapshot("0").account, units=D(0)))
    v = Vitals.of(snap, D(0), NOW.date())
    assert (v.nav, v.drawdown) == (D(1), D(0))


def test_track_when_fill_dated_ahead_of_its_stream_entry_then_not_recorded() -> None:
    """The phase monitor refuses what the gate refuses: a fill dated an hour after it
    reached the stream is no trade in the track record."""
    from gate.track import Track, record

    ev = buy_btc("0.01", NOW + timedelta(hours=1), "late", "i")
    track, derived = record(Track(), [(ev, NOW)], CFG)
    assert derived.fills == () and track.snapshot.positions == {}
    assert [e for e, _ in derived.notes] == ["late"]


def test_decide_when_price_at_the_wire_minimum_then_stop_still_on_the_wire_grid() -> None:
    """A price of 1e-18 puts the 6 % default stop below the protocol's 18 places: it is
    rounded away from the price (to 0: invalid), and the decision reads back."""
    from schemas.messages import Decision, parse_json

    snap = snapshot(quotes=marks({"BTC/USDT": "0.000000000000000001"}))
    d = decide(intent(quantity="1", price="0.000000000000000001"), snap, CFG, NOW)
    assert codes(d) == ["invalid_stop"] and d.stop_price == 0
    assert Decision.model_validate(parse_json(d.model_dump_json())).stop_price == 0
