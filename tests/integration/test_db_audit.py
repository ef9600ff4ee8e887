"""The audit writer against real Redis and PostgreSQL: every decision once, outages included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from consumers.bus.keys import DATA, GROUP_AUDIT
from consumers.bus.streams import read_group
from consumers.db.audit import AuditWriter
from consumers.db.stream_to_pg import ConsumerSettings, PgLink
from tests.builders import ROOT, base_config
from tests.harness import Harness
from tests.integration.pg import PgProxy, Server, query, scalar, temp_database

pytestmark = pytest.mark.pg  # once per server: PostgreSQL, TimescaleDB


@pytest.fixture(scope="module")
def pg_url(pg_server: Server) -> Iterator[str]:
    with temp_database("audit") as url:
        yield url


@pytest.fixture
def h(redis: Redis, portfolio: str) -> Harness:
    harness = Harness(redis, portfolio)
    harness.fund("1000000")
    return harness


def writer(h: Harness, url: str, consumer: str = "a1", **settings: Any) -> AuditWriter:
    opts = {"block_ms": 5, "min_idle_ms": 60_000, **settings}
    w = AuditWriter(
        h.redis,
        PgLink(url, "test-audit"),
        h.keys,
        base_config(),
        ConsumerSettings(consumer, **opts),
    )
    w.setup()
    return w


def drain(w: AuditWriter) -> None:
    """Everything pending for this consumer, then everything new."""
    while w.drain_pending():
        pass
    while w.step():
        pass
    w.pg.reset()


def decide(h: Harness, n: int, tag: str) -> list[str]:
    """n decisions of every kind: approved BTC/ETH, rejected NVDA (disabled) and unknown."""
    symbols = [("BTC/USDT", "0.001", "100000"), ("ETH/USDT", "0.01", "3900"),
               ("NVDA", "1", "132"), ("DOGE/USDT", "10", "0.2")]  # fmt: skip
    ids = []
    for i in range(n):
        symbol, qty, price = symbols[i % len(symbols)]
        ids.append(h.intent(symbol, quantity=qty, price=price, intent_id=f"{tag}-{i}"))
    h.pump()
    return ids


def rows(url: str, portfolio: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM trading_decisions WHERE portfolio = %s",
                      (portfolio,)))  # fmt: skip


def pending(h: Harness) -> int:
    return int(h.redis.xpending(h.keys.decisions, GROUP_AUDIT)["pending"])


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_audit_when_decisions_written_then_one_row_each_with_reasons_and_checks(
    h: Harness, pg_url: str
) -> None:
    """Each decision becomes one row: status, reason codes (queryable), checks as JSONB."""
    ids = decide(h, 12, "a")
    drain(writer(h, pg_url))
    assert rows(pg_url, h.portfolio) == 12 and pending(h) == 0
    got = {
        r[0]: r[1:]
        for r in query(
            pg_url,
            "SELECT intent_id, status, asset_class, reason_codes, checks ? 'equity', "
            "jsonb_array_length(reasons), config_hash FROM trading_decisions WHERE portfolio = %s",
            (h.portfolio,),
        )
    }
    assert set(got) == set(ids)
    assert got["a-0"][:2] == ("approved", "crypto")
    assert got["a-2"][0] == "rejected" and "asset_disabled" in got["a-2"][2]
    assert got["a-3"][1] is None and got["a-3"][2] == ["unknown_symbol"]
    assert got["a-0"][3] is True and got["a-2"][4] == len(got["a-2"][2])
    assert got["a-0"][5] == h.config.config_hash
    heat = scalar(
        pg_url,
        "SELECT count(*) FROM trading_decisions WHERE portfolio = %s "
        "AND reason_codes @> ARRAY['class_disabled']",
        (h.portfolio,),
    )
    assert heat == 3  # NVDA at 2, 6, 10


def test_audit_when_decisions_redelivered_then_no_second_row(h: Harness, pg_url: str) -> None:
    """A redelivered decision (same intent) is a no-op: the first row stands."""
    decide(h, 4, "r")
    w = writer(h, pg_url)
    drain(w)
    for _, fields in h.redis.xrange(h.keys.decisions):  # the same decisions, once more
        h.redis.xadd(h.keys.decisions, {DATA: fields[DATA]})
    drain(w)
    assert rows(pg_url, h.portfolio) == 4
    assert w.stats["duplicates"] == 4 and w.stats["written"] == 4 and pending(h) == 0


def test_audit_when_crashed_after_commit_before_ack_then_redelivery_writes_nothing(
    h: Harness, pg_url: str
) -> None:
    """Commit, then die before XACK: the entries come back and are acked without a write."""
    decide(h, 5, "c")
    w = writer(h, pg_url)
    got = read_group(h.redis, GROUP_AUDIT, "a1", [h.keys.decisions], count=100, block_ms=5)
    w.write(w.connection(), got)  # committed; no XACK (the crash)
    assert rows(pg_url, h.portfolio) == 5 and pending(h) == 5
    restarted = writer(h, pg_url)
    drain(restarted)
    assert rows(pg_url, h.portfolio) == 5 and pending(h) == 0
    assert restarted.stats["duplicates"] == 5
    w.pg.reset()


def test_audit_when_consumer_died_with_entries_pending_then_another_reclaims(
    h: Harness, pg_url: str
) -> None:
    """Entries stuck on a dead consumer are reclaimed (XAUTOCLAIM) and written once."""
    decide(h, 6, "x")
    h.redis.xreadgroup(GROUP_AUDIT, "dead", {h.keys.decisions: ">"}, count=100)
    assert pending(h) == 6
    w = writer(h, pg_url, consumer="alive", min_idle_ms=0)
    assert w.reclaim_idle() == 6
    w.pg.reset()
    assert rows(pg_url, h.portfolio) == 6 and pending(h) == 0


def test_audit_when_entries_unreadable_then_rejects_recorded_and_acked(
    h: Harness, pg_url: str
) -> None:
    """Bad entries go to consumer_rejects with the error and never block the stream."""
    decide(h, 2, "b")
    h.redis.xadd(h.keys.decisions, {DATA: b"{not json"})
    h.redis.xadd(h.keys.decisions, {DATA: json.dumps({"intent_id": "half"})})
    h.redis.xadd(h.keys.decisions, {b"other": b"no data field"})
    w = writer(h, pg_url)
    drain(w)
    assert rows(pg_url, h.portfolio) == 2 and pending(h) == 0
    errors = [r[0] for r in query(pg_url, "SELECT error FROM consumer_rejects WHERE portfolio = "
                                  "%s ORDER BY stream_id", (h.portfolio,))]  # fmt: skip
    assert len(errors) == 3
    assert errors[0].startswith("not JSON") and "not a decision" in errors[1]
    assert errors[2] == "entry has no data field"


def _audit_process(
    url: str, redis_url: str, portfolio: str, log: Any, *extra: str
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "consumers.cli", "audit", "--portfolio", portfolio,
        "--redis-url", redis_url, "--database-url", url, "--consumer", "proc",
        "--block-ms", "50", "--max-backoff", "0.3", "--batch", "40", *extra,
    ]  # fmt: skip
    env = {**os.environ, "RISKGATE_LOG_LEVEL": "DEBUG"}
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)


def test_audit_process_when_postgres_unreachable_for_a_while_then_nothing_lost_or_doubled(
    h: Harness, pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """N decisions, PostgreSQL cut off in the middle: nothing acked while down, then every
    decision written exactly once; SIGTERM exits 0."""
    proxy = PgProxy(pg_url)
    log_path = tmp_path / "audit.log"
    with log_path.open("wb") as log:
        proc = _audit_process(proxy.url(pg_url), redis_url, h.portfolio, log, "--no-migrate")
        try:
            decide(h, 100, "w1")
            wait_for(lambda: rows(pg_url, h.portfolio) == 100, "the first 100 rows")

            proxy.down()
            decide(h, 100, "w2")
            wait_for(lambda: "postgresql unavailable" in log_path.read_text(), "an outage seen")
            wait_for(lambda: proxy.refused >= 2, "reconnect attempts refused")
            assert rows(pg_url, h.portfolio) == 100
            assert pending(h) > 0  # read, not written, so not acked
            assert proc.poll() is None

            proxy.up()
            decide(h, 100, "w3")
            wait_for(lambda: rows(pg_url, h.portfolio) == 300, "all 300 rows", timeout=90)
            wait_for(lambda: pending(h) == 0, "every entry acked")
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            proxy.close()
    assert code == 0, log_path.read_text()[-3000:]
    distinct = scalar(pg_url, "SELECT count(DISTINCT intent_id) FROM trading_decisions "
                      "WHERE portfolio = %s", (h.portfolio,))  # fmt: skip
    keys = scalar(pg_url, "SELECT count(*) FROM trading_decision_ids WHERE portfolio = %s",
                  (h.portfolio,))  # fmt: skip
    assert distinct == keys == 300
    assert "consumer stopped" in log_path.read_text()


def test_audit_process_when_postgres_down_at_start_then_waits_and_writes_once_up(
    h: Harness, pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Start-up waits for the database (a process manager must not see it exit), then
    migrates (nothing to do here) and writes what arrived meanwhile."""
    proxy = PgProxy(pg_url)
    proxy.down()
    log_path = tmp_path / "audit.log"
    with log_path.open("wb") as log:
        proc = _audit_process(proxy.url(pg_url), redis_url, h.portfolio, log)
        try:
            decide(h, 8, "s")
            wait_for(lambda: "database unavailable" in log_path.read_text(), "a failed start")
            assert proc.poll() is None and rows(pg_url, h.portfolio) == 0
            proxy.up()
            wait_for(lambda: rows(pg_url, h.portfolio) == 8, "the rows after start-up")
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            proxy.close()
    assert code == 0, log_path.read_text()[-3000:]
