"""The rules. Each is a small function of a :class:`Context`.

Two kinds:
- *gates* return a :class:`Reason` (reject whatever the size) or ``None``;
- *limits* return a :class:`Limit`, a linear cap ``used + q * per_unit <= cap`` that
  sizing folds into the largest allowed quantity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from gate.enrich import Context
from gate.money import ZERO, plain, ratio, show
from gate.portfolio import Vitals
from schemas.messages import Reason, ReasonCode, Side

Gate = Callable[[Context, Vitals], Reason | None]

PERCENT = Decimal("0.01")


def pct(fraction: Decimal) -> str:
    return f"{show(fraction * 100, PERCENT)}%"


def reason(code: ReasonCode, message: str, value: object = None, limit: object = None) -> Reason:
    def text(x: object) -> str | None:
        if x is None:
            return None
        return plain(x) if isinstance(x, Decimal) else str(x)

    return Reason(code=code, message=message, value=text(value), limit=text(limit))


# --- gates ----------------------------------------------------------------------------


def intent_age(ctx: Context, _: Vitals) -> Reason | None:
    rm = ctx.config.risk_management
    age = ctx.now - ctx.intent.created_at
    if age > timedelta(seconds=rm.max_intent_age_seconds):
        return reason(
            ReasonCode.STALE_INTENT,
            f"intent is {int(age.total_seconds())}s old; its price is stale",
            int(age.total_seconds()),
            rm.max_intent_age_seconds,
        )
    if -age > timedelta(seconds=rm.max_clock_skew_seconds):
        return reason(
            ReasonCode.STALE_INTENT,
            f"intent is dated {int(-age.total_seconds())}s in the future",
            int(age.total_seconds()),
            -rm.max_clock_skew_seconds,
        )
    return None


def asset_enabled(ctx: Context, _: Vitals) -> Reason | None:
    if ctx.asset.enabled:
        return None
    return reason(ReasonCode.ASSET_DISABLED, f"{ctx.symbol} is not enabled for trading")


def class_enabled(ctx: Context, _: Vitals) -> Reason | None:
    if ctx.config.asset_classes[ctx.asset.asset_class].enabled:
        return None
    return reason(ReasonCode.CLASS_DISABLED, f"asset class {ctx.asset_class} is not enabled")


def not_halted(ctx: Context, _: Vitals) -> Reason | None:
    if not ctx.snapshot.flags.halted:
        return None
    return reason(ReasonCode.TRADING_HALTED, "trading is halted by an operator; reduce-only only")


def emergency_stop(ctx: Context, v: Vitals) -> Reason | None:
    limit = ctx.config.risk_management.emergency_stop_drawdown
    if v.drawdown < limit:
        return None
    return reason(
        ReasonCode.EMERGENCY_STOP,
        f"drawdown {pct(v.drawdown)} is at or beyond the {pct(limit)} emergency stop; "
        "reduce-only only",
        show(v.drawdown),
        limit,
    )


def daily_loss(ctx: Context, v: Vitals) -> Reason | None:
    limit = ctx.config.risk_management.daily_loss_limit
    if v.daily_loss < limit:
        return None
    return reason(
        ReasonCode.DAILY_LOSS_LIMIT,
        f"down {pct(v.daily_loss)} today, at or beyond the {pct(limit)} daily loss limit; "
        "reduce-only only",
        show(v.daily_loss),
        limit,
    )


def has_equity(_: Context, v: Vitals) -> Reason | None:
    if v.equity > 0:
        return None
    return reason(
        ReasonCode.NO_EQUITY, "portfolio equity is not positive; deposit first", v.equity, 0
    )


def fresh_marks(ctx: Context, _: Vitals) -> Reason | None:
    oldest = ctx.exposure.oldest_mark
    max_age = ctx.config.risk_management.max_mark_age_seconds
    if oldest is None or ctx.now - oldest <= timedelta(seconds=max_age):
        return None
    age = int((ctx.now - oldest).total_seconds())
    return reason(
        ReasonCode.STALE_PORTFOLIO,
        f"the oldest position mark is {age}s old; portfolio state is stale",
        age,
        max_age,
    )


def valid_stop(ctx: Context, _: Vitals) -> Reason | None:
    stop, price = ctx.stop, ctx.intent.price
    if stop is None:
        return None
    wrong_side = stop >= price if ctx.intent.side is Side.BUY else stop <= price
    if stop > 0 and not wrong_side:
        return None
    where = "below" if ctx.intent.side is Side.BUY else "above"
    return reason(
        ReasonCode.INVALID_STOP,
        f"stop {plain(stop)} must be {where} the price {plain(price)} for a {ctx.intent.side}",
        stop,
        price,
    )


def valid_take_profit(ctx: Context, _: Vitals) -> Reason | None:
    tp, price = ctx.take_profit, ctx.intent.price
    if tp is None:
        return None
    wrong_side = tp <= price if ctx.intent.side is Side.BUY else tp >= price
    if tp > 0 and not wrong_side:
        return None
    where = "above" if ctx.intent.side is Side.BUY else "below"
    return reason(
        ReasonCode.INVALID_TAKE_PROFIT,
        f"take profit {plain(tp)} must be {where} the price {plain(price)}",
        tp,
        price,
    )


def earnings_blackout(ctx: Context, _: Vitals) -> Reason | None:
    days = ctx.asset.special_rules.earnings_blackout_days
    if days is None:
        return None
    when = ctx.snapshot.flags.earnings.get(ctx.symbol)
    if when is None:
        return reason(
            ReasonCode.EARNINGS_BLACKOUT,
            f"no earnings date on record for {ctx.symbol}; set one before trading it",
            None,
            days,
        )
    until = (when - ctx.now.date()).days
    if 0 <= until <= days:
        return reason(
            ReasonCode.EARNINGS_BLACKOUT,
            f"{ctx.symbol} reports earnings on {when.isoformat()}, inside the {days}-day blackout",
            until,
            days,
        )
    return None


def sideways_market(ctx: Context, _: Vitals) -> Reason | None:
    if not ctx.asset.special_rules.avoid_sideways_market:
        return None
    regime = ctx.snapshot.flags.regimes.get(ctx.symbol)
    if regime == "trending":
        return None
    what = "sideways" if regime == "sideways" else f"unknown ({regime or 'not set'})"
    return reason(
        ReasonCode.SIDEWAYS_MARKET,
        f"{ctx.symbol} is only traded in trending markets; the regime is {what}",
        regime,
        "trending",
    )


def max_hold(ctx: Context, _: Vitals) -> Reason | None:
    days = ctx.asset.special_rules.max_hold_days
    pos = ctx.snapshot.positions.get(ctx.symbol)
    if days is None or pos is None:
        return None
    held = ctx.now - pos.opened_at
    if held < timedelta(days=days):
        return None
    return reason(
        ReasonCode.MAX_HOLD,
        f"the {ctx.symbol} position is {held.days} days old, over the {days}-day max hold; "
        "close it before adding",
        held.days,
        days,
    )


def rate_limit(ctx: Context, _: Vitals) -> Reason | None:
    limit = ctx.config.risk_management.max_intents_per_agent_per_minute
    count = intents_this_minute(ctx)
    if count < limit:
        return None
    return reason(
        ReasonCode.RATE_LIMITED,
        f"agent {ctx.intent.agent_id} sent {count} intents this minute, limit {limit}",
        count,
        limit,
    )


def rate_window(now: datetime) -> int:
    """The per-agent rate limit counts intents per UTC minute."""
    return int(now.timestamp()) // 60


def intents_this_minute(ctx: Context) -> int:
    rc = ctx.snapshot.rates.get(ctx.intent.agent_id)
    return rc.count if rc is not None and rc.window == rate_window(ctx.now) else 0


#: Every gate an opening (not reduce-only) intent must pass, in report order.
OPENING_GATES: tuple[Gate, ...] = (
    intent_age,
    asset_enabled,
    class_enabled,
    not_halted,
    emergency_stop,
    daily_loss,
    has_equity,
    fresh_marks,
    valid_stop,
    valid_take_profit,
    earnings_blackout,
    sideways_market,
    max_hold,
    rate_limit,
)

#: Reduce-only intents shrink risk: they skip everything but the intent's own age.
REDUCING_GATES: tuple[Gate, ...] = (intent_age,)


# --- limits ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limit:
    """``used + q * per_unit <= cap``; reported as fractions of ``scale``."""

    code: ReasonCode
    label: str
    used: Decimal
    per_unit: Decimal
    cap: Decimal
    scale: Decimal

    def fits(self, quantity: Decimal) -> bool:
        return self.used + quantity * self.per_unit <= self.cap

    def max_quantity(self) -> Decimal:
        if self.per_unit <= 0:
            return Decimal("Infinity") if self.used <= self.cap else ZERO
        return max(ZERO, (self.cap - self.used) / self.per_unit)

    def share(self, quantity: Decimal) -> Decimal:
        return ratio(self.used + quantity * self.per_unit, self.scale)

    @property
    def limit(self) -> Decimal:
        return ratio(self.cap, self.scale)


def position_limit(ctx: Context, v: Vitals) -> Limit:
    held = ctx.exposure.symbol_quantity.get(ctx.symbol, ZERO)
    return Limit(
        ReasonCode.MAX_POSITION,
        f"{ctx.symbol} position",
        held * ctx.unit_notional,
        ctx.unit_notional,
        ctx.asset.risk.max_position_pct * v.equity,
        v.equity,
    )


def heat_limit(ctx: Context, v: Vitals) -> Limit:
    return Limit(
        ReasonCode.PORTFOLIO_HEAT,
        "portfolio heat",
        ctx.exposure.heat,
        ctx.unit_risk,
        ctx.config.risk_management.max_portfolio_heat * v.equity,
        v.equity,
    )


def class_limit_fraction(ctx: Context) -> Decimal:
    own = ctx.config.asset_classes[ctx.asset.asset_class].max_allocation
    return min(ctx.config.risk_management.max_single_asset_class, own)


def class_limit(ctx: Context, v: Vitals) -> Limit:
    return Limit(
        ReasonCode.ASSET_CLASS_LIMIT,
        f"{ctx.asset_class} class share",
        ctx.exposure.class_notional.get(ctx.asset_class, ZERO),
        ctx.unit_notional,
        class_limit_fraction(ctx) * v.equity,
        v.equity,
    )


def correlations_fresh(ctx: Context) -> bool:
    corr = ctx.snapshot.correlations
    max_age = timedelta(hours=ctx.config.risk_management.correlation_max_age_hours)
    return corr.as_of is not None and ctx.now - corr.as_of <= max_age


def correlated_symbols(ctx: Context) -> list[str]:
    """Other symbols with exposure that move with this one.

    ``|corr| >= threshold`` counts; an unknown (or stale) correlation counts when the
    two are in the same class (fail closed) and not across classes.
    """
    threshold = ctx.config.risk_management.correlation_threshold
    fresh = correlations_fresh(ctx)
    out = []
    for other, other_class in ctx.exposure.symbol_class.items():
        if other == ctx.symbol:
            continue
        c = ctx.snapshot.correlations.get(ctx.symbol, other) if fresh else None
        if (c is not None and abs(c) >= threshold) or (
            c is None and other_class == ctx.asset_class
        ):
            out.append(other)
    return sorted(out)


def correlation_limit(ctx: Context, v: Vitals) -> Limit:
    notional = ctx.exposure.symbol_notional
    used = sum((notional[s] for s in correlated_symbols(ctx)), ZERO)
    used += notional.get(ctx.symbol, ZERO)
    return Limit(
        ReasonCode.CORRELATED_EXPOSURE,
        "correlated exposure",
        used,
        ctx.unit_notional,
        ctx.config.risk_management.max_correlation_exposure * v.equity,
        v.equity,
    )


def reduce_limit(ctx: Context) -> Limit:
    available = ctx.exposure.reducible(ctx.snapshot, ctx.symbol, ctx.intent.side)
    return Limit(
        ReasonCode.REDUCE_ONLY,
        f"{ctx.symbol} reducible size",
        ZERO,
        Decimal(1),
        available,
        Decimal(1),
    )


OPENING_LIMITS = (position_limit, heat_limit, class_limit, correlation_limit)
