"""One process, many portfolios: the gate (fair under a flood, the registry read live,
metrics labelled by portfolio), the audit writer and the phase monitor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from consumers.bus import portfolios as registry
from consumers.bus.keys import Keys
from consumers.bus.lease import holder
from consumers.cli.main import main
from tests.builders import ROOT
from tests.harness import Harness, unique_portfolio, wipe
from tests.integration.conftest import Workers
from tests.integration.pg import query, scalar, temp_database
from tests.integration.redis_server import RedisServer, free_port
from tests.integration.test_lease import publish_intents
from tests.integration.test_telemetry import _get

pytestmark = pytest.mark.slow


def _wait(predicate: Callable[[], Any], logs: Callable[[], str], timeout: float = 60,
          what: str = "") -> Any:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


def _id_ms(msg_id: bytes) -> int:
    return int(msg_id.split(b"-", 1)[0])


@pytest.fixture
def third(redis: Redis) -> Iterator[str]:
    name = unique_portfolio("it3")
    yield name
    wipe(redis, name)


def test_gate_when_one_of_three_portfolios_flooded_then_the_others_are_not_starved(
    redis: Redis, h: Harness, new_portfolio: str, third: str, workers: Workers
) -> None:
    """One process serves three portfolios; 4,000 intents wait on the first, 60 on each of
    the others: all are decided once, and the others are done while the flood has had at
    most one batch a round (a few hundred decisions, not the 4,000 before them)."""
    others = [Harness(redis, new_portfolio), Harness(redis, third)]
    for o in others:
        o.fund()
    flood = publish_intents(h, 4000, "flood")
    few = [publish_intents(o, 60, "few") for o in others]
    workers.start("multi", "--portfolio", new_portfolio, "--portfolio", third, "--batch", "20")
    everyone = [(h, flood), *zip(others, few, strict=True)]
    _wait(lambda: all(x.redis.xlen(x.keys.decisions) >= len(ids) for x, ids in everyone),
          workers.logs, 120, "every decision")  # fmt: skip
    for x, ids in everyone:
        assert sorted(d.intent_id for d in x.decisions()) == sorted(ids)
        assert x.pending() == 0
        found = holder(redis, x.keys)
        assert found is not None and found.owner == "multi"
    done = max(_id_ms(i) for o in others for i, _ in redis.xrange(o.keys.decisions))
    before = sum(_id_ms(i) < done for i, _ in redis.xrange(h.keys.decisions))
    assert before <= 600, f"{before} flood decisions came before the others were done"


def test_gate_when_all_portfolios_then_registry_followed_live_and_metrics_per_portfolio(
    tmp_path: Path,
) -> None:
    """--all-portfolios: a portfolio registered while the process runs is served without a
    restart, one removed is let go (lease released); /metrics says which it owns."""
    with RedisServer(tmp_path / "redis") as server:
        redis = Redis.from_url(server.url)
        one, two = Harness(redis, "one"), Harness(redis, "two")
        for x in (one, two):
            x.fund()
        port = free_port()
        proc: subprocess.Popen[bytes] | None = None
        log = (tmp_path / "all.log").open("wb")
        try:
            cmd = ["--all-portfolios", "--registry-every", "0.2", "--metrics-port", str(port)]
            proc = subprocess.Popen(
                [sys.executable, "-m", "consumers.cli", "gate", "--redis-url", server.url,
                 "--consumer", "all", "--block-ms", "50", *cmd],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "RISKGATE_LOG_DECISIONS": "0"},
            )  # fmt: skip
            logs = (tmp_path / "all.log").read_text
            assert main(["portfolios", "add", "one", "--redis-url", server.url]) == 0
            first = one.intent(quantity="0.01")
            assert one.client.wait_decision(first, 60) is not None, logs()
            assert main(["portfolios", "add", "two", "--redis-url", server.url]) == 0
            second = two.intent(quantity="0.01")
            assert two.client.wait_decision(second, 60) is not None, logs()
            owned = _wait(lambda: _owned(port), logs, what="metrics of both")
            assert owned == {"one": 1.0, "two": 1.0}
            assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            assert registry.remove(redis, "riskgate", ["one"]) == 1
            _wait(lambda: holder(redis, Keys("one")) is None, logs, what="one let go")
            third = two.intent(quantity="0.01")
            assert two.client.wait_decision(third, 60) is not None, logs()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            assert holder(redis, Keys("two")) is None  # released on the way out
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
            redis.close()


def _owned(port: int) -> dict[str, float] | None:
    code, text = _get(f"http://127.0.0.1:{port}/metrics")
    if code != 200:
        return None
    found = {
        s.labels["portfolio"]: s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "riskgate_portfolio_owned"
    }
    return found if len(found) == 2 else None


# -- the PostgreSQL consumers --------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with temp_database("multi") as url:
        yield url


def _consumer(command: str, portfolios: list[str], redis_url: str, pg_url: str,
              log: IO[bytes], consumer: str) -> subprocess.Popen[bytes]:  # fmt: skip
    flags = [f for p in portfolios for f in ("--portfolio", p)]
    cmd = [sys.executable, "-m", "consumers.cli", command, *flags, "--redis-url", redis_url,
           "--database-url", pg_url, "--consumer", consumer, "--block-ms", "50",
           "--max-backoff", "0.3", "--no-migrate"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def test_audit_when_one_process_serves_two_portfolios_then_every_decision_once_in_each(
    redis: Redis, redis_url: str, h: Harness, new_portfolio: str, pg_url: str, tmp_path: Path
) -> None:
    """`riskgate audit --portfolio A --portfolio B`: both decisions streams into
    trading_decisions, each decision once, under its own portfolio."""
    other = Harness(redis, new_portfolio)
    other.fund()
    ids = {}
    for x, n in ((h, 30), (other, 20)):
        ids[x.portfolio] = [x.intent(quantity="0.001", intent_id=f"{x.portfolio}-{i}")
                            for i in range(n)]  # fmt: skip
        x.pump()
    log_path = tmp_path / "audit.log"
    with log_path.open("wb") as log:
        proc = _consumer("audit", list(ids), redis_url, pg_url, log, "audit-multi")
        try:

            def written() -> bool:
                sql = "SELECT count(*) FROM trading_decisions WHERE portfolio = %s"
                return all(scalar(pg_url, sql, (p,)) == len(v) for p, v in ids.items())

            _wait(written, log_path.read_text, what="both portfolios written")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    for p, v in ids.items():
        rows = query(pg_url, "SELECT intent_id FROM trading_decisions WHERE portfolio = %s", (p,))
        assert sorted(r[0] for r in rows) == sorted(v)


def test_phase_monitor_when_two_processes_serve_two_portfolios_then_each_event_once(
    redis: Redis, redis_url: str, h: Harness, new_portfolio: str, pg_url: str, tmp_path: Path
) -> None:
    """Two phase monitors, each serving both portfolios over one connection: one writes
    each portfolio (its lock), the other stands by; once the first stops, the second
    takes both over. Every deposit is applied once, under its portfolio."""
    other = Harness(redis, new_portfolio)
    other.fund()
    both = [h.portfolio, other.portfolio]
    logs = [tmp_path / "pm1.log", tmp_path / "pm2.log"]
    refs: dict[str, list[str]] = {p: [] for p in both}

    def deposit(x: Harness, tag: str) -> None:
        ref = f"{tag}-{uuid.uuid4().hex[:8]}"
        x.client.deposit("1000", reference=ref)
        refs[x.portfolio].append(f"deposit:{ref}")

    def applied(p: str) -> list[str]:
        rows = query(pg_url, "SELECT event_id FROM applied_events WHERE portfolio = %s "
                     "AND event_id LIKE 'deposit:m%%'", (p,))  # fmt: skip
        return sorted(r[0] for r in rows)

    def all_applied() -> bool:
        return all(applied(p) == sorted(refs[p]) for p in both)

    def text() -> str:
        return "\n".join(p.read_text() for p in logs if p.exists())

    with logs[0].open("wb") as log1, logs[1].open("wb") as log2:
        first = _consumer("phase-monitor", both, redis_url, pg_url, log1, "pm1")
        _wait(lambda: text().count("phase monitor lock held") == 2, text, what="pm1's locks")
        second = _consumer("phase-monitor", both, redis_url, pg_url, log2, "pm2")
        try:
            for x in (h, other):
                deposit(x, "m1")
            _wait(all_applied, text, what="the first deposits")
            _wait(lambda: "standing by" in logs[1].read_text(), text, what="pm2 standing by")
            first.send_signal(signal.SIGTERM)
            assert first.wait(30) == 0
            for x in (h, other):
                deposit(x, "m2")
            _wait(all_applied, text, what="the deposits after the handover")
            assert logs[1].read_text().count("phase monitor lock held") == 2
        finally:
            for proc in (first, second):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(30)
