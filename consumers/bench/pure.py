"""The pure decision's cost: ``gate.decide.decide_batch`` alone, µs per intent.

No parsing, no JSON, no Redis: intents already parsed, a snapshot already loaded and its
exposure handed in as the worker hands it, batches of the worker's default size, every
asset and class enabled so every rule runs. Scenarios (one batch, decided again and
again against the same snapshot; the median of many repetitions):

- ``approved``: small openings over all 22 assets and many agents, approved as asked;
- ``resized``: the same, each asking twice its class's max order value;
- ``rejected_limit``: the same intents against a book already past its correlated
  exposure cap: every limit computed, reported, and the intent refused;
- ``rejected_gate``: stops on the wrong side: refused by an intent gate;
- ``approved_20k``: ``approved`` against a book holding 20,000 live reservations (and the
  rate counts and duplicate memory of the 800 agents that made them).

``worker_path`` (``--callgrind`` only) is what one worker's CPU does for an intent apart
from talking to Redis: the entries of ``approved`` as read from the stream, parsed and
digested (``intake``), then planned (``Planner.plan``: decided, and the decision, order
and state changes encoded), batch after batch on the snapshot the last one left.

``drift`` decides approved batches one after another, each on the snapshot and exposure
the previous one returned (as the worker does), until 20,000 reservations are live, and
compares the first batches' cost with the last ones'.

Run ``python -m consumers.bench.pure [--quick] [--callgrind] [--json PATH]``;
``measure_pure(quick)`` returns the same figures as a dict. Wall-clock figures on a
shared machine swing; ``--callgrind`` also counts instructions per intent under
``valgrind --tool=callgrind``, collected only inside the decisions (same hash seed:
repeatable whatever else the machine is doing).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from consumers.bench import kit
from consumers.bus.entries import Entry
from consumers.gate_worker.batch import Planner
from consumers.gate_worker.handle import collector_tuned
from consumers.gate_worker.intake import sort_entries
from consumers.gate_worker.settings import GateSettings
from consumers.state.store import Loaded
from gate.assets import default_config_path
from gate.decide import decide_batch
from gate.exposure import Exposure
from gate.money import floor_to_lot
from gate.portfolio import (
    Account,
    Correlations,
    Flags,
    Position,
    Quote,
    RateCount,
    Regime,
    Reservation,
    Snapshot,
    equity,
)
from schemas.config import AssetClass, AssetsConfig, load_config
from schemas.messages import Side, TradeIntent

D = Decimal
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BATCH: int = next(f.default for f in fields(GateSettings) if f.name == "batch")  # type: ignore[assignment]
AGENTS = 800  # 20,000 intents in one minute: 25 each, under the 120 rate limit
LIVE = 20_000  # reservations in approved_20k and at the end of the drift run
SCENARIOS = ("approved", "resized", "rejected_limit", "rejected_gate", "approved_20k")


def config() -> AssetsConfig:
    cfg = load_config(default_config_path())
    return cfg.with_enabled(dict.fromkeys(cfg.assets, True), dict.fromkeys(AssetClass, True))


def _fx(cfg: AssetsConfig, currency: str) -> Decimal:
    rm = cfg.risk_management
    return D(1) if currency == rm.account_currency else rm.fx_rates[currency]


def intents(
    cfg: AssetsConfig, n: int, *, start: int = 0, value: int = 1000, tag: str = "i"
) -> list[TradeIntent]:
    """``n`` openings of about ``value`` (account currency) each, over every asset and
    ``AGENTS`` agents; no (agent, symbol, side, quantity) repeats."""
    symbols = sorted(cfg.assets)
    pairs = math.lcm(AGENTS, len(symbols))  # intents before an (agent, symbol) repeats
    out = []
    for i in range(start, start + n):
        sym = symbols[i % len(symbols)]
        asset = cfg.assets[sym]
        price = asset.reference_price
        lot = asset.risk.lot_size
        fx = _fx(cfg, asset.trading.quote_currency)
        unit = max(asset.risk.min_size, floor_to_lot(D(value) / (price * fx), lot))
        qty = unit + lot * (i // pairs)
        side = Side.BUY if i % 3 else Side.SELL
        out.append(
            TradeIntent.model_validate(
                {
                    "intent_id": f"{tag}-{i}",
                    "agent_id": f"agent-{i % AGENTS}",
                    "symbol": sym,
                    "side": side,
                    "quantity": qty,
                    "price": price,
                    "created_at": NOW,
                }
            )
        )
    return out


def book(cfg: AssetsConfig, cash: int = 100_000_000, scale: int = 1) -> Snapshot:
    """A large account in steady state: a position in every asset (``scale`` x 100,000
    each, marked now, long and short), fresh correlations among a few pairs, far earnings
    dates and trending regimes. (A symbol's first exposure in a batch costs more: its
    correlated members are listed afresh; not measured here.)"""
    symbols = sorted(cfg.assets)
    positions = {}
    for k, sym in enumerate(symbols):
        asset = cfg.assets[sym]
        price = asset.reference_price
        qty = floor_to_lot(
            D(100_000) * scale / (price * _fx(cfg, asset.trading.quote_currency)),
            asset.risk.lot_size,
        )
        positions[sym] = Position(
            symbol=sym,
            asset_class=asset.asset_class.value,
            quote_currency=asset.trading.quote_currency,
            quantity=qty if k % 2 == 0 else -qty,
            avg_price=price,
            mark_price=price,
            marked_at=NOW,
            opened_at=NOW - timedelta(hours=1),
        )
    pairs = {
        Correlations.key(a, b): D(c)
        for a, b, c in (
            ("BTC/USDT", "ETH/USDT", "0.85"),
            ("NVDA", "AMD", "0.8"),
            ("TQQQ", "SOXL", "0.9"),
            ("GBP/JPY", "AUD/JPY", "0.75"),
            ("BTC/USDT", "NVDA", "0.3"),
        )
    }
    far = NOW.date() + timedelta(days=30)
    flags = Flags(
        earnings={s: far for s, a in cfg.assets.items() if a.special_rules.earnings_blackout_days},
        regimes={
            s: Regime("trending", NOW)
            for s, a in cfg.assets.items()
            if a.special_rules.avoid_sideways_market
        },
    )
    snap = Snapshot(
        version=1,
        account=Account(cash=D(cash), day=NOW.date(), marked_at=NOW),
        positions=positions,
        flags=flags,
        correlations=Correlations(pairs, NOW),
        marks={s: Quote(a.reference_price, NOW) for s, a in cfg.assets.items()},
    )
    eq = equity(snap, cfg)
    account = replace(
        snap.account,
        peak_equity=eq,
        day_start_equity=eq,
        units=eq,
        peak_nav=D(1),
        day_start_nav=D(1),
    )
    return replace(snap, account=account)


def crowded(cfg: AssetsConfig, base: Snapshot, live: int = LIVE) -> Snapshot:
    """``base`` after ``live`` approved openings: their reservations, the agents' rate
    counts this minute and the duplicate memory (as decide_batch would have left them)."""
    res = {}
    approvals: dict[tuple[str, str], tuple[Any, ...]] = {}
    for it in intents(cfg, live, tag="live"):
        asset = cfg.assets[it.symbol]
        stop = it.price * (1 - asset.risk.stop_loss_pct) if asset.risk.stop_loss_pct else None
        res[it.intent_id] = Reservation(
            intent_id=it.intent_id,
            agent_id=it.agent_id,
            symbol=it.symbol,
            asset_class=asset.asset_class.value,
            quote_currency=asset.trading.quote_currency,
            side=it.side,
            quantity=it.quantity,
            price=it.price,
            stop_price=stop,
            reduce_only=False,
            expires_at=NOW + timedelta(hours=1),
        )
        key = (it.agent_id, it.symbol)
        approvals[key] = (*approvals.get(key, ()), (it.side, it.quantity, NOW))[-8:]
    window = int(NOW.timestamp()) // 60
    rates = {f"agent-{a}": RateCount(window, live // AGENTS) for a in range(AGENTS)}
    snap = replace(base, reservations=res, rates=rates, approvals=approvals)
    return decide_batch([], snap, cfg, NOW).snapshot  # in the shape a batch leaves it


@dataclass
class Case:
    intents: list[TradeIntent]
    snapshot: Snapshot
    exposure: Exposure
    expect: str  # the status every decision must have


def cases(cfg: AssetsConfig, batch: int = BATCH) -> dict[str, Callable[[], Case]]:
    """Builders of each scenario (lazy: approved_20k takes a while to set up)."""

    def case(its: list[TradeIntent], snap: Snapshot, expect: str) -> Case:
        return Case(its, snap, Exposure.of(snap, cfg), expect)

    def resized() -> Case:
        its = []
        for it in intents(cfg, batch, tag="big"):
            asset = cfg.assets[it.symbol]
            cap = asset.risk.max_order_value or cfg.asset_classes[asset.asset_class].max_order_value
            fx = _fx(cfg, asset.trading.quote_currency)
            qty = floor_to_lot(2 * cap / (it.price * fx), asset.risk.lot_size)
            its.append(it.model_copy(update={"quantity": qty}))
        return case(its, book(cfg), "resized")

    def rejected_gate() -> Case:
        its = [
            it.model_copy(
                update={"stop_price": it.price * (D("1.1") if it.side is Side.BUY else D("0.9"))}
            )
            for it in intents(cfg, batch, tag="stop")
        ]
        return case(its, book(cfg), "rejected")

    return {
        "approved": lambda: case(intents(cfg, batch), book(cfg), "approved"),
        "resized": resized,
        # positions worth 7x cash... past the 60 % correlated cap whatever is asked
        "rejected_limit": lambda: case(intents(cfg, batch), book(cfg, 1_000_000, 4), "rejected"),
        "rejected_gate": rejected_gate,
        "approved_20k": lambda: case(
            intents(cfg, batch, start=LIVE), crowded(cfg, book(cfg)), "approved"
        ),
    }


def check(case: Case, cfg: AssetsConfig) -> None:
    """The scenario is what it says: every decision has the expected status."""
    got = decide_batch(case.intents, case.snapshot, cfg, NOW, exposure=case.exposure)
    wrong = [
        (d.intent_id, d.status.value, [r.code.value for r in d.reasons])
        for d in got.decisions
        if d.status.value != case.expect
    ]
    if wrong:
        raise AssertionError(
            f"expected every decision {case.expect}; {len(wrong)} not: {wrong[:3]}"
        )


def time_case(case: Case, cfg: AssetsConfig, reps: int) -> float:
    """Median µs per intent over ``reps`` decisions of the batch."""
    its, snap, exp = case.intents, case.snapshot, case.exposure
    per: list[float] = []
    for _ in range(reps):
        t0 = time.perf_counter()
        decide_batch(its, snap, cfg, NOW, exposure=exp)
        per.append((time.perf_counter() - t0) / len(its) * 1e6)
    return statistics.median(per)


def drift(
    cfg: AssetsConfig, live: int = LIVE, batch: int = BATCH, edge: int = 8
) -> dict[str, float]:
    """Approved batches carried forward until ``live`` reservations: µs per intent of the
    first and last ``edge`` batches (medians), and over the whole run."""
    snap = book(cfg)
    exp = Exposure.of(snap, cfg)
    its = intents(cfg, live, tag="d")
    per: list[float] = []
    start = time.perf_counter()
    for k in range(0, live, batch):
        chunk = its[k : k + batch]
        t0 = time.perf_counter()
        result = decide_batch(chunk, snap, cfg, NOW, exposure=exp)
        per.append((time.perf_counter() - t0) / len(chunk) * 1e6)
        snap, exp = result.snapshot, result.exposure
    total = (time.perf_counter() - start) / live * 1e6
    if len(snap.reservations) != live:
        raise AssertionError(f"drift: {len(snap.reservations)} reservations, not {live}")
    first, last = statistics.median(per[:edge]), statistics.median(per[-edge:])
    return {
        "first_us": round(first, 2),
        "last_us": round(last, 2),
        "mean_us": round(total, 2),
        "reservations": live,
    }


def machine() -> str:
    m = kit.machine()
    load = m["load"][0] if m["load"] else float("nan")
    how = "compiled" if m["compiled"] else "pure Python"
    return f"{m['cpu']}, {m['cores']} CPUs, load {load:.1f}, Python {m['python']}, {how}"


def measure_pure(
    quick: bool = False, *, batch: int = BATCH, say: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """The pure decision's µs per intent (median of repetitions) per scenario, and the
    drift over 20,000 reservations. ``quick``: fewer repetitions, a 5,000-reservation
    drift run."""
    cfg = config()
    reps = 15 if quick else 60
    out: dict[str, Any] = {"batch": batch, "machine": machine()}
    for name, make in cases(cfg, batch).items():
        case = make()
        check(case, cfg)
        decide_batch(case.intents, case.snapshot, cfg, NOW, exposure=case.exposure)  # warm
        out[f"{name}_us"] = round(time_case(case, cfg, reps), 2)
        say(f"  {name:16} {out[f'{name}_us']:8.2f} µs/intent")
    out["drift"] = drift(cfg, 5000 if quick else LIVE, batch)
    d = out["drift"]
    say(
        f"  drift to {d['reservations']:,} reservations: first {d['first_us']} → last "
        f"{d['last_us']} µs/intent (mean {d['mean_us']})"
    )
    return out


# --- callgrind -----------------------------------------------------------------------------


def _run_case(name: str, reps: int, batch: int) -> None:
    """What a callgrind run measures: build ``name``, then decide it ``reps`` times inside
    ``functools.reduce``, the one function whose calls callgrind counts (see
    :func:`measure_callgrind`). ``drift``: the whole run to 20,000 reservations, once."""
    cfg = config()
    assert cfg.config_hash  # computed once at load in a worker, not while deciding
    if name == "drift":
        snap, its = book(cfg), intents(cfg, LIVE, tag="d")
        chunks = [its[k : k + batch] for k in range(0, LIVE, batch)]
        state = (snap, Exposure.of(snap, cfg))

        def step(state: tuple[Snapshot, Exposure], chunk: list[TradeIntent]) -> Any:
            r = decide_batch(chunk, state[0], cfg, NOW, exposure=state[1])
            return (r.snapshot, r.exposure)

        functools.reduce(step, chunks, state)
        return
    if name == "worker_path":
        _run_worker_path(cfg, reps, batch)
        return
    case = cases(cfg, batch)[name]()
    check(case, cfg)  # and warm: caches filled (the config's hash), as in a running worker

    def again(_: object, __: object) -> None:
        decide_batch(case.intents, case.snapshot, cfg, NOW, exposure=case.exposure)

    functools.reduce(again, range(reps), None)


def _run_worker_path(cfg: AssetsConfig, reps: int, batch: int) -> Snapshot:
    """``reps`` + 1 batches of ``approved``'s intents through intake and the planner
    (the first to warm, outside what callgrind counts), with the collector tuned as in a
    gate process; the snapshot they leave."""

    stream = "bench:intents"
    raws = [i.model_dump_json(exclude_none=True).encode() for i in intents(cfg, (reps + 1) * batch)]
    batches = [
        [
            Entry(stream, f"{1_700_000_000_000 + b}-{j}".encode(), raw, {b"data": raw})
            for j, raw in enumerate(raws[b * batch : (b + 1) * batch])
        ]
        for b in range(reps + 1)
    ]
    planner = Planner("bench", 10)
    snap = book(cfg)

    def step(state: tuple[Loaded, Exposure], entries: list[Entry]) -> tuple[Loaded, Exposure]:
        planned = planner.plan(sort_entries(entries, stream), state[0], NOW, exposure=state[1])
        assert all(d.status.value == "approved" for d in planned.decisions)
        assert planned.exposure is not None  # a batch that decided returns its exposure
        return (Loaded(planned.snapshot, cfg), planned.exposure)

    with collector_tuned():  # as in a gate process
        warm = step((Loaded(snap, cfg), Exposure.of(snap, cfg)), batches[0])
        loaded, _ = functools.reduce(step, batches[1:], warm)
    return loaded.snapshot


def _instructions(name: str, reps: int, batch: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--collect-atstart=no",
            "--toggle-collect=functools_reduce",
            sys.executable,
            "-m",
            "consumers.bench.pure",
            "--run",
            name,
            "--reps",
            str(reps),
            "--batch",
            str(batch),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(
            cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        if match is None:
            raise RuntimeError("no instruction total in the callgrind output")
        return int(match.group(1))


def measure_callgrind(
    names: tuple[str, ...] = (*SCENARIOS, "drift", "worker_path"),
    *,
    reps: int = 4,
    batch: int = BATCH,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, int]:
    """Instructions per intent under callgrind, counted only inside the decisions (the
    set-up is not collected): ``reps`` decisions of the scenario's batch, or for
    ``drift`` the whole run to 20,000 reservations."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed")
    out = {}
    for name in names:
        n = LIVE if name == "drift" else reps * batch
        out[f"{name}_instr"] = round(_instructions(name, reps, batch) / n)
        say(f"  {name:16} {out[f'{name}_instr']:>10,} instructions/intent")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m consumers.bench.pure", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--quick", action="store_true", help="fewer repetitions, a 5,000-reservation drift"
    )
    p.add_argument("--batch", type=int, default=BATCH, help=f"intents per batch (default {BATCH})")
    p.add_argument(
        "--callgrind", action="store_true", help="also count instructions under valgrind"
    )
    p.add_argument("--only-callgrind", action="store_true", help="only the instruction counts")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--run", choices=(*SCENARIOS, "drift", "worker_path"), help=argparse.SUPPRESS)
    p.add_argument("--reps", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.run:
        _run_case(a.run, a.reps, a.batch)
        return 0

    def say(line: str) -> None:
        print(line, flush=True)

    say(f"pure decide_batch, batches of {a.batch}: {machine()}")
    figures: dict[str, Any] = {}
    if not a.only_callgrind:
        figures.update(measure_pure(a.quick, batch=a.batch, say=say))
    if a.callgrind or a.only_callgrind:
        figures.update(measure_callgrind(batch=a.batch, say=say))
    if a.json:
        a.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
