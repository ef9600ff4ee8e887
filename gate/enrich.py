"""Enrich an intent with what the checks need: the asset, its effective stop, unit costs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal
from typing import Any, Final

from gate.exposure import Exposure
from gate.portfolio import Quote, Snapshot, fx_rate
from schemas.config import AssetConfig, AssetsConfig
from schemas.messages import Side, TradeIntent

WIRE_PLACES = Decimal("1e-18")  # the finest decimal the protocol carries
#: Enum members read on the hot path, bound once: in Python 3.11 reading a member through
#: its class goes through ``EnumType.__getattr__`` (~140 ns); a module global costs ~2 ns.
BUY = Side.BUY


class Ask:
    """What an intent asks, as the decision reads it: its fields, copied once out of the
    parsed model.

    A decision reads them some 45 times. A pydantic model's attribute goes through the
    ``__getattr__`` hook every model has (Python cannot specialize the read: ~440
    instructions); a slot costs a sixth of that, and compiled (``riskgate compile``) it
    is a native read. The copy takes the model's ``__dict__`` once.
    """

    __slots__ = (
        "agent_id",
        "created_at",
        "intent_id",
        "price",
        "quantity",
        "reduce_only",
        "side",
        "stop_price",
        "symbol",
        "take_profit",
    )

    def __init__(self, intent: TradeIntent) -> None:
        fields: dict[str, Any] = intent.__dict__
        self.intent_id: Final[str] = fields["intent_id"]
        self.agent_id: Final[str] = fields["agent_id"]
        self.symbol: Final[str] = fields["symbol"]
        self.side: Final[Side] = fields["side"]
        self.quantity: Final[Decimal] = fields["quantity"]
        self.price: Final[Decimal] = fields["price"]
        self.stop_price: Final[Decimal | None] = fields["stop_price"]
        self.take_profit: Final[Decimal | None] = fields["take_profit"]
        self.reduce_only: Final[bool] = fields["reduce_only"]
        self.created_at: Final[datetime] = fields["created_at"]

    def __repr__(self) -> str:
        return f"Ask({self.intent_id!r}, {self.side.value} {self.quantity} {self.symbol})"


def on_grid(value: Decimal, rounding: str) -> Decimal:
    """``value`` with at most 18 decimal places (unchanged when it already has)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -18:
        return value
    return value.quantize(WIRE_PLACES, rounding=rounding)


@dataclass(slots=True)
class Listing:
    """One configured symbol as a batch sees it: what is the same for all its intents."""

    symbol: str
    asset: AssetConfig
    asset_class: str
    quote_currency: str
    fx: Decimal  # account-currency value of one unit of the quote currency
    quote: Quote | None  # the symbol's latest mark, however old
    market: Decimal | None  # its price when recent enough to trade on (else None)
    collar: Decimal  # the price collar, a fraction of the mark
    max_value: Decimal  # the largest order value, account currency (asset's, else class's)
    max_quantity: Decimal | None  # the largest order quantity (None: only the value caps)
    stop_pips: Decimal | None  # the default stop: this far from the price (forex) ...
    stop_pct: Decimal | None  # ... or this fraction of it
    take_profit_pips: Decimal | None  # the default take profit: this far (forex) ...
    take_profit_pct: Decimal | None  # ... or this fraction of the price (None: none)
    lot_size: Decimal
    min_size: Decimal
    # the configuration's intent rules, the same for every symbol: read from the models
    # once a batch rather than once an intent (a model's attribute costs ~5x a slot's)
    max_age: timedelta  # an intent older than this is stale ...
    max_skew: timedelta  # ... as is one dated further ahead than this
    agent_rate_limit: int  # intents per agent per minute
    agents_limit: int  # agents per portfolio per minute


def listing(symbol: str, snapshot: Snapshot, config: AssetsConfig, now: datetime) -> Listing | None:
    """What ``symbol`` is in ``config`` and ``snapshot`` at ``now``; None if not configured."""
    asset = config.assets.get(symbol)
    if asset is None:
        return None
    cls = config.asset_classes[asset.asset_class]
    quote = snapshot.quote(symbol)
    risk, pip, rm = asset.risk, asset.trading.pip_size, config.risk_management
    pips = None
    if risk.stop_loss_pips is not None:
        assert pip is not None  # schema guarantees it
        pips = risk.stop_loss_pips * pip
    tp_pips = None
    if risk.take_profit_pips is not None and pip is not None:
        tp_pips = risk.take_profit_pips * pip
    return Listing(
        symbol=symbol,
        asset=asset,
        asset_class=asset.asset_class.value,
        quote_currency=asset.trading.quote_currency,
        fx=fx_rate(asset.trading.quote_currency, snapshot.account, config),
        quote=quote,
        market=quote.price if quote is not None and recent(quote, config, now) else None,
        collar=risk.price_collar or cls.price_collar,
        max_value=risk.max_order_value or cls.max_order_value,
        max_quantity=risk.max_order_quantity or cls.max_order_quantity,
        stop_pips=pips,
        stop_pct=None if pips is not None else risk.stop_loss_pct,
        take_profit_pips=tp_pips,
        take_profit_pct=None if tp_pips is not None else risk.take_profit_pct,
        lot_size=risk.lot_size,
        min_size=risk.min_size,
        max_age=timedelta(seconds=rm.max_intent_age_seconds),
        max_skew=timedelta(seconds=rm.max_clock_skew_seconds),
        agent_rate_limit=rm.max_intents_per_agent_per_minute,
        agents_limit=rm.max_agents_per_portfolio,
    )


class Context:
    """One intent and everything known about it at decision time.

    A plain class rather than a dataclass (one per intent): compiled (``riskgate
    compile``) its constructor is native, where a dataclass's generated ``__init__``
    stays interpreted. Keyword arguments only: its many Decimals are never matched by
    position.
    """

    __slots__ = (
        "agent_intents",
        "agents",
        "asset",
        "asset_class",
        "collar",
        "config",
        "distance",
        "duplicate_of",
        "exposure",
        "fx",
        "intent",
        "listing",
        "market",
        "max_quantity",
        "max_value",
        "now",
        "quote",
        "reference",
        "snapshot",
        "stop",
        "symbol",
        "take_profit",
        "unit_notional",
        "unit_risk",
    )

    def __init__(
        self,
        *,
        intent: Ask,
        listing: Listing,  # its symbol's, in this batch
        asset: AssetConfig,
        snapshot: Snapshot,
        exposure: Exposure,
        config: AssetsConfig,
        now: datetime,
        fx: Decimal,
        stop: Decimal | None,
        take_profit: Decimal | None,
        reference: Decimal,  # the price exposure is valued at: the larger of price and mark
        distance: Decimal | None,  # the loss to the stop per unit, quote currency (None: no stop)
        unit_notional: Decimal,  # account-currency exposure added per unit of quantity
        unit_risk: Decimal,  # account-currency loss to the stop per unit (notional if no stop)
        agent_intents: int,  # the agent's intents already counted this minute
        agents: int,  # the distinct agents counted this minute in the portfolio
        quote: Quote | None,  # the symbol's latest mark, however old
        market: Decimal | None,  # its price when recent enough to trade on (else None)
        collar: Decimal,  # the price collar, a fraction of the mark
        max_value: Decimal,  # the largest order value, account currency (asset's, else class's)
        max_quantity: Decimal | None,  # the largest order quantity (None: only the value caps)
        duplicate_of: datetime | None,  # when the same opening was approved within the window
        symbol: str,
        asset_class: str,
    ) -> None:
        self.intent = intent
        self.listing = listing
        self.asset = asset
        self.snapshot = snapshot
        self.exposure = exposure
        self.config = config
        self.now = now
        self.fx = fx
        self.stop = stop
        self.take_profit = take_profit
        self.reference = reference
        self.distance = distance
        self.unit_notional = unit_notional
        self.unit_risk = unit_risk
        self.agent_intents = agent_intents
        self.agents = agents
        self.quote = quote
        self.market = market
        self.collar = collar
        self.max_value = max_value
        self.max_quantity = max_quantity
        self.duplicate_of = duplicate_of
        self.symbol = symbol
        self.asset_class = asset_class


def _take_profit(intent: Ask, lst: Listing) -> Decimal | None:
    if intent.take_profit is not None:
        return intent.take_profit
    sign = 1 if intent.side is BUY else -1
    if lst.take_profit_pips is not None:
        return intent.price + sign * lst.take_profit_pips
    if lst.take_profit_pct is not None:
        return on_grid(intent.price * (1 + sign * lst.take_profit_pct), ROUND_HALF_EVEN)
    return None


def _default_stop(price: Decimal, side: Side, lst: Listing) -> Decimal:
    """:func:`gate.portfolio.default_stop` with the listing's constants, on the wire's grid
    (18 places), rounded away from the price: never tighter."""
    distance = lst.stop_pips if lst.stop_pips is not None else price * lst.stop_pct  # type: ignore[operator]
    if side is BUY:
        return on_grid(price - distance, ROUND_DOWN)
    return on_grid(price + distance, ROUND_UP)


def enrich(
    intent: Ask,
    lst: Listing,
    snapshot: Snapshot,
    exposure: Exposure,
    *,
    config: AssetsConfig,
    now: datetime,
    agent_intents: int = 0,
    agents: int = 0,
    duplicate_of: datetime | None = None,
) -> Context:
    """The intent's context (``lst``: its symbol's listing)."""
    price = intent.price
    if intent.reduce_only or intent.stop_price is not None:
        stop = intent.stop_price
    else:
        stop = _default_stop(price, intent.side, lst)
    fx = lst.fx
    quote = lst.quote
    # the more conservative of the agent's price and the market's: the larger notional
    # and the larger risk to stop (any known mark counts here, however old)
    ref = price if quote is None else max(price, quote.price)
    unit_notional = ref * fx
    if stop is None:
        distance = None
        unit_risk = unit_notional
    else:
        distance = abs(price - stop)
        if quote is not None:
            distance = max(distance, abs(quote.price - stop))
        unit_risk = distance * fx
    return Context(
        intent=intent,
        listing=lst,
        asset=lst.asset,
        snapshot=snapshot,
        exposure=exposure,
        config=config,
        now=now,
        fx=fx,
        stop=stop,
        take_profit=None if intent.reduce_only else _take_profit(intent, lst),
        reference=ref,
        distance=distance,
        unit_notional=unit_notional,
        unit_risk=unit_risk,
        agent_intents=agent_intents,
        agents=agents,
        quote=quote,
        market=lst.market,
        collar=lst.collar,
        max_value=lst.max_value,
        max_quantity=lst.max_quantity,
        duplicate_of=duplicate_of,
        symbol=lst.symbol,
        asset_class=lst.asset_class,
    )


def recent(quote: Quote, config: AssetsConfig, now: datetime) -> bool:
    """A mark to trade on: not older than max_mark_age_seconds and not from the future."""
    age = now - quote.at
    return timedelta(0) <= age <= timedelta(seconds=config.risk_management.max_mark_age_seconds)
