"""Each asset's market regime from its daily bars: Wilder's ADX (no I/O, no clock).

Rule: ``trending`` when the 14-day Average Directional Index of the last daily bars is
at least 25, else ``sideways`` (Wilder, *New Concepts in Technical Trading Systems*,
1978: ADX above 25 marks a trend strong enough to follow, below 20 a range). ADX
measures the strength of a move, not its direction: a steady fall is a trend too. It
needs ``2 * period + 1`` bars (29); with fewer the regime is unknown and nothing is
published (the gate's ``sideways_market`` rule then fails closed).

``as_of`` is the end of the newest bar used (its open + one day, or the time of the
assessment for today's unfinished bar): when bars stop arriving the regime ages, and
the gate expires it after ``regime_max_age_hours``.

Wilder's smoothing: TR, +DM and -DM summed over the first ``period`` bars, then
``S = S - S / period + x``; DX = 100 |+DI - -DI| / (+DI + -DI); ADX starts as the mean
of the first ``period`` DX values, then ``ADX = (ADX (period - 1) + DX) / period``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

PERIOD = 14
THRESHOLD = 25.0


@dataclass(frozen=True, slots=True)
class Candle:
    time: datetime
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True, slots=True)
class RegimeCall:
    regime: str  # trending | sideways
    adx: float
    as_of: datetime
    bars: int


def adx(candles: Sequence[Candle], period: int = PERIOD) -> float | None:
    """Wilder's ADX of the series, or None with fewer than ``2 * period + 1`` candles."""
    if len(candles) < 2 * period + 1:
        return None
    trs, pdms, ndms = [], [], []
    for prev, cur in pairwise(candles):
        h, lo, pc = float(cur.high), float(cur.low), float(prev.close)
        up, down = h - float(prev.high), float(prev.low) - lo
        trs.append(max(h - lo, abs(h - pc), abs(lo - pc)))
        pdms.append(up if up > down and up > 0 else 0.0)
        ndms.append(down if down > up and down > 0 else 0.0)
    tr, pdm, ndm = sum(trs[:period]), sum(pdms[:period]), sum(ndms[:period])
    dxs = [_dx(tr, pdm, ndm)]
    for i in range(period, len(trs)):
        tr = tr - tr / period + trs[i]
        pdm = pdm - pdm / period + pdms[i]
        ndm = ndm - ndm / period + ndms[i]
        dxs.append(_dx(tr, pdm, ndm))
    value = sum(dxs[:period]) / period
    for dx in dxs[period:]:
        value = (value * (period - 1) + dx) / period
    return value


def _dx(tr: float, pdm: float, ndm: float) -> float:
    if tr <= 0:
        return 0.0
    pdi, ndi = 100 * pdm / tr, 100 * ndm / tr
    return 0.0 if pdi + ndi == 0 else 100 * abs(pdi - ndi) / (pdi + ndi)


def classify(
    candles: Sequence[Candle], now: datetime, threshold: float = THRESHOLD
) -> RegimeCall | None:
    """The regime of daily ``candles`` (oldest first) assessed at ``now``, or None."""
    value = adx(candles)
    if value is None:
        return None
    as_of = min(candles[-1].time + timedelta(days=1), now)
    return RegimeCall("trending" if value >= threshold else "sideways", value, as_of, len(candles))
