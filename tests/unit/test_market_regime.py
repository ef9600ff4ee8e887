"""The regime rule: Wilder's ADX(14) >= 25 is trending (pure, table-driven)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from consumers.market.regime import Candle, adx, classify

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def series(closes: list[float], spread: float = 0.004) -> list[Candle]:
    return [Candle(T0 + timedelta(days=i), Decimal(repr(c * (1 + spread))),
                   Decimal(repr(c * (1 - spread))), Decimal(repr(c)))
            for i, c in enumerate(closes)]  # fmt: skip


TREND = [100 * 1.01**i for i in range(60)]
FALL = [100 * 0.99**i for i in range(60)]
RANGE = [100 * (1 + 0.02 * math.sin(2 * math.pi * i / 6)) for i in range(60)]


@pytest.mark.parametrize(
    ("closes", "regime"),
    [(TREND, "trending"), (FALL, "trending"), (RANGE, "sideways")],
    ids=["steady rise", "steady fall", "6-day swing"],
)
def test_classify_when_series_given_then_regime_by_adx_threshold(
    closes: list[float], regime: str
) -> None:
    """A steady move either way trends (ADX measures strength, not direction); a swing
    around a level is sideways."""
    call = classify(series(closes), T0 + timedelta(days=100))
    assert call is not None and call.regime == regime


def test_adx_when_fewer_than_29_bars_then_unknown() -> None:
    """ADX(14) needs 2 x 14 + 1 bars: with 28, no regime is published (fail closed)."""
    assert adx(series(TREND[:28])) is None
    assert classify(series(TREND[:28]), T0) is None
    assert adx(series(TREND[:29])) is not None


def test_classify_when_newest_bar_is_today_then_as_of_is_now_not_tomorrow() -> None:
    """as_of: the newest bar's end, capped at the assessment time."""
    bars = series(TREND)
    now = bars[-1].time + timedelta(hours=3)
    call = classify(bars, now)
    assert call is not None and call.as_of == now
    later = bars[-1].time + timedelta(days=3)
    call = classify(bars, later)
    assert call is not None and call.as_of == bars[-1].time + timedelta(days=1)
