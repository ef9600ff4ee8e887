"""decide_batch's output, byte for byte, against a checked-in golden file.

A table of batches covers every reason code decide() can give, approve / resize /
reject, several assets, classes and quote currencies, reduce-only exits, and
reservations stacking within a batch until a cap binds. For each batch the golden file
holds every decision's wire JSON (``model_dump_json``; ids and times are fixed) and what
the batch leaves behind: its reservations, rate counts, duplicate memory and exposure.

It pins behaviour while the decision is made cheaper: any change to a decision's bytes
or to the state it leaves fails here. After an intended change of behaviour, regenerate
with ``RISKGATE_UPDATE_GOLDEN=1 pytest tests/unit/test_decide_golden.py`` and review the
diff of ``tests/fixtures/decide_golden.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gate.decide import BatchResult, decide_batch
from gate.exposure import Exposure, Part
from gate.portfolio import Flags, Latch, RateCount, Regime, Reservation, Snapshot
from schemas.config import AssetClass, AssetsConfig
from schemas.messages import ReasonCode, Side, TradeIntent
from tests.builders import (
    NOW,
    all_enabled,
    base_config,
    correlations,
    intent,
    marks,
    position,
    reservation,
    snapshot,
)

D = Decimal
GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "decide_golden.json"
UPDATE = os.environ.get("RISKGATE_UPDATE_GOLDEN") == "1"
#: Codes given outside decide() (the worker's parse, id and signature checks).
NOT_FROM_DECIDE = {
    ReasonCode.INVALID_INTENT,
    ReasonCode.INTENT_ID_REUSED,
    ReasonCode.UNAUTHENTICATED,
}


@dataclass
class Batch:
    intents: list[TradeIntent]
    snap: Snapshot
    config: AssetsConfig
    exposure_in: bool = False  # hand in the snapshot's exposure, as the worker does


def _i(n: str, symbol: str = "BTC/USDT", side: str = "buy", qty: str = "0.1", **kw: Any) -> Any:
    price = kw.pop("price", None)
    if price is None:
        price = str(marks()[symbol].price) if symbol in marks() else "100"
    return intent(symbol, side, qty, price, intent_id=n, **kw)


def _flags() -> Flags:
    """Earnings far away for the stocks, trending regimes for the leveraged ETFs."""
    cfg = all_enabled()
    far = NOW.date() + timedelta(days=30)
    earnings = {s: far for s, a in cfg.assets.items() if a.special_rules.earnings_blackout_days}
    regimes = {s: Regime("trending", NOW) for s in ("TQQQ", "SOXL")}
    return Flags(earnings=earnings, regimes=regimes)


def _capped(**rm: Any) -> AssetsConfig:
    cfg = all_enabled()
    risk = cfg.risk_management.model_copy(update=rm)
    copy = cfg.model_copy(update={"risk_management": risk})
    copy.__dict__.pop("config_hash", None)
    return copy


def mixed() -> Batch:
    """A rich book on every class: approvals, every limit resizing, stacking, per-intent
    rejections, reduce-only exits."""
    cfg = all_enabled()
    held = [
        position("ETH/USDT", "20", "3900", "3500", config=cfg),
        position("NVDA", "300", "132", config=cfg),
        position("GBP/JPY", "20000", "200", config=cfg),
        position("TQQQ", "50", "100", "94", config=cfg, opened_at=NOW - timedelta(days=9)),
        position("XAG/USD", "-100", "48", "52", config=cfg),
    ]
    corr = correlations({("BTC/USDT", "ETH/USDT"): "0.85", ("NVDA", "AMD"): "0.75"})
    flags = replace(_flags(), earnings={**_flags().earnings, "AMD": NOW.date()})
    snap = snapshot(
        "400000",
        held,
        [reservation("old-1", "BTC/USDT", "0.5", "100000", "94000")],
        correlations=corr,
        flags=flags,
        quotes={s: q for s, q in marks().items() if s != "DNUT"},  # DNUT: never marked
    )
    snap = replace(
        snap,
        rates={"greedy": RateCount(int(NOW.timestamp()) // 60, 120)},
    )
    intents = [
        _i("btc-ok", qty="0.1"),
        _i("btc-ok-2", qty="0.12", stop_price=D("95000"), take_profit=D("120000")),
        _i("eth-ok", "ETH/USDT", qty="1.5"),
        _i("btc-dup", qty="0.1"),  # same as btc-ok: duplicate_order
        _i("btc-other-agent", qty="0.1", agent_id="agent-2"),
        _i("btc-big", qty="3"),  # max order value binds
        _i("btc-stack-1", qty="0.35"),
        _i("btc-stack-2", qty="0.35"),  # position cap stacks
        _i("btc-lot", qty="0.000123456", agent_id="agent-3"),  # off the lot grid
        _i("btc-tiny", qty="0.00001", agent_id="agent-3"),  # below min size
        _i("nvda-ok", "NVDA", qty="10"),
        _i("amd-earn", "AMD", qty="10"),  # earnings today
        _i("tsla-ok", "TSLA", qty="20", agent_id="agent-2"),
        _i("tsla-qty", "TSLA", qty="250", price="400", agent_id="agent-4"),  # max quantity
        _i("gbpjpy-ok", "GBP/JPY", qty="10000"),
        _i("gbpjpy-lot", "GBP/JPY", qty="10500", agent_id="agent-2"),
        _i("usdtry", "USD/TRY", qty="100000"),
        _i("tqqq-hold", "TQQQ", qty="10"),  # held 9 days, max hold 5
        _i("soxl-ok", "SOXL", qty="100"),
        _i("soxl-class", "SOXL", qty="750", agent_id="agent-2"),  # leveraged class cap
        _i("uvxy-stack", "UVXY", qty="1500", agent_id="agent-3"),
        _i("uvxy-stack-2", "UVXY", qty="1500", agent_id="agent-4"),
        _i("natgas", "NATGAS/USD", qty="1005", agent_id="agent-2"),
        _i("wtico-sell", "WTICO/USD", "sell", qty="100"),
        _i("gme-ok", "GME", qty="100"),
        _i("dnut-nomark", "DNUT", qty="100"),  # no mark on record
        _i("amc-collar", "AMC", qty="100", price="4"),  # 33 % above the mark
        _i("btc-badstop", qty="0.01", stop_price=D("101000"), agent_id="agent-5"),
        _i("btc-badtp", qty="0.01", take_profit=D("90000"), agent_id="agent-6"),
        _i("btc-stale", qty="0.01", created_at=NOW - timedelta(minutes=10), agent_id="a7"),
        _i("btc-future", qty="0.01", created_at=NOW + timedelta(minutes=1), agent_id="a8"),
        _i("doge", "DOGE/USDT", qty="1000", price="0.2"),
        _i("greedy", qty="0.01", agent_id="greedy"),
        _i("eth-exit", "ETH/USDT", "sell", qty="5", reduce_only=True),
        _i("eth-exit-over", "ETH/USDT", "sell", qty="20", reduce_only=True),
        _i("xag-exit-wrong-side", "XAG/USD", "sell", qty="10", reduce_only=True),
        _i("xag-exit", "XAG/USD", "buy", qty="100", reduce_only=True),
        _i("gbpjpy-exit", "GBP/JPY", "sell", qty="20000", reduce_only=True),
        _i("btc-exit-none", "BTC/USDT", "sell", qty="0.1", reduce_only=True),
        _i("eth-corr", "ETH/USDT", qty="14", agent_id="agent-9"),  # class / correlated
    ]
    return Batch(intents, snap, cfg)


def broad() -> Batch:
    """A large, empty book: openings on every class approved as asked (and one off-lot)."""
    cfg = all_enabled()
    snap = snapshot("2000000", flags=_flags())
    intents = [
        _i("b-btc", qty="0.2"),
        _i("b-btc-lot", qty="0.000123456", agent_id="b2"),
        _i("b-eth", "ETH/USDT", qty="2", stop_price=D("3700")),
        _i("b-nvda", "NVDA", qty="100", take_profit=D("150")),
        _i("b-tsla", "TSLA", "sell", qty="50", agent_id="b2"),
        _i("b-gbpjpy", "GBP/JPY", qty="10000"),
        _i("b-audjpy", "AUD/JPY", "sell", qty="5000", agent_id="b3"),
        _i("b-usdzar", "USD/ZAR", qty="1000"),
        _i("b-xag", "XAG/USD", qty="100", agent_id="b3"),
        _i("b-wtico", "WTICO/USD", "sell", qty="100"),
        _i("b-gme", "GME", qty="200", agent_id="b4"),
        _i("b-uvxy", "UVXY", qty="100", agent_id="b4"),
        _i("b-soxl", "SOXL", qty="100", agent_id="b5"),
        _i("b-natgas", "NATGAS/USD", qty="1000", agent_id="b5"),
    ]
    return Batch(intents, snap, cfg)


def heat() -> Batch:
    """Heat binds: wide stops stack reserved risk until it does."""
    cfg = all_enabled()
    snap = snapshot("100000", flags=_flags())
    intents = [
        _i("heat-btc", qty="0.2", stop_price=D("50000")),
        _i("heat-eth", "ETH/USDT", qty="3.8", stop_price=D("1000"), agent_id="h2"),
        _i("heat-nvda", "NVDA", qty="70", stop_price=D("10"), agent_id="h3"),
        _i("heat-nvda-2", "NVDA", qty="5", stop_price=D("10"), agent_id="h4"),
        _i("heat-eth-pos", "ETH/USDT", qty="2", stop_price=D("3800"), agent_id="h5"),
    ]
    return Batch(intents, snap, cfg, exposure_in=True)


def correlated() -> Batch:
    """Correlated exposure binds across classes; unknown pairs count as uncorrelated."""
    cfg = _capped(unknown_correlation="uncorrelated")
    corr = correlations({("BTC/USDT", "NVDA"): "0.9", ("ETH/USDT", "NVDA"): "0.8"})
    held = [position("NVDA", "1500", "110", "108", config=cfg)]
    snap = snapshot("300000", held, correlations=corr, flags=_flags())
    intents = [
        _i("corr-btc", qty="0.3"),
        _i("corr-eth", "ETH/USDT", qty="10", agent_id="c2"),
        _i("corr-amd", "AMD", qty="100", agent_id="c3"),
        _i("corr-btc-2", qty="0.39", agent_id="c4"),
    ]
    return Batch(intents, snap, cfg)


def stale_correlations() -> Batch:
    """Correlations too old: every pair counts (fail closed)."""
    cfg = all_enabled()
    corr = correlations({("BTC/USDT", "NVDA"): "0.1"}, NOW - timedelta(hours=49))
    held = [position("NVDA", "2000", "132", "128", config=cfg)]
    snap = snapshot("100000", held, correlations=corr, flags=_flags())
    return Batch([_i("stale-corr-btc", qty="0.2")], snap, cfg)


def halted() -> Batch:
    """The kill switch: openings rejected, exits pass."""
    cfg = all_enabled()
    held = [position("ETH/USDT", "2", "3900", "3600", config=cfg)]
    snap = snapshot("100000", held, flags=replace(_flags(), halted=True))
    return Batch(
        [_i("halt-open", qty="0.1"), _i("halt-exit", "ETH/USDT", "sell", "1", reduce_only=True)],
        snap,
        cfg,
    )


def drawdown() -> Batch:
    """Emergency stop and daily loss: both trip, latched and live."""
    cfg = all_enabled()
    snap = snapshot("70000", peak="100000", day_start="80000", flags=_flags())
    latched = replace(
        snap,
        account=replace(
            snap.account,
            stopped=Latch(NOW - timedelta(hours=2), D("0.27")),
            day_stopped=Latch(NOW - timedelta(hours=1), D("0.06")),
        ),
    )
    return Batch([_i("dd-open", qty="0.1"), _i("dd-open-2", "NVDA", qty="1")], latched, cfg)


def daily() -> Batch:
    cfg = all_enabled()
    snap = snapshot("94000", day_start="100000", peak="100000", flags=_flags())
    return Batch([_i("day-open", qty="0.05")], snap, cfg)


def broke() -> Batch:
    """No equity and a stale position mark."""
    cfg = all_enabled()
    stale = position(
        "ETH/USDT", "1", "3900", "3600", config=cfg, marked_at=NOW - timedelta(hours=1)
    )
    snap = snapshot("-5000", [stale], flags=_flags())
    return Batch(
        [_i("broke-open", qty="0.01"), _i("broke-exit", "ETH/USDT", "sell", "1", reduce_only=True)],
        snap,
        cfg,
    )


def disabled() -> Batch:
    """The shipped config: only crypto enabled; and an asset disabled in an enabled class."""
    cfg = base_config().with_enabled(
        {"TSLA": False}, {AssetClass.STOCKS: True, AssetClass.COMMODITIES: False}
    )
    snap = snapshot("100000", flags=_flags())
    intents = [
        _i("dis-tsla", "TSLA", qty="1"),
        _i("dis-nvda", "NVDA", qty="1"),
        _i("dis-xag", "XAG/USD", qty="1"),
        _i("dis-eth", "ETH/USDT", qty="0.5"),
    ]
    return Batch(intents, snap, cfg)


def regimes() -> Batch:
    """Sideways, unknown and expired regimes on an asset that avoids sideways markets."""
    cfg = all_enabled()
    flags = Flags(
        regimes={
            "TQQQ": Regime("sideways", NOW),
            "SOXL": Regime("trending", NOW - timedelta(hours=30)),
        }
    )
    snap = snapshot("100000", flags=flags)
    intents = [
        _i("reg-tqqq", "TQQQ", qty="1"),
        _i("reg-soxl", "SOXL", qty="1"),
        _i("reg-nvda-no-earnings", "NVDA", qty="1"),
    ]
    return Batch(intents, snap, cfg)


def agents() -> Batch:
    """The portfolio's distinct-agent cap and one agent's rate limit within a batch."""
    cfg = _capped(max_agents_per_portfolio=2, max_intents_per_agent_per_minute=3)
    snap = snapshot("1000000", flags=_flags())
    intents = [
        _i(f"rate-{k}", qty="0.001", agent_id="a", take_profit=D(110000 + k)) for k in range(4)
    ]
    intents += [_i("agent-b", qty="0.002", agent_id="b"), _i("agent-c", qty="0.003", agent_id="c")]
    return Batch(intents, snap, cfg, exposure_in=True)


def crowded() -> Batch:
    """Many reservations already: the batch stacks on top of them (and some are exits)."""
    cfg = all_enabled()
    held = [position("ETH/USDT", "10", "3900", "3500", config=cfg)]
    res = [reservation(f"r-{k}", "BTC/USDT", "0.001", "100000", "94000") for k in range(50)]
    res += [reservation("r-exit", "ETH/USDT", "4", "3900", None, side=Side.SELL, reduce_only=True)]
    snap = snapshot("200000", held, res, flags=_flags())
    intents = [
        _i("crowd-btc", qty="0.2"),
        _i("crowd-exit", "ETH/USDT", "sell", "10", reduce_only=True),
        _i("crowd-btc-2", qty="0.2", agent_id="x"),
    ]
    return Batch(intents, snap, cfg, exposure_in=True)


BATCHES: dict[str, Callable[[], Batch]] = {
    f.__name__: f
    for f in (
        mixed,
        broad,
        heat,
        correlated,
        stale_correlations,
        halted,
        drawdown,
        daily,
        broke,
        disabled,
        regimes,
        agents,
        crowded,
    )
}


def _s(x: object) -> object:
    if isinstance(x, Decimal):
        return str(x)
    if isinstance(x, dict):
        return {str(k): _s(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    if isinstance(x, list | tuple):
        return [_s(v) for v in x]
    if hasattr(x, "isoformat"):
        return x.isoformat()
    if hasattr(x, "value"):
        return x.value
    return x


def _part(p: Part) -> dict[str, object]:
    return {
        "heat": str(p.heat),
        "total": str(p.total),
        "class_notional": _s(p.class_notional),
        "symbol_notional": _s(p.symbol_notional),
        "symbol_quantity": _s(p.symbol_quantity),
    }


def _exposure(e: Exposure) -> dict[str, object]:
    return {
        "equity": str(e.equity),
        "positions": _part(e.positions),
        "reserved": _part(e.reserved),
        "pending_reduce": _s(e.pending_reduce),
        "revision": e.revision,
    }


def run(name: str) -> dict[str, object]:
    b = BATCHES[name]()
    exposure = Exposure.of(b.snap, b.config) if b.exposure_in else None
    result: BatchResult = decide_batch(b.intents, b.snap, b.config, NOW, exposure=exposure)
    snap = result.snapshot
    return {
        "wire": [d.model_dump_json() for d in result.decisions],
        "reserved": [r.intent_id for r in result.reserved],
        "reservations": {
            k: {f: _s(getattr(r, f)) for f in Reservation.FIELDS}
            for k, r in sorted(snap.reservations.items())
        },
        "rates": {a: [rc.window, rc.count] for a, rc in sorted(snap.rates.items())},
        "approvals": {f"{a}|{s}": _s(v) for (a, s), v in sorted(snap.approvals.items())},
        "exposure": _exposure(result.exposure),
    }


def _golden() -> dict[str, Any]:
    if UPDATE:
        data = {name: run(name) for name in BATCHES}
        GOLDEN.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    golden: dict[str, Any] = json.loads(GOLDEN.read_text())
    return golden


@pytest.mark.parametrize("name", list(BATCHES))
def test_decide_batch_when_golden_table_then_same_bytes_and_state(name: str) -> None:
    """Every decision's wire JSON and the state the batch leaves equal the golden file."""
    got = run(name)
    want = _golden()[name]
    assert got["wire"] == want["wire"]
    assert got == want


def test_golden_table_when_read_then_every_decide_reason_and_status_appears() -> None:
    """The table covers every reason code decide() can give and all three statuses."""
    golden = _golden()
    decisions = [json.loads(w) for b in golden.values() for w in b["wire"]]
    seen = {r["code"] for d in decisions for r in d["reasons"]}
    statuses = {d["status"] for d in decisions}
    assert {c.value for c in ReasonCode} - NOT_FROM_DECIDE - seen == set()
    assert statuses == {"approved", "resized", "rejected"}


def test_golden_table_when_exposure_handed_in_then_same_as_from_scratch() -> None:
    """The exposure a batch returns equals one rebuilt from the snapshot it returns."""
    for name, make in BATCHES.items():
        b = make()
        result = decide_batch(b.intents, b.snap, b.config, NOW)
        assert result.exposure.same(Exposure.of(result.snapshot, b.config)), name
