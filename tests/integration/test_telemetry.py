"""A gate worker process's /metrics after real decisions; /healthz when Redis is away;
decision log lines as JSON with the bound fields when stderr is not a terminal."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from consumers.bus.keys import DATA, Keys
from consumers.bus.runtime import Shutdown
from consumers.gate_worker.worker import GateSettings, GateWorker
from consumers.ops.telemetry import Exporter, GateTelemetry
from consumers.sdk.client import GateClient
from tests.builders import base_config, market_prices
from tests.integration.conftest import Workers
from tests.integration.redis_server import free_port


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode()
        exc.close()
        return int(exc.code), body
    except OSError:
        return 0, ""


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, text = _get(f"http://127.0.0.1:{port}/metrics")
    if code != 200:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_metrics_endpoint_when_gate_process_decides_then_counters_match_decisions_stream(
    redis: Redis, portfolio: str, workers: Workers
) -> None:
    """riskgate gate --metrics-port: decisions by status equal XRANGE of the decisions
    stream; /healthz answers 200."""
    port = free_port()
    workers.start("m1", "--metrics-port", str(port))
    client = GateClient(redis=redis, portfolio=portfolio)
    client.deposit("100000", reference="t1")
    client.mark(market_prices())
    ids = [client.submit("BTC/USDT", "buy", q, price="100000") for q in ("0.01", "0.02", "90")]
    ids.append(client.submit("NOPE/X", "buy", "1", price="1"))
    for iid in ids:
        assert client.wait_decision(iid, 60) is not None, workers.logs()
    decisions = [json.loads(f[DATA]) for _, f in redis.xrange(Keys(portfolio).decisions)]
    expected = Counter(d["status"] for d in decisions)
    deadline = time.monotonic() + 60
    while True:
        samples = _scrape(port)
        got = {
            dict(labels)["status"]: v
            for (name, labels), v in samples.items()
            if name == "riskgate_decisions_total"
        }
        if got and sum(got.values()) == len(decisions):
            break
        assert time.monotonic() < deadline, (got, workers.logs())
        time.sleep(0.1)
    assert got == {s: float(expected.get(s, 0)) for s in ("approved", "resized", "rejected")}
    latency = [v for (n, _), v in samples.items() if n == "riskgate_decision_latency_seconds_count"]
    assert latency == [len(decisions)]
    assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200


def test_healthz_when_redis_unreachable_longer_than_threshold_then_503(portfolio: str) -> None:
    """A worker whose Redis refuses connections stops beating: /healthz turns 503."""
    dead = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    worker = GateWorker(dead, Keys(portfolio), base_config(), GateSettings(consumer="h1"))
    telemetry = GateTelemetry(worker, stale_after_s=0.5)
    worker.telemetry = telemetry
    shutdown = Shutdown()
    loop = threading.Thread(target=worker.run, args=(shutdown,), daemon=True)
    with Exporter(telemetry, 0, sample_every_s=3600) as exporter:
        url = f"http://127.0.0.1:{exporter.port}/healthz"
        loop.start()
        try:
            deadline = time.monotonic() + 30
            while (code := _get(url)[0]) != 503:
                assert time.monotonic() < deadline, code
                time.sleep(0.05)
        finally:
            shutdown.request()
            loop.join(30)
            dead.close()
    assert code == 503 and not loop.is_alive()
    assert worker.stats["redis_errors"] > 0  # the loop was failing, not slow


def test_decision_log_when_stderr_not_a_terminal_then_json_with_bound_fields(
    redis: Redis, portfolio: str, workers: Workers, tmp_path: Path
) -> None:
    """One canonical JSON line per decision carrying portfolio, intent_id, agent_id,
    stream and msg_id."""
    workers.start("log1", RISKGATE_LOG_DECISIONS="1")
    client = GateClient(redis=redis, portfolio=portfolio)
    client.deposit("100000", reference="t1")
    client.mark(market_prices())
    iid = client.submit("ETH/USDT", "buy", "0.1", price="3900", agent_id="momo")
    assert client.wait_decision(iid, 60) is not None, workers.logs()
    deadline = time.monotonic() + 30
    while workers.count_lines(iid) == 0:
        assert time.monotonic() < deadline, workers.logs()
        time.sleep(0.05)
    lines = [json.loads(line) for p in tmp_path.glob("*.log")
             for line in p.read_text().splitlines() if iid in line]  # fmt: skip
    decision = next(d for d in lines if d["event"] == "decision")
    assert decision["portfolio"] == portfolio and decision["agent_id"] == "momo"
    assert decision["intent_id"] == iid and decision["stream"] == Keys(portfolio).intents
    assert decision["msg_id"] and decision["level"] == "info" and decision["status"] == "approved"
