"""What listing a symbol's correlated members looks at: the few it lists, not every
symbol with exposure (a book exposed in thousands of symbols once paid a pass over all
of them each time one more gained exposure)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from gate.correlation import Correlated
from gate.decide import LISTED_CORRELATED
from gate.exposure import Exposure
from gate.portfolio import Reservation
from schemas.messages import Side
from tests.builders import NOW, all_enabled, snapshot

SYMBOLS = 2_000


def _reservation(symbol: str) -> Reservation:
    return Reservation(
        intent_id=f"r-{symbol}",
        agent_id="a",
        symbol=symbol,
        asset_class="crypto",
        quote_currency="USDT",
        side=Side.BUY,
        quantity=Decimal(1),
        price=Decimal(10),
        stop_price=None,
        reduce_only=False,
        expires_at=NOW + timedelta(minutes=5),
    )


def test_members_when_thousands_exposed_one_by_one_then_looks_at_what_it_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = all_enabled()
    snap = snapshot()
    exposure = Exposure.of(snap, cfg)
    corr = Correlated(snap, exposure, cfg, NOW)
    assert corr.unknown_counts  # the default: an unknown correlation counts
    looked: list[str] = []
    notional = Exposure.symbol_notional

    def counted(self: Exposure, symbol: str) -> Decimal:
        looked.append(symbol)
        return notional(self, symbol)

    monkeypatch.setattr(Exposure, "symbol_notional", counted)
    one = (Decimal(10), Decimal(10))
    symbols = [f"SYN{i:04d}/USDT" for i in range(SYMBOLS)]
    worst = 0
    for i, symbol in enumerate(symbols):
        exposure.reserve(_reservation(symbol), snap.account, cfg, one)  # a new revision
        looked.clear()
        members = corr.members(symbol, LISTED_CORRELATED)
        worst = max(worst, len(looked))
        # every other exposed symbol counts (no known pair): the first ones, in order
        assert members == [s for s in symbols[: i + 1] if s != symbol][:LISTED_CORRELATED]
    assert worst <= LISTED_CORRELATED + 1  # the listed ones and the symbol itself
