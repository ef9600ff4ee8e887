"""An independent check of the caps, replayed from the decisions stream alone.

Commits append decisions atomically and in order, so the stream order is the order
in which reservations were taken. With no fills or cancels in a test, the reserved
set before each decision is exactly the approved decisions before it.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from gate.portfolio import Account, fx_rate
from schemas.config import AssetsConfig
from schemas.messages import Decision, Status


def broken_caps(decisions: list[Decision], config: AssetsConfig, equity: Decimal) -> list[str]:
    """Every cap an approved decision broke (empty when all held)."""
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
        heat += q * abs(d.price - d.stop_price) * fx
        qty[d.symbol] += q
        cls = asset.asset_class
        by_class[cls.value] += q * d.price * fx
        if heat > rm.max_portfolio_heat * equity:
            problems.append(f"{d.intent_id}: heat {heat / equity}")
        if qty[d.symbol] * d.price * fx > asset.risk.max_position_pct * equity:
            problems.append(f"{d.intent_id}: position {d.symbol}")
        cap = min(rm.max_single_asset_class, config.asset_classes[cls].max_allocation)
        if by_class[cls.value] > cap * equity:
            problems.append(f"{d.intent_id}: class {cls.value} {by_class[cls.value] / equity}")
        # no correlations are loaded: only same-class exposure counts as correlated
        if by_class[cls.value] > rm.max_correlation_exposure * equity:
            problems.append(f"{d.intent_id}: correlated {cls.value}")
    return problems
