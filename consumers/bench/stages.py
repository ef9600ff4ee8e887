"""Where one gate worker's time goes, and what a big portfolio costs it.

One worker runs in this process (the same code ``riskgate gate`` runs, decision logs
off) over intents queued beforehand, and its loop's stage clock
(``consumers/gate_worker/stages.py``) says where the time went: read, parse, decide,
encode, send, commit (waiting for the commit's reply) and report, per intent, plus what
no stage covers (``other``: the loop, housekeeping). It runs three times:

- pipelined commits on (the default) and off, on an empty portfolio;
- pipelined, on a portfolio holding ``reservations`` live reservations and
  ``positions`` open positions: the state-size row, as a ratio of the empty one.

The live reservations are written into the state hash before the worker starts (as
commits would have left them: small, on the held symbols, expiring days later), so the
worker loads them once and then decides on top of them.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from redis import Redis

from consumers.bench import kit
from consumers.bus import keys as k
from consumers.bus.keys import Keys
from consumers.gate_worker.handle import collector_tuned
from consumers.gate_worker.settings import GateSettings
from consumers.gate_worker.stages import STAGES
from consumers.gate_worker.worker import GateWorker
from consumers.state.codec import encode_reservation
from gate.portfolio import Reservation
from schemas.config import AssetsConfig
from schemas.messages import Side

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
QUIET = structlog.wrap_logger(
    None, wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL)
)


def fill_reservations(
    redis: Redis, keys: Keys, cfg: AssetsConfig, symbols: list[str], n: int
) -> None:
    """``n`` live reservations on ``symbols`` written into the state hash."""
    expires = datetime.now(UTC) + timedelta(days=3)
    fields: dict[Any, Any] = {}
    for i in range(n):
        symbol = symbols[i % len(symbols)]
        a = cfg.assets[symbol]
        res = Reservation(
            f"live-{i}",
            f"holder-{i % 500}",
            symbol,
            a.asset_class.value,
            a.trading.quote_currency,
            Side.BUY,
            a.risk.min_size,
            a.reference_price,
            None,
            False,
            expires + timedelta(seconds=i),
        )
        fields[k.P_RESERVATION + res.intent_id] = encode_reservation(res)
        if len(fields) >= 5000:
            redis.hset(keys.state, mapping=fields)
            fields = {}
    if fields:
        redis.hset(keys.state, mapping=fields)


def one_worker(
    redis: Redis,
    base: AssetsConfig,
    intents: int,
    *,
    pipeline: int = 4,
    batch: int = 256,
    reservations: int = 0,
    positions: int = 0,
) -> dict[str, Any]:
    """One in-process worker over ``intents`` queued intents: intents/s, CPU and each
    stage's µs per intent."""
    cfg = kit.synthetic_config(base, positions + 30) if positions else base
    with kit.scratch_portfolio(redis, "stages") as keys:
        kit.prepare(redis, keys, cfg, "1000000000000")
        held = [s for s in cfg.assets if s not in SYMBOLS][:positions]
        if held:
            kit.publish(redis, keys.events, kit.fills_for_positions(cfg, held))
        if reservations:
            fill_reservations(redis, keys, cfg, held or SYMBOLS, reservations)
        settings = GateSettings(
            consumer="bench-stages", batch=batch, pipeline=pipeline, log_decisions=False
        )
        worker = GateWorker(redis, keys, cfg, settings)
        worker.log = QUIET  # the bench's unknown fills (positions opened outside) are expected
        started = time.perf_counter()
        while not kit.lag_zero(redis, keys, keys.events):  # funded, marked, positions open
            worker.turn(0)
            if time.perf_counter() - started > 300:
                raise RuntimeError("the worker did not apply the bench's events in time")
        loaded_s = time.perf_counter() - started
        gc.collect()
        kit.publish(redis, keys.intents, kit.intents(cfg, intents, SYMBOLS, "stages"))
        worker.stages.reset()
        worker.stats.clear()
        with collector_tuned():  # as in a gate process
            wall, cpu = time.perf_counter(), time.process_time()
            while worker.stats["decided"] < intents:
                worker.turn(0)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    per = {s: round(worker.stages.seconds.get(s, 0.0) / intents * 1e6, 1) for s in STAGES}
    per["other"] = round(max(0.0, wall / intents * 1e6 - sum(per.values())), 1)
    return {
        "per_s": round(intents / wall),
        "cpu_us": round(cpu / intents * 1e6, 1),
        "stages_us": per,
        "setup_s": round(loaded_s, 2),
        "statuses": {s: worker.stats[s] for s in ("approved", "resized", "rejected")},
    }


def run(
    redis: Redis,
    base: AssetsConfig,
    *,
    intents: int,
    reservations: int,
    positions: int,
    say: Callable[[str], None],
    repeats: int = 2,
) -> dict[str, Any]:
    """The three rows, interleaved ``repeats`` times, the best run of each kept (on a
    shared machine, the least disturbed); the state-size ratio compares like with like
    (pipelined both), by rate and by CPU per intent."""
    best: dict[str, dict[str, Any]] = {}
    for r in range(repeats):
        rows: tuple[tuple[str, dict[str, int]], ...] = (
            ("pipelined", {}),
            ("one_at_a_time", {"pipeline": 1}),
            ("state_size", {"reservations": reservations, "positions": positions}),
        )
        for name, kw in rows:
            say(f"one worker's stages: {name.replace('_', ' ')}, run {r + 1} of {repeats} ...")
            got = one_worker(redis, base, intents, **kw)
            if name not in best or got["per_s"] > best[name]["per_s"]:
                best[name] = got
    big, empty = best["state_size"], best["pipelined"]
    return {
        "pipelined": empty,
        "one_at_a_time": best["one_at_a_time"],
        "state_size": {
            "reservations": reservations,
            "positions": positions,
            **big,
            "ratio": round(big["per_s"] / empty["per_s"], 3),
            "cpu_ratio": round(empty["cpu_us"] / big["cpu_us"], 3),
        },
    }


def table(r: dict[str, Any]) -> list[str]:
    head = "  ".join(f"{s:>7}" for s in (*STAGES, "other"))
    lines = [f"one worker, µs per intent   {head}    cpu   intents/s"]
    rows = (
        ("pipelined", r["pipelined"]),
        ("one batch at a time", r["one_at_a_time"]),
        (
            f"{r['state_size']['reservations']} res. + {r['state_size']['positions']} pos.",
            r["state_size"],
        ),
    )
    for name, row in rows:
        cells = "  ".join(f"{row['stages_us'][s]:>7}" for s in (*STAGES, "other"))
        lines.append(f"  {name:<26}{cells}  {row['cpu_us']:>6}  {row['per_s']:>8}")
    s = r["state_size"]
    lines.append(
        f"state size: {s['reservations']} live reservations, {s['positions']} open positions "
        f"{s['per_s']} intents/s = {s['ratio']} x empty (by CPU per intent {s['cpu_ratio']})"
        "   (target >= 0.8)"
    )
    return lines
