"""``riskgate bench --cluster``: aggregate throughput on a Redis Cluster, and the Redis
server time one decision costs, so that an N-shard deployment can be sized on paper.

Each cell runs ``processes`` gate processes, every one serving all ``portfolios``
(ownership by lease spreads them), on a cluster whose portfolios lie on every primary.
The intents are queued first, then counted from the first decision to the last.
``server_us_per_intent`` is the sum of ``INFO commandstats`` usec over the primaries,
reset before the cell, divided by the intents decided: it includes the agent's XADD
and every command the gate, its housekeeping and the bench's polling ran, so it is an
upper bound of what one intent costs the cluster.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis import Redis
from redis.cluster import RedisCluster

from consumers.bench import kit
from consumers.bus.keys import GROUP_GATE, Keys
from consumers.servers.local_cluster import LocalCluster
from schemas.config import AssetsConfig

#: what a shard may spend on riskgate before the projection adds another (headroom for
#: replication, failover catch-up and bursts)
SHARD_BUDGET = 0.5
TARGETS = (10_000, 100_000, 1_000_000)  # intents/s the README projects


@dataclass(frozen=True, slots=True)
class ClusterPlan:
    intents: int  # per cell, over all portfolios
    processes: tuple[int, ...]
    portfolios: tuple[int, ...]
    batch: int = 256

    @classmethod
    def make(cls, quick: bool) -> ClusterPlan:
        if quick:
            return cls(3000, (1, 2), (1, 8))
        return cls(24000, (1, 2, 4), (1, 8, 64))


class ClusterBench:
    def __init__(
        self,
        base: AssetsConfig,
        plan: ClusterPlan,
        say: Callable[[str], None],
        url: str | None = None,
    ) -> None:
        self.base = base
        self.plan = plan
        self.say = say
        self.url = url  # a cluster of the operator's; None: start a local one

    def run(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "machine": kit.machine(),
            "plan": asdict(self.plan),
            "at": datetime.now(UTC).isoformat(),
        }
        with self._cluster() as url:
            client = RedisCluster.from_url(url, socket_timeout=60)
            try:
                out["shards"] = len(_primaries(client))
                cells = []
                for portfolios in self.plan.portfolios:
                    for processes in self.plan.processes:
                        self.say(f"cluster: {processes} process(es), {portfolios} portfolio(s) ...")
                        cells.append(self._cell(client, url, processes, portfolios))
                out["cells"] = cells
            finally:
                client.close()
        out["projection"] = project(out["cells"])
        return out

    @contextmanager
    def _cluster(self) -> Iterator[str]:
        if self.url is not None:
            yield self.url
            return
        with kit.temp_dir() as tmp, LocalCluster(tmp, masters=3, replicas=0) as cluster:
            yield cluster.url

    def _cell(self, client: RedisCluster, url: str, processes: int, count: int) -> dict[str, Any]:
        tag = uuid.uuid4().hex[:6]
        portfolios = [Keys(f"benchc-{tag}-{i}") for i in range(count)]
        for keys in portfolios:
            kit.prepare(as_redis(client), keys, self.base, "1000000000000")
        procs = self._start(url, portfolios, processes)
        try:
            self._settled(client, portfolios)
            per = max(1, self.plan.intents // count)
            crypto = ["BTC/USDT", "ETH/USDT"]
            for node in _primaries(client):
                node.config_resetstat()
            for keys in portfolios:
                payloads = kit.intents(self.base, per, crypto, keys.portfolio)
                kit.publish(as_redis(client), keys.intents, payloads)
            span = _decided_span(client, portfolios, per, timeout=900)
            usec = sum(_usec(node) for node in _primaries(client))
        finally:
            _stop(procs)
            for keys in portfolios:
                kit.wipe(as_redis(client), keys)
        total = per * count
        return {
            "processes": processes,
            "portfolios": count,
            "intents": total,
            "intents_per_s": round(total / span),
            "server_us_per_intent": round(usec / total, 1),
        }

    def _start(self, url: str, portfolios: list[Keys], n: int) -> list[subprocess.Popen[bytes]]:
        args: list[str] = []
        for keys in portfolios:
            args += ["--portfolio", keys.portfolio]
        env = {
            "RISKGATE_LOG_DECISIONS": "0",
            "RISKGATE_LOG_LEVEL": "WARNING",
        }
        return [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "consumers.cli",
                    "gate",
                    *args,
                    "--redis-url",
                    url,
                    "--consumer",
                    f"benchc-{i}",
                    "--batch",
                    str(self.plan.batch),
                    "--block-ms",
                    "100",
                ],
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(n)
        ]

    def _settled(self, client: RedisCluster, portfolios: list[Keys], timeout: float = 120) -> None:
        """Every portfolio owned and its queued events applied."""
        deadline = time.monotonic() + timeout
        pending = list(portfolios)
        while pending:
            pending = [k for k in pending if not _applied(client, k)]
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} portfolio(s) not served in time")
            time.sleep(0.05)


def as_redis(client: RedisCluster) -> Redis:
    """The kit's helpers take a ``Redis``; the commands they use are the same on a cluster
    client (one portfolio's keys share a slot)."""
    return client  # type: ignore[return-value]


def _primaries(client: RedisCluster) -> list[Redis]:
    return [client.get_redis_connection(n) for n in client.get_primaries()]  # type: ignore[no-untyped-call]


def _usec(node: Redis) -> int:
    stats: Any = node.info("commandstats")
    return sum(int(v.get("usec", 0)) for v in stats.values() if isinstance(v, dict))


def _applied(client: RedisCluster, keys: Keys) -> bool:
    try:
        groups = client.xinfo_groups(keys.events)
    except Exception:
        return False
    for g in groups:
        if g["name"] in (GROUP_GATE, GROUP_GATE.encode()):
            return bool(g["pending"] == 0 and (g.get("lag") or 0) == 0) and bool(
                g["last-delivered-id"] not in (b"0-0", "0-0")
            )
    return False


def _decided_span(client: RedisCluster, portfolios: list[Keys], per: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    waiting = list(portfolios)
    while waiting:
        waiting = [k for k in waiting if client.xlen(k.decisions) < per]
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} portfolio(s) not decided in {timeout}s")
        time.sleep(0.05)
    firsts: list[Any] = [client.xrange(k.decisions, count=1) for k in portfolios]
    lasts: list[Any] = [client.xrevrange(k.decisions, count=1) for k in portfolios]
    first = min(kit.id_ms(rows[0][0]) for rows in firsts)
    last = max(kit.id_ms(rows[0][0]) for rows in lasts)
    return max(0.001, (last - first) / 1000)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def project(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Shards and gate processes for each target rate, from the measured cells.

    A shard is one single-threaded Redis primary: at ``SHARD_BUDGET`` of its time it
    serves ``SHARD_BUDGET * 1e6 / server_us_per_intent`` intents/s. A process serves
    what the best many-portfolio cell measured per process. Both are straight lines:
    the projection holds while portfolios outnumber processes and shards (one
    portfolio is one slot, decided by one owner)."""
    many = [c for c in cells if c["portfolios"] == max(x["portfolios"] for x in cells)]
    us = max(c["server_us_per_intent"] for c in many)
    per_process = max(c["intents_per_s"] / c["processes"] for c in many)
    per_shard = SHARD_BUDGET * 1e6 / us
    return {
        "server_us_per_intent": us,
        "per_shard_per_s": round(per_shard),
        "per_process_per_s": round(per_process),
        "targets": {
            str(t): {
                "shards": max(3, math.ceil(t / per_shard)),
                "processes": math.ceil(t / per_process),
                "portfolios_at_least": math.ceil(t / per_process),
            }
            for t in TARGETS
        },
    }


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"machine: {m['cpu']} x{m['cores']}, Python {m['python']}; cluster of {r['shards']} shards",
        "processes  portfolios   intents/s   server us/intent",
    ]
    for c in r["cells"]:
        lines.append(
            f"{c['processes']:>9}  {c['portfolios']:>10}  {c['intents_per_s']:>10}"
            f"   {c['server_us_per_intent']:>16}"
        )
    p = r["projection"]
    lines.append(
        f"projection: {p['server_us_per_intent']} us of Redis per intent -> "
        f"{p['per_shard_per_s']}/s per shard at {int(SHARD_BUDGET * 100)} % of its time; "
        f"{p['per_process_per_s']}/s per gate process"
    )
    for target, need in p["targets"].items():
        lines.append(
            f"  {int(target):>9} intents/s: {need['shards']} shards, {need['processes']} "
            f"gate processes (and at least as many portfolios)"
        )
    return "\n".join(lines)


def write(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")
