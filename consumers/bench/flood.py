"""Backpressure benchmark: one agent floods, another behaves; how long does the latter wait?

``python -m consumers.bench.flood [--flood 100000] [--every 1000] [--no-quota]``
publishes ``flood`` opening intents from agent ``flood`` with one intent from agent
``good`` after every ``every`` of them, as fast as a pipeline can, to a scratch
portfolio served by one gate worker (a separate process), and prints the good agent's
decision latency (intent stream id to decision stream id, milliseconds), the time to
drain everything, and the decisions stream's memory. ``--no-quota`` runs the worker
without the per-agent quota (every intent decided in full): the "before" figure.
A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from consumers.bench import kit
from consumers.bus.keys import DATA, Keys
from consumers.bus.runtime import configure_logging, connect, redis_url
from consumers.gate_worker.worker import GateSettings, GateWorker
from gate.assets import AssetManager


def _serve(url: str, portfolio: str, quota: bool, stop: Any) -> None:
    configure_logging(level="WARNING")
    redis = connect(url, socket_timeout=60)
    settings = GateSettings(
        consumer="flood-bench", log_decisions=False, agent_quota=quota, block_ms=50
    )
    worker = GateWorker(redis, Keys(portfolio), AssetManager().config, settings)
    worker.setup()
    while not stop.is_set():
        worker.step()


def _payload(intent_id: str, agent: str, now: str, price: str) -> bytes:
    return json.dumps(
        {
            "intent_id": intent_id,
            "agent_id": agent,
            "symbol": "BTC/USDT",
            "side": "buy",
            "quantity": "0.0001",
            "price": price,
            "created_at": now,
        }
    ).encode()


def run(url: str, flood: int, every: int, quota: bool) -> dict[str, Any]:
    redis = connect(url, socket_timeout=60)
    cfg = AssetManager().config
    keys = Keys(f"flood-{uuid.uuid4().hex[:8]}")
    stop = mp.get_context("spawn").Event()
    proc = mp.get_context("spawn").Process(target=_serve, args=(url, keys.portfolio, quota, stop))
    try:
        kit.prepare(redis, keys, cfg, "10000000")
        proc.start()
        while kit.lag_zero(redis, keys, keys.events) is False:
            time.sleep(0.05)
        now = datetime.now(UTC).isoformat()
        price = str(cfg.assets["BTC/USDT"].reference_price)  # where prepare() marks it
        payloads: list[bytes] = []
        good: list[str] = []
        for i in range(flood):
            payloads.append(_payload(f"flood-{i}", "flood", now, price))
            if (i + 1) % every == 0:
                good.append(f"good-{len(good)}")
                payloads.append(_payload(good[-1], "good", now, price))
        started = time.monotonic()
        ids = kit.publish(redis, keys.intents, payloads)
        published_s = time.monotonic() - started
        sent = {json.loads(p)["intent_id"]: i for p, i in zip(payloads, ids, strict=True)}
        while redis.xlen(keys.decisions) < len(payloads):
            time.sleep(0.05)
        drained_s = time.monotonic() - started
        latency: list[float] = []
        compact = full = 0
        good_status: list[str] = []
        entries: Any = redis.xrange(keys.decisions)
        for msg_id, fields in entries:
            d = json.loads(fields[DATA])
            if "equity" in d["checks"]:
                full += 1
            else:
                compact += 1
            if d["agent_id"] == "good":
                latency.append(kit.id_ms(msg_id) - kit.id_ms(sent[d["intent_id"]]))
                good_status.append(d["status"])
        memory = int(redis.memory_usage(keys.decisions) or 0)
        return {
            "quota": quota,
            "flood": flood,
            "good": len(good),
            "publish_s": round(published_s, 2),
            "drain_s": round(drained_s, 2),
            "intents_per_s": round(len(payloads) / drained_s),
            "good_p50_ms": kit.percentile(latency, 50),
            "good_p99_ms": kit.percentile(latency, 99),
            "good_max_ms": max(latency),
            "good_rejected": good_status.count("rejected"),
            "full_decisions": full,
            "compact_decisions": compact,
            "decisions_stream_mb": round(memory / 2**20, 1),
        }
    finally:
        stop.set()
        proc.join(30)
        kit.wipe(redis, keys)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", default=None)
    p.add_argument("--flood", type=int, default=100_000)
    p.add_argument("--every", type=int, default=1000)
    p.add_argument("--no-quota", action="store_true", help="the worker without the quota")
    a = p.parse_args()
    print(json.dumps(run(redis_url(a.redis_url), a.flood, a.every, not a.no_quota)))


if __name__ == "__main__":
    main()
