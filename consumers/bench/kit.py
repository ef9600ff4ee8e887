"""Building blocks of ``riskgate bench``: loads, configs, worker processes, measurements."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import yaml
from redis import Redis

import gate
from consumers.bus.keys import DATA, GROUP_GATE, Keys
from consumers.bus.streams import ensure_group, group_lag, read_group
from consumers.state import control
from consumers.state.codec import encode_regime
from gate.money import floor_to_lot
from schemas.config import AssetsConfig
from schemas.messages import TradeIntent, parse_intent

D = Decimal


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def id_ms(msg_id: bytes | str) -> int:
    text = msg_id.decode() if isinstance(msg_id, bytes) else msg_id
    return int(text.split("-", 1)[0])


def wipe(redis: Redis, keys: Keys) -> None:
    for key in redis.scan_iter(match=keys.base + "*", count=1000):
        redis.delete(key)


# --- configs ------------------------------------------------------------------------------


def synthetic_config(base: AssetsConfig, total_assets: int) -> AssetsConfig:
    """``base`` plus synthetic crypto assets (``SYN0001/USDT`` ...) up to ``total_assets``."""
    data = base.model_dump(mode="json")
    template = data["assets"]["BTC/USDT"]
    extra = [f"SYN{i:04d}/USDT" for i in range(1, total_assets - len(base.assets) + 1)]
    for symbol in extra:
        data["assets"][symbol] = {**template, "name": f"Synthetic {symbol}"}
    data["phases"]["phase_0_crypto"]["assets"] += extra
    return AssetsConfig.model_validate(data)


def write_config(cfg: AssetsConfig, directory: Path) -> Path:
    path = directory / f"assets-{len(cfg.assets)}.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return path


def prepare(redis: Redis, keys: Keys, cfg: AssetsConfig, equity: str) -> None:
    """Enable every asset, set the flags its rules need, and fund the portfolio."""
    control.enable(redis, keys, cfg, list(cfg.phases), True)
    far = (datetime.now(UTC).date()).replace(year=datetime.now(UTC).year + 1)
    fields: dict[str, str] = {}
    for sym, asset in cfg.assets.items():
        if asset.special_rules.earnings_blackout_days is not None:
            fields[f"earnings:{sym}"] = far.isoformat()
        if asset.special_rules.avoid_sideways_market:
            fields[f"regime:{sym}"] = encode_regime("trending", control.redis_now(redis, keys))
    if fields:
        control.set_control(redis, keys, fields)
    event = {"type": "deposit", "event_id": f"bench-{uuid.uuid4().hex}", "amount": equity}
    redis.xadd(keys.events, {DATA: json.dumps(event)})
    # every asset marked at its reference price (where the bench's intents are priced)
    mark = {
        "type": "mark",
        "event_id": f"bench-mark-{uuid.uuid4().hex}",
        "prices": {sym: str(a.reference_price) for sym, a in cfg.assets.items()},
        "at": control.redis_now(redis, keys).isoformat(),
    }
    redis.xadd(keys.events, {DATA: json.dumps(mark)})


# --- loads --------------------------------------------------------------------------------


def intents(cfg: AssetsConfig, n: int, symbols: Sequence[str], tag: str) -> list[bytes]:
    """n small opening intents spread over ``symbols`` and over n/50 agents, $50 to $549
    each: no two of an agent's alike, so none is a duplicate order (a cheap rejection)."""
    now = datetime.now(UTC)
    agents = max(1, n // 50)
    out = []
    for i in range(n):
        sym = symbols[i % len(symbols)]
        asset = cfg.assets[sym]
        price = asset.reference_price
        fx = cfg.risk_management.fx_rates.get(asset.trading.quote_currency, D(1))
        notional = D(50 + i % 500)
        qty = max(asset.risk.min_size, floor_to_lot(notional / (price * fx), asset.risk.lot_size))
        intent = TradeIntent.model_validate(
            {
                "intent_id": f"{tag}-{i}",
                "agent_id": f"bench-{i % agents}",
                "symbol": sym,
                "side": "buy" if i % 3 else "sell",
                "quantity": qty,
                "price": price,
                "created_at": now,
            }
        )
        out.append(intent.model_dump_json(exclude_none=True).encode())
    return out


def publish(redis: Redis, stream: str, payloads: Sequence[bytes]) -> list[bytes]:
    ids: list[bytes] = []
    for start in range(0, len(payloads), 2000):
        pipe = redis.pipeline(transaction=False)
        for p in payloads[start : start + 2000]:
            pipe.xadd(stream, {DATA: p})
        ids += pipe.execute()
    return ids


def fills_for_positions(cfg: AssetsConfig, symbols: Sequence[str]) -> list[bytes]:
    """One fill per symbol (no approval needed: fills are the executor's truth), then
    the operator's resume that clears the unknown_fill halt they set."""
    now = datetime.now(UTC).isoformat()
    resume = {
        "type": "resume",
        "event_id": f"pos-resume-{uuid.uuid4().hex}",
        "operator": "bench",
        "reason": "bench positions opened outside the gate",
    }
    return [
        json.dumps(
            {
                "type": "fill",
                "event_id": f"pos-{sym}",
                "intent_id": f"pos-{i}",
                "symbol": sym,
                "side": "buy",
                "quantity": str(cfg.assets[sym].risk.min_size),
                "price": str(cfg.assets[sym].reference_price),
                "at": now,
            }
        ).encode()
        for i, sym in enumerate(symbols)
    ] + [json.dumps(resume).encode()]


def raw_bus(redis: Redis, keys: Keys, payloads: Sequence[bytes], batch: int) -> float:
    """One process: XREADGROUP COUNT batch -> parse each intent -> XADD -> XACK. Per second."""
    src, dst = keys.base + "raw-in", keys.base + "raw-out"
    publish(redis, src, payloads)
    ensure_group(redis, src, "raw")
    done = 0
    started = time.perf_counter()
    while done < len(payloads):
        entries = read_group(redis, "raw", "raw-1", (src,), count=batch, block_ms=None)
        if not entries:
            break
        pipe = redis.pipeline(transaction=False)
        for e in entries:
            parse_intent(e.raw or b"")
            pipe.xadd(dst, {DATA: e.raw or b""})
        pipe.xack(src, "raw", *[e.msg_id for e in entries])
        pipe.execute()
        done += len(entries)
    return done / (time.perf_counter() - started)


def decided_span(redis: Redis, keys: Keys | Sequence[Keys], n: int, timeout: float) -> float:
    """Wait until n decisions exist (over every portfolio given); seconds from the first
    decision to the last."""
    each = [keys] if isinstance(keys, Keys) else list(keys)
    deadline = time.monotonic() + timeout
    while (done := sum(int(redis.xlen(k.decisions)) for k in each)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done}/{n} decided in {timeout}s")
        time.sleep(0.05)
    firsts: Any = [redis.xrange(k.decisions, count=1) for k in each]
    lasts: Any = [redis.xrevrange(k.decisions, count=1) for k in each]
    first = min(id_ms(f[0][0]) for f in firsts if f)
    last = max(id_ms(x[0][0]) for x in lasts if x)
    return max(0.001, (last - first) / 1000)


def lag_zero(redis: Redis, keys: Keys, stream: str) -> bool:
    groups = {g["name"]: g for g in redis.xinfo_groups(stream)}
    g = groups.get(GROUP_GATE.encode())
    return g is not None and g["pending"] == 0 and group_lag(redis, stream, g) == 0


# --- worker processes ---------------------------------------------------------------------


class WorkerPool:
    """Gate worker processes for one benchmark run (decision logs off)."""

    def __init__(
        self,
        redis_url: str,
        keys: Keys,
        config_path: Path | None,
        batch: int,
        more: Sequence[Keys] = (),
    ) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.more = list(more)  # further portfolios each process serves
        self.config_path = config_path
        self.batch = batch
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = Path(tempfile.mkdtemp(prefix="riskgate-bench-logs-"))
        self.files: list[IO[bytes]] = []

    def start(self, n: int) -> None:
        env = {
            **os.environ,
            "RISKGATE_LOG_DECISIONS": "0",  # lifecycle lines only: "gate started", leases
            "RISKGATE_LOG_LEVEL": "INFO",
            "RISKGATE_LOG_FORMAT": "json",
            "RISKGATE_PREFIX": self.keys.prefix,
        }
        cmd = [sys.executable, "-m", "consumers.cli"]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        for i in range(n):
            self.procs.append(
                subprocess.Popen(
                    [
                        *cmd,
                        "gate",
                        "--portfolio",
                        self.keys.portfolio,
                        *[f for k in self.more for f in ("--portfolio", k.portfolio)],
                        "--redis-url",
                        self.redis_url,
                        "--consumer",
                        f"bench-{i}",
                        "--batch",
                        str(self.batch),
                        "--block-ms",
                        "100",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=self._log(),
                )
            )

    def _log(self) -> IO[bytes]:
        self.logs.mkdir(exist_ok=True)
        f = (self.logs / f"w{len(self.files)}.log").open("wb")
        self.files.append(f)
        return f

    def wait_started(self, timeout: float = 120) -> None:
        """Until every process is in its loop (standbys included): their start-up (imports,
        ~1 CPU-second each) must not be measured as the owner's throughput."""
        deadline = time.monotonic() + timeout
        while sum("gate started" in p.read_text() for p in self.logs.glob("*.log")) < len(
            self.procs
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("gate processes did not start in time")
            time.sleep(0.05)

    def peak_rss_mb(self) -> list[float]:
        out = []
        for p in self.procs:
            try:
                status = Path(f"/proc/{p.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    out.append(round(int(line.split()[1]) / 1024, 1))
        return out

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self.files:
            f.close()
        self.files.clear()
        self.procs.clear()
        shutil.rmtree(self.logs, ignore_errors=True)


@contextmanager
def scratch_portfolio(redis: Redis, tag: str) -> Iterator[Keys]:
    keys = Keys(f"bench-{tag}-{uuid.uuid4().hex[:8]}")
    try:
        yield keys
    finally:
        wipe(redis, keys)


@contextmanager
def temp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="riskgate-bench-") as d:
        yield Path(d)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "load": load,
        "compiled": gate.COMPILED,  # the decision's modules built by `riskgate compile`
    }
