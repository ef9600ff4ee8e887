"""The demo's agents and executor (seeded: the same seed, the same run), and what they
know of the market.

* :class:`Market`: the latest marks the gate applied (the feed's ``sim`` source publishes
  them, with the earnings dates and regimes, through the path production uses), read
  from the portfolio's status every second.
* :class:`Agents`: intents across the enabled assets at a rate, in a realistic mix:
  sized by ``risk_per_trade`` with a stop, without a stop (the asset's rule sets it),
  oversized (resized or rejected), for an asset not enabled yet, reduce-only closes of
  held positions, duplicates of an earlier intent (decided once), malformed entries
  (dead-lettered), and a fat-fingered agent's prices far off the mark (price_collar).
  Agents price at the market's latest mark, as the gate values exposure there.
* :class:`Executor`: reads approved orders with :meth:`GateClient.orders` and fills them
  at the order's reference price (one in ten is cancelled instead), publishing the fill
  or cancel event the gate and the phase monitor apply.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog

from consumers.bus.keys import DATA
from consumers.bus.runtime import REDIS_TRANSIENT, Backoff
from consumers.sdk.client import GateClient, OrderDelivery
from consumers.state import control
from gate.assets import AssetManager
from gate.money import floor_to_lot
from schemas.config import AssetsConfig
from schemas.messages import TradeIntent

D = Decimal
log = structlog.get_logger("riskgate.demo")

# what an agent sends, and how often (weights)
MIX = {
    "sized": 44,
    "no_stop": 12,
    "oversized": 8,
    "close": 20,
    "disabled_asset": 5,
    "duplicate": 6,
    "malformed": 5,
    "fat_finger": 2,  # a deliberately bad agent: priced far off the mark (price_collar)
}
MALFORMED = (
    b"{not json",
    b'{"intent_id": "extra-%d", "agent_id": "demo", "symbol": "BTC/USDT", "side": "buy",'
    b' "quantity": "0.01", "price": "100000", "leverage": 10,'
    b' "created_at": "2020-01-01T00:00:00Z"}',
    b'{"intent_id": "no-side-%d", "agent_id": "demo", "symbol": "ETH/USDT", "quantity": "1"}',
    b"[]",
)


def setup_portfolio(
    client: GateClient, config: AssetsConfig, phases: list[str], equity: Decimal
) -> list[str]:
    """Enable ``phases`` and fund the portfolio; returns the enabled symbols. No flag is
    set by hand: earnings dates and regimes come from the feed (``riskgate feed --source
    sim``: AMD reports inside its blackout, SOXL moves sideways, so those rules show)."""
    control.enable(client.redis, client.keys, config, phases, True)
    client.deposit(equity, reference=f"demo-{client.keys.portfolio}")  # deposit:demo-<portfolio>
    return [s for p in phases for s in config.phases[p].assets]


class Market:
    """The enabled symbols' latest marks, as the gate holds them (the feed's prices)."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.prices: dict[str, Decimal] = {}

    def update(self, status: Mapping[str, Any]) -> None:
        marks = status.get("marks", {})
        self.prices = {s: D(marks[s]["price"]) for s in self.symbols if s in marks}

    def ready(self) -> bool:
        return len(self.prices) == len(self.symbols)


@dataclass
class AgentStats:
    sent: Counter[str] = field(default_factory=Counter)
    intent_ids: set[str] = field(default_factory=set)  # every id the gate must decide

    @property
    def total(self) -> int:
        return sum(self.sent.values())


class Agents:
    """Publishes a tick's worth of intents at a time (one pipeline round trip)."""

    def __init__(
        self,
        client: GateClient,
        manager: AssetManager,
        market: Market,
        *,
        disabled: list[str],
        rng: random.Random,
        agents: int,
        equity: Decimal,
    ) -> None:
        self.client = client
        self.manager = manager
        self.config = manager.config
        self.market = market
        self.disabled = disabled
        self.rng = rng
        self.agent_ids = [f"agent-{i:03d}" for i in range(agents)]
        self.equity = equity
        self.kinds = list(MIX)
        self.weights = [MIX[k] for k in self.kinds]
        self.recent: list[bytes] = []  # payloads to duplicate
        self.held: dict[str, Decimal] = {}  # symbol -> quantity long (from status)
        self.stats = AgentStats()
        self.seq = 0

    def publish(self, n: int) -> None:
        payloads = [self._one() for _ in range(n)]
        pipe = self.client.redis.pipeline(transaction=False)
        for p in payloads:
            pipe.xadd(self.client.keys.intents, {DATA: p})
        pipe.execute()

    def _one(self) -> bytes:
        self.seq += 1
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind == "duplicate" and self.recent:
            self.stats.sent["duplicate"] += 1
            return self.rng.choice(self.recent)
        if kind == "malformed":
            self.stats.sent["malformed"] += 1
            raw = self.rng.choice(MALFORMED)
            if b"%d" in raw:
                raw = raw.replace(b"%d", str(self.seq).encode())
                self.stats.intent_ids.add(json.loads(raw)["intent_id"])
            return raw
        if kind == "close" and not self.held:
            kind = "sized"
        if kind == "duplicate":
            kind = "sized"
        payload = self._intent(kind)
        self.stats.sent[kind] += 1
        self.recent = [*self.recent[-49:], payload]
        return payload

    def _intent(self, kind: str) -> bytes:
        rng = self.rng
        agent = rng.choice(self.agent_ids)
        reduce_only = False
        if kind == "close":
            symbol = rng.choice(sorted(self.held))
            price = self.market.prices[symbol]
            asset = self.config.assets[symbol]
            qty = floor_to_lot(self.held[symbol] * D(rng.choice(("0.5", "1"))), asset.risk.lot_size)
            qty = max(qty, asset.risk.min_size)
            side, stop, reduce_only = "sell", None, True
        else:
            symbol = (
                rng.choice(self.disabled)
                if kind == "disabled_asset" and self.disabled
                else rng.choice(sorted(self.market.prices))
            )
            asset = self.config.assets[symbol]
            price = self.market.prices.get(symbol, asset.reference_price)
            fx = self.config.risk_management.fx_rates.get(asset.trading.quote_currency, D(1))
            base = self.manager.calculate_position_quantity(symbol, self.equity, price, fx)
            factor = D(rng.choice(("3", "5", "10"))) if kind == "oversized" else D(rng.choice(
                ("0.05", "0.1", "0.2", "0.3")))  # fmt: skip
            qty = max(floor_to_lot(base * factor, asset.risk.lot_size), asset.risk.min_size)
            side = "buy" if rng.random() < 0.8 else "sell"
            if kind == "fat_finger":  # a price typed wrong by a factor of ten (or of two)
                price = (price * D(rng.choice(("0.1", "0.5", "2", "10")))).quantize(D("0.0001"))
            stop = None
            if kind != "no_stop":
                distance = D(rng.choice(("0.02", "0.05", "0.1", "0.2", "0.3")))
                stop = price * (1 - distance if side == "buy" else 1 + distance)
        intent_id = f"{agent}-{self.seq}"
        intent = TradeIntent.model_validate(
            {
                "intent_id": intent_id,
                "agent_id": agent,
                "symbol": symbol,
                "side": side,
                "quantity": qty,
                "price": price,
                "stop_price": None if stop is None else stop.quantize(D("0.0001")),
                "reduce_only": reduce_only,
                "created_at": datetime.now(UTC),
            }
        )
        self.stats.intent_ids.add(intent_id)
        return intent.model_dump_json(exclude_none=True).encode()


@dataclass
class ExecutorStats:
    fills: int = 0
    cancels: int = 0
    refused: int = 0
    retries: int = 0  # reads retried after a transient Redis error


class Executor(threading.Thread):
    """Fills approved orders at their reference price; cancels one in ten."""

    GROUP = "demo-executor"

    def __init__(self, client: GateClient, rng: random.Random) -> None:
        super().__init__(name="demo-executor", daemon=True)
        self.client = client
        self.rng = random.Random(rng.random())
        self._seed = self.rng.random()
        self.stats = ExecutorStats()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        backoff = Backoff()
        current: OrderDelivery | None = None  # the delivery being handled
        while not self.stopping.is_set():
            try:
                if current is not None:  # a failed handling: finished first (the SDK
                    self._handle(current)  # never hands it out again; events are
                    current = None  # idempotent by their derived ids)
                for delivery in self.client.orders(
                    self.GROUP, "exec-1", start="0", block_ms=200, stop=self.stopping.is_set
                ):
                    current = delivery
                    self._handle(delivery)
                    current = None
                return
            except REDIS_TRANSIENT as exc:  # its unacked orders come back first: none lost
                self.stats.retries += 1
                delay = backoff.next_delay()
                log.warning("executor: redis unavailable; retrying", error=str(exc), delay=delay)
                self.stopping.wait(delay)
            except BaseException as exc:  # reported by the demo, which then fails
                self.error = exc
                log.exception("executor failed", error=repr(exc))
                return

    def _cancels(self, intent_id: str) -> bool:
        """One order in ten is cancelled, the same one however often it is handled."""
        return random.Random(f"{self._seed}:{intent_id}").random() < 0.1

    def _handle(self, delivery: OrderDelivery) -> None:
        c = self.client
        order = delivery.order
        if order is None:  # a cancel request (riskgate halt --cancel-open)
            c.cancel(delivery.intent_id)  # event id cancel:<intent_id>
            self.stats.cancels += 1
        elif self._cancels(order.intent_id):
            c.cancel(order.intent_id)  # event id cancel:<intent_id>
            self.stats.cancels += 1
        else:  # one execution per order: a redelivered order is applied once
            c.fill(
                order.intent_id, order.symbol, order.side.value, order.quantity,
                order.price, fill_id="1",
            )  # fmt: skip
            self.stats.fills += 1
        delivery.ack()
