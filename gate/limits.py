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


class Limit:
    """``used + q * per_unit <= cap``; ``limit`` is the cap as a fraction of ``scale``.

    A plain class rather than a dataclass, like the decision's other per-intent objects:
    compiled (``riskgate compile``) its constructor is native, where a dataclass's
    generated ``__init__`` stays interpreted; a decision makes five or six.
    """

    __slots__ = ("cap", "code", "label", "limit", "per_unit", "scale", "used")

    def __init__(  # noqa: PLR0917 (the order every call site writes, as the dataclass had it)
        self,
        code: ReasonCode,
        label: str,
        used: Decimal,
        per_unit: Decimal,
        cap: Decimal,
        scale: Decimal,
        limit: Decimal,
    ) -> None:
        self.code = code
        self.label = label
        self.used = used
        self.per_unit = per_unit
        self.cap = cap
        self.scale = scale
        self.limit = limit

    def __repr__(self) -> str:
        return (
            f"Limit({self.code.value}, {self.label!r}, used={self.used}, "
            f"per_unit={self.per_unit}, cap={self.cap}, scale={self.scale}, limit={self.limit})"
        )

    def fits(self, quantity: Decimal) -> bool:
        return self.used + quantity * self.per_unit <= self.cap

    def max_quantity(self) -> Decimal:
        if self.per_unit <= 0:
            return Decimal("Infinity") if self.used <= self.cap else ZERO
        return max(ZERO, (self.cap - self.used) / self.per_unit)

    def share(self, quantity: Decimal) -> Decimal:
        return ratio(self.used + quantity * self.per_unit, self.scale)

    def at(self, used: Decimal, per_unit: Decimal) -> Limit:
        """This limit's cap for another intent: ``used`` and ``per_unit`` are its own."""
        return Limit(self.code, self.label, used, per_unit, self.cap, self.scale, self.limit)


@dataclass(frozen=True, slots=True)
class Caps:
    """One symbol's limits in a batch as templates: codes, labels and caps (the same for
    every intent of the symbol), with nothing used and nothing per unit yet."""

    position: Limit  # held and reserved quantity at the larger of the mark and the price
    heat: Limit
    share: Limit  # the asset class's share
    correlated: Limit
    order_value: Limit
    order_quantity: Limit | None  # a constant: one unit per unit of quantity


def caps(ctx: Context, v: Vitals) -> Caps:
    """``ctx``'s symbol's caps at the batch's equity."""
    rm = ctx.config.risk_management
    eq = v.equity
    pos = ctx.asset.risk.max_position_pct
    share = class_limit_fraction(ctx)
    heat, corr = rm.max_portfolio_heat, rm.max_correlation_exposure
    one = Decimal(1)
    qty = ctx.max_quantity
    return Caps(
        position=Limit(
            ReasonCode.MAX_POSITION, f"{ctx.symbol} position", ZERO, ZERO, pos * eq, eq, pos
        ),
        heat=Limit(ReasonCode.PORTFOLIO_HEAT, "portfolio heat", ZERO, ZERO, heat * eq, eq, heat),
        share=Limit(
            ReasonCode.ASSET_CLASS_LIMIT,
            f"{ctx.asset_class} class share",
            ZERO,
            ZERO,
            share * eq,
            eq,
            share,
        ),
        correlated=Limit(
            ReasonCode.CORRELATED_EXPOSURE, "correlated exposure", ZERO, ZERO, corr * eq, eq, corr
        ),
        order_value=Limit(
            ReasonCode.MAX_ORDER_VALUE, "order value", ZERO, ZERO, ctx.max_value, one, ctx.max_value
        ),
        order_quantity=None
        if qty is None
        else Limit(ReasonCode.MAX_ORDER_QUANTITY, "order quantity", ZERO, one, qty, one, qty),
    )


def class_limit_fraction(ctx: Context) -> Decimal:
    own = ctx.config.asset_classes[ctx.asset.asset_class].max_allocation
    return min(ctx.config.risk_management.max_single_asset_class, own)


def opening_limits(ctx: Context, c: Caps, correlated: Decimal) -> list[Limit]:
    """Every limit of an opening ``used + q * per_unit <= cap``: its position, the
    portfolio heat, its class's share, its correlated exposure (``correlated``: what is
    used of it), then the order caps."""
    exp, symbol, notional = ctx.exposure, ctx.symbol, ctx.unit_notional
    held = max(exp.symbol_quantity(symbol) * notional, exp.symbol_notional(symbol))
    out = [
        c.position.at(held, notional),
        c.heat.at(exp.heat, ctx.unit_risk),
        c.share.at(exp.class_notional(ctx.asset_class), notional),
        c.correlated.at(correlated, notional),
        c.order_value.at(ZERO, notional),
    ]
    if c.order_quantity is not None:
        out.append(c.order_quantity)
    return out


#: The per-order caps: limits like the others (an order above one is resized down to it),
#: but on the order alone, not on what the portfolio holds.
ORDER_CAPS = frozenset({ReasonCode.MAX_ORDER_VALUE, ReasonCode.MAX_ORDER_QUANTITY})


def order_caps(ctx: Context, c: Caps) -> list[Limit]:
    """The asset's max order value (at the larger of price and mark, account currency)
    and max order quantity. They hold for reduce-only orders too: a 10x exit is a fat
    finger as much as a 10x entry (SEC 15c3-5 and RTS 6 apply them order by order)."""
    value = c.order_value.at(ZERO, ctx.unit_notional)
    return [value] if c.order_quantity is None else [value, c.order_quantity]


def reduce_limit(ctx: Context) -> Limit:
    available = ctx.exposure.reducible(ctx.snapshot, ctx.symbol, ctx.intent.side)
    one = Decimal(1)
    return Limit(
        ReasonCode.REDUCE_ONLY, f"{ctx.symbol} reducible size", ZERO, one, available, one, available
    )
