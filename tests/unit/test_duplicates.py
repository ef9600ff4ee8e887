"""duplicate_order across a batch and batches: what the memory keeps, forgets and stores.

The memory is (agent, symbol) -> its approved openings within
``duplicate_order_window_seconds`` (10 s): side, requested quantity, decided at.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.bus import keys as k
from consumers.state.changes import approvals_touched, changes, differing
from consumers.state.codec import StateError, approval_field
from consumers.state.snapshot_codec import decode_state
from gate import duplicates
from gate.decide import decide_batch
from gate.enrich import Ask
from gate.portfolio import Snapshot
from schemas.messages import Side, Status
from tests.builders import NOW, base_config, codes, intent, position, snapshot

D = Decimal
BTC = ("agent-1", "BTC/USDT")


def statuses(result: object) -> list[tuple[str, list[str]]]:
    return [(d.status.value, codes(d)) for d in result.decisions]  # type: ignore[attr-defined]


def test_decide_batch_when_two_identical_openings_then_the_second_is_the_duplicate() -> None:
    """Within one batch the first is approved and remembered, the second refused."""
    result = decide_batch(
        [intent(quantity="0.1"), intent(quantity="0.1")], snapshot(), base_config(), NOW
    )
    assert statuses(result) == [("approved", []), ("rejected", ["duplicate_order"])]
    assert result.snapshot.approvals == {BTC: ((Side.BUY, D("0.1"), NOW),)}
    assert result.snapshot.rates["agent-1"].count == 2  # a duplicate is counted: it was sent


def test_decide_batch_when_first_resized_then_a_repeat_of_its_request_is_the_duplicate() -> None:
    """The memory keeps the requested quantity: re-sending 0.3 after a resize to 0.2 is
    the same order again, while asking for what was approved is a new one."""
    first, again, smaller = intent(quantity="0.3"), intent(quantity="0.3"), intent(quantity="0.2")
    result = decide_batch([first, again, smaller], snapshot("1000000"), base_config(), NOW)
    assert [d.status for d in result.decisions] == [
        Status.APPROVED,
        Status.REJECTED,
        Status.APPROVED,
    ]
    snap = snapshot()  # 100,000: max position 0.2
    result = decide_batch(
        [intent(quantity="0.3"), intent(quantity="0.3")], snap, base_config(), NOW
    )
    assert statuses(result) == [("resized", ["max_position"]), ("rejected", ["duplicate_order"])]


def test_decide_batch_when_first_rejected_then_the_repeat_is_decided_afresh() -> None:
    """Only approvals are remembered: an identical intent after a rejection is no duplicate."""
    stale = intent(quantity="0.1", created_at=NOW - timedelta(minutes=6))
    result = decide_batch([stale, intent(quantity="0.1")], snapshot(), base_config(), NOW)
    assert statuses(result) == [("rejected", ["stale_intent"]), ("approved", [])]


def test_decide_batch_when_reduce_only_slices_then_none_remembered_or_refused() -> None:
    """Equal exits are how a capped exit is done: never duplicates, never remembered."""
    held = snapshot("0", [position("BTC/USDT", "0.3", "100000", "94000")])
    exits = [intent(side="sell", quantity="0.1", reduce_only=True) for _ in range(3)]
    result = decide_batch(exits, held, base_config(), NOW)
    assert [d.status for d in result.decisions] == [Status.APPROVED] * 3
    assert result.snapshot.approvals == {}


def test_decide_batch_when_window_passes_then_memory_forgotten_and_repeat_approved() -> None:
    """A batch 10 s later still refuses the repeat; one microsecond past it approves it,
    and the entry is gone from the snapshot (deleted from the state on commit)."""
    first = decide_batch([intent(quantity="0.1")], snapshot(), base_config(), NOW)
    at_edge = NOW + timedelta(seconds=10)
    past = at_edge + timedelta(microseconds=1)
    edge = decide_batch([intent(quantity="0.1")], first.snapshot, base_config(), at_edge)
    assert statuses(edge) == [("rejected", ["duplicate_order"])]
    assert edge.snapshot.approvals == first.snapshot.approvals  # a refusal adds nothing
    later = decide_batch([], edge.snapshot, base_config(), past)
    assert later.snapshot.approvals == {}
    again = decide_batch([intent(quantity="0.1")], later.snapshot, base_config(), past)
    assert statuses(again) == [("approved", [])]


def test_remember_approval_when_more_than_depth_then_oldest_forgotten() -> None:
    """At most DEPTH approvals per (agent, symbol): a ninth distinct size pushes out the
    first, which may then be repeated (the memory is bounded, by design)."""
    sizes = [f"0.0{i}" for i in range(1, duplicates.DEPTH + 2)]  # 0.01 .. 0.09
    result = decide_batch(
        [intent(quantity=q) for q in sizes], snapshot("1000000"), base_config(), NOW
    )
    assert all(d.status is Status.APPROVED for d in result.decisions)
    kept = result.snapshot.approvals[BTC]
    assert [q for _, q, _ in kept] == [D(q) for q in sizes[1:]]
    repeat = decide_batch([intent(quantity="0.01")], result.snapshot, base_config(), NOW)
    assert statuses(repeat) == [("approved", [])]


def test_recent_approvals_when_clock_steps_back_then_future_entries_kept() -> None:
    """An approval dated after ``now`` (Redis's clock moved back) is within the window."""
    memory = {BTC: ((Side.BUY, D("0.1"), NOW + timedelta(seconds=30)),)}
    assert duplicates.recent_approvals(memory, NOW, 10) == memory
    assert duplicates.recent_approvals(memory, NOW, 0) == {}


def test_recent_approvals_when_a_batch_left_the_memory_then_it_expires_the_same() -> None:
    """A memory a batch returned (which knows its oldest entry) forgets what a plain one
    with the same entries forgets, whether or not anything expired."""
    first = decide_batch([intent(quantity="0.01")], snapshot(), base_config(), NOW)
    later = NOW + timedelta(seconds=4)
    second = decide_batch(
        [intent(quantity="0.02", created_at=later)], first.snapshot, base_config(), later
    )
    memory = second.snapshot.approvals
    assert isinstance(memory, duplicates.Recent)
    for at in (later, NOW + timedelta(seconds=11), NOW + timedelta(seconds=15)):
        fast = duplicates.recent_approvals(memory, at, 10)
        assert fast == duplicates.recent_approvals(dict(memory), at, 10)
    assert [q for _, q, _ in duplicates.recent_approvals(memory, later, 10)[BTC]] == [
        D("0.01"),
        D("0.02"),
    ]
    assert [
        q for _, q, _ in duplicates.recent_approvals(memory, NOW + timedelta(seconds=11), 10)[BTC]
    ] == [D("0.02")]


def test_remember_approval_when_clock_steps_back_then_oldest_follows() -> None:
    """An approval dated before the memory's oldest lowers it: it expires on time."""
    memory = duplicates.recent_approvals({}, NOW, 10)
    duplicates.remember_approval(memory, Ask(intent(quantity="0.01")), NOW - timedelta(seconds=8))
    assert memory.oldest == NOW - timedelta(seconds=8)
    assert duplicates.recent_approvals(memory, NOW + timedelta(seconds=3), 10) == {}


# --- the state hash -------------------------------------------------------------------------


def _memory_snapshot() -> Snapshot:
    odd = ('a|b"c:1', "BTC/USDT")  # an agent id with every separator a name could use
    return replace(
        snapshot(),
        approvals={
            BTC: (
                (Side.BUY, D("0.10"), NOW - timedelta(seconds=3)),
                (Side.SELL, D("2E+1"), NOW),
            ),
            odd: ((Side.BUY, D("1"), NOW),),
        },
    )


def test_codec_when_memory_written_and_read_then_same_memory() -> None:
    """Encoded as one field per (agent, symbol) and decoded back equal, oldest first."""
    snap = _memory_snapshot()
    hset, hdel = changes(snap, account=True, approvals=snap.approvals.keys())
    assert hdel == []
    assert hset[k.P_APPROVAL + '["agent-1","BTC/USDT"]'] == (
        '[["buy","0.10","2026-11-24T11:59:57+00:00"],["sell","2E+1","2026-11-24T12:00:00+00:00"]]'
    )
    back = decode_state(hset)
    assert back.approvals == snap.approvals
    assert list(back.approvals[BTC]) == list(snap.approvals[BTC])


def test_codec_when_memory_forgotten_then_field_deleted() -> None:
    """A touched (agent, symbol) absent from the new snapshot is an HDEL."""
    before = _memory_snapshot()
    after = replace(before, approvals={BTC: before.approvals[BTC]})
    touched = approvals_touched(before, after)
    assert touched == {('a|b"c:1', "BTC/USDT")}
    hset, hdel = changes(after, account=False, approvals=touched)
    assert (hset, hdel) == ({}, [approval_field(('a|b"c:1', "BTC/USDT"))])
    assert approvals_touched(after, after) == set()


def test_codec_when_memory_field_unreadable_then_state_error() -> None:
    """A damaged memory field fails the load (fail closed), naming the field."""
    for name, value in (
        (approval_field(BTC), "[]"),
        (approval_field(BTC), '[["buy","x","2026-11-24T12:00:00+00:00"]]'),
        (k.P_APPROVAL + '"agent-1"', '[["buy","1","2026-11-24T12:00:00+00:00"]]'),
    ):
        with pytest.raises(StateError, match="unreadable"):
            decode_state({name: value})


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(-3, 12),  # seconds since the last batch (negative: the clock stepped back)
            st.lists(
                st.tuples(st.integers(0, 3), st.sampled_from(["0.1", "0.2", "0.3"])), max_size=6
            ),
        ),
        min_size=1,
        max_size=8,
    ),
    window=st.sampled_from([0, 3, 10]),
)
def test_approvals_touched_when_batches_follow_then_the_known_keys_are_every_difference(
    steps: list[tuple[int, list[tuple[int, str]]]], window: int
) -> None:
    """What a batch knows it touched is exactly what comparing every key finds: expired,
    pruned past DEPTH, remembered, or all forgotten at a window of 0."""
    cfg = base_config()
    cfg = cfg.model_copy(
        update={
            "risk_management": cfg.risk_management.model_copy(
                update={"duplicate_order_window_seconds": window}
            )
        }
    )
    snap: Snapshot = snapshot(cash="10000000")
    seeded = {
        (f"agent-{a}", "BTC/USDT"): ((Side.BUY, D("0.5"), NOW - timedelta(seconds=a)),)
        for a in range(3)
    }
    snap = replace(snap, approvals=seeded)  # a memory loaded from Redis: a plain dict
    now, n, known = NOW, 0, 0
    for gap, asks in steps:
        now += timedelta(seconds=gap)
        its = []
        for agent, qty in asks:
            n += 1
            its.append(
                intent(quantity=qty, agent_id=f"agent-{agent}", intent_id=f"i-{n}", created_at=now)
            )
        result = decide_batch(its, snap, cfg, now)
        touched = approvals_touched(snap, result.snapshot)
        assert touched == differing(snap.approvals, result.snapshot.approvals)
        known += isinstance(result.snapshot.approvals, duplicates.Recent)
        snap = result.snapshot
    assert known == len(steps)


def test_recent_approvals_when_batches_follow_then_no_chain_of_memories_is_kept() -> None:
    """Each memory links to the one it was made from only until the next batch."""
    first = duplicates.recent_approvals({}, NOW, 10)
    second = duplicates.recent_approvals(first, NOW, 10)
    assert second.source is first and first.source is None
    third = duplicates.recent_approvals(second, NOW + timedelta(seconds=20), 10)
    assert third.source is second and second.source is None
    before, after = snapshot(), snapshot()
    after = replace(after, approvals=second)
    assert approvals_touched(replace(before, approvals=first), after) == set()  # compared
