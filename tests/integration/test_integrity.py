"""Risk integrity end to end on a real Redis, through the wire protocol.

Agents and executors write JSON entries; the gate worker decides or refuses. Each test
is one way a single field used to loosen a limit, now asserted as the exact decision
or dead letter.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis

from consumers.bus.keys import DATA
from schemas.messages import Status
from tests.builders import codes, market_prices
from tests.harness import Harness

KEY = "op1:" + base64.b64encode(b"k" * 32).decode()


def now_on(redis: Redis) -> datetime:
    seconds, micros = redis.time()
    return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))


def small(redis: Redis, portfolio: str, **marks: str) -> Harness:
    """A 10,000 portfolio marked at the test market, with ``marks`` overriding."""
    h = Harness(redis, portfolio)
    h.client.deposit("10000", reference="d1")
    h.client.mark({**market_prices(), **{k.replace("_", "/"): v for k, v in marks.items()}})
    h.pump()
    return h


def test_intent_when_priced_far_from_the_mark_then_price_collar(
    redis: Redis, portfolio: str
) -> None:
    """BTC marked at 50,000: "sell 0.5 at 1" and "buy 0.2 at 5,000" are rejected."""
    h = small(redis, portfolio, BTC_USDT="50000")
    a = h.intent(side="sell", quantity="0.5", price="1")
    b = h.intent(quantity="0.2", price="5000")
    h.pump()
    assert codes(h.decision(a)) == ["price_collar", "invalid_stop"]
    assert codes(h.decision(b)) == ["price_collar"]
    assert h.orders() == []


def test_intent_when_priced_under_the_mark_then_sized_at_the_mark(
    redis: Redis, portfolio: str
) -> None:
    """Buy at 48,000 with the mark at 50,000: 20 % of 10,000 at the mark is 0.04 BTC."""
    h = small(redis, portfolio, BTC_USDT="50000")
    iid = h.intent(quantity="0.05", price="48000")
    h.pump()
    d = h.decision(iid)
    assert (d.status, str(d.approved_quantity)) == (Status.RESIZED, "0.04")


def test_mark_when_dated_tomorrow_then_dead_lettered_and_true_marks_apply(
    redis: Redis, portfolio: str
) -> None:
    """A mark dated tomorrow is refused with a dead letter that says so; it neither
    freezes BTC's price nor moves the day; the next true mark applies."""
    h = small(redis, portfolio, BTC_USDT="50000")
    day = h.state().snapshot.account.day
    tomorrow = now_on(redis) + timedelta(days=1)
    h.client.mark({"BTC/USDT": "1"}, at=tomorrow, event_id="bad-mark")
    h.pump()
    (dead,) = h.dead()
    assert "ahead of the gate's clock" in dead["error"] and "bad-mark" in dead["raw"]
    snap = h.state().snapshot
    assert (str(snap.marks["BTC/USDT"].price), snap.account.day) == ("50000", day)
    assert h.worker.stats["refused_events"] == 1
    h.client.mark({"BTC/USDT": "51000"})
    h.pump()
    assert str(h.state().snapshot.marks["BTC/USDT"].price) == "51000"


def test_fill_when_dated_in_the_future_then_dead_lettered_not_applied(
    redis: Redis, portfolio: str
) -> None:
    """A fill dated an hour ahead would defeat max_hold: refused, no position."""
    h = small(redis, portfolio)
    h.client.fill(
        "x", "BTC/USDT", "buy", "0.01", "100000", fill_id="x1",
        at=now_on(redis) + timedelta(hours=1),
    )  # fmt: skip
    h.pump()
    assert len(h.dead()) == 1 and h.state().snapshot.positions == {}


def test_intent_when_symbol_mark_too_old_then_no_market_price(redis: Redis, portfolio: str) -> None:
    """ETH last marked 20 minutes ago: an opening is rejected, a reduce-only exit is not."""
    h = Harness(redis, portfolio)
    h.fund(market=False)
    h.client.mark({"ETH/USDT": "3900"}, at=now_on(redis) - timedelta(minutes=20))
    h.pump()
    iid = h.intent("ETH/USDT", quantity="0.1", price="3900")
    h.pump()
    d = h.decision(iid)
    assert codes(d) == ["no_market_price"] and "1200s old" in d.reasons[0].message


def test_deposit_when_drawdown_28pct_then_stop_holds_until_resume(
    redis: Redis, portfolio: str
) -> None:
    """10,000 in, 0.1 BTC bought at 100,000, marked down 28 %: emergency stop. Paying in
    30,000 does not lift it (the nav does not move); neither does BTC back at 90,000 (the
    nav 24.5 % under its peak, under the 25 % stop); `resume` does."""
    h = Harness(redis, portfolio)
    h.fund("10000")
    h.client.fill("pos", "BTC/USDT", "buy", "0.1", "100000", fill_id="x1")  # unknown_fill
    h.client.resume("test", "position opened outside the gate", reference="r1")
    h.client.mark({"BTC/USDT": "72000", "ETH/USDT": "3900"})
    h.client.deposit("30000", reference="d2")
    h.pump()
    first = h.intent("ETH/USDT", quantity="0.1", price="3900")
    h.pump()
    h.client.mark({"BTC/USDT": "90000", "ETH/USDT": "3900"})
    h.pump()
    second = h.intent("ETH/USDT", quantity="0.1", price="3900")
    h.pump()
    for iid in (first, second):
        d = h.decision(iid)
        # down 28 % today too: the daily-loss limit latched with it
        assert codes(d) == ["emergency_stop", "daily_loss_limit"]
        assert all("latched" in r.message for r in d.reasons)
    assert [h.decision(i).checks["drawdown"] for i in (first, second)] == ["0.28", "0.245161"]
    h.client.resume("alice", "losses reviewed, limits re-checked", reference="r2")
    h.pump()
    third = h.intent("ETH/USDT", quantity="0.1", price="3900")
    h.pump()
    d = h.decision(third)
    assert (d.status, d.checks["drawdown"]) == (Status.APPROVED, "0")
    assert h.state().snapshot.account.stopped is None


def test_deposit_when_operator_keys_set_and_unsigned_then_refused(
    redis: Redis, portfolio: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With RISKGATE_OPERATOR_KEYS, a deposit an executor forges (unsigned, or signed
    with a wrong key) is dead-lettered; the operator's signed one applies."""
    monkeypatch.setenv("RISKGATE_OPERATOR_KEYS", KEY)
    h = Harness(redis, portfolio)
    forged = {"type": "deposit", "event_id": "forged", "amount": "1000000"}
    h.raw(h.keys.events, {DATA: json.dumps(forged)})
    wrong = {**forged, "event_id": "wrong", "key_id": "op1", "signature": "0" * 64}
    h.raw(h.keys.events, {DATA: json.dumps(wrong)})
    h.client.deposit("10000", event_id="signed")
    h.pump()
    errors = [d["error"] for d in h.dead()]
    assert len(errors) == 2 and all("needs an operator signature" in e for e in errors)
    assert str(h.state().snapshot.account.cash) == "10000"


def test_worker_clock_when_deciding_then_redis_time(redis: Redis, portfolio: str) -> None:
    """The gate dates decisions by Redis's clock, not the worker host's."""
    h = small(redis, portfolio)
    before = now_on(redis)
    iid = h.intent(quantity="0.001")
    h.pump()
    decided = h.decision(iid).decided_at
    assert before <= decided <= now_on(redis)


def test_mark_when_ahead_of_its_stream_id_then_refused_however_late_it_is_read(
    redis: Redis, portfolio: str
) -> None:
    """Dated 8 s after Redis took it in, a mark is refused even when the gate reads it
    4 s later (by its own clock it would be inside the skew): the gate and the phase
    monitor judge by the same clock, the entry's stream id."""
    h = small(redis, portfolio, BTC_USDT="50000")
    sent = now_on(redis)
    h.client.mark({"BTC/USDT": "1"}, at=sent + timedelta(seconds=8), event_id="early")
    h.worker.clock = lambda: now_on(redis) + timedelta(seconds=4)
    h.pump()
    (dead,) = h.dead()
    assert "its stream id" in dead["error"]
    assert str(h.state().snapshot.marks["BTC/USDT"].price) == "50000"
