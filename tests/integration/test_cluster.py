"""riskgate on a real Redis Cluster (the session's own: 3 masters, one replica each, see
redis_cluster.py): every process, the SDK and the CLI given a URL that names ONE node.

One gate process and one audit writer serve the portfolios of all three masters; the
failover tests run a gate per portfolio. The failover counts are defined in
cluster_kit.py and printed with the test's output.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from consumers.bus.keys import Keys
from consumers.bus.nodes import node_client
from consumers.bus.runtime import connect
from consumers.bus.topology import is_cluster
from consumers.sdk.client import GateClient
from tests.builders import market_prices
from tests.integration.cluster_kit import (
    Executor,
    Procs,
    cli,
    count,
    decisions_on,
    publish,
    until,
    wait_settled,
)
from tests.integration.pg import query, temp_database
from tests.integration.redis_cluster import LocalCluster
from tests.integration.redis_server import free_port

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.close()


@pytest.fixture
def cluster(redis_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The session's cluster, whole before and after the test."""
    redis_cluster.wait_ok()
    yield redis_cluster
    redis_cluster.wait_ok()


def fund(client: GateClient) -> None:
    client.deposit("1000000", reference=f"fund-{client.keys.portfolio}")
    client.mark(market_prices())
    until(lambda: client.redis.hget(client.keys.state, "account"), what="the deposit applied")


def test_cluster_when_portfolios_on_all_three_masters_then_every_intent_decided_once_and_audited(
    cluster: LocalCluster, procs: Procs
) -> None:
    """A portfolio on each master, ONE gate process and ONE audit writer serving all
    three, given one URL naming a replica: every intent published through GateClient is
    decided exactly once and audited; the CLI's status and submit --wait work on every
    portfolio."""
    names = cluster.portfolios("cl")
    assert len({cluster.master_of(p).port for p in names}) == 3
    url = cluster.url_of(cluster.replica_of(cluster.master_of(names[0])).port)
    redis = connect(url)
    assert is_cluster(redis)
    with temp_database("cluster") as db:
        procs.gate("gate", url, names)
        procs.audit("audit", url, names, db)
        deposit = cli("deposit", "500000", "--reference", "r1", "--portfolio", names[1], url=url)
        assert deposit.returncode == 0, deposit.stderr
        for p in names:
            fund(GateClient(url, portfolio=p))
        sent = {
            p: publish(GateClient(url, portfolio=p), [f"{p}-{i}" for i in range(60)]) for p in names
        }
        for p in names:
            wait_settled(redis, Keys(p), procs, executor=False)
            on_stream = decisions_on(redis, Keys(p))
            assert {i: len(t) for i, t in on_stream.items()} == dict.fromkeys(sent[p], 1)
            audited = query(
                db, "SELECT intent_id FROM trading_decisions WHERE portfolio = %s", (p,)
            )
            assert sorted(r[0] for r in audited) == sorted(sent[p])
            status = cli("status", "--json", "--portfolio", p, url=url)
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["portfolio"] == p
            done = cli("submit", "BTC/USDT", "buy", "0.002", "--price", "100000", "--wait",
                       "--json", "--portfolio", p, url=url)  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["status"] == "approved"
        codes = procs.stop_all()
    assert set(codes.values()) == {0}, procs.logs()


def _errors_by_kind(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("riskgate_redis_errors_total{"):
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            out[kind] = float(line.rsplit(" ", 1)[1])
    return out


def _in_sync(redis: Redis, keys: Keys) -> bool:
    node = node_client(redis, keys.outbox_sync)
    node.set(keys.outbox_sync, "probe")
    return int(node.wait(1, 200)) >= 1


@pytest.mark.parametrize("replicas", [1, 0])
def test_cluster_when_a_master_is_killed_mid_load_then_its_replica_takes_over_and_counts_hold(
    cluster: LocalCluster, procs: Procs, replicas: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """kill -9 of the master holding a busy portfolio: its replica is promoted, the gate
    and audit processes, the agent and the executor follow without operator action.
    With --replicas 1 nothing is lost or doubled, decisions or orders (0 and 0); without
    it the counts are what they are, printed. Portfolios on other masters are served."""
    busy, other, _ = cluster.portfolios(f"fo{replicas}")
    victim = cluster.master_of(busy)
    url = cluster.url_of(cluster.master_of(other).port)  # a node that stays up
    redis = connect(url)
    keys = Keys(busy)
    metrics = free_port()
    with temp_database("clusterfo") as db:
        procs.gate("gate-busy", url, busy, "--replicas", str(replicas), "--wait-timeout-ms",
                   "200", "--metrics-port", str(metrics))  # fmt: skip
        procs.gate("gate-other", url, other)
        procs.audit("audit-busy", url, busy, db)
        fund(GateClient(url, portfolio=busy))
        fund(GateClient(url, portfolio=other))
        until(lambda: _in_sync(redis, keys), what="the busy master's replica in sync")
        executor = Executor(GateClient(url, portfolio=busy)).start()
        ids = [f"{busy}-{i}" for i in range(250)]
        agent = GateClient(url, portfolio=busy)
        sent: list[str] = []
        publisher = threading.Thread(target=lambda: sent.extend(publish(agent, ids, 0.003)))
        publisher.start()
        until(lambda: len(executor.handed) >= 60, what="60 orders handed out")

        cluster.kill(victim)
        promoted = cluster.wait_promoted(victim)
        cluster.restart(victim)  # it rejoins as the new master's replica
        publisher.join(120)
        assert len(sent) == len(ids)
        others = publish(GateClient(url, portfolio=other), [f"{other}-{i}" for i in range(20)])
        wait_settled(redis, keys, procs)
        wait_settled(redis, Keys(other), procs, audit=False, executor=False)
        cluster.wait_ok()
        executor.join()
        counts = count(redis, keys, db, sent, executor.handed)
        kinds = _errors_by_kind(metrics)
        assert all(GateClient(url, portfolio=other).decision(i) for i in others)
        codes = procs.stop_all()
    with capsys.disabled():
        print(
            f"\n[cluster failover, --replicas {replicas}] master :{victim.port} killed, "
            f":{promoted.port} promoted; {counts.line()}; gate redis errors by kind {kinds}"
        )
    assert set(codes.values()) == {0}, procs.logs()
    assert counts.handed >= 60 and sum(kinds.values()) > 0
    assert counts.decided + counts.lost_intents == counts.intents  # the rest: each decided
    if replicas:
        lost_or_doubled = (
            counts.lost_decisions, counts.doubled_decisions,
            counts.orphaned_orders, counts.lost_orders, counts.doubled_orders,
        )  # fmt: skip
        assert lost_or_doubled == (0, 0, 0, 0, 0), counts


def _audited(db: str, portfolio: str, ids: list[str]) -> int:
    rows = query(
        db,
        "SELECT count(*) FROM trading_decisions WHERE portfolio = %s AND intent_id = ANY(%s)",
        (portfolio, ids),
    )
    return int(rows[0][0])


@pytest.mark.parametrize("replicas", [1, 0])
def test_cluster_when_the_replica_fell_behind_then_replicas_1_published_nothing_it_lacked(
    cluster: LocalCluster, procs: Procs, replicas: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The busy master's replica is frozen (SIGSTOP) and its link cut, 20 intents are
    decided on the master alone, then the master is killed and the replica promoted.
    Those 20 intents are lost with the master either way (their agent never sees a
    decision and resends); with --replicas 1 their decisions and orders were held, so
    nothing the world saw is lost: 0 and 0. Without it all 20 orders were handed out and
    all 20 decisions audited, and the new primary knows none of them."""
    busy, other, _ = cluster.portfolios(f"fb{replicas}")
    victim = cluster.master_of(busy)
    replica = cluster.server(cluster.replica_of(victim).port)
    url = cluster.url_of(cluster.master_of(other).port)
    redis = connect(url)
    keys = Keys(busy)
    with temp_database("clusterfb") as db:
        procs.gate("gate-busy", url, busy, "--replicas", str(replicas), "--wait-timeout-ms", "200")
        procs.audit("audit-busy", url, busy, db)
        agent = GateClient(url, portfolio=busy)
        fund(agent)
        until(lambda: _in_sync(redis, keys), what="the busy master's replica in sync")
        executor = Executor(GateClient(url, portfolio=busy)).start()
        sent = publish(agent, [f"{busy}-a{i}" for i in range(20)])
        until(lambda: len(executor.handed) == 20, what="the first 20 orders")
        until(lambda: _in_sync(redis, keys), what="the replica holding them")

        assert replica.proc is not None
        replica.proc.send_signal(signal.SIGSTOP)  # frozen, and cut off:
        node_client(redis, keys.state).execute_command("CLIENT", "KILL", "TYPE", "replica")
        behind = publish(agent, [f"{busy}-b{i}" for i in range(20)], first=20)
        sent += behind
        until(lambda: all(redis.exists(keys.decided(i)) for i in behind), what="20 decided")
        if replicas:
            time.sleep(0.5)  # the executor would take whatever were published: nothing
        else:  # published at once: wait until handed out and audited, not for luck
            until(lambda: len(executor.handed) >= 40, what="the 20 orders handed out")
            until(lambda: _audited(db, busy, behind) == 20, what="the 20 decisions audited")
        handed_during_cut = len(executor.handed) - 20
        held = int(redis.xlen(keys.outbox))  # 20 approvals: 20 decisions, 20 orders

        cluster.kill(victim)
        replica.proc.send_signal(signal.SIGCONT)
        cluster.wait_promoted(victim)
        cluster.restart(victim)
        wait_settled(redis, keys, procs)
        cluster.wait_ok()
        executor.join()
        counts = count(redis, keys, db, sent, executor.handed)
        codes = procs.stop_all()
    with capsys.disabled():
        print(
            f"\n[cluster replica behind, --replicas {replicas}] {handed_during_cut} orders "
            f"handed, {held} outbox entries held while it was cut off; {counts.line()}"
        )
    assert set(codes.values()) == {0}, procs.logs()
    assert counts.lost_intents == 20 and counts.decided == 20
    lost_or_doubled = (
        counts.lost_decisions, counts.doubled_decisions,
        counts.orphaned_orders, counts.lost_orders, counts.doubled_orders,
    )  # fmt: skip
    if replicas:
        assert (handed_during_cut, held) == (0, 40)
        assert lost_or_doubled == (0, 0, 0, 0, 0), counts
    else:  # by construction, not by luck: the 20 never reached the replica
        assert handed_during_cut == 20
        assert lost_or_doubled == (20, 0, 20, 0, 0), counts
