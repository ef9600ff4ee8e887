"""Durable approvals (issue 10, part 3) on real Redis servers started by the test: a
durable gate (``--replicas N``) publishes decisions and orders only once N replicas
hold the commit; until then they wait in the outbox, counted and visible."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from redis import Redis

from consumers.bus.keys import Keys
from consumers.cli.main import main
from consumers.gate_worker.commit import CommitError
from consumers.ops.telemetry import GateTelemetry
from consumers.state.outbox import DurabilityError, Outbox
from schemas.messages import Status
from tests.harness import Harness
from tests.integration.redis_server import RedisServer


def replica_of(directory: Path, primary: RedisServer | int) -> RedisServer:
    port = primary if isinstance(primary, int) else primary.port
    return RedisServer(directory, args=("--replicaof", "127.0.0.1", str(port)))


def wait_in_sync(primary: Redis, replicas: int = 1, timeout: float = 20.0) -> None:
    """Until ``replicas`` replicas are connected and acknowledge every write so far."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        primary.set("sync-probe", "1")
        if int(primary.wait(replicas, 200)) >= replicas:
            return
    raise AssertionError(f"{replicas} replica(s) never caught up")


@pytest.fixture
def primary(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "primary") as server:
        yield server


@pytest.fixture
def redis(primary: RedisServer) -> Iterator[Redis]:
    client = Redis.from_url(primary.url)
    yield client
    client.close()


def small(i: int) -> str:
    """A distinct small BTC quantity (equal ones would be duplicate_order)."""
    return str(Decimal("0.001") + Decimal(i) / 10000)


def durable(redis: Redis, wait_ms: int = 50, **settings: object) -> Harness:
    """A durable gate; ``wait_ms`` short where no replica is meant to confirm."""
    h = Harness(redis, replicas=1, wait_timeout_ms=wait_ms, **settings)
    assert h.worker.outbox is not None
    h.worker.outbox.retry_s = 0.0  # tests step the worker: retry at every chance
    return h


def test_durable_when_no_replica_then_decisions_and_orders_held_in_the_outbox(
    redis: Redis,
) -> None:
    h = durable(redis)
    h.fund()
    ids = [h.intent(quantity=small(i)) for i in range(3)]
    h.pump()

    assert redis.xlen(h.keys.decisions) == 0
    assert redis.xlen(h.keys.orders) == 0
    assert redis.xlen(h.keys.outbox) == 6  # three decisions, three orders
    assert [h.client.decision(i) for i in ids] == [None, None, None]
    # the reservations count meanwhile: the risk is the gate's from the commit on
    assert sorted(h.state().snapshot.reservations) == sorted(ids)
    assert h.worker.stats["outbox_wait_failures"] >= 1
    assert h.worker.stats["outbox_published"] == 0


def test_durable_when_the_replica_arrives_then_published_once_markers_pointing_at_them(
    tmp_path: Path, primary: RedisServer, redis: Redis
) -> None:
    h = durable(redis)
    h.fund()
    ids = [h.intent(quantity=small(i)) for i in range(3)]
    h.pump()
    assert redis.xlen(h.keys.outbox) == 6

    with replica_of(tmp_path / "replica", primary):
        wait_in_sync(redis)
        h.worker.outbox.timeout_ms = 10_000  # the replica confirms, however busy the machine
        h.worker.publish()
        h.worker.publish()  # nothing left: nothing published twice

        assert redis.xlen(h.keys.outbox) == 0
        assert redis.xlen(h.keys.decisions) == 3
        assert [o["intent_id"] for o in h.orders()] == ids
        assert h.worker.stats["outbox_published"] == 6
        for intent_id in ids:  # the marker now names the decision's stream id
            assert h.decision(intent_id).status is Status.APPROVED

        # with the replica connected, the next batch is published in its own commit
        late = h.intent(quantity=small(99))
        h.pump()
        assert h.decision(late).status is Status.APPROVED
        assert redis.xlen(h.keys.outbox) == 0


def test_durable_when_two_workers_publish_at_once_then_each_entry_once(
    tmp_path: Path, primary: RedisServer, redis: Redis
) -> None:
    h = durable(redis)
    h.fund()
    for i in range(40):
        h.intent(quantity=small(i))
    h.pump()
    held = redis.xlen(h.keys.outbox)
    assert held == 80

    with replica_of(tmp_path / "replica", primary):
        wait_in_sync(redis)
        boxes = [
            Outbox(Redis.from_url(primary.url), h.keys, replicas=1, timeout_ms=10_000)
            for _ in range(4)
        ]
        threads = [threading.Thread(target=b.release) for b in boxes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sum(b.moved for b in boxes) == held
        assert redis.xlen(h.keys.decisions) == 40
        assert redis.xlen(h.keys.orders) == 40
        assert redis.xlen(h.keys.outbox) == 0


def test_durable_when_held_then_metrics_show_entries_age_and_failed_waits(
    redis: Redis,
) -> None:
    h = durable(redis)
    h.fund()
    h.intent(quantity="0.01")
    h.pump()
    time.sleep(0.05)
    telemetry = GateTelemetry(h.worker)
    telemetry.sample()
    values = telemetry.samples["portfolio"]
    assert values["riskgate_outbox_entries"] == 2.0
    assert values["riskgate_outbox_oldest_age_seconds"] >= 0.05
    families = {m.name: m for m in telemetry.collect()}
    failures = families["riskgate_outbox_wait_failures"].samples[0].value
    assert failures >= 1


def test_commit_when_durable_but_two_outboxes_named_then_refused_nothing_written(
    redis: Redis,
) -> None:
    h = durable(redis)
    h.fund()
    h.intent(quantity="0.01")
    committer = h.worker.committer
    real = committer.encode

    def two_outboxes(plan):  # type: ignore[no-untyped-def]
        keys, args = real(plan)
        keys[4] = h.keys.orders
        return keys, args

    committer.encode = two_outboxes  # type: ignore[method-assign]
    with pytest.raises(CommitError, match="names one outbox"):
        h.worker.step()
    assert redis.xlen(h.keys.outbox) == 0
    assert redis.xlen(h.keys.orders) == 0


def test_gate_when_aof_asked_of_a_redis_without_waitaof_then_exit_2_naming_it(
    primary: RedisServer,
) -> None:
    box = Outbox(Redis.from_url(primary.url), Keys("p"), replicas=0, aof=True)
    with pytest.raises(DurabilityError, match="WAITAOF"):
        box.check_server()
    # a process of its own: the gate sets up logging, which must not outlive the test
    riskgate = str(Path(sys.executable).parent / "riskgate")
    done = subprocess.run(
        [riskgate, "gate", "--redis-url", primary.url, "--aof", "--block-ms", "50"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--aof" in done.stderr and "WAITAOF" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--replicas", "-1"], "replicas (--replicas, RISKGATE_REPLICAS) is -1"),
        (["--replicas", "1", "--wait-timeout-ms", "0"], "wait_timeout_ms"),
    ],
)
def test_gate_when_durability_settings_bad_then_exit_2_naming_them(
    primary: RedisServer, capsys: pytest.CaptureFixture[str], args: list[str], problem: str
) -> None:
    capsys.readouterr()
    code = main(["gate", "--redis-url", primary.url, *args])
    assert code == 2
    assert problem in capsys.readouterr().err


def test_status_when_outputs_held_then_says_so_in_text_and_json(
    primary: RedisServer, redis: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    h = durable(redis)
    h.fund()
    h.intent(quantity=small(0))
    h.pump()
    capsys.readouterr()
    base = ["status", "--redis-url", primary.url, "--portfolio", h.portfolio]
    assert main(base) == 0
    assert "HELD: 2 decisions and orders" in capsys.readouterr().out
    assert main([*base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["held"]["entries"] == 2
