"""An independent check of the caps, replayed from the decisions stream alone.

Commits append decisions atomically and in order, so the stream order is the order
in which reservations were taken. With no fills or cancels in a test, the reserved
set before each decision is exactly the approved decisions before it. Everything is
valued at the market (``marks``), whatever price the agents asked.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from gate.duplicates import DEPTH
from gate.portfolio import Account, fx_rate
from schemas.config import AssetsConfig
from schemas.messages import Decision, Status

#: (agent, symbol) -> its last DEPTH approved openings: side, requested quantity, at
Remembered = dict[tuple[str, str], list[tuple[str, Decimal, datetime]]]


def broken_caps(
    decisions: list[Decision],
    config: AssetsConfig,
    equity: Decimal,
    marks: dict[str, Decimal],
) -> list[str]:
    """Every cap an approved decision broke (empty when all held), valued at ``marks``.

    Correlations: the tests load same-class pairs as correlated, cross-class as not.
    Also the order caps (value at the larger of price and mark) and duplicate orders:
    no approved opening repeats one approved within the duplicate window."""
    rm = config.risk_management
    window = timedelta(seconds=rm.duplicate_order_window_seconds)
    remembered: Remembered = defaultdict(list)
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
        problems += _order_caps(d, config, mark, fx)
        if not d.reduce_only:
            problems += _duplicates(d, remembered, window)
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


def _order_caps(d: Decision, config: AssetsConfig, mark: Decimal, fx: Decimal) -> list[str]:
    """The asset's max order quantity and value (at the larger of price and mark)."""
    asset = config.assets[d.symbol]
    cls = config.asset_classes[asset.asset_class]
    q, out = d.approved_quantity, []
    max_qty = asset.risk.max_order_quantity or cls.max_order_quantity
    if max_qty is not None and q > max_qty:
        out.append(f"{d.intent_id}: quantity {q} above max_order_quantity {max_qty}")
    max_value = asset.risk.max_order_value or cls.max_order_value
    assert d.price is not None
    if q * max(d.price, mark) * fx > max_value:
        out.append(f"{d.intent_id}: value above max_order_value {max_value}")
    return out


def _duplicates(d: Decision, remembered: Remembered, window: timedelta) -> list[str]:
    """An approved opening repeating one of its agent's last DEPTH approvals in the symbol
    within the window (the gate may remember more of them in the window, never fewer)."""
    seen = remembered[(d.agent_id, d.symbol)]
    out = [
        f"{d.intent_id}: duplicate of an approval at {at.isoformat()}"
        for side, requested, at in seen
        if (side, requested) == (d.side.value, d.requested_quantity) and d.decided_at - at <= window
    ]
    seen.append((d.side.value, d.requested_quantity, d.decided_at))
    del seen[:-DEPTH]
    return out
