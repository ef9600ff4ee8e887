"""The SDK's asyncio twin (issue 15, item 3) against the real Redis, tested as the
synchronous client is: the same messages byte for byte, decisions, orders handed out
once, expiry, cancel requests, fills; and both refuse a bad value naming the field and
the value before anything is sent."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from redis import Redis

from consumers.bus.keys import DATA
from consumers.sdk.aio import AsyncGateClient, AsyncOrderDelivery
from consumers.sdk.client import GateClient, InvalidField
from consumers.state import control
from schemas.messages import Status
from tests.builders import base_config
from tests.harness import Harness
from tests.integration.test_order_lifecycle import short_lived, wait_past

D = Decimal
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def run(redis_url: str, portfolio: str, body: Callable[[AsyncGateClient], Awaitable[Any]]) -> Any:
    """``body(client)`` on a fresh event loop with its own AsyncGateClient."""

    async def main() -> Any:
        async with AsyncGateClient(redis_url, portfolio) as client:
            return await body(client)

    return asyncio.run(main())


async def drain(client: AsyncGateClient, group: str = "exec") -> list[AsyncOrderDelivery]:
    """What the async SDK hands out until three blocking reads in a row bring nothing."""
    got: list[AsyncOrderDelivery] = []
    idle = {"reads": 0}

    def stop() -> bool:
        idle["reads"] += 1
        return idle["reads"] > 3

    async for d in client.orders(group, "e1", start="0", block_ms=20, stop=stop):
        idle["reads"] = 0
        got.append(d)
    return got


def test_async_submit_and_wait_when_gate_decides_then_the_decision_the_sync_client_reads(
    h: Harness, redis_url: str
) -> None:
    """`await submit_and_wait(...)` returns the Decision, equal to GateClient's."""
    done = threading.Event()

    def gate() -> None:
        while not done.wait(0.01):
            h.pump()

    worker = threading.Thread(target=gate)
    worker.start()
    try:
        decision = run(
            redis_url,
            h.portfolio,
            lambda c: c.submit_and_wait("BTC/USDT", "buy", "0.1", price="100000", timeout=30),
        )
    finally:
        done.set()
        worker.join()
    assert decision is not None and decision.status is Status.APPROVED
    assert decision == h.client.decision(decision.intent_id)
    assert decision.approved_quantity == D("0.1") and decision.checks["equity"] == "100000"


def test_async_and_sync_when_given_the_same_values_then_the_same_bytes(
    redis: Redis, portfolio: str, redis_url: str
) -> None:
    """Both clients build every message with the same code: same intent, fill, mark,
    deposit bytes (and the same agent signature)."""
    key = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
    sync = GateClient(redis=redis, portfolio=portfolio, agent_key=key)

    def send(client: Any) -> list[Any]:
        return [
            client.submit("BTC/USDT", "buy", "0.1", price="100000", intent_id="i1",
                          agent_id="momo", created_at=AT),
            client.fill("i1", "BTC/USDT", "buy", D("0.1"), 100000, fill_id="t1", at=AT,
                        fee="0.5"),
            client.mark({"BTC/USDT": "100000"}, at=AT),
            client.deposit("100", reference="r1", at=AT),
            client.cancel("i1", at=AT),
        ]  # fmt: skip

    send(sync)

    async def twice(c: AsyncGateClient) -> None:
        for call in send(c):
            await call

    async def main() -> None:
        async with AsyncGateClient(redis_url, portfolio, agent_key=key) as c:
            await twice(c)

    asyncio.run(main())
    for stream, count in (
        (f"riskgate:{{{portfolio}}}:intents", 1),
        (f"riskgate:{{{portfolio}}}:events", 4),
    ):
        rows = [f[DATA] for _, f in redis.xrange(stream)]
        assert len(rows) == 2 * count
        assert rows[:count] == rows[count:]
    (intent, _) = [f[DATA] for _, f in redis.xrange(f"riskgate:{{{portfolio}}}:intents")]
    assert b'"signature":' in intent


def test_async_orders_when_approved_and_republished_then_handed_out_once_and_acked(
    h: Harness, redis: Redis, redis_url: str
) -> None:
    """`async for delivery in client.orders(...)`: each intent's order once per group,
    its own unacked entry again after a restart, `await delivery.ack()` acks."""
    iid = h.intent(quantity="0.1")
    h.pump()
    (data,) = [f[DATA] for _, f in redis.xrange(h.keys.orders)]
    redis.xadd(h.keys.orders, {DATA: data})  # the same order, re-published
    first = run(redis_url, h.portfolio, drain)
    assert [(d.action, d.intent_id) for d in first] == [("place", iid)]
    assert first[0].order is not None and first[0].order.quantity == D("0.1")

    async def restarted(c: AsyncGateClient) -> list[str]:
        again = await drain(c)
        for d in again:
            await d.ack()
        return [d.intent_id for d in again]

    assert run(redis_url, h.portfolio, restarted) == [iid]
    assert int(redis.xpending(h.keys.orders, "exec")["pending"]) == 0


def test_async_orders_when_past_good_till_then_withheld_and_reported_expired(
    redis: Redis, portfolio: str, redis_url: str
) -> None:
    """An order read after its good_till is never handed out; the async SDK reports it
    expired and the gate releases its reservation."""
    h = Harness(redis, portfolio)
    h.fund()
    short_lived(h)
    stale = h.intent(quantity="0.1")
    h.pump()
    wait_past(h, stale)
    assert run(redis_url, portfolio, drain) == []
    h.pump()
    assert h.state().snapshot.reservations == {}


def test_async_orders_when_cancel_requested_then_delivered_and_confirmation_releases(
    h: Harness, redis: Redis, redis_url: str
) -> None:
    """The kill switch's cancel request arrives as `delivery.action == "cancel"`;
    `await client.cancel(intent_id)` releases the reservation."""
    iid = h.intent(quantity="0.1")
    h.pump()

    async def take(c: AsyncGateClient) -> None:
        (placed,) = await drain(c)
        await placed.ack()

    run(redis_url, h.portfolio, take)
    control.halt(redis, h.keys)
    control.cancel_open(redis, h.keys, base_config(), h.client.signer, operator="ann",
                        reason="drill")  # fmt: skip

    async def confirm(c: AsyncGateClient) -> list[tuple[str, str]]:
        got = await drain(c)
        for d in got:
            await c.cancel(d.intent_id)
            await d.ack()
        return [(d.action, d.intent_id) for d in got]

    assert run(redis_url, h.portfolio, confirm) == [("cancel", iid)]
    h.pump()
    assert h.state().snapshot.reservations == {}


def test_async_fill_then_expired_when_reported_then_position_and_release(
    h: Harness, redis_url: str
) -> None:
    """A partial fill and an expiry from the async client are applied once each."""
    iid = h.intent(quantity="0.2")
    h.pump()

    async def report(c: AsyncGateClient) -> None:
        await c.fill(iid, "BTC/USDT", "buy", "0.05", "100000", fill_id="t1")
        await c.expired(iid)
        await c.expired(iid)  # the same confirmation twice applies once

    run(redis_url, h.portfolio, report)
    h.pump()
    snap = h.state().snapshot
    assert snap.reservations == {} and snap.positions["BTC/USDT"].quantity == D("0.05")


BAD = [  # (call, field, value as given)
    (lambda c: c.submit("BTC/USDT", "buy", "0.1", price="abc"), "price", "abc"),
    (lambda c: c.submit("BTC/USDT", "buy", "-1", price="1"), "quantity", "-1"),
    (lambda c: c.submit("BTC/USDT", "hold", "1", price="1"), "side", "hold"),
    (lambda c: c.submit("BTC/USDT", "buy", "1", price="1", stop_price="x"), "stop_price", "x"),
    (lambda c: c.submit("BTC/USDT", "buy", True, price="1"), "quantity", True),
    (lambda c: c.fill("i1", "BTC/USDT", "buy", "x", "1", fill_id="t"), "quantity", "x"),
    (lambda c: c.fill("i1", "BTC/USDT", "buy", "1", "1", fill_id="t", fee="-1"), "fee", "-1"),
    (lambda c: c.mark({"BTC/USDT": "0"}), "prices.BTC/USDT", "0"),
    (lambda c: c.deposit("lots", reference="r1"), "amount", "lots"),
    (lambda c: c.wait_decision("i1", timeout=-1), "timeout", -1),
]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(("call", "field", "value"), BAD, ids=[f"{f}={v!r}" for _, f, v in BAD])
def test_client_when_a_value_is_bad_then_invalid_field_naming_it_and_nothing_sent(
    kind: str,
    call: Callable[[Any], Any],
    field: str,
    value: object,
    redis: Redis,
    portfolio: str,
    redis_url: str,
) -> None:
    """`client.submit(..., price="abc")` raised decimal.InvalidOperation naming nothing;
    now both clients raise InvalidField (a ValueError) with the field and the value."""
    with pytest.raises(InvalidField) as caught:
        if kind == "sync":
            call(GateClient(redis=redis, portfolio=portfolio))
        else:

            async def body(c: AsyncGateClient) -> Any:
                return await call(c)

            run(redis_url, portfolio, body)
    assert (caught.value.field, caught.value.value) == (field, value)
    assert str(caught.value).startswith(f"{field}={value!r}: ")
    assert isinstance(caught.value, ValueError)
    assert not redis.keys(f"riskgate:{{{portfolio}}}:*")
