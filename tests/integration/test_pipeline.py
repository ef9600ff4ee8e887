"""Pipelined commits on a real Redis: batch N+1 is decided while N's commit runs, and
committed only on the state N wrote. Same decisions as one batch at a time; a commit
that loses its race or dies mid-flight costs a re-plan, never a double or a lost one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest
from redis import Redis
from redis.exceptions import ConnectionError

from consumers.bus.keys import GROUP_GATE
from consumers.bus.streams import to_entries
from consumers.gate_worker.commit import InFlight
from consumers.gate_worker.worker import GateSettings, GateWorker
from schemas.messages import Decision, Status
from tests.builders import market_prices
from tests.harness import Harness, unique_portfolio, wipe

PRICES = market_prices()
# a book that fills up: approvals, then resizes, then rejections at the caps
ORDERS = [("BTC/USDT", "0.05"), ("ETH/USDT", "1.5"), ("BTC/USDT", "0.2"), ("ETH/USDT", "0.4")]


@pytest.fixture
def pair(redis: Redis) -> Iterator[tuple[Harness, Harness]]:
    names = [unique_portfolio("pipe"), unique_portfolio("seq")]
    pipelined = Harness(redis, names[0], batch=5, pipeline=4, log_decisions=False)
    one_by_one = Harness(redis, names[1], batch=5, pipeline=1, log_decisions=False)
    for h in (pipelined, one_by_one):
        h.fund("60000")
    yield pipelined, one_by_one
    for name in names:
        wipe(redis, name)


def submit_book(h: Harness, n: int) -> list[str]:
    ids = []
    for i in range(n):
        symbol, qty = ORDERS[i % len(ORDERS)]
        price = str(PRICES[symbol])
        ids.append(h.intent(symbol=symbol, quantity=qty, agent_id=f"a{i % 7}", price=price))
    return ids


def outcome(d: Decision) -> tuple[str, str, str, tuple[str, ...]]:
    return (d.symbol, d.status.value, str(d.approved_quantity), tuple(r.code for r in d.reasons))


def exactly_once(h: Harness, ids: list[str]) -> list[Decision]:
    decisions = h.decisions()
    counts = Counter(d.intent_id for d in decisions)
    assert set(counts) == set(ids) and max(counts.values()) == 1
    assert h.pending() == 0
    approved = {d.intent_id for d in decisions if d.status is not Status.REJECTED}
    assert {o["intent_id"] for o in h.orders()} == approved
    assert set(h.state().snapshot.reservations) == approved  # what was approved is held
    return decisions


def test_pipelined_when_backlog_then_several_batches_a_step_and_same_decisions(
    pair: tuple[Harness, Harness],
) -> None:
    pipelined, one_by_one = pair
    books = [submit_book(h, 60) for h in pair]
    first = pipelined.worker.step()
    assert first == 20  # 4 batches of 5 in one step, each decided while the last committed
    pipelined.pump()
    one_by_one.pump()
    got = [exactly_once(h, ids) for h, ids in zip(pair, books, strict=True)]
    assert [outcome(d) for d in got[0]] == [outcome(d) for d in got[1]]
    statuses = Counter(d.status for d in got[0])
    assert statuses[Status.APPROVED] and statuses[Status.REJECTED]  # the caps were reached
    assert pipelined.worker.stats["batches"] == one_by_one.worker.stats["batches"]
    assert pipelined.worker.stats["pipeline_replans"] == 0


def test_pipelined_when_state_moves_under_a_commit_then_replanned_not_doubled(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another gate commits a deposit while batch N is in flight: N conflicts and is
    decided again on the fresh state; N+1, decided on top of N's plan, is dropped
    unsent and decided after it. The worker ends on exactly the state in Redis."""
    worker = h.worker
    worker.settings = replace(worker.settings, batch=5)
    other = GateWorker(h.redis, h.keys, h.config, GateSettings(consumer="w2", block_ms=5))
    ids = submit_book(h, 30)
    real_send = worker.committer.send
    sent: list[int] = []

    def racing_send(plan, then=()):  # type: ignore[no-untyped-def]
        if not sent:  # the first pipelined commit: another gate commits a deposit first
            h.client.deposit("5000", reference="race")
            reply = h.redis.xreadgroup(GROUP_GATE, "w2", {h.keys.events: ">"})
            other.process(to_entries(reply))
        sent.append(plan.expected_version)
        return real_send(plan, then=then)

    monkeypatch.setattr(worker.committer, "send", racing_send)
    h.pump()
    exactly_once(h, ids)
    assert worker.stats["pipeline_replans"] == 1
    assert worker.stats["conflicts"] == 1
    assert len(sent) >= 2  # the pipeline went on after the re-plan
    assert worker.loaded is not None
    mine, redis_has = worker.loaded.snapshot, h.state().snapshot
    assert mine.version == redis_has.version
    assert mine.account == redis_has.account and mine.account.cash == 105000
    assert mine.reservations == redis_has.reservations


def test_pipelined_when_connection_dies_after_the_commit_ran_then_exactly_once(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply of an in-flight commit is lost after Redis ran it: the worker backs
    off, drains what it holds (the batch read ahead included); nothing is decided
    twice and nothing is left pending."""
    worker = h.worker
    worker.settings = replace(worker.settings, batch=5)
    ids = submit_book(h, 30)
    real_outcome = InFlight.outcome
    failed: list[int] = []

    def lossy(self: InFlight):  # type: ignore[no-untyped-def]
        result = real_outcome(self)  # the commit ran and was answered...
        if len(failed) < 2:
            failed.append(self.plan.expected_version)
            raise ConnectionError("connection reset by peer")  # ...and the answer lost
        return result

    monkeypatch.setattr(InFlight, "outcome", lossy)
    for _ in range(200):
        turn = worker.turn(block_ms=5)
        if turn.retry_in is None and turn.handled == 0 and not worker._drain:
            break
    exactly_once(h, ids)
    assert len(failed) == 2


def test_pipelined_when_backlog_then_later_rounds_read_behind_the_commit(
    pair: tuple[Harness, Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the first two batches of a step, each batch's entries are read by a read
    sent behind the commit before them (Redis reads them while the worker decides): two
    reads of its own in a step of four batches, not four; the same decisions."""
    pipelined, one_by_one = pair
    books = [submit_book(h, 60) for h in pair]
    reader = pipelined.worker.reader
    real_read = reader.read
    reads: list[int] = []

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        got = real_read(*args, **kwargs)
        reads.append(len(got))
        return got

    monkeypatch.setattr(reader, "read", counted)
    assert pipelined.worker.step() == 20
    assert reads == [5, 5]  # the step's batch and the next; the other two read behind
    pipelined.pump()
    one_by_one.pump()
    got = [exactly_once(h, ids) for h, ids in zip(pair, books, strict=True)]
    assert [outcome(d) for d in got[0]] == [outcome(d) for d in got[1]]
    assert pipelined.worker.stats["pipeline_replans"] == 0


def test_pipelined_when_the_read_behind_fails_then_read_again_exactly_once(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read sent behind a commit is refused (NOSCRIPT, as after a SCRIPT FLUSH): it
    read nothing, the next round reads the usual way, and the connection it shared with
    the commit stays usable."""
    worker = h.worker
    worker.settings = replace(worker.settings, batch=5)
    ids = submit_book(h, 30)
    real_command = worker._read_command
    refused: list[int] = []

    def unknown_script() -> tuple[object, ...]:
        command = list(real_command())
        if len(refused) < 3:
            refused.append(1)
            command[1] = "0" * 40  # a script the server does not have
        return tuple(command)

    monkeypatch.setattr(worker, "_read_command", unknown_script)
    h.pump()
    assert len(refused) == 3
    exactly_once(h, ids)
    assert worker.stats["errors"] == 0 and worker.stats["pipeline_replans"] == 0
