"""Issue 11 on a real Redis: nothing an agent or executor writes wedges a worker,
impersonates another agent's decision, or exhausts memory. Exact counts throughout."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from redis import Redis

from consumers.bus.keys import DATA, GROUP_GATE
from consumers.bus.streams import BoundedReader
from schemas.messages import MAX_ENTRY_BYTES, ReasonCode, Status
from tests.harness import Harness
from tests.integration.conftest import Workers

DEEP = 2000


def _wait(predicate, timeout: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def deep_intent(intent_id: str = "deep-1") -> bytes:
    """~4 KB nested 2,000 deep, with a fraction so the exact (Python) JSON path is taken."""
    return (
        b'{"intent_id": "' + intent_id.encode() + b'", "agent_id": "x", "nest": '
        + b"[" * DEEP + b"1.5" + b"]" * DEEP + b"}"
    )  # fmt: skip


def deep_event() -> bytes:
    return b'{"type": "deposit", "event_id": "deep-e", "amount": "1.5", "x": ' + (
        b"[" * DEEP + b"1.5" + b"]" * DEEP + b"}"
    )


def deep_phase() -> bytes:
    return b'{"type": "phase_activated", "phase": "x", "assets": ' + (
        b"[" * DEEP + b"]" * DEEP + b"}"
    )


def pending(h: Harness, stream: str) -> int:
    return int(h.redis.xpending(stream, GROUP_GATE)["pending"])


def all_pending(h: Harness) -> int:
    return sum(pending(h, s) for s in (h.keys.intents, h.keys.events, h.keys.phases))


_good = iter(range(10**9))


def good_intents(h: Harness, n: int) -> list[str]:
    """``n`` intents that pass, each from its own agent (never a duplicate_order)."""
    return [h.intent(quantity="0.001", agent_id=f"g{next(_good)}") for _ in range(n)]


# -- nesting --------------------------------------------------------------------------------


def test_batch_when_intent_nested_2000_deep_then_dead_letter_rejection_and_rest_decided(
    h: Harness,
) -> None:
    """A deep intent between good ones: one dead letter, one rejection, the rest decided."""
    before = good_intents(h, 3)
    h.raw_intent(deep_intent())
    after = good_intents(h, 3)
    h.pump()
    decided = {d.intent_id: d for d in h.decisions()}
    assert set(decided) == {*before, *after, "deep-1"}
    assert all(decided[i].status is Status.APPROVED for i in before + after)
    assert [r.code for r in decided["deep-1"].reasons] == [ReasonCode.INVALID_INTENT]
    (dead,) = h.dead()
    assert "nested deeper than" in dead["error"]
    assert all_pending(h) == 0


def test_batch_when_deep_entries_on_events_and_phases_then_one_dead_letter_each(
    h: Harness,
) -> None:
    """The same wedge through the events and phases streams: dead letters, nothing stuck."""
    h.raw(h.keys.events, {DATA: deep_event()})
    h.raw(h.keys.phases, {DATA: deep_phase()})
    h.client.deposit("5", event_id="after-deep")
    good = good_intents(h, 2)
    h.pump()
    assert {d.intent_id for d in h.decisions()} == set(good)
    assert sorted(d["stream"] for d in h.dead()) == sorted([h.keys.events, h.keys.phases])
    assert h.redis.exists(h.keys.applied("after-deep")) == 1
    assert all_pending(h) == 0


def test_worker_process_when_deep_entries_on_every_stream_then_alive_and_all_decided(
    h: Harness, workers: Workers
) -> None:
    """A live worker: three deep entries, one per stream, among good intents."""
    name = workers.start()
    first = good_intents(h, 5)
    h.raw_intent(deep_intent())
    h.raw(h.keys.events, {DATA: deep_event()})
    h.raw(h.keys.phases, {DATA: deep_phase()})
    last = good_intents(h, 5)
    _wait(lambda: h.redis.xlen(h.keys.decisions) == 11, what="11 decisions")
    _wait(lambda: len(h.dead()) == 3, what="3 dead letters")
    _wait(lambda: all_pending(h) == 0, what="nothing pending")
    assert {d.intent_id for d in h.decisions()} == {*first, *last, "deep-1"}
    assert workers.procs[name].poll() is None


def test_restart_when_same_consumer_name_and_poison_pending_then_all_decided(
    h: Harness, workers: Workers
) -> None:
    """A worker restarted under the name that holds poison in its pending list decides all."""
    good = good_intents(h, 3)
    h.raw_intent(deep_intent())
    h.raw(h.keys.events, {DATA: deep_event()})
    more = good_intents(h, 3)
    # the crashed worker "same" had read everything, and the poison several times
    for _ in range(3):
        h.redis.xreadgroup(GROUP_GATE, "same", {h.keys.intents: "0", h.keys.events: "0"})
    h.redis.xreadgroup(GROUP_GATE, "same", {h.keys.intents: ">", h.keys.events: ">"})
    assert pending(h, h.keys.intents) == 7
    name = workers.start("same")
    _wait(lambda: all_pending(h) == 0, what="nothing pending")
    assert {d.intent_id for d in h.decisions()} == {*good, *more, "deep-1"}
    assert len(h.dead()) == 2
    assert workers.procs[name].poll() is None


def test_drain_when_cap_exceeded_then_dead_letter_without_parsing(h: Harness) -> None:
    """An entry delivered more than the cap is dead-lettered before anyone parses it."""
    iid = h.intent(quantity="0.001")
    h.redis.xreadgroup(GROUP_GATE, "w1", {h.keys.intents: ">"})
    for _ in range(h.worker.settings.max_deliveries):
        h.redis.xreadgroup(GROUP_GATE, "w1", {h.keys.intents: "0"})
    while h.worker.drain_pending():
        pass
    (dead,) = h.dead()
    assert dead["error"].startswith("delivered 7 times")
    (d,) = h.decisions()
    assert (d.intent_id, d.status, [r.code for r in d.reasons]) == (
        iid,
        Status.REJECTED,
        [ReasonCode.INVALID_INTENT],
    )
    assert h.orders() == [] and all_pending(h) == 0


def test_drain_when_a_batch_keeps_failing_then_pass_ends_and_entries_wait_for_reclaim(
    h: Harness,
) -> None:
    """Own-pending drain walks forward: a failing batch cannot make it loop forever."""
    good_intents(h, 3)
    h.redis.xreadgroup(GROUP_GATE, "w1", {h.keys.intents: ">"})
    calls = []

    def boom(entries: list[Any]) -> None:
        calls.append(len(entries))
        raise RuntimeError("poison")

    h.worker.process = boom  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        h.worker.drain_pending()
    assert h.worker.drain_pending() is False
    assert calls == [3] and pending(h, h.keys.intents) == 3


# -- size -----------------------------------------------------------------------------------


def test_read_when_huge_entries_then_dead_letters_and_batch_within_byte_budget(
    h: Harness,
) -> None:
    """Entries over the limit arrive as their size and first bytes; the batch is bounded."""
    big = 8 * 1024 * 1024
    for n in range(4):
        h.raw_intent(b'{"intent_id": "huge-%d", "pad": "' % n + b"x" * big + b'"}')
    good = good_intents(h, 3)
    h.worker.reader = BoundedReader(h.redis, 1024 * 1024)
    h.pump()
    decided = {d.intent_id: d for d in h.decisions()}
    assert set(decided) == {*good, "huge-0", "huge-1", "huge-2", "huge-3"}
    dead = h.dead()
    assert len(dead) == 4
    assert all(d["raw_bytes"] > big and d["truncated"] and len(d["raw"]) <= 4096 for d in dead)
    assert h.worker.stats["oversize"] == 4 and all_pending(h) == 0


def test_bounded_read_when_many_max_size_entries_then_bytes_capped(
    redis: Redis, h: Harness
) -> None:
    """COUNT 256 of 60 KiB entries: one read brings no more than the byte budget."""
    for _ in range(256):
        h.raw(h.keys.events, {DATA: b"e" * 60_000})
    reader = BoundedReader(redis, 2 * 1024 * 1024)
    got = reader.read(GROUP_GATE, "w9", {h.keys.events: ">"}, count=256)
    size = sum(len(e.raw or b"") for e in got)
    assert 0 < len(got) < 256 and size <= 2 * 1024 * 1024
    assert pending(h, h.keys.events) == len(got)  # only what was read was delivered


# -- one content per intent id ----------------------------------------------------------------


def _reuse_checks(h: Harness, iid: str) -> None:
    original, notice = h.decisions()
    assert (original.symbol, original.status) == ("BTC/USDT", Status.APPROVED)
    assert (notice.intent_id, notice.status, notice.symbol) == (iid, Status.REJECTED, "ETH/USDT")
    (reason,) = notice.reasons
    first_id = h.redis.xrange(h.keys.decisions)[0][0].decode()
    assert (reason.code, reason.value) == (ReasonCode.INTENT_ID_REUSED, first_id)
    assert h.client.decision(iid) == original  # the effective decision is the first
    (dead,) = h.dead()
    assert "already decided" in dead["error"] and first_id in dead["error"]
    assert len(h.orders()) == 1 and h.worker.stats["intent_id_reused"] == 1
    assert all_pending(h) == 0


def test_reuse_when_id_decided_then_other_content_sent_then_notice_not_second_decision(
    h: Harness,
) -> None:
    """'ETH sell 5' under a decided 'BTC buy 0.001' id: refused visibly, the original stands."""
    h.intent(quantity="0.001", intent_id="same-id")
    h.pump()
    h.intent("ETH/USDT", "sell", "5", price="3900", intent_id="same-id")
    h.pump()
    _reuse_checks(h, "same-id")


def test_reuse_when_both_contents_in_one_batch_then_first_decided_second_refused(
    h: Harness,
) -> None:
    """Two contents for one id in the same read: the first decided, the second a reuse."""
    h.intent(quantity="0.001", intent_id="same-batch")
    h.intent("ETH/USDT", "sell", "5", price="3900", intent_id="same-batch")
    h.pump()
    _reuse_checks(h, "same-batch")


def test_resend_when_same_content_serialized_differently_then_duplicate_only(
    h: Harness,
) -> None:
    """Same intent, other key order and number spelling: a duplicate, no notice."""
    body = {
        "intent_id": "resend", "agent_id": "a", "symbol": "BTC/USDT", "side": "buy",
        "quantity": "0.0010", "price": "100000", "created_at": datetime.now(UTC).isoformat(),
    }  # fmt: skip
    h.raw_intent(body)
    h.pump()
    h.raw_intent(dict(reversed(list({**body, "quantity": 0.001, "price": 1e5}.items()))))
    h.pump()
    assert len(h.decisions()) == 1 and h.dead() == []
    assert h.worker.stats["duplicates"] == 1 and all_pending(h) == 0


def test_reuse_when_unparseable_intent_names_decided_id_then_notice_and_one_dead_letter(
    h: Harness,
) -> None:
    """A broken intent under a decided id: one dead letter, one notice, no second decision."""
    iid = h.intent(quantity="0.001")
    h.pump()
    h.raw_intent({"intent_id": iid, "agent_id": "a", "quantity": "nope"})
    h.pump()
    original, notice = h.decisions()
    assert notice.reasons[0].code is ReasonCode.INTENT_ID_REUSED
    assert h.client.decision(iid) == original
    assert len(h.dead()) == 1 and all_pending(h) == 0


# -- small leaks ------------------------------------------------------------------------------


def test_salvage_when_intent_id_has_trailing_newline_then_no_rejection(h: Harness) -> None:
    """'abc\\n' is not an intent id: a dead letter, no decision under a newline id."""
    h.raw_intent({"intent_id": "abc\n", "agent_id": "a", "symbol": "BTC/USDT"})
    h.pump()
    assert h.decisions() == [] and len(h.dead()) == 1
    assert h.redis.exists(h.keys.decided("abc\n")) == 0


def test_salvage_when_id_readable_but_bytes_not_utf8_then_rejection(h: Harness) -> None:
    """An intent whose id is readable but whose other bytes are not UTF-8 gets an answer."""
    h.raw_intent(b'{"intent_id": "bin-1", "agent_id": "\xff\xfe", "symbol": "BTC/USDT"}')
    h.raw_intent(b'\x00\xff{"intent_id": "bin-2", garbage')
    h.pump()
    decided = {d.intent_id: d for d in h.decisions()}
    assert set(decided) == {"bin-1", "bin-2"}
    assert all(d.reasons[0].code is ReasonCode.INVALID_INTENT for d in decided.values())
    assert len(h.dead()) == 2 and all_pending(h) == 0


def test_entry_limit_when_exactly_at_limit_then_read_whole(h: Harness) -> None:
    """An entry of exactly MAX_ENTRY_BYTES (field name included) is read, not stubbed."""
    pad = MAX_ENTRY_BYTES - len(DATA) - len(b'{"intent_id": "edge-1", "p": ""}')
    h.raw_intent(b'{"intent_id": "edge-1", "p": "' + b"x" * pad + b'"}')
    h.pump()
    (dead,) = h.dead()
    assert "over the" not in dead["error"]
    assert dead["raw_bytes"] == MAX_ENTRY_BYTES - len(DATA)
    (d,) = h.decisions()
    assert d.intent_id == "edge-1" and d.status is Status.REJECTED
