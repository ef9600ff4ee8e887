"""riskgate behind Redis Sentinel: a primary, a replica and two sentinels started by the
test; every process, the SDK and the CLI given ``redis+sentinel://.../rg``. A
``SENTINEL FAILOVER`` mid-load moves the primary to the replica; the gate, the audit
writer, the agent and the executor follow it with no operator action (counts as in
cluster_kit.py; with --replicas 1 nothing is lost or doubled)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from consumers.bus.keys import Keys
from consumers.bus.runtime import connect
from consumers.bus.sentinel import CHECK_ENV
from consumers.bus.topology import describe
from consumers.sdk.client import GateClient
from tests.builders import market_prices
from tests.integration.cluster_kit import (
    Executor,
    Procs,
    cli,
    count,
    publish,
    until,
    wait_settled,
)
from tests.integration.pg import temp_database
from tests.integration.redis_sentinel import Sentinels
from tests.integration.redis_server import RedisServer

pytestmark = pytest.mark.timeout(300)
SERVICE = "rg"


class Pair:
    def __init__(self, directory: Path) -> None:
        self.primary = RedisServer(directory / "primary").start()
        self.replica = RedisServer(
            directory / "replica", args=("--replicaof", "127.0.0.1", str(self.primary.port))
        ).start()

    def stop(self) -> None:
        self.replica.stop()
        self.primary.stop()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path)
    yield p
    p.stop()


@pytest.fixture
def sentinels(tmp_path: Path, pair: Pair) -> Iterator[Sentinels]:
    with Sentinels(tmp_path / "sentinels", SERVICE, pair.primary.port) as s:
        s.wait_replicas(1)
        yield s


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.close()


def in_sync(redis: Redis) -> bool:
    redis.set("sync-probe", "1")
    return int(redis.wait(1, 200)) >= 1


def test_sentinel_when_the_primary_fails_over_mid_load_then_the_gate_follows_and_counts_hold(
    pair: Pair,
    sentinels: Sentinels,
    procs: Procs,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SENTINEL FAILOVER while an agent publishes: every intent the new primary holds is
    decided once, and those published after the switch all are; with --replicas 1 no
    decision or order the world saw is lost or doubled; the CLI works through the
    sentinels before and after. (Intents the old primary took after the promotion and
    before the sentinels named the new one are lost with it: counted, not asserted.)"""
    url = sentinels.url
    portfolio = "sentinel-fo"
    keys = Keys(portfolio)
    assert describe(connect(url)) == f"sentinel (service {SERVICE})"
    with temp_database("sentinel") as db:
        procs.gate("gate", url, portfolio, "--replicas", "1", "--wait-timeout-ms", "200")
        procs.audit("audit", url, portfolio, db)
        # the processes ask the sentinels every second (the default); this test's own
        # clients at every command, so what it publishes after the switch is on the new one
        monkeypatch.setenv(CHECK_ENV, "0")
        redis = connect(url)
        agent = GateClient(url, portfolio=portfolio)
        assert cli("deposit", "1000000", "--reference", "f1", "--portfolio", portfolio,
                   url=url).returncode == 0  # fmt: skip
        agent.mark(market_prices())
        until(lambda: redis.hget(keys.state, "account"), what="the deposit applied")
        until(lambda: in_sync(redis), what="the replica in sync")
        executor = Executor(GateClient(url, portfolio=portfolio)).start()
        sent: list[str] = []
        ids = [f"s-{i}" for i in range(200)]
        publisher = threading.Thread(target=lambda: sent.extend(publish(agent, ids, 0.003)))
        publisher.start()
        until(lambda: len(executor.handed) >= 40, what="40 orders handed out")

        sentinels.failover()
        sentinels.wait_master(pair.replica.port)
        publisher.join(120)
        after = publish(agent, [f"t-{i}" for i in range(30)], first=len(ids))  # on the new one
        sent += after
        wait_settled(redis, keys, procs)
        executor.join()
        counts = count(redis, keys, db, sent, executor.handed)
        status = cli("status", "--json", "--portfolio", portfolio, url=url)
        codes = procs.stop_all()
    with capsys.disabled():
        print(f"\n[sentinel failover, --replicas 1] :{pair.primary.port} -> "
              f":{pair.replica.port}; {counts.line()}")  # fmt: skip
    assert set(codes.values()) == {0}, procs.logs()
    assert status.returncode == 0 and json.loads(status.stdout)["portfolio"] == portfolio
    assert int(Redis(port=pair.replica.port).info("replication")["connected_slaves"]) == 1
    assert counts.handed >= 40
    assert counts.decided + counts.lost_intents == counts.intents
    assert all(GateClient(redis=redis, portfolio=portfolio).decision(i) for i in after)
    lost_or_doubled = (
        counts.lost_decisions, counts.doubled_decisions,
        counts.orphaned_orders, counts.lost_orders, counts.doubled_orders,
    )  # fmt: skip
    assert lost_or_doubled == (0, 0, 0, 0, 0), counts
