"""``riskgate bench --memory``: Redis memory per portfolio at steady state.

One portfolio under a sustained open-loop load (``rate`` intents/s, fresh ones, 1,000
agents over every configured symbol): a real gate worker, a real audit writer and phase
monitor writing to a temporary PostgreSQL database, and an executor-like consumer that
takes every order with the SDK (``GateClient.orders``: verified, handed once) and ends
it with a ``cancel`` (so reservations do not pile up) before acking it (pipelined:
:func:`run_executor`). Every
``sample_every_s`` the portfolio's keys are measured: streams and hashes with ``MEMORY
USAGE`` (all samples), markers counted by SCAN and priced by the ``MEMORY USAGE`` of a
sample of them; ``used_memory`` of ``INFO memory`` against its value before the run is
reported too (the whole server's: meaningful on a private one). Run it for two or three
dedupe windows (900 s each by default) to see the plateau.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from redis import Redis

from consumers.bench import kit
from consumers.bus.keys import DATA, Keys
from consumers.bus.runtime import connect
from consumers.bus.streams import ensure_group
from consumers.db.connection import database_url
from consumers.sdk.client import GateClient
from consumers.sdk.orders import HANDED_MARGIN_S
from schemas.config import AssetsConfig

MARKERS = ("decided:", "applied:", "handed:")
STREAMS = ("intents", "decisions", "orders", "events", "deadletter", "phases", "outbox")
EXECUTOR = "bench-exec"
MARK_EVERY_S = 60.0  # marks older than max_mark_age_seconds (900) stop openings
AGENTS = 1000  # at most max_agents_per_portfolio a minute; each well under its quota


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    rate: int = 1000
    duration_s: float = 2700.0
    sample_every_s: float = 60.0


def portfolio_memory(redis: Redis, keys: Keys, sample: int = 200) -> dict[str, Any]:
    """Bytes held by one portfolio's keys, by kind, with counts."""
    out: dict[str, Any] = {}
    for name in STREAMS:
        key = getattr(keys, name)
        out[name] = {"n": int(redis.xlen(key)), "bytes": _usage(redis, key)}
    for name in ("state", "control"):
        out[name] = {"n": 1, "bytes": _usage(redis, getattr(keys, name))}
    found: dict[str, list[bytes]] = {m: [] for m in MARKERS}
    counts = dict.fromkeys(MARKERS, 0)
    base = keys.base.encode()
    for key in redis.scan_iter(match=keys.base + "*", count=10_000):
        rest = key[len(base) :].decode(errors="replace")
        for m in MARKERS:
            if rest.startswith(m):
                counts[m] += 1
                if len(found[m]) < sample:
                    found[m].append(key)
    for m in MARKERS:
        each = [_usage(redis, k) for k in found[m]]
        per = sum(each) / len(each) if each else 0.0
        out[m.rstrip(":")] = {"n": counts[m], "bytes": round(per * counts[m]), "per": per}
    out["total_bytes"] = sum(v["bytes"] for v in out.values() if isinstance(v, dict))
    return out


def _usage(redis: Redis, key: str | bytes) -> int:
    return int(redis.memory_usage(key, samples=0) or 0)


def used_memory(redis: Redis) -> int:
    return int(redis.info("memory")["used_memory"])


@contextmanager
def temp_database(pg_url: str | None) -> Iterator[str]:
    """A fresh database on the server of ``pg_url`` (DATABASE_URL), dropped afterwards."""
    admin_url = make_conninfo(database_url(pg_url), dbname="postgres")
    name = f"riskgate_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(database_url(pg_url), dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _executor(env: dict[str, str], keys: Keys) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "consumers.bench.memory", keys.portfolio],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_executor(portfolio: str) -> None:
    """The executor-like consumer, pipelined so it keeps up on a busy machine: per read
    of up to 1,000 orders, what an SDK executor writes for each (its ``handed`` marker
    until good_till and a margin, a ``cancel`` event through GateClient, so the
    reservation is released) and the ack, in one round trip. Runs until killed."""
    redis = connect(os.environ["REDIS_URL"])
    keys = Keys(portfolio)
    ensure_group(redis, keys.orders, EXECUTOR, start="0")
    pipe = redis.pipeline(transaction=False)
    sdk = GateClient(redis=pipe, portfolio=portfolio)
    while True:
        got: Any = redis.xreadgroup(EXECUTOR, "exec-1", {keys.orders: ">"}, count=1000, block=1000)
        rows: list[tuple[bytes, dict[bytes, bytes]]] = [r for _, rs in got or [] for r in rs]
        if not rows:
            continue
        now = float(redis.time()[0])
        for msg_id, fields in rows:
            order = json.loads(fields[DATA])
            iid = order["intent_id"]
            if order.get("action") != "cancel":
                till = datetime.fromisoformat(order["good_till"]).timestamp()
                ttl = max(1, int(till - now) + HANDED_MARGIN_S)
                pipe.set(keys.handed(EXECUTOR, iid), msg_id, nx=True, ex=ttl)
                sdk.cancel(iid)
        pipe.xack(keys.orders, EXECUTOR, *[m for m, _ in rows])
        pipe.execute()


def measure(
    redis_url: str,
    pg_url: str | None,
    cfg: AssetsConfig,
    plan: MemoryPlan,
    say: Callable[[str], None],
) -> dict[str, Any]:
    redis = connect(redis_url, socket_timeout=60)
    keys = Keys(f"bench-mem-{uuid.uuid4().hex[:8]}")
    samples: list[dict[str, Any]] = []
    with temp_database(pg_url) as db_url:
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DATABASE_URL": db_url,
            "RISKGATE_LOG_DECISIONS": "0",
            "RISKGATE_LOG_LEVEL": "WARNING",
            "RISKGATE_PREFIX": keys.prefix,
        }
        for step in ("migrate", "sync-config"):
            subprocess.run(
                [sys.executable, "-m", "consumers.cli", step],
                env=env,
                check=True,
                capture_output=True,
            )
        baseline = used_memory(redis)
        kit.prepare(redis, keys, cfg, "1000000000000")
        where = ("--portfolio", keys.portfolio, "--redis-url", redis_url)
        procs = [
            _cli("gate", *where, "--consumer", "bench-mem", env=env),
            _cli("audit", *where, env=env),
            _cli("phase-monitor", *where, env=env),
            _executor(env, keys),
        ]
        try:
            samples = _load(redis, keys, cfg, plan, baseline=baseline, say=say)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
            _wipe(redis, keys)
    return {
        "machine": kit.machine(),
        "at": datetime.now(UTC).isoformat(),
        "plan": {"rate": plan.rate, "duration_s": plan.duration_s},
        "samples": samples,
    }


def _load(
    redis: Redis,
    keys: Keys,
    cfg: AssetsConfig,
    plan: MemoryPlan,
    *,
    baseline: int,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Publish ``rate`` fresh intents a second for ``duration_s``, sampling memory."""
    templates = {s: json.loads(p) for s, p in zip(cfg.assets, _templates(cfg), strict=True)}
    symbols = list(templates)
    samples: list[dict[str, Any]] = []
    start = time.monotonic()
    next_sample = start + plan.sample_every_s
    next_mark = start + MARK_EVERY_S
    sent = 0
    while (elapsed := time.monotonic() - start) < plan.duration_s:
        due = int(elapsed * plan.rate) + 1
        if due > sent:
            now = datetime.now(UTC).isoformat()
            pipe = redis.pipeline(transaction=False)
            for i in range(sent, due):
                body = dict(templates[symbols[(i // AGENTS) % len(symbols)]])
                body |= {"intent_id": f"m-{i}", "agent_id": f"a{i % AGENTS}", "created_at": now}
                pipe.xadd(keys.intents, {DATA: json.dumps(body)})
            pipe.execute()
            sent = due
        if time.monotonic() >= next_mark:  # a price feed: openings need a recent mark
            next_mark += MARK_EVERY_S
            _mark(redis, keys, cfg)
        if time.monotonic() >= next_sample:
            next_sample += plan.sample_every_s
            row = _sample(redis, keys, baseline, elapsed, sent)
            samples.append(row)
            say(_line(row))
        time.sleep(0.002)
    return samples


def _wipe(redis: Redis, keys: Keys) -> None:
    """Every key of the portfolio, a thousand per round trip (a million markers)."""
    batch: list[bytes] = []
    for key in redis.scan_iter(match=keys.base + "*", count=10_000):
        batch.append(key)
        if len(batch) >= 1000:
            redis.unlink(*batch)
            batch = []
    if batch:
        redis.unlink(*batch)


def _mark(redis: Redis, keys: Keys, cfg: AssetsConfig) -> None:
    mark = {
        "type": "mark",
        "event_id": f"bench-mark-{uuid.uuid4().hex}",
        "prices": {sym: str(a.reference_price) for sym, a in cfg.assets.items()},
        "at": datetime.fromtimestamp(int(redis.time()[0]), UTC).isoformat(),
    }
    redis.xadd(keys.events, {DATA: json.dumps(mark)})


def _templates(cfg: AssetsConfig) -> list[bytes]:
    return [kit.intents(cfg, 1, [s], "t")[0] for s in cfg.assets]


def _sample(redis: Redis, keys: Keys, baseline: int, elapsed: float, sent: int) -> dict[str, Any]:
    mem = portfolio_memory(redis, keys)
    return {
        "elapsed_s": round(elapsed),
        "sent": sent,
        "used_memory_delta": used_memory(redis) - baseline,
        **mem,
    }


def _line(r: dict[str, Any]) -> str:
    mb = 1024 * 1024
    parts = [f"{r['elapsed_s']:>5} s  sent {r['sent']:>9,}"]
    parts.append(f"portfolio {r['total_bytes'] / mb:8.1f} MB")
    parts.append(f"used_memory +{r['used_memory_delta'] / mb:8.1f} MB")
    for k in ("decided", "applied", "handed", "decisions", "intents", "orders", "events"):
        parts.append(f"{k} {r[k]['n']:,} {r[k]['bytes'] / mb:.1f}MB")
    return "  ".join(parts)


def table(result: dict[str, Any]) -> str:
    """The last sample, by kind, and the per-item costs it implies."""
    last = result["samples"][-1]
    mb = 1024 * 1024
    lines = [
        f"memory at {result['plan']['rate']:,} intents/s after {last['elapsed_s']} s "
        f"({last['sent']:,} sent): portfolio {last['total_bytes'] / mb:.1f} MB "
        f"(MEMORY USAGE), server used_memory +{last['used_memory_delta'] / mb:.1f} MB"
    ]
    for name, v in last.items():
        if isinstance(v, dict) and v["n"]:
            per = v["bytes"] / v["n"]
            lines.append(f"  {name:<11} {v['n']:>10,} x {per:8.0f} B = {v['bytes'] / mb:8.1f} MB")
    return "\n".join(lines)


if __name__ == "__main__":  # the executor-like consumer, in its own process
    run_executor(sys.argv[1])
