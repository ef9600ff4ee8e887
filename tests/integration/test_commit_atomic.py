"""A commit is whole or absent (issue 10, part 2), on the real Redis.

Redis keeps the writes a script made before a runtime error. So the commit script
checks everything that could make a command fail before its first write; each test
here plants one such failure under a real batch (the plan the worker built) and shows
that nothing of the batch exists (no decision, marker, order, dead letter, notice,
state change or ack: every key of the portfolio is byte for byte as it was), then that
the same batch commits whole once the fault is gone.

And a marker is proof of a decision only when the state carries its commit's version:
a marker whose commit never wrote its state no longer makes the retry ack the intent
with no reservation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from redis import Redis

from consumers.bus.keys import DATA, GROUP_GATE
from consumers.gate_worker.commit import CommitError, CommitPlan, Outcome
from schemas.messages import Status
from tests.harness import Harness

MAX_ID = "18446744073709551615-18446744073709551615"


class _Held(Exception):
    """The worker's commit, stopped before it reached Redis."""


def capture(h: Harness, when: Callable[[CommitPlan], bool] = lambda plan: True) -> CommitPlan:
    """The plan the worker commits for what is waiting, held back (earlier plans that
    ``when`` does not want go through, as the worker's duplicate round trip needs)."""
    committer = h.worker.committer
    real = committer.commit
    held: list[CommitPlan] = []

    def hold(plan: CommitPlan) -> Outcome:
        if not when(plan):
            return real(plan)
        held.append(plan)
        raise _Held

    committer.commit = hold  # type: ignore[method-assign]
    try:
        with pytest.raises(_Held):
            h.worker.step()
    finally:
        del committer.commit
    return held[0]


def everything(h: Harness) -> dict[bytes, tuple[bytes, bytes | None]]:
    """Every key of the portfolio: its type and its serialized value (DUMP: a stream's
    entries, groups and pending entries included)."""
    found = h.redis.scan_iter(match=f"{h.keys.base}*", count=1000)
    return {key: (h.redis.type(key), h.redis.dump(key)) for key in found}  # type: ignore[misc]


def pending(h: Harness, stream: str) -> int:
    return int(h.redis.xpending(stream, GROUP_GATE)["pending"])


def rich_batch(h: Harness) -> dict[str, str]:
    """One read that uses every part of the script: an approved intent (decision, order,
    reservation, marker), an invalid one (a decision and a dead letter), a deposit (an
    applied marker) and a reused intent id (a dead letter and a reuse notice)."""
    reused = h.intent(quantity="0.001", intent_id="reused-1")
    h.pump()
    ids = {
        "approved": h.intent(quantity="0.1", intent_id="approved-1"),
        "reused": h.intent("ETH/USDT", "sell", "5", price="3900", intent_id=reused),
        "deposit": h.client.deposit("500", event_id="dep-1"),
    }
    h.raw_intent({"intent_id": "invalid-1", "agent_id": "a"})
    ids["invalid"] = "invalid-1"
    return ids


def plan_of(h: Harness) -> tuple[CommitPlan, dict[str, str]]:
    ids = rich_batch(h)
    plan = capture(h, when=lambda plan: bool(plan.notices))
    assert {d.intent_id for d in plan.decided} == {"approved-1", "invalid-1"}
    assert [a.event_id for a in plan.applied] == ["dep-1"]
    assert len(plan.dead) == 2 and len(plan.notices) == 1 and plan.hset
    return plan, ids


def assert_whole(h: Harness, plan: CommitPlan, outcome: Outcome, before: int) -> None:
    """Every output of ``plan`` exists, from the state that carries it, and all is acked."""
    assert outcome.kind == "ok" and outcome.version == plan.expected_version + 1
    state = h.state().snapshot
    assert state.version == outcome.version
    assert "approved-1" in state.reservations
    for name, value in plan.hset.items():
        assert h.redis.hget(h.keys.state, name) == value.encode()
    assert not any(h.redis.hexists(h.keys.state, name) for name in plan.hdel)
    rows = h.redis.xrange(h.keys.decisions)[before:]
    assert len(rows) == len(plan.decided) + len(plan.notices)
    sids = {fields[DATA].decode(): sid.decode() for sid, fields in rows}
    for d in plan.decided:
        want = f"{sids[d.decision]} {d.digest or '-'} {outcome.version}"
        assert h.redis.get(h.keys.decided(d.intent_id)) == want.encode()
        assert h.redis.ttl(h.keys.decided(d.intent_id)) > 0
    assert h.redis.get(h.keys.applied("dep-1")) == str(outcome.version).encode()
    assert [o["intent_id"] for o in h.orders()] == ["reused-1", "approved-1"]
    assert len(h.dead()) == len(plan.dead)
    assert pending(h, h.keys.intents) == 0 and pending(h, h.keys.events) == 0


# -- faults: each returns how to remove it ------------------------------------------------------

Fault = Callable[[Harness, CommitPlan, list[str], list[Any]], Callable[[], None]]


def in_place(role: str, make: Callable[[Redis, str, bytes | None], object]) -> Fault:
    """Replace the real key in ``role`` (a Keys attribute) by what ``make`` writes."""

    def plant(h: Harness, plan: CommitPlan, keys: list[str], args: list[Any]) -> Callable[[], None]:
        key = getattr(h.keys, role)
        return swap(h.redis, key, make)

    return plant


def marker(kind: str, make: Callable[[Redis, str, bytes | None], object]) -> Fault:
    """Plant a bad marker for the batch's approved intent or its deposit."""

    def plant(h: Harness, plan: CommitPlan, keys: list[str], args: list[Any]) -> Callable[[], None]:
        key = h.keys.decided("approved-1") if kind == "decided" else h.keys.applied("dep-1")
        return swap(h.redis, key, make)

    return plant


def swap(redis: Redis, key: str, make: Callable[[Redis, str, bytes | None], object]) -> Any:
    saved: bytes | None = redis.dump(key)  # type: ignore[assignment]
    redis.delete(key)
    make(redis, key, saved)

    def undo() -> None:
        redis.delete(key)
        if saved is not None:
            redis.restore(key, 0, saved)

    return undo


def restored_then(
    write: Callable[[Redis, str], object],
) -> Callable[[Redis, str, bytes | None], object]:
    def make(redis: Redis, key: str, saved: bytes | None) -> None:
        if saved is not None:
            redis.restore(key, 0, saved)
        write(redis, key)

    return make


def string(redis: Redis, key: str, saved: bytes | None) -> None:
    redis.set(key, "planted")


def hash_(redis: Redis, key: str, saved: bytes | None) -> None:
    redis.hset(key, "planted", "1")


def list_(redis: Redis, key: str, saved: bytes | None) -> None:
    redis.rpush(key, "planted")


def set_(redis: Redis, key: str, saved: bytes | None) -> None:
    redis.sadd(key, "planted")


def value(text: str) -> Callable[[Redis, str, bytes | None], object]:
    return lambda redis, key, saved: redis.set(key, text)


def argv(index: Callable[[CommitPlan], int], new: Any) -> Fault:
    """ARGV[index + 1] (0-based ``index`` into the encoded args) replaced by ``new``."""

    def plant(h: Harness, plan: CommitPlan, keys: list[str], args: list[Any]) -> Callable[[], None]:
        args[index(plan)] = new
        return lambda: None

    return plant


def edit(change: Callable[[list[str], list[Any]], None]) -> Fault:
    def plant(h: Harness, plan: CommitPlan, keys: list[str], args: list[Any]) -> Callable[[], None]:
        change(keys, args)
        return lambda: None

    return plant


HEADER = 13  # ARGV entries before the decided intents (counts, version, group, ...)


def decided_at(i: int, field: int) -> Callable[[CommitPlan], int]:
    return lambda plan: HEADER + 5 * i + field


def applied_at(plan: CommitPlan) -> int:
    return HEADER + 5 * len(plan.decided)


def dead_at(field: int) -> Callable[[CommitPlan], int]:
    return lambda plan: HEADER + 5 * len(plan.decided) + len(plan.applied) + field


def first_set(plan: CommitPlan) -> int:
    return dead_at(0)(plan) + 3 * len(plan.dead) + len(plan.notices)


def _header(i: int, new: Any) -> Fault:
    return argv(lambda plan: i, new)


def _more_args(keys: list[str], args: list[Any]) -> None:
    args.append("extra")


def _fewer_keys(keys: list[str], args: list[Any]) -> None:
    keys.pop()


def _ack_count_up(keys: list[str], args: list[Any]) -> None:
    args[8] = int(args[8]) + 1  # an intent ack counted that is not there


def _bad_ack(keys: list[str], args: list[Any]) -> None:
    args[8] = int(args[8]) + 1
    args.append("1-2-3")  # the intent acks come last but for the event acks: none here


FAULTS: list[tuple[str, Fault, str]] = [
    # every key the script writes, of the wrong type
    ("state is a string", in_place("state", string), "is a string, not a hash"),
    ("intents stream is a hash", in_place("intents", hash_), "is a hash, not a stream"),
    ("events stream is a list", in_place("events", list_), "is a list, not a stream"),
    ("decisions stream is a string", in_place("decisions", string), "is a string, not a stream"),
    ("orders stream is a hash", in_place("orders", hash_), "is a hash, not a stream"),
    ("dead-letter stream is a set", in_place("deadletter", set_), "is a set, not a stream"),
    ("change log is a string", in_place("changes", string), "is a string, not a stream"),
    ("decided marker is a hash", marker("decided", hash_), "is a hash, not a string"),
    ("applied marker is a list", marker("applied", list_), "is a list, not a string"),
    # keys of the right type that a write would still fail on
    (
        "decisions stream has used up its ids",
        in_place("decisions", restored_then(lambda r, k: r.xadd(k, {"x": "1"}, id=MAX_ID))),
        "has used up its stream ids",
    ),
    (
        "orders stream has used up its ids",
        in_place("orders", restored_then(lambda r, k: r.xadd(k, {"x": "1"}, id=MAX_ID))),
        "has used up its stream ids",
    ),
    (
        "change log has used up its ids",
        in_place("changes", restored_then(lambda r, k: r.xadd(k, {"x": "1"}, id=MAX_ID))),
        "has used up its stream ids",
    ),
    (
        "dead-letter stream has used up its ids",
        in_place("deadletter", restored_then(lambda r, k: r.xadd(k, {"x": "1"}, id=MAX_ID))),
        "has used up its stream ids",
    ),
    (
        "state version is not an integer",
        in_place("state", restored_then(lambda r, k: r.hset(k, "version", "v7"))),
        "has version 'v7', not a non-negative integer",
    ),
    ("decided marker unreadable", marker("decided", value("a b c d")), "holds 'a b c d'"),
    ("applied marker unreadable", marker("applied", value("yes")), "holds 'yes'"),
    # every argument
    ("expected version not a number", _header(0, "x"), "expected version 'x' is not"),
    ("expected version negative", _header(0, "-1"), "expected version '-1' is not"),
    ("group empty", _header(1, ""), "the consumer group is empty"),
    ("decided count not a number", _header(2, "two"), "ARGV[3] (decided intents) is 'two'"),
    ("applied count negative", _header(3, "-1"), "ARGV[4] (applied events) is '-1'"),
    ("dead count fractional", _header(4, "1.5"), "ARGV[5] (dead letters) is '1.5'"),
    ("set count not a number", _header(5, ""), "ARGV[6] (fields to set) is ''"),
    ("delete count not a number", _header(6, "x"), "ARGV[7] (fields to delete) is 'x'"),
    ("intent ack count not a number", _header(8, "x"), "ARGV[9] (intents to ack) is 'x'"),
    ("event ack count not a number", _header(9, "x"), "ARGV[10] (events to ack) is 'x'"),
    ("notice count not a number", _header(10, "x"), "ARGV[11] (notices) is 'x'"),
    ("change log length 0", _header(12, 0), "ARGV[13] (change log length) is '0'"),
    ("counts and ARGV disagree", edit(_more_args), "entries, its counts say"),
    ("a count too high", edit(_ack_count_up), "entries, its counts say"),
    ("counts and KEYS disagree", edit(_fewer_keys), "keys, the counts say"),
    ("marker TTL 0 (RISKGATE_DEDUPE_TTL_S=0)", _header(7, 0), "the marker TTL '0' is not"),
    ("marker TTL negative", _header(7, -60), "the marker TTL '-60' is not"),
    ("marker TTL too long for SET EX", _header(7, 10**13), "the marker TTL '10000000000000'"),
    ("marker TTL not a number", _header(7, "week"), "the marker TTL 'week' is not"),
    ("own marker TTL negative", argv(decided_at(0, 4), -1), "its marker TTL '-1' is neither"),
    ("decided msg id bad", argv(decided_at(1, 0), "soon"), "message id 'soon' is not a stream"),
    ("decision empty", argv(decided_at(0, 1), ""), "decided intent 1: the decision is empty"),
    ("digest with a space", argv(decided_at(0, 3), "ab cd"), "the digest 'ab cd' has a space"),
    ("applied msg id bad", argv(applied_at, "1-x"), "applied event 1: message id '1-x'"),
    ("dead-letter source bad", argv(dead_at(0), "x"), "dead letter 1: source 'x' is neither"),
    ("dead-letter msg id bad", argv(dead_at(1), ""), "dead letter 1: message id '' is not"),
    ("state field named version", argv(first_set, "version"), "a field to set is the version"),
    ("ack id bad", edit(_bad_ack), "ack id '1-2-3' is not a stream id"),
]


@pytest.mark.parametrize(("fault", "message"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_commit_when_a_step_would_fail_then_batch_absent_and_later_whole(
    h: Harness, fault: Fault, message: str
) -> None:
    """A planted failure: the script refuses before its first write (every key of the
    portfolio as it was); without the failure the same batch commits whole."""
    plan, _ = plan_of(h)
    committer = h.worker.committer
    keys, args = committer.encode(plan)
    decided_before = h.redis.xlen(h.keys.decisions)
    undo = fault(h, plan, keys, args)
    before = everything(h)
    reply = committer.script(keys=keys, args=args)
    assert reply[0] == b"invalid", reply
    assert message in reply[1].decode(), reply[1]
    assert everything(h) == before
    undo()
    assert_whole(h, plan, committer.commit(plan), decided_before)


def test_commit_when_key_wrong_type_then_commit_error_names_it_and_nothing_written(
    h: Harness,
) -> None:
    """Through Committer.commit: a descriptive CommitError, the batch absent."""
    plan, _ = plan_of(h)
    undo = swap(h.redis, h.keys.orders, hash_)
    before = everything(h)
    with pytest.raises(CommitError) as err:
        h.worker.committer.commit(plan)
    assert str(err.value) == (
        f"commit refused, nothing written: the orders stream {h.keys.orders} is a hash, "
        "not a stream"
    )
    assert everything(h) == before
    undo()


def test_commit_when_a_stream_it_does_not_write_is_broken_then_committed(h: Harness) -> None:
    """Only what a batch writes must be usable: no dead letters, no check of that stream."""
    iid = h.intent(quantity="0.1")
    plan = capture(h)
    assert not plan.dead
    undo = swap(h.redis, h.keys.deadletter, string)
    assert h.worker.committer.commit(plan).kind == "ok"
    assert iid in h.state().snapshot.reservations and len(h.orders()) == 1
    assert h.redis.get(h.keys.deadletter) == b"planted"
    undo()


def test_worker_when_commit_refused_then_nothing_acked_and_retry_whole(h: Harness) -> None:
    """The worker meets the refusal, approves nothing, keeps its entries pending; once the
    key is fixed its retry commits the batch whole."""
    rich_batch(h)
    undo = swap(h.redis, h.keys.orders, string)
    decided_before = h.redis.xlen(h.keys.decisions)
    with pytest.raises(CommitError, match=r"the orders stream .* is a string"):
        h.worker.step()
    assert h.redis.xlen(h.keys.decisions) == decided_before
    assert h.redis.exists(h.keys.decided("approved-1"), h.keys.applied("dep-1")) == 0
    assert "approved-1" not in h.state().snapshot.reservations
    assert pending(h, h.keys.intents) == 3 and pending(h, h.keys.events) == 1
    undo()
    assert h.worker.drain_pending()
    assert {d.intent_id: d.status for d in h.decisions()[decided_before:]} == {
        "approved-1": Status.APPROVED,
        "invalid-1": Status.REJECTED,
        "reused-1": Status.REJECTED,  # the reuse notice
    }
    assert "approved-1" in h.state().snapshot.reservations
    assert [o["intent_id"] for o in h.orders()] == ["reused-1", "approved-1"]
    assert pending(h, h.keys.intents) == 0 and pending(h, h.keys.events) == 0


# -- the scenario: a marker without its state ---------------------------------------------


def test_retry_when_marker_without_its_state_then_decided_again_and_reservation_counted(
    h: Harness,
) -> None:
    """What a half-written commit left (decision, marker and order; no reservation, the
    version not bumped): the retry used to see the marker and ack, the approved risk never
    counted. Now the marker is not proof (it names a version the state never reached):
    the intent is decided again, its reservation counted, the marker overwritten."""
    iid = h.intent(quantity="0.1", intent_id="half-1")
    plan = capture(h)
    (d,) = plan.decided
    produced = plan.expected_version + 1
    sid = h.redis.xadd(h.keys.decisions, {DATA: d.decision}).decode()  # type: ignore[union-attr]
    h.redis.set(h.keys.decided(iid), f"{sid} {d.digest} {produced}", ex=3600)
    h.redis.xadd(h.keys.orders, {DATA: d.order})
    assert h.state().snapshot.reservations == {}

    assert h.worker.drain_pending()  # the retry: the entry is still pending

    state = h.state().snapshot
    assert list(state.reservations) == [iid]
    assert state.reservations[iid].quantity == Decimal("0.1")
    assert state.version == produced
    orders = h.orders()
    assert [o["intent_id"] for o in orders] == [iid, iid]  # the half-write's, the retry's
    rows = h.redis.xrange(h.keys.decisions)
    assert len(rows) == 2
    mark = h.redis.get(h.keys.decided(iid)).decode()  # type: ignore[union-attr]
    assert mark == f"{rows[1][0].decode()} {d.digest} {produced}"
    assert len(list(h.redis.scan_iter(match=h.keys.decided("*")))) == 1
    assert h.decision(iid).status is Status.APPROVED
    assert h.worker.stats["unproven_markers"] == 1 and h.worker.stats["duplicates"] == 0
    assert pending(h, h.keys.intents) == 0


def test_retry_when_applied_marker_without_its_state_then_event_applied(h: Harness) -> None:
    """An applied marker set before the state that carries its event (the old order) is
    not proof: the deposit is applied on the retry instead of being lost."""
    cash = h.state().snapshot.account.cash
    h.client.deposit("500", event_id="dep-half")
    plan = capture(h)
    h.redis.set(h.keys.applied("dep-half"), str(plan.expected_version + 1), ex=3600)

    assert h.worker.drain_pending()

    assert h.state().snapshot.account.cash == cash + 500
    assert h.redis.get(h.keys.applied("dep-half")) == str(plan.expected_version + 1).encode()
    assert h.worker.stats["unproven_markers"] == 1
    assert pending(h, h.keys.events) == 0


# -- proven markers are duplicates, in every format --------------------------------------------


def test_resend_when_marker_carried_by_state_then_duplicate_no_second_decision(h: Harness) -> None:
    """A whole commit's marker is proof: the same intent re-sent is acked, nothing more."""
    at = datetime.now(UTC)
    iid = h.intent(quantity="0.1", intent_id="proven-1", created_at=at)
    h.pump()
    version = h.state().snapshot.version
    mark = h.redis.get(h.keys.decided(iid)).decode()  # type: ignore[union-attr]
    assert mark.endswith(f" {version}") and len(mark.split(" ")) == 3
    h.intent(quantity="0.1", intent_id="proven-1", created_at=at)
    h.pump()
    assert len(h.decisions()) == 1 and len(h.orders()) == 1
    assert list(h.state().snapshot.reservations) == [iid]
    assert h.worker.stats["duplicates"] == 1 and h.worker.stats["unproven_markers"] == 0
    assert h.decision(iid).status is Status.APPROVED  # the SDK reads the new format


@pytest.mark.parametrize("form", ["{sid}", "{sid} {digest}", "{sid} - {version}"])
def test_marker_when_older_format_or_no_digest_then_still_a_duplicate(
    h: Harness, form: str
) -> None:
    """Markers written before versions (and before digests) keep meaning "decided"."""
    iid = h.intent(quantity="0.1", intent_id="legacy-1")
    plan = capture(h)
    (d,) = plan.decided
    sid = h.redis.xadd(h.keys.decisions, {DATA: d.decision}).decode()  # type: ignore[union-attr]
    text = form.format(sid=sid, digest=d.digest, version=plan.expected_version)
    h.redis.set(h.keys.decided(iid), text, ex=3600)
    assert h.worker.drain_pending()
    assert len(h.decisions()) == 1 and h.orders() == []
    assert h.redis.get(h.keys.decided(iid)) == text.encode()  # not overwritten
    assert h.worker.stats["duplicates"] == 1
    assert h.decision(iid).intent_id == iid
    assert pending(h, h.keys.intents) == 0


def test_applied_marker_when_older_format_then_still_a_duplicate(h: Harness) -> None:
    """An applied marker of the old form (``1``) keeps meaning "applied"."""
    cash = h.state().snapshot.account.cash
    h.client.deposit("500", event_id="dep-old")
    capture(h)
    h.redis.set(h.keys.applied("dep-old"), "1", ex=3600)
    assert h.worker.drain_pending()
    assert h.state().snapshot.account.cash == cash
    assert h.worker.stats["duplicates"] == 1
    assert pending(h, h.keys.events) == 0
