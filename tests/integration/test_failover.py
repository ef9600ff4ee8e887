"""Failover (issue 10, part 3): a primary and a replica started by the test, a gate on
the primary, an executor reading orders through the SDK; the primary is killed with
SIGKILL, the replica promoted, a gate started on it, the executor carried over (as a
Sentinel-aware client would be). Then, counted from what the executor was handed and
what the promoted primary's state carries:

- **orphaned**: orders handed to the executor whose reservation the promoted state does
  not carry: working at a venue, counted by no limit;
- **lost**: reservations the promoted state carries whose order never reached the
  executor;
- **doubled**: intents whose order the executor was handed more than once.

With ``--replicas 1`` all three are 0, whether the primary dies mid-stream or after
the replica fell behind (its link cut). Without it, every order published after the
replica fell behind is orphaned: the figure docs/OPERATIONS.md states.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from consumers.bus.keys import GROUP_GATE, Keys
from consumers.bus.runtime import Shutdown
from consumers.gate_worker.worker import GateSettings, GateWorker
from consumers.sdk.client import GateClient
from consumers.state.outbox import Outbox
from consumers.state.store import Store
from tests.builders import base_config, market_prices
from tests.integration.pg import PgProxy
from tests.integration.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)


@dataclass
class Executor:
    """Reads orders through the SDK in a thread and records what it was handed."""

    client: GateClient
    handed: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.stop.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for d in self.client.orders(
                "exec", "e1", start="0", block_ms=50, stop=self.stop.is_set
            ):
                if d.order is not None:
                    self.handed.append(d.order.intent_id)
                d.ack()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return  # its Redis died: the test carries it over to the promoted one

    def join(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(30)


class Gate:
    """A gate worker in a thread."""

    def __init__(self, url: str, portfolio: str, replicas: int) -> None:
        self.redis = Redis.from_url(url, socket_timeout=5)
        settings = GateSettings(
            consumer=f"g-{replicas}-{time.monotonic_ns()}",
            block_ms=50,
            replicas=replicas,
            wait_timeout_ms=200,
            reclaim_every_s=0.2,
            min_idle_ms=100,
            log_decisions=False,
        )
        self.worker = GateWorker(self.redis, Keys(portfolio), base_config(), settings)
        self.worker.outbox.retry_s = 0.05
        self.shutdown = Shutdown()
        self.thread = threading.Thread(target=self.worker.run, args=(self.shutdown,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.shutdown.request()
        self.thread.join(30)


@dataclass
class Cluster:
    primary: RedisServer
    replica: RedisServer
    link: PgProxy  # the replication link, which the test can cut

    def promote(self) -> Redis:
        promoted = Redis.from_url(self.replica.url)
        promoted.replicaof("NO", "ONE")
        return promoted


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    primary = RedisServer(tmp_path / "primary").start()
    link = PgProxy(tcp=("127.0.0.1", primary.port))
    replica = RedisServer(
        tmp_path / "replica", args=("--replicaof", "127.0.0.1", str(link.port))
    ).start()
    try:
        yield Cluster(primary, replica, link)
    finally:
        link.close()
        replica.stop()
        primary.stop()


def in_sync(redis: Redis, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        redis.set("sync-probe", str(time.monotonic_ns()))
        if int(redis.wait(1, 200)) >= 1:
            return
    raise AssertionError("the replica never caught up")


def until(check: object, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def settled(redis: Redis, keys: Keys) -> bool:
    """The gate has taken in, decided and published everything on ``redis``."""
    pending = int(redis.xpending(keys.intents, GROUP_GATE)["pending"])
    groups = {g["name"]: g for g in redis.xinfo_groups(keys.intents)}
    lag = groups[GROUP_GATE.encode()]["lag"] if GROUP_GATE.encode() in groups else None
    return pending == 0 and lag == 0 and int(redis.xlen(keys.outbox)) == 0


def funded(cluster: Cluster, portfolio: str, replicas: int) -> tuple[Gate, GateClient]:
    gate = Gate(cluster.primary.url, portfolio, replicas)
    client = GateClient(redis=Redis.from_url(cluster.primary.url), portfolio=portfolio)
    client.deposit("1000000", reference="fund")
    client.mark(market_prices())
    until(lambda: client.redis.hget(Keys(portfolio).state, "account") is not None, what="funds")
    return gate, client


def agent(client: GateClient, n: int, tag: str, pause_s: float = 0.0) -> list[str]:
    """``n`` small, distinct BTC buys (equal ones would be duplicate_order)."""
    ids = []
    for i in range(n):
        quantity = Decimal("0.001") + Decimal(i) / 100000
        ids.append(
            client.submit("BTC/USDT", "buy", quantity, price="100000", intent_id=f"{tag}-{i}")
        )
        if pause_s:
            time.sleep(pause_s)
    return ids


@dataclass(frozen=True)
class Counts:
    orphaned: int
    lost: int
    doubled: int
    handed: int


def fail_over(cluster: Cluster, gate: Gate, executor: Executor, portfolio: str) -> Counts:
    """SIGKILL the primary, promote the replica, gate and executor on it; count."""
    cluster.primary.kill()
    gate.stop()
    executor.join()
    promoted = cluster.promote()
    keys = Keys(portfolio)
    after = Gate(cluster.replica.url, portfolio, replicas=0)
    executor.client.redis = promoted  # a Sentinel-aware client follows the promotion
    executor.start()
    until(lambda: settled(promoted, keys), what="the promoted gate to settle")
    time.sleep(0.3)  # the executor reads what was published last
    after.stop()
    executor.join()
    reserved = set(Store(promoted, keys, base_config()).load().snapshot.reservations)
    handed = set(executor.handed)
    return Counts(
        orphaned=len(handed - reserved),
        lost=len(reserved - handed),
        doubled=len(executor.handed) - len(handed),
        handed=len(executor.handed),
    )


def test_failover_when_replicas_1_and_primary_killed_mid_stream_then_nothing_lost(
    cluster: Cluster,
) -> None:
    portfolio = "failover-kill"
    gate, client = funded(cluster, portfolio, replicas=1)
    in_sync(client.redis)
    executor = Executor(GateClient(redis=Redis.from_url(cluster.primary.url), portfolio=portfolio))
    executor.start()
    publisher = threading.Thread(target=lambda: _quietly(agent, client, 400, "k", 0.002))
    publisher.start()
    until(lambda: len(executor.handed) >= 60, what="60 orders handed out")
    counts = fail_over(cluster, gate, executor, portfolio)
    publisher.join(30)
    assert counts.handed >= 60
    assert (counts.orphaned, counts.lost, counts.doubled) == (0, 0, 0), counts


@pytest.mark.parametrize("replicas", [1, 0])
def test_failover_when_the_replica_fell_behind_then_replicas_1_holds_the_orders(
    cluster: Cluster, replicas: int
) -> None:
    portfolio = f"failover-cut-{replicas}"
    gate, client = funded(cluster, portfolio, replicas=replicas)
    in_sync(client.redis)
    executor = Executor(GateClient(redis=Redis.from_url(cluster.primary.url), portfolio=portfolio))
    executor.start()
    before = agent(client, 20, "a")
    until(lambda: len(executor.handed) == 20, what="the first 20 orders")
    in_sync(client.redis)

    cluster.link.down()  # the replica falls behind: nothing more reaches it
    keys = Keys(portfolio)
    after_cut = agent(client, 20, "b")
    decided = [keys.decided(i) for i in after_cut]
    until(lambda: all(client.redis.exists(k) for k in decided), what="the gate to decide")
    time.sleep(0.3)  # the executor reads what was published
    handed_during_cut = len(executor.handed) - 20

    counts = fail_over(cluster, gate, executor, portfolio)
    assert sorted(executor.handed[:20]) == sorted(before)
    if replicas:
        assert handed_during_cut == 0  # held in the outbox: the replica never confirmed
        assert (counts.orphaned, counts.lost, counts.doubled) == (0, 0, 0), counts
    else:  # without it: every order published while the replica was behind
        assert handed_during_cut == 20
        assert (counts.orphaned, counts.lost, counts.doubled) == (20, 0, 0), counts


def _quietly(fn: object, *args: object) -> None:
    with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
        fn(*args)  # type: ignore[operator]  # the primary dies under the agent


def test_failover_when_the_publish_never_reached_the_replica_then_each_order_handed_once(
    cluster: Cluster,
) -> None:
    """The replica holds the commit but not its publication (the move out of the
    outbox): the promoted primary publishes those orders again. The SDK remembers
    what it handed out, so the executor gets each once."""
    portfolio = "failover-republish"
    gate, client = funded(cluster, portfolio, replicas=2)  # one replica: always held
    keys = Keys(portfolio)
    executor = Executor(GateClient(redis=Redis.from_url(cluster.primary.url), portfolio=portfolio))
    executor.start()
    ids = agent(client, 20, "r")
    until(lambda: client.redis.xlen(keys.outbox) == 40, what="20 decisions and orders held")
    in_sync(client.redis)  # the replica holds the commits

    cluster.link.down()
    Outbox(Redis.from_url(cluster.primary.url), keys, replicas=0).release()  # not replicated
    until(lambda: len(executor.handed) == 20, what="the 20 orders on the old primary")

    counts = fail_over(cluster, gate, executor, portfolio)
    assert sorted(executor.handed) == sorted(ids)
    assert (counts.orphaned, counts.lost, counts.doubled) == (0, 0, 0), counts
