"""Backpressure on a real Redis: a flooding agent's excess is rejected cheaply, the
other agents' intents are decided as usual (docs/PROTOCOL.md, Backpressure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from redis import Redis

from consumers.bus.keys import DATA
from schemas.messages import Status
from tests.harness import Harness


def frozen_clock(redis: Redis) -> datetime:
    """Redis's clock, read once: the whole test decides inside one rate window."""
    seconds, micros = redis.time()
    return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))


def size(i: int) -> Decimal:
    """Intent ``i``'s quantity: one lot more each time, so none is a duplicate_order."""
    return Decimal("0.0001") + i * Decimal("0.00001")


def test_flood_when_one_agent_floods_then_excess_rejected_cheaply_and_others_decided(
    redis: Redis, portfolio: str
) -> None:
    """600 intents from `flood` with 6 from `calm` interleaved: calm's 6 approved in
    full; flood's first 120 (its per-minute quota) decided in full, the other 480
    rejected `rate_limited` with a compact decision (its marker lives the dedupe
    window, like every decided marker)."""
    h = Harness(redis, portfolio)
    h.fund("1000000")
    now = frozen_clock(redis)
    h.worker.clock = lambda: now
    calm = []
    for i in range(600):
        h.intent(quantity=size(i), agent_id="flood", intent_id=f"flood-{i}")
        if i % 100 == 50:
            qty = f"0.000{i // 100 + 1}"  # each its own size: not a duplicate_order
            calm.append(h.intent(quantity=qty, agent_id="calm", intent_id=f"calm-{i}"))
    h.pump()
    decisions = [json.loads(f[DATA]) for _, f in redis.xrange(h.keys.decisions)]
    assert len(decisions) == 606
    by_agent = {a: [d for d in decisions if d["agent_id"] == a] for a in ("flood", "calm")}
    assert [h.decision(i).status for i in calm] == [Status.APPROVED] * 6
    assert all("equity" in d["checks"] for d in by_agent["calm"])
    full = [d for d in by_agent["flood"] if "equity" in d["checks"]]
    compact = [d for d in by_agent["flood"] if "equity" not in d["checks"]]
    assert (len(full), len(compact)) == (120, 480)
    assert {d["intent_id"] for d in full} == {f"flood-{i}" for i in range(120)}
    for d in compact:
        assert d["status"] == "rejected" and d["approved_quantity"] == "0"
        assert [r["code"] for r in d["reasons"]] == ["rate_limited"]
        assert (d["reasons"][0]["value"], d["reasons"][0]["limit"]) == ("120", "120")
        assert d["checks"] == {"agent_intents_this_minute": 120, "agent_rate_limit": 120}
    assert h.decision("flood-599").status is Status.REJECTED  # it reads as a Decision
    assert h.worker.stats["over_quota"] == 480
    # every decided marker lives the dedupe window (900 s), compact rejections' too: a
    # shorter one would let a re-sent copy be decided again (settings.intent_window)
    assert 890 < redis.ttl(h.keys.decided("flood-599")) <= 900
    assert 890 < redis.ttl(h.keys.decided(calm[0])) <= 900
    assert len(h.orders()) == 126  # calm's 6 and flood's first 120, nothing more
    assert h.pending() == 0
    # a redelivered or re-sent over-quota intent is still a duplicate, not a second one
    h.intent(quantity=size(599), agent_id="flood", intent_id="flood-599")
    h.pump()
    assert redis.xlen(h.keys.decisions) == 606


def test_flood_when_quota_off_then_every_intent_decided_in_full(
    redis: Redis, portfolio: str
) -> None:
    """`agent_quota=False` (the benchmark's "before"): the same rejections, full reports."""
    h = Harness(redis, portfolio, agent_quota=False)
    h.fund("1000000")
    now = frozen_clock(redis)
    h.worker.clock = lambda: now
    for i in range(130):
        h.intent(quantity=size(i), agent_id="flood", intent_id=f"flood-{i}")
    h.pump()
    decisions = [json.loads(f[DATA]) for _, f in redis.xrange(h.keys.decisions)]
    assert all("equity" in d["checks"] for d in decisions)
    limited = [d for d in decisions if "rate_limited" in [r["code"] for r in d["reasons"]]]
    assert len(limited) == 10 and h.worker.stats["over_quota"] == 0
