"""``riskgate bench``: the gate's speed, measured against the bus's own limit.

Every figure comes from one run on one machine: ``raw_bus_per_s`` is what one Python
process moves through Redis doing the least a consumer can (read, parse with the same
schema, XADD, XACK), so ``ratio_1`` says how much of that the gate keeps. Gate processes
own a portfolio by lease (one decides, the rest stand by), so ``ratio_4_on_1`` (4
processes on one portfolio / 1) says what standbys cost the owner (the 1, 2 and 4-process
runs are interleaved, best of ``repeats``); ``portfolios_per_s`` is one process deciding
several portfolios at once.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis import Redis

from consumers.bench import kit, pure, stages
from consumers.bus.keys import DATA, Keys
from consumers.bus.streams import ensure_group
from schemas.config import AssetsConfig
from schemas.messages import parse_json


@dataclass(frozen=True, slots=True)
class Plan:
    intents: int  # per throughput run
    raw: int
    latency_s: float
    rates: tuple[int, ...]
    workers: tuple[int, ...]
    positions: tuple[int, ...]
    assets: tuple[int, ...]
    batch: int = 256
    portfolios: int = 8  # one process serving this many, the intents spread over them
    repeats: int = 2  # the 1/2/4-process runs, interleaved; the best of each is kept
    reservations: int = 100_000  # the state-size row: live reservations (and positions[-1])

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(3000, 15000, 2.0, (1000, 5000), (1, 2, 4), (10, 100, 1000), (22, 200, 2000))
        return cls(40000, 100000, 10.0, (1000, 5000), (1, 2, 4), (10, 100, 1000), (22, 200, 2000))


class Bench:
    def __init__(
        self,
        redis: Redis,
        redis_url: str,
        base: AssetsConfig,
        plan: Plan,
        say: Callable[[str], None],
    ) -> None:
        self.redis = redis
        self.redis_url = redis_url
        self.base = base
        self.plan = plan
        self.say = say
        self.rss: list[float] = []

    # -- scenarios -----------------------------------------------------------------------

    def raw_bus(self) -> float:
        with kit.scratch_portfolio(self.redis, "raw") as keys:
            payloads = kit.intents(self.base, self.plan.raw, ["BTC/USDT", "ETH/USDT"], "raw")
            return kit.raw_bus(self.redis, keys, payloads, self.plan.batch)

    def throughput(
        self, workers: int, cfg: AssetsConfig, symbols: list[str], positions: int = 0
    ) -> float:
        """Intents decided per second by ``workers`` processes on a prefilled stream."""
        with kit.temp_dir() as tmp, kit.scratch_portfolio(self.redis, "tp") as keys:
            path = kit.write_config(cfg, tmp) if cfg is not self.base else None
            kit.prepare(self.redis, keys, cfg, "1000000000000")
            pool = kit.WorkerPool(self.redis_url, keys, path, self.plan.batch)
            try:
                if positions:
                    held = [s for s in cfg.assets if s not in symbols][:positions]
                    kit.publish(self.redis, keys.events, kit.fills_for_positions(cfg, held))
                pool.start(workers)
                pool.wait_started()
                self._settled(keys)
                payloads = kit.intents(cfg, self.plan.intents, symbols, f"w{workers}")
                kit.publish(self.redis, keys.intents, payloads)
                span = kit.decided_span(self.redis, keys, len(payloads), timeout=600)
                self.rss += pool.peak_rss_mb()
            finally:
                pool.stop()
            return len(payloads) / span

    def several(self, portfolios: int, symbols: list[str]) -> float:
        """Intents decided per second by one process serving ``portfolios`` portfolios,
        the same number of intents as a throughput run spread evenly over them."""
        with contextlib.ExitStack() as stack:
            each = [
                stack.enter_context(kit.scratch_portfolio(self.redis, f"mp{i}"))
                for i in range(portfolios)
            ]
            for keys in each:
                kit.prepare(self.redis, keys, self.base, "1000000000000")
            pool = kit.WorkerPool(self.redis_url, each[0], None, self.plan.batch, each[1:])
            try:
                pool.start(1)
                pool.wait_started()
                for keys in each:
                    self._settled(keys)
                n = self.plan.intents // portfolios
                for i, keys in enumerate(each):
                    payloads = kit.intents(self.base, n, symbols, f"mp{i}")
                    kit.publish(self.redis, keys.intents, payloads)
                span = kit.decided_span(self.redis, each, n * portfolios, timeout=600)
                self.rss += pool.peak_rss_mb()
            finally:
                pool.stop()
            return n * portfolios / span

    def _settled(self, keys: Keys, timeout: float = 60) -> None:
        """Wait for the workers to start and apply every queued event."""
        deadline = time.monotonic() + timeout
        ensure_group(self.redis, keys.events, "gate")
        while not kit.lag_zero(self.redis, keys, keys.events):
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start in time")
            time.sleep(0.05)

    def latency(self, rate: int) -> dict[str, float]:
        """Open loop at ``rate`` intents/s for latency_s; ms from intent id to decision id."""
        with kit.scratch_portfolio(self.redis, "lat") as keys:
            kit.prepare(self.redis, keys, self.base, "1000000000000")
            pool = kit.WorkerPool(self.redis_url, keys, None, self.plan.batch)
            try:
                pool.start(1)
                self._settled(keys)
                n = int(rate * self.plan.latency_s)
                payloads = kit.intents(self.base, n, ["BTC/USDT", "ETH/USDT"], f"lat{rate}")
                sent = self._paced(keys, payloads, rate)
                kit.decided_span(self.redis, keys, n, timeout=120)
                self.rss += pool.peak_rss_mb()
            finally:
                pool.stop()
            lat: list[float] = []
            rows: Any = self.redis.xrange(keys.decisions)
            for msg_id, fields in rows:
                d = parse_json(fields[DATA] if fields else b"{}")
                lat.append(kit.id_ms(msg_id) - sent[d["intent_id"]])
        return {
            "p50": kit.percentile(lat, 50),
            "p99": kit.percentile(lat, 99),
            "p999": kit.percentile(lat, 99.9),
            "max": max(lat),
            "n": len(lat),
        }

    def _paced(self, keys: Keys, payloads: list[bytes], rate: int) -> dict[str, int]:
        """XADD on a schedule (1 ms ticks); returns intent_id -> its stream id's ms."""
        sent: dict[str, int] = {}
        start = time.perf_counter()
        i = 0
        while i < len(payloads):
            due = min(len(payloads), int((time.perf_counter() - start) * rate) + 1)
            if due > i:
                pipe = self.redis.pipeline(transaction=False)
                for p in payloads[i:due]:
                    pipe.xadd(keys.intents, {DATA: p})
                for p, msg_id in zip(payloads[i:due], pipe.execute(), strict=True):
                    sent[json.loads(p)["intent_id"]] = kit.id_ms(msg_id)
                i = due
            time.sleep(0.001)
        return sent

    # -- the whole run -------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        p = self.plan
        out: dict[str, Any] = {
            "machine": kit.machine(),
            "plan": asdict(p),
            "at": datetime.now(UTC).isoformat(),
        }
        self.say("raw bus ...")
        out["raw_bus_per_s"] = round(self.raw_bus())
        crypto = ["BTC/USDT", "ETH/USDT"]
        # interleaved and best of `repeats`: on a shared machine the least disturbed run
        # of each, so that ratio_4_on_1 compares like with like
        best: dict[int, float] = {}
        for r in range(p.repeats):
            for w in p.workers:
                self.say(f"gate, {w} worker(s), run {r + 1} of {p.repeats} ...")
                best[w] = max(best.get(w, 0.0), self.throughput(w, self.base, crypto))
        out["gate_per_s"] = {str(w): round(best[w]) for w in p.workers}
        out["ratio_1"] = round(out["gate_per_s"]["1"] / out["raw_bus_per_s"], 3)
        if "1" in out["gate_per_s"] and "4" in out["gate_per_s"]:
            out["ratio_4_on_1"] = round(out["gate_per_s"]["4"] / out["gate_per_s"]["1"], 3)
        self.say(f"one process, {p.portfolios} portfolios ...")
        out["portfolios_per_s"] = {str(p.portfolios): round(self.several(p.portfolios, crypto))}
        out["latency_ms"] = {}
        for rate in p.rates:
            self.say(f"latency at {rate}/s ...")
            out["latency_ms"][str(rate)] = self.latency(rate)
        big = kit.synthetic_config(self.base, max(p.assets[-1], p.positions[-1] + 10))
        out["positions_scaling"] = {}
        for n in p.positions:
            self.say(f"{n} open positions ...")
            out["positions_scaling"][str(n)] = round(self.throughput(1, big, crypto, n))
        out["assets_scaling"] = {}
        for n in p.assets:
            self.say(f"{n} configured assets ...")
            cfg = self.base if n == len(self.base.assets) else kit.synthetic_config(self.base, n)
            out["assets_scaling"][str(n)] = round(self.throughput(1, cfg, list(cfg.assets)))
        out["peak_rss_mb"] = max(self.rss) if self.rss else None
        self.say("the pure decision (decide_batch alone) ...")
        out["pure_us"] = pure.measure_pure(self.plan.intents < 10_000)
        out["one_worker"] = stages.run(
            self.redis,
            self.base,
            intents=p.intents,
            reservations=p.reservations,
            positions=p.positions[-1],
            say=self.say,
        )
        return out


def table(r: dict[str, Any]) -> str:
    lines = [
        f"machine: {r['machine']['cpu']} x{r['machine']['cores']}, Python {r['machine']['python']}"
        f", load average at the start {r['machine'].get('load')} (other work shares the CPUs)"
        f", the decision {'compiled' if r['machine'].get('compiled') else 'pure Python'}",
        f"raw bus                 {r['raw_bus_per_s']:>8} msg/s",
    ]
    for w, v in r["gate_per_s"].items():
        lines.append(f"gate, {w} worker(s)       {v:>8} intents/s")
    lines.append(f"ratio_1 (gate 1 / raw)  {r['ratio_1']:>8}")
    if "ratio_4_on_1" in r:
        lines.append(f"ratio_4_on_1 (4 / 1)    {r['ratio_4_on_1']:>8}   (target >= 0.9)")
    for n, v in r.get("portfolios_per_s", {}).items():
        lines.append(f"1 process, {n} portfolios {v:>7} intents/s")
    for rate, lat in r["latency_ms"].items():
        lines.append(
            f"latency at {rate:>5}/s     p50 {lat['p50']} ms  p99 {lat['p99']} ms  "
            f"p999 {lat['p999']} ms  max {lat['max']} ms"
        )
    for n, v in r["positions_scaling"].items():
        lines.append(f"{n:>5} open positions     {v:>8} intents/s")
    for n, v in r["assets_scaling"].items():
        lines.append(f"{n:>5} configured assets  {v:>8} intents/s")
    lines.append(f"peak RSS per worker     {r['peak_rss_mb']} MB")
    if "pure_us" in r:
        p = r["pure_us"]
        lines.append(
            f"pure decision, µs per intent: approved {p['approved_us']}, resized "
            f"{p['resized_us']}, rejected by a limit {p['rejected_limit_us']}, by a gate "
            f"{p['rejected_gate_us']}; approved with 20,000 reservations {p['approved_20k_us']}"
            "   (target <= 15)"
        )
    if "one_worker" in r:
        lines += stages.table(r["one_worker"])
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")
