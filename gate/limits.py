"""Limits: linear caps ``used + q * per_unit <= cap`` (position, heat, class,
correlated exposure, order value and quantity, reduce-only) that sizing folds into the
largest allowed quantity."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gate.enrich import Context
from gate.money import ZERO, ratio
from gate.portfolio import Vitals
from schemas.messages import ReasonCode

# --- the caps ---------------------------------------------------------------------------


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
    """Held and reserved quantity at the larger of the mark and the intent's price."""
    pct_ = ctx.asset.risk.max_position_pct
    exp = ctx.exposure
    return Limit(
        ReasonCode.MAX_POSITION,
        f"{ctx.symbol} position",
        max(exp.symbol_quantity(ctx.symbol) * ctx.unit_notional, exp.symbol_notional(ctx.symbol)),
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


#: The per-order caps: limits like the others (an order above one is resized down to it),
#: but on the order alone, not on what the portfolio holds.
ORDER_CAPS = frozenset({ReasonCode.MAX_ORDER_VALUE, ReasonCode.MAX_ORDER_QUANTITY})


def order_caps(ctx: Context) -> list[Limit]:
    """The asset's max order value (at the larger of price and mark, account currency)
    and max order quantity. They hold for reduce-only orders too: a 10x exit is a fat
    finger as much as a 10x entry (SEC 15c3-5 and RTS 6 apply them order by order)."""
    one = Decimal(1)
    caps = [
        Limit(
            ReasonCode.MAX_ORDER_VALUE,
            "order value",
            ZERO,
            ctx.unit_notional,
            ctx.max_value,
            one,
            ctx.max_value,
        )
    ]
    qty = ctx.max_quantity
    if qty is not None:
        caps.append(
            Limit(
                ReasonCode.MAX_ORDER_QUANTITY,
                "order quantity",
                ZERO,
                one,
                qty,
                one,
                qty,
            )
        )
    return caps


def reduce_limit(ctx: Context) -> Limit:
    available = ctx.exposure.reducible(ctx.snapshot, ctx.symbol, ctx.intent.side)
    one = Decimal(1)
    return Limit(
        ReasonCode.REDUCE_ONLY, f"{ctx.symbol} reducible size", ZERO, one, available, one, available
    )
