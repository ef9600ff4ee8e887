"""Enrich an intent with what the checks need: the asset, its effective stop, unit costs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

from gate.exposure import Exposure
from gate.portfolio import Quote, Snapshot, default_stop, fx_rate
from schemas.config import AssetConfig, AssetsConfig
from schemas.messages import Side, TradeIntent

WIRE_PLACES = Decimal("1e-18")  # the finest decimal the protocol carries


def on_grid(value: Decimal, rounding: str) -> Decimal:
    """``value`` with at most 18 decimal places (unchanged when it already has)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -18:
        return value
    return value.quantize(WIRE_PLACES, rounding=rounding)


@dataclass(slots=True)
class Context:
    """One intent and everything known about it at decision time."""

    intent: TradeIntent
    asset: AssetConfig
    snapshot: Snapshot
    exposure: Exposure
    config: AssetsConfig
    now: datetime
    fx: Decimal
    stop: Decimal | None
    take_profit: Decimal | None
    unit_notional: Decimal  # account-currency exposure added per unit of quantity
    unit_risk: Decimal  # account-currency loss to the stop per unit (notional if no stop)
    agent_intents: int  # the agent's intents already counted this minute
    agents: int  # the distinct agents counted this minute in the portfolio
    quote: Quote | None  # the symbol's latest mark, however old
    market: Decimal | None  # its price when recent enough to trade on (else None)
    collar: Decimal  # the price collar, a fraction of the mark
    max_value: Decimal  # the largest order value, account currency (asset's, else class's)
    max_quantity: Decimal | None  # the largest order quantity (None: only the value caps)
    duplicate_of: datetime | None  # when the same opening was approved within the window

    @property
    def symbol(self) -> str:
        return self.intent.symbol

    @property
    def asset_class(self) -> str:
        return self.asset.asset_class.value


def _take_profit(intent: TradeIntent, asset: AssetConfig) -> Decimal | None:
    if intent.take_profit is not None:
        return intent.take_profit
    risk, sign = asset.risk, (1 if intent.side is Side.BUY else -1)
    if risk.take_profit_pips is not None and asset.trading.pip_size is not None:
        return intent.price + sign * risk.take_profit_pips * asset.trading.pip_size
    if risk.take_profit_pct is not None:
        return on_grid(intent.price * (1 + sign * risk.take_profit_pct), ROUND_HALF_EVEN)
    return None


def enrich(
    intent: TradeIntent,
    snapshot: Snapshot,
    exposure: Exposure,
    config: AssetsConfig,
    now: datetime,
    *,
    agent_intents: int = 0,
    agents: int = 0,
    duplicate_of: datetime | None = None,
) -> Context | None:
    """The intent's context, or None when the symbol is not configured."""
    asset = config.assets.get(intent.symbol)
    if asset is None:
        return None
    if intent.reduce_only or intent.stop_price is not None:
        stop = intent.stop_price
    else:  # on the wire's grid (18 places), rounded away from the price: never tighter
        away = ROUND_DOWN if intent.side is Side.BUY else ROUND_UP
        stop = on_grid(default_stop(intent.price, intent.side, intent.symbol, config), away)
    fx = fx_rate(asset.trading.quote_currency, snapshot.account, config)
    quote = snapshot.quote(intent.symbol)
    # the more conservative of the agent's price and the market's: the larger notional
    # and the larger risk to stop (any known mark counts here, however old)
    ref = intent.price if quote is None else max(intent.price, quote.price)
    unit_notional = ref * fx
    if stop is None:
        unit_risk = unit_notional
    else:
        at_mark = abs(quote.price - stop) if quote is not None else abs(intent.price - stop)
        unit_risk = max(abs(intent.price - stop), at_mark) * fx
    cls = config.asset_classes[asset.asset_class]
    collar = asset.risk.price_collar or cls.price_collar
    return Context(
        intent=intent,
        asset=asset,
        snapshot=snapshot,
        exposure=exposure,
        config=config,
        now=now,
        fx=fx,
        stop=stop,
        take_profit=None if intent.reduce_only else _take_profit(intent, asset),
        unit_notional=unit_notional,
        unit_risk=unit_risk,
        agent_intents=agent_intents,
        agents=agents,
        quote=quote,
        market=quote.price if quote is not None and recent(quote, config, now) else None,
        collar=collar,
        max_value=asset.risk.max_order_value or cls.max_order_value,
        max_quantity=asset.risk.max_order_quantity or cls.max_order_quantity,
        duplicate_of=duplicate_of,
    )


def recent(quote: Quote, config: AssetsConfig, now: datetime) -> bool:
    """A mark to trade on: not older than max_mark_age_seconds and not from the future."""
    age = now - quote.at
    return timedelta(0) <= age <= timedelta(seconds=config.risk_management.max_mark_age_seconds)
