"""The dedupe guarantee with bounded memory (issue 12, part 4), on a real Redis.

Decided markers live the dedupe window (``RISKGATE_DEDUPE_TTL_S``, 900 s), applied
markers theirs (``RISKGATE_EVENT_DEDUPE_TTL_S``, 3 h). Inside the window a re-sent
intent is a duplicate; after it, a copy (same ``created_at``) is older than the window
the gate decides in (settings.intent_window) and gets a dead letter: never a second
decision, let alone a second order.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from redis import Redis

from consumers.gate_worker.settings import GateSettings, intent_window
from consumers.gate_worker.worker import GateWorker
from schemas.config import AssetsConfig
from schemas.messages import Status
from tests.builders import base_config
from tests.harness import Harness

W = GateSettings("x").marker_ttl_s


def redis_now(redis: Redis) -> datetime:
    seconds, micros = redis.time()
    return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))


def counts(h: Harness) -> tuple[int, int, int]:
    """Decisions, orders and dead letters on their streams."""
    r = h.redis
    return r.xlen(h.keys.decisions), r.xlen(h.keys.orders), r.xlen(h.keys.deadletter)


def test_markers_when_written_then_decided_live_the_window_and_applied_their_own(
    h: Harness,
) -> None:
    """900 s for a decided marker, 10,800 s for an applied one: memory is rate x window."""
    h.fund()
    iid = h.intent(quantity="0.01")
    event = h.client.deposit("10", reference="TX-ttl")
    h.pump()
    assert W - 5 < h.redis.ttl(h.keys.decided(iid)) <= W == 900
    assert 10_795 < h.redis.ttl(h.keys.applied(event)) <= 10_800


def test_resend_when_inside_the_window_then_no_second_decision_even_restamped(
    h: Harness,
) -> None:
    """The same intent twice, then re-stamped with a new created_at: one decision, one
    order, no dead letter (a duplicate is acked silently)."""
    h.fund()
    at = redis_now(h.redis)
    iid = h.intent(quantity="0.01", intent_id="once-1", created_at=at)
    h.pump()
    h.intent(quantity="0.01", intent_id=iid, created_at=at)
    h.intent(quantity="0.01", intent_id=iid, created_at=at + timedelta(seconds=2))
    h.pump()
    assert counts(h) == (1, 1, 0)
    assert h.decision(iid).status is Status.APPROVED
    assert h.worker.stats["duplicates"] >= 1 and h.pending() == 0


def test_resend_when_the_marker_expired_then_dead_letter_never_a_second_decision(
    redis: Redis, portfolio: str
) -> None:
    """A 5 s window (intent age 3 s, skew 1 s): the marker really expires, the same intent
    comes again: it is older than the window it could be decided in, so it gets a dead
    letter; still one decision, one order, one reservation."""
    h = Harness(redis, portfolio)
    h.config = tight()
    h.worker = GateWorker(redis, h.keys, h.config, GateSettings("w1", block_ms=5, marker_ttl_s=5))
    h.worker.setup()
    h.fund()
    at = redis_now(redis)
    iid = h.intent(quantity="0.01", intent_id="late-1", created_at=at)
    h.pump()
    assert counts(h) == (1, 1, 0)
    deadline = time.monotonic() + 10
    while redis.exists(h.keys.decided(iid)):
        assert time.monotonic() < deadline, "the decided marker did not expire"
        time.sleep(0.1)
    h.intent(quantity="0.01", intent_id=iid, created_at=at)
    h.pump()
    assert counts(h) == (1, 1, 1)
    (dead,) = h.dead()
    assert "older than the dedupe window (3s)" in dead["error"]
    assert list(h.state().snapshot.reservations) == [iid]
    assert h.worker.stats["expired_intents"] == 1


def test_resend_when_the_gate_reads_it_past_the_window_then_refused_by_redis_time(
    h: Harness,
) -> None:
    """The default window: a copy read 901 s after its created_at (a gate stopped that
    long; its marker gone) is refused; 800 s after, with the marker alive, a duplicate."""
    h.fund()
    at = redis_now(h.redis)
    iid = h.intent(quantity="0.01", intent_id="old-1", created_at=at)
    h.pump()
    h.worker.clock = lambda: at + timedelta(seconds=800)
    h.intent(quantity="0.01", intent_id=iid, created_at=at)
    h.pump()
    assert counts(h) == (1, 1, 0)
    h.redis.delete(h.keys.decided(iid))  # as if it had expired
    h.worker.clock = lambda: at + timedelta(seconds=W + 1)
    h.intent(quantity="0.01", intent_id=iid, created_at=at)
    h.pump()
    assert counts(h) == (1, 1, 1)
    assert "older than the dedupe window (835s)" in h.dead()[0]["error"]


def test_intent_when_stale_within_the_window_then_still_rejected_visibly(h: Harness) -> None:
    """400 s old: past the intent age limit (300 s), inside the window (835 s): a
    stale_intent rejection, with its marker, as before."""
    h.fund()
    iid = h.intent(quantity="0.01", created_at=redis_now(h.redis) - timedelta(seconds=400))
    h.pump()
    d = h.decision(iid)
    assert (d.status, d.reasons[0].code.value) == (Status.REJECTED, "stale_intent")
    assert counts(h) == (1, 0, 0)


def test_intent_when_dated_ahead_then_marker_outlives_its_window_or_not_decided(
    h: Harness,
) -> None:
    """30 s ahead (over the 5 s skew): rejected stale_intent, its marker living 900 + 30 s
    (until no copy of it can be decided); 1,000 s ahead, beyond the window: not decided."""
    h.fund()
    now = redis_now(h.redis)
    soon = h.intent(quantity="0.01", created_at=now + timedelta(seconds=30))
    far = h.intent(quantity="0.01", created_at=now + timedelta(seconds=1000))
    h.pump()
    assert h.decision(soon).reasons[0].code.value == "stale_intent"
    assert W + 20 < h.redis.ttl(h.keys.decided(soon)) <= W + 31
    assert h.client.decision(far) is None and not h.redis.exists(h.keys.decided(far))
    assert counts(h) == (1, 0, 1)
    assert "ahead of the gate's clock" in h.dead()[0]["error"]


def tight() -> AssetsConfig:
    data = base_config().model_dump(mode="json")
    data["risk_management"]["max_clock_skew_seconds"] = 1
    data["risk_management"]["max_intent_age_seconds"] = 3
    return AssetsConfig.model_validate(data)


def test_intent_window_when_computed_then_the_window_less_skew_and_margin() -> None:
    """900 s: 835 (skew 5, margin 60); never below the intent age limit."""
    cfg = base_config()
    assert intent_window(900, cfg) == timedelta(seconds=835)
    assert intent_window(340, cfg) == timedelta(seconds=300)
    assert intent_window(305, cfg) == timedelta(seconds=300)
    assert intent_window(5, tight()) == timedelta(seconds=3)
