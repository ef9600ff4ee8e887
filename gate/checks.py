"""The rules. Each is a small function returning a finding or nothing.

Three kinds:
- *portfolio gates* look only at the portfolio (halt, drawdown, daily loss, equity,
  stale marks): evaluated once per batch, they reject every opening intent in it;
- *intent gates* look at one intent (age, enabled, stop, earnings, regime, max hold,
  rate): they reject it whatever its size;
- *limits* are linear caps ``used + q * per_unit <= cap`` that sizing folds into the
  largest allowed quantity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from gate.enrich import Context
from gate.money import ZERO, plain, ratio, show
from gate.portfolio import Snapshot, Vitals
from schemas.config import AssetConfig, AssetsConfig
from schemas.messages import Reason, ReasonCode, Side, construct_unchecked

PERCENT = Decimal("0.01")


def pct(fraction: Decimal) -> str:
    return f"{show(fraction * 100, PERCENT)}%"


def reason(code: ReasonCode, message: str, value: object = None, limit: object = None) -> Reason:
    def text(x: object) -> str | None:
        if x is None:
            return None
        return plain(x) if isinstance(x, Decimal) else str(x)

    return construct_unchecked(
        Reason, {"code": code, "message": message, "value": text(value), "limit": text(limit)}
    )


# --- portfolio gates (once per batch) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Standing:
    """The portfolio as a batch sees it: what the portfolio gates look at."""

    snapshot: Snapshot
    vitals: Vitals
    oldest_mark: datetime | None
    config: AssetsConfig
    now: datetime


PortfolioGate = Callable[[Standing], Reason | None]


def not_halted(s: Standing) -> Reason | None:
    if not s.snapshot.flags.halted:
        return None
    return reason(ReasonCode.TRADING_HALTED, "trading is halted by an operator; reduce-only only")


def emergency_stop(s: Standing) -> Reason | None:
    limit = s.config.risk_management.emergency_stop_drawdown
    if s.vitals.drawdown < limit:
        return None
    return reason(
        ReasonCode.EMERGENCY_STOP,
        f"drawdown {pct(s.vitals.drawdown)} is at or beyond the {pct(limit)} emergency stop; "
        "reduce-only only",
        show(s.vitals.drawdown),
        limit,
    )


def daily_loss(s: Standing) -> Reason | None:
    limit = s.config.risk_management.daily_loss_limit
    if s.vitals.daily_loss < limit:
        return None
    return reason(
        ReasonCode.DAILY_LOSS_LIMIT,
        f"down {pct(s.vitals.daily_loss)} today, at or beyond the {pct(limit)} daily loss "
        "limit; reduce-only only",
        show(s.vitals.daily_loss),
        limit,
    )


def has_equity(s: Standing) -> Reason | None:
    if s.vitals.equity > 0:
        return None
    return reason(
        ReasonCode.NO_EQUITY, "portfolio equity is not positive; deposit first", s.vitals.equity, 0
    )


def fresh_marks(s: Standing) -> Reason | None:
    max_age = s.config.risk_management.max_mark_age_seconds
    if s.oldest_mark is None or s.now - s.oldest_mark <= timedelta(seconds=max_age):
        return None
    age = int((s.now - s.oldest_mark).total_seconds())
    return reason(
        ReasonCode.STALE_PORTFOLIO,
        f"the oldest position mark is {age}s old; portfolio state is stale",
        age,
        max_age,
    )


PORTFOLIO_GATES: tuple[PortfolioGate, ...] = (
    not_halted,
    emergency_stop,
    daily_loss,
    has_equity,
    fresh_marks,
)


# --- intent gates ---------------------------------------------------------------------

Gate = Callable[[Context], Reason | None]


def intent_age(ctx: Context) -> Reason | None:
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


def asset_enabled(ctx: Context) -> Reason | None:
    if ctx.asset.enabled:
        return None
    return reason(ReasonCode.ASSET_DISABLED, f"{ctx.symbol} is not enabled for trading")


def class_enabled(ctx: Context) -> Reason | None:
    if ctx.config.asset_classes[ctx.asset.asset_class].enabled:
        return None
    return reason(ReasonCode.CLASS_DISABLED, f"asset class {ctx.asset_class} is not enabled")


def valid_stop(ctx: Context) -> Reason | None:
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


def valid_take_profit(ctx: Context) -> Reason | None:
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


def earnings_blackout(ctx: Context) -> Reason | None:
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


def sideways_market(ctx: Context) -> Reason | None:
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


def max_hold(ctx: Context) -> Reason | None:
    days = ctx.asset.special_rules.max_hold_days
    pos = ctx.snapshot.positions.get(ctx.symbol) if days is not None else None
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


def rate_limit(ctx: Context) -> Reason | None:
    limit = ctx.config.risk_management.max_intents_per_agent_per_minute
    if ctx.agent_intents < limit:
        return None
    return reason(
        ReasonCode.RATE_LIMITED,
        f"agent {ctx.intent.agent_id} sent {ctx.agent_intents} intents this minute, limit {limit}",
        ctx.agent_intents,
        limit,
    )


def rate_window(now: datetime) -> int:
    """The per-agent rate limit counts intents per UTC minute."""
    return int(now.timestamp()) // 60


#: Intent gates reported before the portfolio's reasons, then after them.
GATES_BEFORE: tuple[Gate, ...] = (intent_age, asset_enabled, class_enabled)
GATES_AFTER: tuple[Gate, ...] = (
    valid_stop,
    valid_take_profit,
    earnings_blackout,
    sideways_market,
    max_hold,
    rate_limit,
)
#: Reduce-only intents shrink risk: they skip everything but the intent's own age.
REDUCING_GATES: tuple[Gate, ...] = (intent_age,)


def gates_after_for(asset: AssetConfig) -> tuple[Gate, ...]:
    """GATES_AFTER without the special-rule gates that cannot apply to ``asset``."""
    rules = asset.special_rules
    skip: dict[Gate, bool] = {
        earnings_blackout: rules.earnings_blackout_days is None,
        sideways_market: not rules.avoid_sideways_market,
        max_hold: rules.max_hold_days is None,
    }
    return tuple(g for g in GATES_AFTER if not skip.get(g, False))


# --- limits ---------------------------------------------------------------------------


@dataclass(slots=True)
class Limit:
    """``used + q * per_unit <= cap``; ``limit`` is the cap as a fraction of ``scale``."""

    code: ReasonCode
    label: str
    used: Decimal
    per_unit: Decimal
    cap: Decimal
    scale: Decimal
    limit: Decimal

    def fits(self, quantity: Decimal) -> bool:
        return self.used + quantity * self.per_unit <= self.cap

    def max_quantity(self) -> Decimal:
        if self.per_unit <= 0:
            return Decimal("Infinity") if self.used <= self.cap else ZERO
        return max(ZERO, (self.cap - self.used) / self.per_unit)

    def share(self, quantity: Decimal) -> Decimal:
        return ratio(self.used + quantity * self.per_unit, self.scale)


def position_limit(ctx: Context, v: Vitals) -> Limit:
    pct_ = ctx.asset.risk.max_position_pct
    return Limit(
        ReasonCode.MAX_POSITION,
        f"{ctx.symbol} position",
        ctx.exposure.symbol_quantity(ctx.symbol) * ctx.unit_notional,
        ctx.unit_notional,
        pct_ * v.equity,
        v.equity,
        pct_,
    )


def heat_limit(ctx: Context, v: Vitals) -> Limit:
    pct_ = ctx.config.risk_management.max_portfolio_heat
    return Limit(
        ReasonCode.PORTFOLIO_HEAT,
        "portfolio heat",
        ctx.exposure.heat,
        ctx.unit_risk,
        pct_ * v.equity,
        v.equity,
        pct_,
    )


def class_limit_fraction(ctx: Context) -> Decimal:
    own = ctx.config.asset_classes[ctx.asset.asset_class].max_allocation
    return min(ctx.config.risk_management.max_single_asset_class, own)


def class_limit(ctx: Context, v: Vitals) -> Limit:
    pct_ = class_limit_fraction(ctx)
    return Limit(
        ReasonCode.ASSET_CLASS_LIMIT,
        f"{ctx.asset_class} class share",
        ctx.exposure.class_notional(ctx.asset_class),
        ctx.unit_notional,
        pct_ * v.equity,
        v.equity,
        pct_,
    )


def correlation_limit(ctx: Context, v: Vitals, used: Decimal) -> Limit:
    pct_ = ctx.config.risk_management.max_correlation_exposure
    return Limit(
        ReasonCode.CORRELATED_EXPOSURE,
        "correlated exposure",
        used,
        ctx.unit_notional,
        pct_ * v.equity,
        v.equity,
        pct_,
    )


def reduce_limit(ctx: Context) -> Limit:
    available = ctx.exposure.reducible(ctx.snapshot, ctx.symbol, ctx.intent.side)
    one = Decimal(1)
    return Limit(
        ReasonCode.REDUCE_ONLY, f"{ctx.symbol} reducible size", ZERO, one, available, one, available
    )
