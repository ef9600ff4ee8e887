"""Orders end explicitly (issue 10, part 1), on a real Redis through the wire protocol.

A reservation lives as long as its order: past ``good_till`` it keeps counting until
the executor says how the order ended (``fill``, ``cancel``, ``expired``) or an
operator runs ``riskgate release``. The SDK never hands out an order past its
``good_till``, never a second entry for one intent, and delivers the kill switch's
cancel requests. An unreadable fill or cancel halts the portfolio.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from redis import Redis

from consumers.bus.keys import DATA
from consumers.cli.main import main
from consumers.gate_worker.worker import GateSettings, GateWorker
from consumers.ops.telemetry import GateTelemetry
from consumers.sdk.client import GateClient, OrderDelivery
from schemas.messages import Status
from tests.builders import codes, market_prices
from tests.harness import Harness

D = Decimal


def later_than_good_till(h: Harness) -> datetime:
    """The gate's clock an hour and a second on (past every reservation's good_till),
    with the market marked then."""
    later = datetime.now(UTC) + timedelta(hours=1, seconds=1)
    h.worker.clock = lambda: later
    h.mark_arriving(market_prices(), later)
    return later


def drain(client: GateClient, group: str = "exec", limit: int = 1000) -> list[OrderDelivery]:
    """What the SDK hands out until a few blocking reads in a row bring nothing (its
    generator never ends by itself), at most ``limit`` deliveries; none acked."""
    got: list[OrderDelivery] = []
    idle = {"reads": 0}

    def stop() -> bool:
        idle["reads"] += 1
        return idle["reads"] > 3

    for d in client.orders(group, "e1", start="0", block_ms=20, stop=stop):
        idle["reads"] = 0
        got.append(d)
        if len(got) >= limit:
            break
    return got


def short_lived(h: Harness, ttl_s: int = 1) -> None:
    """The harness's worker on a config whose orders are good for ``ttl_s`` seconds."""
    rm = h.config.risk_management.model_copy(update={"reservation_ttl_seconds": ttl_s})
    h.config = h.config.model_copy(update={"risk_management": rm})
    h.worker = GateWorker(
        h.redis, h.keys, h.config, GateSettings(consumer="w1", block_ms=5, verify_exposure=True)
    )


def wait_past(h: Harness, intent_id: str) -> None:
    """Until Redis's clock is past the reservation's good_till."""
    good_till = h.state().snapshot.reservations[intent_id].expires_at
    while True:
        seconds, micros = h.redis.time()
        if datetime.fromtimestamp(int(seconds) + int(micros) / 1e6, UTC) > good_till:
            return
        time.sleep(0.05)


def test_late_fill_when_reservation_past_good_till_then_never_over_the_limit(
    redis: Redis, portfolio: str
) -> None:
    """The reported case: approve 0.2 BTC (20 % of equity, the limit), pass its
    reservation's expiry, ask for 0.2 more, then the first order fills late. Before:
    the second was approved and 40 % of equity ended in BTC. Now the second is
    rejected max_position and the position is 20 %."""
    h = Harness(redis, portfolio)
    h.fund()
    first = h.intent(quantity="0.2")
    h.pump()
    assert h.decision(first).status is Status.APPROVED
    later = later_than_good_till(h)
    second = h.intent(quantity="0.2", created_at=later)
    h.pump()
    d = h.decision(second)
    assert (d.status, d.approved_quantity, codes(d)[0]) == (Status.REJECTED, 0, "max_position")
    h.client.fill(first, "BTC/USDT", "buy", "0.2", "100000", at=later, fill_id="t1")
    h.pump()
    snap = h.state().snapshot
    assert snap.positions["BTC/USDT"].quantity == D("0.2")
    assert (len(h.orders()), snap.reservations) == (1, {})
    assert snap.account.halted_by is None


def test_status_and_metrics_when_reservation_overdue_then_shown(
    redis: Redis, portfolio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Past good_till an unconfirmed reservation is listed by riskgate status."""
    h = Harness(redis, portfolio)
    h.fund()
    iid = h.intent(quantity="0.1")
    h.pump()
    url = ["--redis-url", _url(redis), "--portfolio", portfolio]
    capsys.readouterr()
    assert main(["status", *url, "--json"]) == 0
    fresh = json.loads(capsys.readouterr().out)
    assert fresh["overdue_reservations"]["count"] == 0
    assert fresh["reservations"][iid]["overdue"] is False
    short_lived(h)
    old = h.intent("ETH/USDT", quantity="1", price="3900")
    h.pump()
    assert h.decision(old).status is Status.APPROVED
    wait_past(h, old)
    capsys.readouterr()
    assert main(["status", *url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["overdue_reservations"]["count"] == 1
    assert report["overdue_reservations"]["intents"] == [old]
    assert report["reservations"][old]["overdue"] is True
    assert main(["status", *url]) == 0
    assert "OVERDUE: 1 reservations past their order's good_till" in capsys.readouterr().out
    gauges = GateTelemetry(h.worker).sample_more()["portfolio"]
    assert gauges["riskgate_overdue_reservations"] == 1.0
    assert gauges["riskgate_overdue_reservation_max_seconds"] >= 0.0


def _url(redis: Redis) -> str:
    kw = redis.connection_pool.connection_kwargs
    return f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def test_sdk_when_order_past_good_till_then_withheld_acked_and_reported_expired(
    redis: Redis, portfolio: str
) -> None:
    """An order the executor reads after its good_till is never handed out: the SDK
    acks it and reports ``expired``, which releases the reservation."""
    h = Harness(redis, portfolio)
    h.fund()
    short_lived(h)
    stale = h.intent(quantity="0.1")
    h.pump()
    wait_past(h, stale)
    h.worker = Harness(redis, portfolio).worker  # orders good for the default hour
    fresh = h.intent(quantity="0.05")
    h.pump()
    assert len(h.orders()) == 2
    got = drain(h.client)
    assert [d.intent_id for d in got] == [fresh]
    assert got[0].order is not None and got[0].order.good_till is not None
    for d in got:
        d.ack()
    assert int(redis.xpending(h.keys.orders, "exec")["pending"]) == 0
    h.pump()
    snap = h.state().snapshot
    assert set(snap.reservations) == {fresh}
    assert stale not in snap.reservations


def test_sdk_when_same_intent_published_twice_then_handed_out_once(
    redis: Redis, portfolio: str
) -> None:
    """After a failover an order can be published again: the SDK hands out one entry
    per intent and group, but its own unacked entry again after a restart."""
    h = Harness(redis, portfolio)
    h.fund()
    iid = h.intent(quantity="0.1")
    h.pump()
    (data,) = [f[DATA] for _, f in redis.xrange(h.keys.orders)]
    redis.xadd(h.keys.orders, {DATA: data})  # the same order, re-published
    first = drain(h.client)
    assert [d.intent_id for d in first] == [iid]  # not acked: pending
    restarted = GateClient(redis=redis, portfolio=portfolio)
    again = drain(restarted)
    assert [(d.intent_id, d.msg_id) for d in again] == [(iid, first[0].msg_id)]
    again[0].ack()
    assert int(redis.xpending(h.keys.orders, "exec")["pending"]) == 0
    other = drain(GateClient(redis=redis, portfolio=portfolio), "exec-b")  # its own group
    assert [d.intent_id for d in other] == [iid]


def test_halt_cancel_open_when_orders_open_then_cancel_requests_delivered_and_released(
    redis: Redis, portfolio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The kill switch as RTS 6 art. 12 means it: halt, a cancel request for every open
    order on the orders stream, the SDK delivers them, reservations go as executors
    confirm. An order whose cancel request arrives first is never handed out."""
    h = Harness(redis, portfolio)
    h.fund()
    ids = [h.intent(quantity="0.05", agent_id=f"a{i}") for i in range(3)]
    h.pump()
    placed = drain(h.client, limit=1)  # the executor has been handed the first order
    assert [d.intent_id for d in placed] == ids[:1]
    placed[0].ack()
    # the other two are not published yet (as if still in a durable outbox)
    late = [(mid, f[DATA]) for mid, f in redis.xrange(h.keys.orders)][1:]
    redis.xdel(h.keys.orders, *[mid for mid, _ in late])
    args = ["halt", "--redis-url", _url(redis), "--portfolio", portfolio]
    capsys.readouterr()
    assert main([*args, "--cancel-open", "--reason", "drill", "--operator", "ann"]) == 0
    assert "cancel requested for 3 open orders" in capsys.readouterr().out
    requests = [o for o in h.orders() if o.get("action") == "cancel"]
    assert sorted(r["intent_id"] for r in requests) == sorted(ids)
    assert {(r["reason"], r["operator"]) for r in requests} == {("drill", "ann")}
    assert h.state().snapshot.flags.halted
    for _, data in late:  # now published, after their cancel requests
        redis.xadd(h.keys.orders, {DATA: data})
    got = drain(h.client)
    assert [(d.action, d.intent_id) for d in got] == [("cancel", ids[0])]
    assert int(redis.xpending(h.keys.orders, "exec")["pending"]) == 1
    h.pump()  # the SDK confirmed the two it never handed out
    assert set(h.state().snapshot.reservations) == {ids[0]}
    h.client.cancel(ids[0])  # the executor cancelled it at the venue
    got[0].ack()
    h.pump()
    assert h.state().snapshot.reservations == {}
    assert "BTC/USDT" not in h.state().snapshot.positions
    opening = h.intent(quantity="0.01")
    h.pump()
    assert codes(h.decision(opening))[0] == "trading_halted"


def test_release_when_operator_names_a_dead_order_then_reservation_released(
    redis: Redis, portfolio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """riskgate release INTENT_ID --reason: a signed-when-configured operator event;
    the reason is required and an unknown intent is one clear line, exit 2."""
    h = Harness(redis, portfolio)
    h.fund()
    iid = h.intent(quantity="0.2")
    h.pump()
    args = ["release", "--redis-url", _url(redis), "--portfolio", portfolio]
    with pytest.raises(SystemExit) as exc:
        main([*args, iid])
    assert exc.value.code == 2 and "--reason" in capsys.readouterr().err
    assert main([*args, "nobody", "--reason", "x"]) == 2
    assert "nobody: no open reservation" in capsys.readouterr().err
    assert main([*args, iid, "--reason", "venue says rejected", "--operator", "ann"]) == 0
    assert f"releasing {iid} (buy 0.20000 BTC/USDT" in capsys.readouterr().out
    h.pump()
    assert h.state().snapshot.reservations == {}
    again = h.intent(quantity="0.2", agent_id="other")  # not a duplicate_order
    h.pump()
    assert h.decision(again).status is Status.APPROVED


UNREADABLE: list[tuple[str, Any, bool]] = [
    ("fill with a bad quantity", {"type": "fill", "event_id": "f1", "intent_id": "i",
     "symbol": "BTC/USDT", "side": "buy", "quantity": "lots", "price": "1"}, True),
    ("cancel without intent", {"type": "cancel", "event_id": "c1"}, True),
    ("expired with a bad id", {"type": "expired", "event_id": "x1", "intent_id": "a b"}, True),
    ("not JSON at all", "{fill", True),
    ("mark with a bad price", {"type": "mark", "event_id": "m1", "prices": {"BTC/USDT": "-1"},
     "at": "2026-01-01T00:00:00Z"}, False),
]  # fmt: skip


@pytest.mark.parametrize(("what", "payload", "halts"), UNREADABLE, ids=[u[0] for u in UNREADABLE])
def test_unreadable_event_when_it_may_be_a_fill_then_portfolio_halts(
    redis: Redis, portfolio: str, what: str, payload: Any, halts: bool
) -> None:
    """An unparseable fill or cancel (or an event whose type cannot be read) is
    dead-lettered AND halts: a real position may be missing. A bad mark only
    dead-letters (stale marks fail closed on their own)."""
    h = Harness(redis, portfolio)
    h.fund()
    h.raw(h.keys.events, {DATA: payload if isinstance(payload, str) else json.dumps(payload)})
    h.pump()
    assert len(h.dead()) == 1
    halt = h.state().snapshot.account.halted_by
    assert (halt is not None) is halts
    opening = h.intent(quantity="0.01")
    h.pump()
    assert (codes(h.decision(opening))[:1] == ["trading_halted"]) is halts
    if halts:
        assert halt is not None and halt.reason.startswith("unaccounted_event: unparseable")
        h.client.resume("ann", "reconciled", reference="ticket-1")
        h.pump()
        assert h.state().snapshot.account.halted_by is None


def test_unknown_fill_when_halt_on_unknown_fill_off_then_counted_not_halted(
    redis: Redis, portfolio: str
) -> None:
    """halt_on_unknown_fill: false keeps trading but still counts the unknown fill."""
    h = Harness(redis, portfolio)
    rm = h.config.risk_management.model_copy(update={"halt_on_unknown_fill": False})
    config = h.config.model_copy(update={"risk_management": rm})
    h.worker = GateWorker(
        redis, h.keys, config, GateSettings(consumer="w1", block_ms=5, verify_exposure=True)
    )
    h.fund()
    h.client.fill("nobody", "BTC/USDT", "buy", "0.01", "100000", fill_id="t1")
    h.pump()
    snap = h.state().snapshot
    assert snap.positions["BTC/USDT"].quantity == D("0.01")
    assert (snap.account.halted_by, h.worker.stats["unknown_fill"]) == (None, 1)


def test_partial_fill_then_expired_when_confirmed_then_rest_released(
    redis: Redis, portfolio: str
) -> None:
    """A partly filled order holds what is left until the executor says it expired."""
    h = Harness(redis, portfolio)
    h.fund()
    iid = h.intent(quantity="0.2")
    h.pump()
    h.client.fill(iid, "BTC/USDT", "buy", "0.05", "100000", fill_id="t1")
    h.pump()
    assert h.state().snapshot.reservations[iid].quantity == D("0.15")
    h.client.expired(iid)
    h.client.expired(iid)  # the same confirmation twice applies once
    time.sleep(0.001)
    h.pump()
    snap = h.state().snapshot
    assert snap.reservations == {} and snap.positions["BTC/USDT"].quantity == D("0.05")
    assert h.worker.stats["unknown_fill"] == 0
