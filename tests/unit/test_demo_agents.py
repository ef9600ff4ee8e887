"""The demo's agents, decided by the pure gate: traders size to fit (approved), take
profits, cut losses and close what they hold; each offender earns its reason."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import combinations
from typing import Any

import pytest

from consumers.demo.agents import FLOOD_SIZE, Agents, Desk, Holding, Market
from gate.assets import AssetManager
from gate.decide import decide_batch
from gate.portfolio import Correlations, Flags, Regime
from schemas.messages import TradeIntent
from tests.builders import market_prices, marks, snapshot

D = Decimal


def _manager() -> AssetManager:
    m = AssetManager()
    for phase in list(m.config.phases)[:3]:
        m.enable_phase(phase)
    return m


MANAGER = _manager()
SYMBOLS = [s for p in list(MANAGER.config.phases)[:3] for s in MANAGER.config.phases[p].assets]
PRICES = {s: market_prices()[s] for s in SYMBOLS}


def _status() -> dict[str, Any]:
    """A fresh, funded portfolio as ``riskgate status`` shows it."""
    return {
        "equity": "100000",
        "heat": "0",
        "class_shares": {},
        "positions": {},
        "marks": {s: {"price": str(p)} for s, p in PRICES.items()},
    }


def _agents(n: int = 50, seed: int = 7) -> Agents:
    market = Market(SYMBOLS)
    market.prices = dict(PRICES)
    disabled = [s for s in MANAGER.config.assets if s not in SYMBOLS]
    return Agents(MANAGER, market, disabled=disabled, rng=random.Random(seed), agents=n)


def _decide(payloads: list[bytes]) -> dict[str, Any]:
    """Each intent's decision by the pure gate: a fresh portfolio, uncorrelated assets,
    now (the agents date their intents by the wall clock)."""
    now = datetime.now(UTC)
    intents = [TradeIntent.model_validate_json(p) for p in payloads]
    corr = Correlations({Correlations.key(a, b): D(0) for a, b in combinations(SYMBOLS, 2)}, now)
    # as the feed's sim source has it: AMD reports in 2 days, SOXL moves sideways
    flags = Flags(
        earnings={s: now.date() + timedelta(days=2 if s == "AMD" else 40) for s in SYMBOLS},
        regimes={s: Regime("sideways" if s == "SOXL" else "trending", now) for s in SYMBOLS},
    )
    snap = snapshot(quotes=marks(at=now), correlations=corr, flags=flags)
    decisions = decide_batch(intents, snap, MANAGER.config, now).decisions
    return {d.intent_id: d for d in decisions}


def _parses(payload: bytes) -> bool:
    """Not one of the malformed entries (dead letters)."""
    try:
        TradeIntent.model_validate_json(payload)
    except ValueError:
        return False
    return True


def _meant(agents: Agents, kind: str, *, desk_only: bool = False) -> list[str]:
    """Intent ids sent as ``kind`` (``desk_only``: not by traders sizing by their own
    model, who ignore the desk's room and are meant to be resized)."""
    own = {t.agent_id for t in agents.traders if t.own_model}
    return [
        i
        for i, k in agents.kinds.items()
        if k == kind and not (desk_only and agents.sent[i].agent_id in own)
    ]


def test_traders_when_a_fresh_book_opens_then_every_tradable_opening_is_approved() -> None:
    """Sized to fit the room under every limit: no desk trader's opening of a tradable
    symbol is cut or refused (AMD is in its earnings blackout, SOXL moves sideways: the
    rules refuse those)."""
    agents = _agents(200)
    for t in agents.traders:  # those sizing by their own model take room unannounced
        t.own_model = False
    decided = _decide([p for p in agents.tick(0, _status()) if _parses(p)])
    sized = _meant(agents, "sized")
    assert len(sized) > 50
    refused_by_rule = {"AMD", "SOXL"}
    for intent_id in sized:
        d = decided[intent_id]
        if d.symbol in refused_by_rule:
            assert d.status.value == "rejected"
        else:
            assert d.status.value == "approved", (d.symbol, [r.message for r in d.reasons])


def test_desk_when_openings_are_sent_then_together_they_stay_inside_each_class_cap() -> None:
    """The desk hands out the room as openings are sent: a tick's openings fit together."""
    agents = _agents(400)
    payloads = agents.tick(0, _status())
    by_id = {}
    for p in filter(_parses, payloads):
        intent = TradeIntent.model_validate_json(p)
        by_id[intent.intent_id] = intent
    value: dict[str, Decimal] = {}
    for i in _meant(agents, "sized", desk_only=True):
        intent = by_id[i]
        cls = MANAGER.config.assets[intent.symbol].asset_class
        value[cls] = value.get(cls, D(0)) + intent.quantity * intent.price
    rm = MANAGER.config.risk_management
    for cls, v in value.items():
        cap = min(rm.max_single_asset_class, MANAGER.config.asset_classes[cls].max_allocation)
        assert v <= cap * 100000


@pytest.mark.parametrize(
    ("mark_factor", "ticks_held", "kind"),
    [("1.01", 1, "take_profit"), ("0.99", 1, "cut_loss"), ("1", 99, "close")],
)
def test_trader_when_its_exit_is_due_then_it_sells_what_it_holds_reduce_only(
    mark_factor: str, ticks_held: int, kind: str
) -> None:
    """At the profit target, the loss limit or the end of the holding period, a trader
    sends a reduce-only sell of its whole holding."""
    agents = _agents(1)
    trader = agents.traders[0]
    entry = PRICES["ETH/USDT"]
    trader.book["ETH/USDT"] = Holding(
        "ETH/USDT", D("1.5"), entry, 0,
        take_profit=entry * (1 + trader.target), cut_loss=entry * (1 - trader.tolerance),
    )  # fmt: skip
    agents.market.prices["ETH/USDT"] = entry * D(mark_factor)
    payloads = agents.tick(ticks_held, _status())
    exits = [
        json.loads(p) for p in payloads if agents.kinds.get(json.loads(p)["intent_id"]) == kind
    ]
    assert len(exits) == 1
    assert exits[0]["side"] == "sell" and exits[0]["reduce_only"] is True
    assert D(exits[0]["quantity"]) == D("1.5")


def test_trader_when_its_exit_fills_then_its_book_is_empty() -> None:
    """The executor's fill of an exit takes the holding off the trader's book."""
    agents = _agents(1)
    trader = agents.traders[0]
    trader.book["BTC/USDT"] = Holding("BTC/USDT", D("0.01"), D(100000), 0, D(1), D(0))
    payloads = agents.tick(1, _status())  # the mark is above the take profit of 1
    intent_id = next(i for i, k in agents.kinds.items() if k == "take_profit")
    assert any(intent_id.encode() in p for p in payloads)
    agents.filled(intent_id, D("0.01"), D(100000))
    assert trader.book == {}


@pytest.mark.parametrize(
    ("kind", "status", "reason"),
    [
        ("oversized", "resized", "max_position"),
        ("bad_stop", "rejected", "invalid_stop"),
        ("wrong_side", "rejected", "reduce_only"),
        ("fat_finger", "rejected", "price_collar"),
        ("disabled", "rejected", "asset_disabled"),
        ("no_stop", "approved", None),
    ],
)
def test_offender_when_decided_then_it_earns_its_reason(
    kind: str, status: str, reason: str | None
) -> None:
    """Each deliberate offender gets the status and reason its offence earns (no stop:
    approved, the asset's stop rule sets one)."""
    agents = _agents(1)
    desk = Desk(MANAGER, _status(), D("0.9"))
    payload = agents._offend(kind, "ETH/USDT", desk)
    assert payload is not None
    d = next(iter(_decide([payload]).values()))
    assert d.status.value == status, [r.message for r in d.reasons]
    if reason is not None:
        assert reason in [r.code.value for r in d.reasons]
    else:
        assert d.stop_price is not None


def test_flooder_when_it_floods_then_duplicate_order_and_past_its_quota_rate_limited() -> None:
    """A runaway loop re-sending one order: the first is approved, the copies are
    duplicate orders, and those past the agent's quota a minute are rate limited."""
    agents = _agents(1)
    burst = agents.flood(0, _status())
    assert len(burst) == FLOOD_SIZE
    decided = list(_decide(burst).values())
    codes = [{r.code.value for r in d.reasons} for d in decided]
    assert decided[0].status.value == "approved"
    assert all("duplicate_order" in c or "rate_limited" in c for c in codes[1:])
    assert sum("rate_limited" in c for c in codes) == FLOOD_SIZE - 120
    assert agents.flood(1, _status()) == []  # not again for FLOOD_EVERY ticks


def test_agents_when_seeded_alike_then_they_send_the_same_intents() -> None:
    """The same seed and the same portfolio: the same intents, in the same order."""

    def strip(p: bytes) -> bytes:
        return p.split(b'"created_at"')[0]

    a, b = _agents(100, seed=3), _agents(100, seed=3)
    assert [strip(p) for p in a.tick(0, _status())] == [strip(p) for p in b.tick(0, _status())]
    c = _agents(100, seed=4)
    assert [strip(p) for p in a.tick(1, _status())] != [strip(p) for p in c.tick(1, _status())]
