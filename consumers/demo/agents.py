"""The demo's agents and executor: a book that behaves like one, a few deliberate
offenders, and an executor, all driven one tick at a time (seeded: the same seed, the
same decisions; see :mod:`consumers.demo.run`).

* :class:`Desk`: what the agents see of the portfolio after each tick (equity, heat,
  class shares, positions, marks: ``riskgate status``), and the room left under each
  of the gate's limits, which it hands out as the agents of a tick ask for it.
* :class:`Agents`: ``traders`` that **size to fit** (``risk_per_trade`` at the asset's
  stop, scaled by each trader's appetite, capped by the room the desk has left under the
  position, class, order-value and heat limits), **take profits** and **cut losses** at
  their own targets, **close** after a holding period (reduce-only sells of what they
  hold), and trade every enabled asset (those the rules refuse today, earnings blackout
  or sideways market, are refused). Beside them, offenders, each once in a while:
  ``oversized`` (5x its fit: resized), ``no_stop`` (the asset's stop rule sets it),
  ``bad_stop`` (stop above the price of a buy: ``invalid_stop``), ``wrong_side``
  (reduce-only sell of what the portfolio does not hold: ``reduce_only``),
  ``fat_finger`` (price ten times off the mark: ``price_collar``), ``disabled`` (an
  asset of a phase not enabled), a ``flooder`` (a runaway loop re-sending one order past
  its quota: ``duplicate_order``, then ``rate_limited``), re-sent intents (decided once)
  and malformed entries (dead-lettered).
* :class:`Executor`: fills each tick's approved orders at their reference price (one in
  ten cancelled, chosen by the seed and the intent id), in stream order, and tells the
  agents what they now hold.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from consumers.sdk.client import GateClient
from consumers.state import control
from gate.assets import AssetManager
from gate.money import floor_to_lot
from schemas.config import AssetsConfig
from schemas.messages import TradeIntent

D = Decimal
ZERO = D(0)
Q4 = D("0.0001")

#: offenders: how often each sends (per tick), and what the gate should say
OFFENDERS = {
    "oversized": 0.5,
    "no_stop": 0.5,
    "bad_stop": 0.25,
    "wrong_side": 0.25,
    "fat_finger": 0.25,
    "disabled": 0.25,
}
#: the share of each limit's room the desk hands out (the rest absorbs price moves)
MARGIN = D("0.9")
#: the share of an opening's value the desk takes from its symbol's room (1: all of it)
OVERBOOK = D("1")
#: ticks a trader waits after a refusal before its next opening
IDLE_AFTER_REFUSAL = 5
#: traders that size by their own model (the full risk per trade), not the desk's room
OWN_MODEL = 0.05
#: the flooder's runaway loop: this many copies of one order in one burst, every
#: FLOOD_EVERY ticks (ticks are at least a second apart: two bursts never share a
#: UTC minute, and one burst is decided in one batch, on one reading of the clock)
FLOOD_SIZE = 130
FLOOD_EVERY = 70
#: the gate's duplicate-order window is 10 s and ticks are at least 1 s apart: no agent
#: but the flooder repeats an opening (symbol, quantity) within this many ticks
REPEAT_TICKS = 12
#: reasons that will not change within a demo: a trader refused for them stops asking
LASTING = frozenset({"earnings_blackout", "sideways_market", "asset_disabled", "class_disabled"})
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
    set by hand: earnings dates and regimes come from the feed (its ``sim`` source: AMD
    reports inside its blackout, SOXL moves sideways, so those rules show)."""
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


class Desk:
    """The portfolio as the agents see it after a tick, and the room under the limits.
    The class and heat room is shared out as the tick's openings are sent (so they fit
    together); the room in one position is counted at OVERBOOK (traders buying the same
    symbol in one tick may overshoot it and be resized by ``max_position``)."""

    def __init__(self, manager: AssetManager, status: Mapping[str, Any], margin: D) -> None:
        cfg = manager.config
        rm = cfg.risk_management
        self.manager, self.config = manager, cfg
        self.equity = D(status["equity"])
        eq = self.equity
        self.held = {s: D(p["quantity"]) for s, p in status.get("positions", {}).items()}
        marks = status.get("marks", {})
        self.marks = {s: D(m["price"]) for s, m in marks.items()}
        self.heat_room = (rm.max_portfolio_heat - D(status.get("heat") or 0)) * eq * margin
        self.class_room: dict[str, D] = {}
        for c, cls in cfg.asset_classes.items():
            cap = min(rm.max_single_asset_class, cls.max_allocation)
            share = D(status.get("class_shares", {}).get(c) or 0)
            self.class_room[c] = (cap - share) * eq * margin
        self.position_room: dict[str, D] = {}  # account currency, like every room
        for s, a in cfg.assets.items():
            value = abs(self.held.get(s, ZERO)) * self.marks.get(s, a.reference_price)
            self.position_room[s] = a.risk.max_position_pct * eq * margin - value * self.fx(s)
        self.margin = margin

    def fx(self, symbol: str) -> D:
        """Account-currency value of one unit of the symbol's quote currency."""
        ccy = self.config.assets[symbol].trading.quote_currency
        return self.config.risk_management.fx_rates.get(ccy, D(1))

    def fit(self, symbol: str, price: D, appetite: D) -> D:
        """The largest quantity (whole lots, 0 if below the minimum size) of a buy at
        ``price`` with the asset's stop that keeps every limit, at ``appetite`` times the
        risk per trade."""
        a = self.config.assets[symbol]
        cls = self.config.asset_classes[a.asset_class]
        stop = self.manager.stop_fraction(symbol, price)
        unit = price * self.fx(symbol)  # account currency per unit
        risk_qty = self.manager.calculate_position_quantity(symbol, self.equity, price) * appetite
        limits = [
            risk_qty,
            self.position_room[symbol] / unit,
            self.class_room[a.asset_class] / unit,
            self.heat_room / (unit * stop),
            (a.risk.max_order_value or cls.max_order_value) * self.margin / unit,
        ]
        most = a.risk.max_order_quantity or cls.max_order_quantity
        if most is not None:
            limits.append(most)
        qty = floor_to_lot(min(limits), a.risk.lot_size)
        return qty if qty >= a.risk.min_size else ZERO

    def take(self, symbol: str, qty: D, price: D) -> None:
        a = self.config.assets[symbol]
        value = qty * price * self.fx(symbol)
        self.position_room[symbol] -= value * OVERBOOK
        self.class_room[a.asset_class] -= value
        self.heat_room -= value * self.manager.stop_fraction(symbol, price)


@dataclass
class Holding:
    symbol: str
    quantity: D
    entry: D
    opened: int  # tick
    take_profit: D
    cut_loss: D


@dataclass
class Trader:
    agent_id: str
    appetite: D  # of the risk per trade
    target: D  # take profit at entry x (1 + target)
    tolerance: D  # cut the loss at entry x (1 - tolerance)
    hold: int  # ticks before closing anyway
    own_model: bool = False  # sizes by risk alone, not by the desk's room (gets resized)
    idle_until: int = 0  # after a refusal, the trader waits before asking again
    book: dict[str, Holding] = field(default_factory=dict)


@dataclass
class Order:
    """An offender's intent before it is sent."""

    symbol: str
    side: str
    qty: D
    price: D
    stop: D | None
    reduce_only: bool = False


@dataclass
class Sent:
    """What an intent was for, to credit its fill to the agent that sent it."""

    agent_id: str
    kind: str
    symbol: str
    side: str


@dataclass
class AgentStats:
    sent: Counter[str] = field(default_factory=Counter)
    intent_ids: set[str] = field(default_factory=set)  # every id the gate must decide

    @property
    def total(self) -> int:
        return sum(self.sent.values())


class Agents:
    """Every agent's intents for one tick, in a seeded order (see :meth:`tick`)."""

    def __init__(
        self,
        manager: AssetManager,
        market: Market,
        *,
        disabled: list[str],
        rng: random.Random,
        agents: int,
        margin: D = MARGIN,
    ) -> None:
        self.manager = manager
        self.config = manager.config
        self.market = market
        self.disabled = disabled
        self.rng = rng
        self.margin = margin
        self.traders = [
            Trader(
                f"agent-{i:03d}",
                appetite=D(rng.choice(("0.02", "0.05", "0.1", "0.25"))),
                target=D(rng.choice(("0.002", "0.003", "0.005"))),
                tolerance=D(rng.choice(("0.002", "0.003", "0.004"))),
                hold=rng.randint(6, 20),
                own_model=rng.random() < OWN_MODEL,
            )
            for i in range(agents)
        ]
        self.recent: list[bytes] = []  # payloads to re-send (decided once)
        self.sent: dict[str, Sent] = {}
        self.kinds: dict[str, str] = {}  # intent id -> what the agent meant
        self.opened: dict[tuple[str, str, D], int] = {}  # (agent, symbol, qty) -> tick
        self.refused: set[str] = set()  # symbols a lasting rule refuses (see learn)
        self.created: dict[str, datetime] = {}  # intent id -> created_at (for latency)
        self.stats = AgentStats()
        self.seq = 0
        self.tick_no = 0
        self.next_flood = 0

    # -- one tick --------------------------------------------------------------------------

    def flood(self, tick: int, status: Mapping[str, Any]) -> list[bytes]:
        """The flooder's burst when due: one order (for a symbol with room, so the first
        copy is approved) re-sent FLOOD_SIZE times."""
        if tick < self.next_flood or not self.market.prices:
            return []
        desk = Desk(self.manager, status, self.margin)
        prices = self.market.prices
        open_ = [s for s in self.market.symbols if s in prices and s not in self.refused]
        room = [s for s in open_ if desk.fit(s, prices[s], D(1)) > 0]
        if not room:  # no room anywhere: the next tick
            return []
        self.next_flood = tick + FLOOD_EVERY
        symbol = room[0]
        price = self.market.prices[symbol]
        qty = self.config.assets[symbol].risk.min_size
        stop = (price * (1 - self.manager.stop_fraction(symbol, price))).quantize(Q4)
        return [
            self._intent(
                "flooder", "agent-flood", symbol, side="buy", qty=qty, price=price, stop=stop
            )
            for _ in range(FLOOD_SIZE)
        ]

    def tick(self, tick: int, status: Mapping[str, Any]) -> list[bytes]:
        """The tick's intents: the traders' exits first, then their openings (sized to
        fit what the desk has left), the offenders, re-sent and malformed entries; the
        order is seeded."""
        self.tick_no = tick
        desk = Desk(self.manager, status, self.margin)
        rng = self.rng
        out: list[bytes] = []
        order = list(self.traders)
        rng.shuffle(order)
        for t in order:
            out += self._exits(t, tick)
        symbols = sorted(self.market.prices)
        allowed = [s for s in symbols if s not in self.refused] or symbols
        offenders = [k for k, p in OFFENDERS.items() if rng.random() < p and symbols]
        # no_stop takes its room from the desk like a trader, before the traders do; the
        # others come after them, as a desk's bad orders would
        for kind in [k for k in offenders if k == "no_stop"]:
            out += self._offend_list(kind, rng.choice(allowed), desk)
        # one holding at a time: at most one intent a tick per trader; those sizing by
        # their own model come last (the gate cuts them to what the desk left)
        for t in sorted(order, key=lambda t: t.own_model):
            if not t.book and tick >= t.idle_until and rng.random() < 0.5 and symbols:
                payload = self._open(t, tick, rng.choice(symbols), desk)
                if payload is not None:
                    out.append(payload)
        for kind in [k for k in offenders if k != "no_stop"]:
            out += self._offend_list(kind, rng.choice(allowed), desk)
        extra = []
        if self.recent and rng.random() < 0.5:  # an agent re-sends what it sent (decided once)
            self.stats.sent["resent"] += 1
            extra.append(rng.choice(self.recent))
        if rng.random() < 0.3:
            extra.append(self._malformed())
        self.recent = [*self.recent, *out][-20:]
        return out + extra

    def _exits(self, t: Trader, tick: int) -> list[bytes]:
        out = []
        for symbol, h in sorted(t.book.items()):
            mark = self.market.prices.get(symbol)
            if mark is None:
                continue
            if mark >= h.take_profit:
                kind = "take_profit"
            elif mark <= h.cut_loss:
                kind = "cut_loss"
            elif tick - h.opened >= t.hold:
                kind = "close"
            else:
                continue
            out.append(self._intent(kind, t.agent_id, symbol, side="sell", qty=h.quantity,
                                    price=mark, stop=None, reduce_only=True))  # fmt: skip
        return out

    def _open(self, t: Trader, tick: int, symbol: str, desk: Desk) -> bytes | None:
        if symbol in t.book or symbol in self.refused:
            return None
        price = self.market.prices[symbol]
        if t.own_model:  # the full risk per trade, whatever room is left
            qty = self.manager.calculate_position_quantity(symbol, desk.equity, price)
        else:
            qty = desk.fit(symbol, price, t.appetite)
        lot = self.config.assets[symbol].risk.lot_size
        while qty > 0 and self._repeats(t.agent_id, symbol, qty, tick):
            qty -= lot  # never the same opening twice inside the duplicate-order window
        if qty < self.config.assets[symbol].risk.min_size:
            return None
        if not t.own_model:
            desk.take(symbol, qty, price)
        self.opened[(t.agent_id, symbol, qty)] = tick
        stop = (price * (1 - self.manager.stop_fraction(symbol, price))).quantize(Q4)
        return self._intent(
            "sized", t.agent_id, symbol, side="buy", qty=qty, price=price, stop=stop
        )

    def _offend_list(self, kind: str, symbol: str, desk: Desk) -> list[bytes]:
        payload = self._offend(kind, symbol, desk)
        return [] if payload is None else [payload]

    def _offend(self, kind: str, symbol: str, desk: Desk) -> bytes | None:
        o = self._offence(kind, symbol, desk)
        if o is None:
            return None
        agent = f"agent-{kind.replace('_', '-')}"
        if not o.reduce_only:
            if self._repeats(agent, o.symbol, o.qty, self.tick_no):
                return None  # an identical opening inside the duplicate-order window: not now
            self.opened[(agent, o.symbol, o.qty)] = self.tick_no
            if kind == "no_stop":
                desk.take(o.symbol, o.qty, o.price)
        return self._intent(kind, agent, o.symbol, side=o.side, qty=o.qty, price=o.price,
                            stop=o.stop, reduce_only=o.reduce_only)  # fmt: skip

    def _offence(self, kind: str, symbol: str, desk: Desk) -> Order | None:
        """What each offender sends (see the module's docstring)."""
        price = self.market.prices[symbol]
        asset = self.config.assets[symbol].risk
        fit = desk.fit(symbol, price, D("0.2"))
        stop = (price * (1 - self.manager.stop_fraction(symbol, price))).quantize(Q4)
        o = Order(symbol, "buy", max(fit, asset.min_size), price, stop)
        if kind == "oversized":  # five times the full risk per trade (past max_position)
            full = self.manager.calculate_position_quantity(symbol, desk.equity, price)
            o.qty = max(floor_to_lot(full * 5, asset.lot_size), asset.min_size * 5)
        elif kind == "no_stop":  # the asset's stop rule sets one
            o.stop = None
            return o if fit > 0 else None
        elif kind == "bad_stop":
            o.stop = (price * D("1.05")).quantize(Q4)
        elif kind == "wrong_side":
            unheld = [s for s in sorted(self.market.prices) if desk.held.get(s, ZERO) == 0]
            if not unheld:
                return None
            s = self.rng.choice(unheld)
            return Order(s, "sell", self.config.assets[s].risk.min_size, self.market.prices[s],
                         None, reduce_only=True)  # fmt: skip
        elif kind == "fat_finger":
            o.price = (price * D(self.rng.choice(("0.1", "10")))).quantize(Q4)
            o.stop = (o.price * D("0.95")).quantize(Q4)
        elif kind == "disabled":
            if not self.disabled:
                return None
            s = self.rng.choice(self.disabled)
            a = self.config.assets[s]
            return Order(s, "buy", a.risk.min_size, a.reference_price, None)
        return o

    def _repeats(self, agent: str, symbol: str, qty: D, tick: int) -> bool:
        """The agent opened the same quantity of ``symbol`` fewer than REPEAT_TICKS ago
        (the gate would judge it by its clock: refused or not, depending on the pace)."""
        return tick - self.opened.get((agent, symbol, qty), -REPEAT_TICKS) < REPEAT_TICKS

    def _malformed(self) -> bytes:
        self.seq += 1
        self.stats.sent["malformed"] += 1
        raw = self.rng.choice(MALFORMED)
        if b"%d" in raw:
            raw = raw.replace(b"%d", str(self.seq).encode())
            self.stats.intent_ids.add(json.loads(raw)["intent_id"])
        return raw

    def _intent(
        self, kind: str, agent: str, symbol: str, *, side: str, qty: D, price: D,
        stop: D | None, reduce_only: bool = False,
    ) -> bytes:  # fmt: skip
        self.seq += 1
        intent_id = f"{agent}-{self.seq}"
        self.created[intent_id] = datetime.now(UTC)
        intent = TradeIntent.model_validate(
            {
                "intent_id": intent_id,
                "agent_id": agent,
                "symbol": symbol,
                "side": side,
                "quantity": qty,
                "price": price,
                "stop_price": stop,
                "reduce_only": reduce_only,
                "created_at": self.created[intent_id],
            }
        )
        self.stats.sent[kind] += 1
        self.stats.intent_ids.add(intent_id)
        self.sent[intent_id] = Sent(agent, kind, symbol, side)
        self.kinds[intent_id] = kind
        return intent.model_dump_json(exclude_none=True).encode()

    # -- what the gate and the executor did -------------------------------------------------

    def learn(self, decisions: list[tuple[str, str, str, tuple[str, ...]]]) -> None:
        """A trader refused for a symbol by a rule that holds for days (an earnings
        blackout, a sideways market, a disabled asset) tells the desk: no trader asks
        for it again (the offenders go on with the other symbols). A refused trader waits
        a few ticks before its next opening."""
        for intent_id, symbol, status, codes in decisions:
            sent = self.sent.get(intent_id)
            trader = self._trader(sent.agent_id) if sent is not None else None
            if trader is None:
                continue
            if LASTING.intersection(codes):
                self.refused.add(symbol)
            if status == "rejected":
                trader.idle_until = self.tick_no + IDLE_AFTER_REFUSAL

    def forget(self) -> None:
        """The tick is over: its intents are decided and their orders handled."""
        self.sent.clear()
        self.created.clear()

    # -- what the executor did -------------------------------------------------------------

    def filled(self, intent_id: str, quantity: D, price: D) -> None:
        """Credit a fill to the trader that sent the intent (offenders keep no book)."""
        sent = self.sent.pop(intent_id, None)
        trader = self._trader(sent.agent_id) if sent is not None else None
        if sent is None or trader is None:
            return
        if sent.side == "buy":
            t = trader
            t.book[sent.symbol] = Holding(
                sent.symbol, quantity, price, self.tick_no,
                take_profit=price * (1 + t.target), cut_loss=price * (1 - t.tolerance),
            )  # fmt: skip
            return
        h = trader.book.get(sent.symbol)
        if h is not None:
            h.quantity -= quantity
            if h.quantity <= 0:
                del trader.book[sent.symbol]

    def _trader(self, agent_id: str) -> Trader | None:
        if not agent_id.startswith("agent-") or not agent_id[6:].isdigit():
            return None
        i = int(agent_id[6:])
        return self.traders[i] if i < len(self.traders) else None


@dataclass
class ExecutorStats:
    fills: int = 0
    cancels: int = 0


class Executor:
    """Handles the orders the gate published, in stream order, when asked (once a tick):
    fills each at its reference price, cancels one in ten (the seed and the intent id
    choose which, however often it is handled)."""

    GROUP = "demo-executor"

    def __init__(self, client: GateClient, seed: int) -> None:
        self.client = client
        self.seed = seed
        self.stats = ExecutorStats()

    def _cancels(self, intent_id: str) -> bool:
        return random.Random(f"{self.seed}:{intent_id}").random() < 0.1

    def drain(self, done: Any) -> list[tuple[str, D, D]]:
        """Every order waiting; ``done()`` says when the group is caught up. Returns the
        fills (intent id, quantity, price)."""
        c = self.client
        fills: list[tuple[str, D, D]] = []
        for delivery in c.orders(self.GROUP, "exec-1", start="0", block_ms=5, stop=done):
            order = delivery.order
            if order is None:  # a cancel request (riskgate halt --cancel-open)
                c.cancel(delivery.intent_id)
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
                fills.append((order.intent_id, D(order.quantity), D(order.price)))
            delivery.ack()
        return fills
