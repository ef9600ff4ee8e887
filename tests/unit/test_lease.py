"""Ownership by lease and the multi-portfolio rotation, on fakeredis and fake units.

The same behaviours run with real processes against a real Redis in
tests/integration/test_lease.py and test_multi_portfolio.py; these are the fast tier.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import fakeredis
import pytest

from consumers.bus.keys import GROUP_GATE, Keys
from consumers.bus.lease import Lease, LeaseLost, holder
from consumers.bus.rotation import Rotation, Unit
from consumers.gate_worker.seat import Seat
from consumers.gate_worker.worker import GateSettings, GateWorker
from tests.builders import base_config
from tests.harness import Harness


@pytest.fixture
def redis() -> Iterator[fakeredis.FakeRedis]:
    r = fakeredis.FakeRedis()
    yield r
    r.flushall()


# -- the lease ---------------------------------------------------------------------------


def test_lease_when_free_then_first_acquires_and_second_is_refused(
    redis: fakeredis.FakeRedis,
) -> None:
    """SET NX: one holder; the value names it and the time it took the lease."""
    keys = Keys("p")
    a, b = Lease(redis, keys, "a", 3000), Lease(redis, keys, "b", 3000)
    assert a.acquire() and a.held
    assert not b.acquire() and not b.held
    found = holder(redis, keys)
    assert found is not None and found.owner == "a" and found.since is not None
    assert 0 < found.expires_in_ms <= 3000


def test_lease_when_renewed_by_holder_then_extended_and_by_another_then_refused(
    redis: fakeredis.FakeRedis,
) -> None:
    """Compare-and-renew: the holder extends its TTL; a process that lost it cannot."""
    keys = Keys("p")
    a = Lease(redis, keys, "a", 3000)
    assert a.acquire()
    redis.pexpire(keys.lease, 10)
    assert a.renew()
    assert redis.pttl(keys.lease) > 1000
    redis.delete(keys.lease)
    b = Lease(redis, keys, "b", 3000)
    assert b.acquire()
    assert not a.renew() and not a.held  # lost: no longer claimed
    owner = holder(redis, keys)
    assert owner is not None and owner.owner == "b"


def test_lease_when_same_consumer_name_twice_then_only_one_holds_it(
    redis: fakeredis.FakeRedis,
) -> None:
    """Two processes under one consumer name: the value's token keeps them apart."""
    keys = Keys("p")
    first, twin = Lease(redis, keys, "same", 3000), Lease(redis, keys, "same", 3000)
    assert first.acquire()
    assert not twin.acquire()
    twin.value = "not what the holder wrote"  # even a twin that believes it holds it
    assert not twin.renew() and not twin.release()
    assert first.renew()


def test_lease_when_released_then_gone_and_another_acquires_at_once(
    redis: fakeredis.FakeRedis,
) -> None:
    """Compare-and-delete on a graceful shutdown: the next poll takes it."""
    keys = Keys("p")
    a, b = Lease(redis, keys, "a", 60_000), Lease(redis, keys, "b", 60_000)
    assert a.acquire()
    assert not b.release()  # not b's to release
    assert holder(redis, keys) is not None
    assert a.release() and holder(redis, keys) is None
    assert b.acquire()


# -- the rotation ------------------------------------------------------------------------


class FakeUnit:
    """A portfolio with ``backlog`` batches waiting; records the blocks it was given."""

    def __init__(self, name: str, backlog: int, log: list[str]) -> None:
        self.name, self.backlog, self.log = name, backlog, log
        self.blocks: list[int] = []
        self.closed = False
        self.reading = True
        self.wake_at = math.inf

    def turn(self, block_ms: int) -> int:
        self.blocks.append(block_ms)
        if self.backlog <= 0:
            return 0
        self.backlog -= 1
        self.log.append(self.name)
        return 1

    def close(self) -> None:
        self.closed = True


class Fixed(Rotation):
    def __init__(self, units: list[FakeUnit], block_ms: int = 1000) -> None:
        super().__init__(block_ms=block_ms, idle_ms=20)
        self._units = units

    def units(self) -> list[Unit]:
        return list(self._units)


def test_rotation_when_one_portfolio_flooded_then_others_get_a_batch_every_round() -> None:
    """Round robin: the flooded unit gets one batch per round, the others finish in their
    own few rounds, not after the flood."""
    log: list[str] = []
    flood, b, c = FakeUnit("a", 1000, log), FakeUnit("b", 3, log), FakeUnit("c", 2, log)
    rotation = Fixed([flood, b, c])
    for _ in range(3):
        rotation.round()
    assert log == ["a", "b", "c", "a", "b", "c", "a", "b"]
    assert b.backlog == c.backlog == 0 and flood.backlog == 997
    assert flood.blocks == [0, 0, 0]  # several read: no round blocks


def test_rotation_when_shutdown_asked_mid_round_then_no_other_portfolio_starts_a_batch() -> None:
    """SIGTERM during a round of many portfolios: the batch in hand ends, no next one."""
    log: list[str] = []
    units = [FakeUnit(name, 5, log) for name in "abc"]
    answers = iter([False, True, True])
    handled, _ = Fixed(units).round(lambda: next(answers))
    assert (handled, log) == (1, ["a"])


def test_rotation_when_one_reads_then_it_blocks_until_another_timer_is_due() -> None:
    """A single reader gets today's blocking read, cut short by a standby's next poll."""
    log: list[str] = []
    only, standby = FakeUnit("a", 0, log), FakeUnit("b", 0, log)
    standby.reading = False
    standby.wake_at = math.inf
    handled, blocked = Fixed([only, standby], block_ms=1000).round()
    assert (handled, blocked, only.blocks, standby.blocks) == (0, True, [1000], [])
    standby.wake_at = Fixed([]).clock() + 0.2
    Fixed([only, standby], block_ms=1000).round()
    assert 0 < only.blocks[-1] <= 200


# -- seats on one portfolio ----------------------------------------------------------------


def _seat(redis: fakeredis.FakeRedis, keys: Keys, name: str) -> Seat:
    lease = Lease(redis, keys, name, 3000)
    settings = GateSettings(consumer=name, block_ms=5, verify_exposure=True)
    worker = GateWorker(redis, keys, base_config(), settings, lease=lease)
    return Seat(worker, lease, renew_ms=1000)


def test_seats_when_two_serve_one_portfolio_then_only_the_owner_reads(
    redis: fakeredis.FakeRedis,
) -> None:
    """The standby never reads the portfolio's streams: no consumer of its in the group."""
    h = Harness(redis)
    h.fund()
    redis.xgroup_delconsumer(h.keys.intents, GROUP_GATE, "w1")  # the harness's own worker
    owner, standby = _seat(redis, h.keys, "s1"), _seat(redis, h.keys, "s2")
    ids = [h.intent(quantity="0.01", intent_id=f"i{i}") for i in range(5)]
    for _ in range(10):
        owner.turn(0)
        standby.turn(0)
    assert owner.owner and not standby.owner
    assert not standby.reading and standby.wake_at > 0
    consumers = {c["name"].decode() for c in redis.xinfo_consumers(h.keys.intents, GROUP_GATE)}
    assert consumers == {"s1"}
    assert sorted(d.intent_id for d in h.decisions()) == sorted(ids)


def test_commit_when_lease_taken_by_another_then_fenced_and_nothing_written(
    redis: fakeredis.FakeRedis,
) -> None:
    """An owner that stalled past its TTL: its commit is refused (LeaseLost), the intent
    stays pending, and the new owner decides it once."""
    h = Harness(redis)
    h.fund()
    old, new = _seat(redis, h.keys, "old"), _seat(redis, h.keys, "new")
    old.turn(0)  # takes the lease
    while old.worker._takeover or old.worker._drain:
        old.turn(0)
    iid = h.intent(quantity="0.01")
    redis.delete(h.keys.lease)  # its TTL ran out while it stalled ...
    new.turn(0)  # ... and a standby took the portfolio
    assert new.owner
    with pytest.raises(LeaseLost, match="commit fenced"):
        old.worker.step()
    assert h.decisions() == [] and not old.lease.held
    assert h.pending() == 1  # read by the stalled owner after the takeover sweep
    old._lost("fenced", redis.get(h.keys.lease).decode())  # what the seat does then
    (row,) = redis.xpending_range(h.keys.intents, GROUP_GATE, "-", "+", 10)
    assert row["consumer"] == b"new" and row["time_since_delivered"] > 10**9
    new.worker._next_reclaim = 0.0  # its next reclaim sweep (--reclaim-every)
    for _ in range(10):
        new.turn(0)
    assert [d.intent_id for d in h.decisions()] == [iid]
    assert h.pending() == 0


def test_seat_when_lease_lost_then_stands_by_and_counts_it(redis: fakeredis.FakeRedis) -> None:
    """A renewal that finds the lease another's: standing by, counted, nothing read."""
    h = Harness(redis)
    h.fund()
    seat = _seat(redis, h.keys, "s1")
    seat.turn(0)
    assert seat.owner
    redis.set(h.keys.lease, "someone else")
    seat.next_lease = 0.0  # the renewal is due
    assert seat.turn(0) == 0
    assert not seat.owner and seat.worker.stats["lease_lost"] == 1
    seat.close()  # nothing to release: the lease stays the other's
    assert redis.get(h.keys.lease) == b"someone else"


def test_seat_when_lease_key_unusable_then_backs_off_and_the_process_lives(
    redis: fakeredis.FakeRedis,
) -> None:
    """A lease key of the wrong type (made by hand) when the owner renews: an error
    counted and a backoff for that portfolio, no exception out of the turn (a host
    serves its other portfolios on)."""
    keys = Keys("p")
    seat = _seat(redis, keys, "s1")
    seat.turn(0)
    assert seat.owner
    redis.delete(keys.lease)
    redis.hset(keys.lease, "x", "1")
    seat.next_lease = 0.0  # the renewal is due
    assert seat.turn(0) == 0
    assert seat.worker.stats["errors"] == 1
    assert not seat.reading and seat.wake_at >= seat.retry_at > 0
