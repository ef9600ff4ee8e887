"""The fault suite: what production does to the gate, each with exact counts.

Every test runs against its own redis-server (free port, own data dir, AOF with
fsync on every write) so restarting, pausing or trimming never touches the shared one.
Run apart with ``pytest -m faults``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from consumers.bus.keys import DATA, GROUP_GATE
from consumers.bus.lease import holder
from schemas.messages import Status
from tests.harness import Harness
from tests.integration.conftest import Workers
from tests.integration.redis_server import RedisServer

pytestmark = [pytest.mark.faults, pytest.mark.slow]

AOF = ("--appendonly", "yes", "--appendfsync", "always")
# a short lease too: a killed owner's portfolio is taken over within 0.75 s
FAST_RECLAIM = ("--min-idle-ms", "400", "--reclaim-every", "0.1",
                "--lease-ttl-ms", "600", "--lease-renew-ms", "150")  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis", args=AOF) as srv:
        yield srv


@pytest.fixture
def client(server: RedisServer) -> Iterator[Redis]:
    r = Redis.from_url(server.url, socket_timeout=10)
    yield r
    r.close()


@pytest.fixture
def h(client: Redis) -> Harness:
    harness = Harness(client)
    harness.fund("100000000")
    return harness


@pytest.fixture
def pool(server: RedisServer, h: Harness, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(server.url, h.portfolio, tmp_path)
    yield w
    w.close()


def _retrying(action: Callable[[], object], timeout: float = 30) -> object:
    """Run ``action`` until Redis answers (it may be restarting or paused)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except (ConnectionError, TimeoutError, ResponseError) as exc:
            if time.monotonic() > deadline or (
                isinstance(exc, ResponseError) and "LOADING" not in str(exc)
            ):
                raise
            time.sleep(0.05)


def _submit(h: Harness, i: int, tag: str) -> str:
    iid = f"{tag}-{i}"
    _retrying(
        lambda: h.client.submit(
            "BTC/USDT", "buy", "0.0001", price="100000", agent_id=f"a{i % 40}", intent_id=iid
        )
    )
    return iid


def _all_decided(h: Harness, ids: list[str], workers: Workers, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done = sum(
                h.redis.exists(*[h.keys.decided(i) for i in ids[j : j + 500]])
                for j in range(0, len(ids), 500)
            )
            if done == len(ids) and h.pending() == 0:
                return
        except (ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"not all decided: {done}/{len(ids)}\n{workers.logs()}")


def _exactly_once(h: Harness, ids: list[str]) -> None:
    decided = [d.intent_id for d in h.decisions()]
    assert sorted(decided) == sorted(ids), "an intent was lost or decided twice"
    approved = {d.intent_id for d in h.decisions() if d.status is not Status.REJECTED}
    assert set(h.state().snapshot.reservations) == approved, "a reservation leaked"


def test_redis_restart_when_mid_load_with_aof_then_every_intent_decided_once(
    server: RedisServer, h: Harness, pool: Workers
) -> None:
    """SIGKILL the Redis server mid-load and start it again from its AOF: every intent
    sent is decided exactly once, every entry acked."""
    for _ in range(2):
        pool.start(None, *FAST_RECLAIM)
    ids = [_submit(h, i, "r") for i in range(600)]
    server.kill()
    server.start()
    ids += [_submit(h, i, "r") for i in range(600, 1200)]
    _all_decided(h, ids, pool)
    _exactly_once(h, ids)
    assert all(p.poll() is None for p in pool.procs.values()), "a worker died"


def test_worker_killed_around_commit_when_repeated_then_exactly_once(
    h: Harness, pool: Workers
) -> None:
    """Workers that SIGKILL themselves just before or just after commits, again and
    again, replaced each time: each intent decided once, nothing leaked."""
    ids = [_submit(h, i, "k") for i in range(1500)]
    deaths = 0
    deadline = time.monotonic() + 120
    names = [
        pool.start(None, *FAST_RECLAIM, "--batch", "20", fault="kill-around-commit")
        for _ in range(2)
    ]
    while time.monotonic() < deadline and h.redis.xlen(h.keys.decisions) < len(ids):
        for name in list(names):
            if pool.procs[name].poll() is not None:
                pool.procs.pop(name)
                names.remove(name)
                deaths += 1
                names.append(
                    pool.start(None, *FAST_RECLAIM, "--batch", "20", fault="kill-around-commit")
                )
        time.sleep(0.05)
    pool.start(None, *FAST_RECLAIM)  # a healthy one finishes whatever is left
    _all_decided(h, ids, pool)
    assert deaths >= 3
    _exactly_once(h, ids)


def test_redis_paused_and_connections_killed_when_loaded_then_recovers(
    h: Harness, pool: Workers
) -> None:
    """CLIENT PAUSE for 1.5 s, then CLIENT KILL of every worker connection, mid-load."""
    for _ in range(2):
        pool.start(None, *FAST_RECLAIM)
    # both connected before the load (a busy host starts them slowly): an owner, a standby
    deadline = time.monotonic() + 60
    while holder(h.redis, h.keys) is None or pool.count_lines("gate started") < 2:
        assert time.monotonic() < deadline, pool.logs()
        time.sleep(0.05)
    ids: list[str] = []
    admin = Redis(connection_pool=h.redis.connection_pool)

    def load() -> None:
        for i in range(1500):
            ids.append(_submit(h, i, "p"))

    sender = threading.Thread(target=load)
    sender.start()
    time.sleep(0.3)
    admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")
    time.sleep(1.6)
    killed = admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    sender.join(timeout=120)
    assert killed >= 2
    _all_decided(h, ids, pool)
    _exactly_once(h, ids)
    assert all(p.poll() is None for p in pool.procs.values()), "a worker died"


def test_poison_when_it_crashes_every_worker_then_dead_lettered_at_the_cap(
    h: Harness, pool: Workers
) -> None:
    """An intent that kills whoever decides it: redelivered until the cap (3), then one
    dead letter and a rejected decision; the intents behind it are decided normally."""
    poison = _submit(h, 0, "poison")
    args = (*FAST_RECLAIM, "--batch", "1", "--max-deliveries", "3")
    deaths = 0
    name = pool.start(None, *args, fault="poison")
    deadline = time.monotonic() + 90
    while h.client.decision(poison) is None:
        assert time.monotonic() < deadline, pool.logs()
        if pool.procs[name].poll() is not None:
            pool.procs.pop(name)
            deaths += 1
            name = pool.start(None, *args, fault="poison")
        time.sleep(0.05)
    ids = [_submit(h, i, "after") for i in range(200)]
    _all_decided(h, [poison, *ids], pool)
    assert deaths == 3
    (dead,) = h.dead()
    assert (dead["deliveries"], "delivered 4 times" in dead["error"]) == (4, True)
    assert h.decision(poison).status is Status.REJECTED
    assert sorted(d.intent_id for d in h.decisions()) == sorted([poison, *ids])


def test_same_consumer_name_when_two_processes_then_each_intent_once(
    h: Harness, pool: Workers
) -> None:
    """Two processes started with one consumer name share its pending list: still once."""
    ids = [_submit(h, i, "s") for i in range(2000)]
    pool.start("twin", *FAST_RECLAIM)
    pool.start("twin", *FAST_RECLAIM)
    _all_decided(h, ids, pool)
    _exactly_once(h, ids)


def test_stream_trimmed_when_entries_pending_then_each_lost_one_dead_lettered(
    h: Harness, pool: Workers
) -> None:
    """A consumer dies holding 100 entries and the stream is trimmed under them: the
    gate dead-letters exactly those 100 and decides everything else once."""
    lost = [_submit(h, i, "lost") for i in range(100)]
    h.redis.xreadgroup(GROUP_GATE, "ghost", {h.keys.intents: ">"}, count=100)
    assert h.redis.xtrim(h.keys.intents, maxlen=0, approximate=False) == 100
    ids = [_submit(h, i, "kept") for i in range(300)]
    pool.start(None, *FAST_RECLAIM)
    _all_decided(h, ids, pool)
    deadline = time.monotonic() + 30
    while len(h.dead()) < 100 and time.monotonic() < deadline:
        time.sleep(0.1)
    dead = h.dead()
    assert len(dead) == 100
    assert all("trimmed" in d["error"] for d in dead)
    assert sorted(d.intent_id for d in h.decisions()) == sorted(ids)
    assert all(h.client.decision(i) is None for i in lost)
    assert h.redis.xpending(h.keys.intents, GROUP_GATE)["pending"] == 0


def test_rng_is_seeded_per_run() -> None:
    """Sanity: the suite's random choices are reproducible within a process."""
    random.seed(7)
    first = random.random()
    random.seed(7)
    assert random.random() == first
    assert DATA == b"data"
