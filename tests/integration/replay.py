"""An independent check of the caps, replayed from the decisions stream alone.

Commits append decisions atomically and in order, so the stream order is the order
in which reservations were taken. With no fills or cancels in a test, the reserved
set before each decision is exactly the approved decisions before it. Everything is
valued at the market (``marks``), whatever price the agents asked.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from gate.portfolio import Account, fx_rate
from schemas.config import AssetsConfig
from schemas.messages import Decision, Status


def broken_caps(
    decisions: list[Decision],
    config: AssetsConfig,
    equity: Decimal,
    marks: dict[str, Decimal],
) -> list[str]:
    """Every cap an approved decision broke (empty when all held), valued at ``marks``.

    Correlations: the tests load same-class pairs as correlated, cross-class as not."""
    rm = config.risk_management
    acc = Account()
    heat = Decimal(0)
    qty: dict[str, Decimal] = defaultdict(Decimal)
    by_class: dict[str, Decimal] = defaultdict(Decimal)
    problems = []
    for d in decisions:
        if d.status is Status.REJECTED:
            if d.approved_quantity != 0:
                problems.append(f"{d.intent_id}: rejected with quantity {d.approved_quantity}")
            continue
        asset = config.assets[d.symbol]
        assert d.price is not None and d.stop_price is not None
        fx = fx_rate(asset.trading.quote_currency, acc, config)
        q = d.approved_quantity
        if q > d.requested_quantity or q % asset.risk.lot_size != 0 or q < asset.risk.min_size:
            problems.append(f"{d.intent_id}: bad size {q}")
        mark = marks[d.symbol]
        collar = asset.risk.price_collar or config.asset_classes[asset.asset_class].price_collar
        if abs(d.price - mark) > collar * mark:
            problems.append(f"{d.intent_id}: price {d.price} outside the collar of {mark}")
        heat += q * abs(mark - d.stop_price) * fx
        qty[d.symbol] += q
        cls = asset.asset_class
        by_class[cls.value] += q * mark * fx
        if heat > rm.max_portfolio_heat * equity:
            problems.append(f"{d.intent_id}: heat {heat / equity}")
        if qty[d.symbol] * mark * fx > asset.risk.max_position_pct * equity:
            problems.append(f"{d.intent_id}: position {d.symbol}")
        cap = min(rm.max_single_asset_class, config.asset_classes[cls].max_allocation)
        if by_class[cls.value] > cap * equity:
            problems.append(f"{d.intent_id}: class {cls.value} {by_class[cls.value] / equity}")
        # same-class pairs are loaded as correlated, cross-class ones as not
        if by_class[cls.value] > rm.max_correlation_exposure * equity:
            problems.append(f"{d.intent_id}: correlated {cls.value}")
    return problems
