"""Bounded Redis (issue 12, part 4) on a real Redis: outputs kept until the groups that
need them acked (decisions past their floor too), inputs once the gate (and the phase
monitor) did; a group nobody runs holds entries for a documented time only, and what
it loses is counted; one trim pass removes far more than the sustained rate brings."""

from __future__ import annotations

import json
import time
from dataclasses import replace

from redis import Redis

from consumers.bus.keys import DATA, GROUP_AUDIT, GROUP_PHASE
from consumers.bus.retention import Policy, trim_stream
from consumers.bus.streams import trim_consumed
from consumers.gate_worker.settings import GateSettings
from tests.harness import Harness


def ids(redis: Redis, stream: str) -> list[bytes]:
    return [i for i, _ in redis.xrange(stream)]


def take(redis: Redis, stream: str, group: str, consumer: str, n: int = 10_000) -> list[bytes]:
    """Read (deliver, not ack) what ``group`` has not had yet, as ``consumer``."""
    got = redis.xreadgroup(group, consumer, {stream: ">"}, count=n) or []
    return [i for _, rows in got for i, _ in rows]


def decided(h: Harness, n: int) -> list[str]:
    made = [h.intent(quantity="0.001", agent_id=f"a{i}") for i in range(n)]
    h.pump()
    return made


def settle(h: Harness, **settings: object) -> None:
    h.worker.settings = replace(h.worker.settings, **settings)  # type: ignore[arg-type]


def test_trim_when_audit_has_not_acked_then_decisions_kept_and_trimmed_once_acked(
    h: Harness,
) -> None:
    """Delivered to the audit writer but not acked: every decision stays; acked (and past
    a zero floor): all gone, and the gate's acked intents with them."""
    h.fund()
    decided(h, 30)
    settle(h, decisions_keep_s=0.0)
    held = take(h.redis, h.keys.decisions, GROUP_AUDIT, "audit-1")
    assert len(held) == 30
    h.worker.trim()
    assert ids(h.redis, h.keys.decisions) == held
    assert h.redis.xlen(h.keys.intents) == 0  # decided: the gate acked them
    h.redis.xack(h.keys.decisions, GROUP_AUDIT, *held[:20])
    h.worker.trim()
    assert set(ids(h.redis, h.keys.decisions)) >= set(held[20:])  # never an unacked one
    h.redis.xack(h.keys.decisions, GROUP_AUDIT, *held[20:])
    h.worker.trim()
    assert h.redis.xlen(h.keys.decisions) == 0
    assert h.worker.stats["unconsumed:decisions"] == 0


def test_trim_when_decision_younger_than_the_floor_then_kept_and_readable(h: Harness) -> None:
    """Audited decisions stay RISKGATE_DECISIONS_KEEP_S: the SDK reads them; once trimmed
    ``decision()`` is None but ``decided()`` still says it was decided."""
    h.fund()
    (iid,) = decided(h, 1)
    h.redis.xack(h.keys.decisions, GROUP_AUDIT, *take(h.redis, h.keys.decisions, GROUP_AUDIT, "a"))
    settle(h, decisions_keep_s=3600.0)
    h.worker.trim()
    assert h.client.decision(iid) is not None
    settle(h, decisions_keep_s=0.0)
    h.worker.trim()
    assert h.redis.xlen(h.keys.decisions) == 0
    assert h.client.decision(iid) is None and h.client.decided(iid) is True


def test_trim_when_one_executor_group_has_not_acked_then_orders_kept(h: Harness) -> None:
    """Orders go only once every executor group (each names its own) acked them."""
    h.fund()
    decided(h, 5)
    for group in ("fast", "slow"):
        h.redis.xgroup_create(h.keys.orders, group, id="0")
    fast = take(h.redis, h.keys.orders, "fast", "f1")
    slow = take(h.redis, h.keys.orders, "slow", "s1")
    assert len(fast) == len(slow) == 5
    h.redis.xack(h.keys.orders, "fast", *fast)
    h.worker.trim()
    assert ids(h.redis, h.keys.orders) == slow
    h.redis.xack(h.keys.orders, "slow", *slow)
    h.worker.trim()
    assert h.redis.xlen(h.keys.orders) == 0


def test_trim_when_phase_monitor_has_not_acked_then_events_kept(h: Harness) -> None:
    """Events are inputs of two groups: applied by the gate is not enough."""
    h.fund()
    held = take(h.redis, h.keys.events, GROUP_PHASE, "pm-1")
    h.worker.trim()
    assert ids(h.redis, h.keys.events) == held
    h.redis.xack(h.keys.events, GROUP_PHASE, *held)
    h.worker.trim()
    assert h.redis.xlen(h.keys.events) == 0


def test_group_when_nobody_runs_it_then_holds_only_unconsumed_keep_and_drops_are_counted(
    h: Harness,
) -> None:
    """The phase group's only consumer went idle: its events are kept while younger than
    unconsumed_keep_s, then trimmed anyway, each one counted (and logged)."""
    h.fund()  # a deposit and marks
    held = take(h.redis, h.keys.events, GROUP_PHASE, "pm-gone")
    assert len(held) >= 2
    settle(h, idle_group_s=0.2, unconsumed_keep_s=3600.0)
    time.sleep(0.3)
    h.worker.trim()
    assert ids(h.redis, h.keys.events) == held  # idle, but within the hold
    settle(h, unconsumed_keep_s=0.5)
    time.sleep(0.6)
    (events,) = [t for t in h.worker.trim() if t.stream == h.keys.events]
    assert (events.dropped, events.groups) == (len(held), [GROUP_PHASE])
    assert h.redis.xlen(h.keys.events) == 0
    assert h.worker.stats["unconsumed:events"] == len(held)


def test_group_when_a_consumer_is_live_then_never_overtaken(h: Harness) -> None:
    """A live but slow consumer holds its entries however old they are."""
    h.fund()
    held = take(h.redis, h.keys.events, GROUP_PHASE, "pm-slow")
    settle(h, idle_group_s=3600.0, unconsumed_keep_s=0.1)
    time.sleep(0.2)
    h.worker.trim()
    assert ids(h.redis, h.keys.events) == held
    assert h.worker.stats["unconsumed:events"] == 0


def test_orders_when_no_executor_group_exists_then_held_then_dropped_and_counted(
    h: Harness,
) -> None:
    """Orders no executor group was made for are kept unconsumed_keep_s, then counted."""
    h.fund()
    decided(h, 3)
    settle(h, unconsumed_keep_s=3600.0)
    h.worker.trim()
    assert h.redis.xlen(h.keys.orders) == 3
    settle(h, unconsumed_keep_s=0.2)
    time.sleep(0.3)
    (orders,) = [t for t in h.worker.trim() if t.stream == h.keys.orders]
    assert (orders.dropped, orders.groups) == (3, ["(no group)"])
    assert h.worker.stats["unconsumed:orders"] == 3


def test_dead_letters_when_over_the_count_then_the_oldest_go(h: Harness) -> None:
    """Dead letters are kept RISKGATE_RETENTION_S and RISKGATE_DEADLETTER_MAX at most."""
    for i in range(1500):
        h.raw_intent({"intent_id": f"bad-{i}"})
    h.pump()
    assert h.redis.xlen(h.keys.deadletter) == 1500
    settle(h, deadletter_max=1000)
    h.worker.trim()
    assert 1000 <= h.redis.xlen(h.keys.deadletter) < 1100  # whole nodes: about the cap
    settle(h, retention_s=0.001)
    time.sleep(0.01)
    h.worker.trim()
    assert h.redis.xlen(h.keys.deadletter) == 0


def test_trim_when_a_backlog_is_acked_then_one_call_removes_over_ten_times_the_rate(
    redis: Redis, portfolio: str
) -> None:
    """50,000 acked entries: one pass removes them all, over 10 x the 1,000/s a one-second
    trim interval must keep up with; the old helper stopped at Redis's implicit 10,000."""
    rate, every_s = 1000, GateSettings("x").trim_every_s
    stream = f"riskgate:{{{portfolio}}}:intents"
    for start in range(0, 50_000, 5000):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, start + 5000):
            pipe.xadd(stream, {DATA: json.dumps({"n": i})})
        pipe.execute()
    redis.xgroup_create(stream, "gate", id="$")  # everything before: delivered and acked
    now_ms = int(redis.time()[0]) * 1000 + 1000
    one = trim_stream(redis, stream, now_ms, Policy(limit=GateSettings("x").trim_limit))
    assert one.trimmed == 50_000 > 10 * rate * every_s
    assert redis.xlen(stream) == 0
    redis.delete(stream)
    for start in range(0, 30_000, 5000):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, start + 5000):
            pipe.xadd(stream, {DATA: json.dumps({"n": i})})
        pipe.execute()
    redis.xgroup_create(stream, "gate", id="$")
    assert trim_consumed(redis, stream, 0.0) <= 10_000  # the old pass: capped


def test_handed_marker_when_an_order_is_taken_then_it_lives_until_good_till_and_a_margin(
    h: Harness,
) -> None:
    """The SDK remembers which entry it handed out only while the order can be handed
    out at all: until its good_till (an hour) and 5 minutes more, not 7 days."""
    h.fund()
    (iid,) = decided(h, 1)
    taking = h.client.orders("ex", "e1", start="0")
    delivery = next(taking)
    delivery.ack()
    taking.close()
    ttl = h.redis.ttl(h.keys.handed("ex", iid))
    assert 3600 + 300 - 10 < ttl <= 3600 + 300
