"""The asyncio SDK on a real Redis Cluster and behind Redis Sentinel, given the URLs the
synchronous client takes: an agent submits and waits for its decision, an executor takes
its order once and reports the fill, on every master of the cluster and through a
Sentinel failover."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from redis import Redis
from redis.asyncio.cluster import RedisCluster

from consumers.bus.keys import DATA, Keys
from consumers.bus.runtime import REDIS_TRANSIENT, connect
from consumers.gate_worker.worker import GateSettings, GateWorker
from consumers.sdk.aio import AsyncGateClient
from consumers.sdk.client import GateClient
from schemas.messages import Status, parse_json
from tests.builders import base_config, market_prices
from tests.integration.cluster_kit import until
from tests.integration.redis_cluster import LocalCluster
from tests.integration.redis_sentinel import Sentinels
from tests.integration.test_sentinel import Pair, in_sync, pair, sentinels

__all__ = ["pair", "sentinels"]  # fixtures
pytestmark = pytest.mark.timeout(300)
PRICES = market_prices()


class Gate:
    """In-process gate workers deciding the given portfolios until stopped."""

    def __init__(self, url: str, portfolios: list[str]) -> None:
        redis = connect(url)
        config = base_config()
        self.workers = [
            GateWorker(redis, Keys(p), config, GateSettings(consumer="g", block_ms=20))
            for p in portfolios
        ]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for w in self.workers:
                w.turn(block_ms=20)

    def __enter__(self) -> Gate:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def fund(url: str, portfolio: str) -> None:
    client = GateClient(url, portfolio)
    client.deposit("1000000", reference=f"fund-{portfolio}")
    client.mark(market_prices())
    until(lambda: client.redis.hget(client.keys.state, "account"), what="the deposit applied")


async def submit(client: AsyncGateClient, intent_id: str) -> Any:
    """An agent's publish: on a dropped connection or no decision in time (a failover)
    it publishes the same intent again, which the gate decides once (docs/PROTOCOL.md)."""
    for _ in range(20):
        try:
            decision = await client.submit_and_wait(
                "BTC/USDT", "buy", "0.01", price=str(PRICES["BTC/USDT"]), timeout=10,
                agent_id=intent_id, intent_id=intent_id,
            )  # fmt: skip
        except REDIS_TRANSIENT:
            await asyncio.sleep(0.2)
            continue
        if decision is not None:
            return decision
    raise AssertionError(f"{intent_id} never decided")


async def trade(client: AsyncGateClient, n: int, tag: str = "t") -> list[Any]:
    """n buys submitted and decided, their orders taken once and filled."""
    decisions = [await submit(client, f"{client.keys.portfolio}-{tag}-{i}") for i in range(n)]
    taken = []
    async for d in client.orders(
        "exec", "e1", start="0", block_ms=50, stop=lambda: len(taken) >= n
    ):
        assert d.order is not None
        taken.append(d.order.intent_id)
        await client.fill(d.order.intent_id, "BTC/USDT", "buy", d.order.quantity, d.order.price,
                          fill_id=f"fill-{d.order.intent_id}")  # fmt: skip
        await d.ack()
    assert sorted(taken) == sorted(x.intent_id for x in decisions)
    return decisions


@pytest.fixture
def cluster(redis_cluster: LocalCluster) -> Iterator[LocalCluster]:
    redis_cluster.wait_ok()
    yield redis_cluster
    redis_cluster.wait_ok()


def test_async_client_when_given_one_cluster_node_then_trades_on_every_master(
    cluster: LocalCluster,
) -> None:
    names = cluster.portfolios("async")
    url = cluster.url  # one node: the client learns the rest

    async def main() -> None:
        for name in names:
            async with AsyncGateClient(url, name) as client:
                assert isinstance(client.redis, RedisCluster)
                got = await trade(client, 3)
                assert {d.status for d in got} == {Status.APPROVED}
        opened = await AsyncGateClient.open(url, names[0])  # asked on the event loop
        async with opened:
            assert isinstance(opened.redis, RedisCluster)
            assert (await opened.decision(got[0].intent_id)) is None  # another portfolio's

    with Gate(url, names):
        for name in names:
            fund(url, name)
        asyncio.run(main())
    for name in names:
        position = connect(url).hget(Keys(name).state, "pos:BTC/USDT")
        assert position is not None and Decimal(json.loads(position)["quantity"]) == Decimal("0.03")


def test_async_client_when_sentinel_fails_over_then_follows_the_new_primary(
    pair: Pair, sentinels: Sentinels
) -> None:
    url = sentinels.url
    portfolio = "async-sentinel"

    async def main() -> None:
        async with AsyncGateClient(url, portfolio) as client:
            await trade(client, 2)
            until(
                lambda: in_sync(Redis(host="127.0.0.1", port=pair.primary.port)),
                what="the replica in sync",
            )
            sentinels.failover()
            sentinels.wait_master(pair.replica.port)
            # the old primary demoted: nothing written after this can land where it is
            # lost (what it took before is the documented loss without --replicas)
            old = Redis(host="127.0.0.1", port=pair.primary.port)
            until(lambda: old.role()[0] == b"slave", what="the old primary demoted")
            got = await trade(client, 2, "after")  # through the new primary
            assert len({d.intent_id for d in got}) == 2
            new_primary = Redis(host="127.0.0.1", port=pair.replica.port)
            ids = {
                parse_json(f[DATA])["intent_id"]
                for _, f in new_primary.xrange(Keys(portfolio).decisions)
            }
            assert {d.intent_id for d in got} <= ids

    with Gate(url, [portfolio]):
        fund(url, portfolio)
        asyncio.run(main())
