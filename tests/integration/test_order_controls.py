"""The order controls on a real Redis: duplicate_order across batches and worker restarts
(the memory is state, committed with the batch), and the order caps end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from redis import Redis

from consumers.bus import keys as k
from consumers.state.codec import approval_field
from schemas.messages import Status
from tests.builders import codes
from tests.harness import Harness

D = Decimal


def redis_now(redis: Redis) -> datetime:
    seconds, micros = redis.time()
    return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))


def restarted(redis: Redis, portfolio: str, now: datetime) -> Harness:
    """A fresh worker (no cache, nothing in memory) on the same portfolio, its clock at ``now``."""
    h = Harness(redis, portfolio)
    h.worker.clock = lambda: now
    return h


def test_duplicate_when_repeated_across_batches_and_restarts_then_rejected_until_window_ends(
    redis: Redis, portfolio: str
) -> None:
    """0.01 BTC from `momo` approved; the same intent is rejected duplicate_order by the
    same worker in the next batch, by a new worker 10 s later (exactly the window), and
    approved by another new worker just past it, when the forgotten field is deleted."""
    h = Harness(redis, portfolio)
    h.fund()
    t0 = redis_now(redis)
    h.worker.clock = lambda: t0
    first = h.intent(quantity="0.01", agent_id="momo")
    h.pump()
    second = h.intent(quantity="0.01", agent_id="momo")
    other = h.intent(quantity="0.02", agent_id="momo")
    h.pump()
    assert h.decision(first).status is Status.APPROVED
    assert (h.decision(second).status, codes(h.decision(second))) == (
        Status.REJECTED,
        ["duplicate_order"],
    )
    assert h.decision(other).status is Status.APPROVED
    field = approval_field(("momo", "BTC/USDT"))
    stored = json.loads(redis.hget(h.keys.state, field))  # type: ignore[arg-type]
    assert [(side, qty) for side, qty, _ in stored] == [("buy", "0.01"), ("buy", "0.02")]

    edge = restarted(redis, portfolio, t0 + timedelta(seconds=10))
    third = edge.intent(quantity="0.01", agent_id="momo")
    edge.pump()
    d = edge.decision(third)
    assert (d.status, codes(d)) == (Status.REJECTED, ["duplicate_order"])
    assert (d.reasons[0].value, d.reasons[0].limit) == ("10", "10")

    past = restarted(redis, portfolio, t0 + timedelta(seconds=10, microseconds=1))
    fourth = past.intent(quantity="0.01", agent_id="momo")
    past.pump()
    assert past.decision(fourth).status is Status.APPROVED
    stored = json.loads(redis.hget(h.keys.state, field))  # type: ignore[arg-type]
    assert [(side, qty) for side, qty, _ in stored] == [("buy", "0.01")]  # the fourth's

    later = restarted(redis, portfolio, t0 + timedelta(seconds=21))
    later.mark({"BTC/USDT": "100000"})  # any batch prunes: the field is deleted
    names = [n.decode() for n in redis.hkeys(h.keys.state)]
    assert not [n for n in names if n.startswith(k.P_APPROVAL)]


def test_order_caps_when_above_then_resized_to_the_cap_and_the_order_says_so(
    redis: Redis, portfolio: str
) -> None:
    """1,000,000 USD: 0.5 BTC (50,000) is resized to 0.4 (the 40,000 max order value), and
    the order on the stream carries 0.4; a reduce-only exit of 0.5 BTC is capped the same."""
    h = Harness(redis, portfolio)
    h.fund("1000000")
    big = h.intent(quantity="0.5")
    h.pump()
    d = h.decision(big)
    assert (d.status, d.approved_quantity, codes(d)) == (
        Status.RESIZED,
        D("0.4"),
        ["max_order_value"],
    )
    (order,) = h.orders()
    assert (order["intent_id"], order["quantity"]) == (big, "0.4")
    h.client.fill(big, "BTC/USDT", "buy", "0.4", "100000", fill_id="t1")
    h.pump()
    # more held than one order
    h.client.fill("outside", "BTC/USDT", "buy", "0.4", "100000", fill_id="t2")
    h.pump()
    h.client.resume("test", "a position opened outside the gate", reference="ticket-1")
    h.pump()
    exit_ = h.intent(side="sell", quantity="0.8", reduce_only=True)
    h.pump()
    d = h.decision(exit_)
    assert (d.status, d.approved_quantity, codes(d)) == (
        Status.RESIZED,
        D("0.4"),
        ["max_order_value"],
    )
