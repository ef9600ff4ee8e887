"""Performance arithmetic in exact decimals: returns, Sharpe, drawdown, win rate,
profit factor, correlation. Pure: no I/O, no clock, no float.

Definitions (docs/DATABASE.md has the long form):

* **Daily close** of a UTC day: equity ``E`` right after the day's latest mark, and
  ``N``, the cumulative net deposits (deposits minus withdrawals) applied by then.
* **Daily PnL** of a close day ``d`` with previous close day ``p``:
  ``(E_d - N_d) - (E_p - N_p)``; before the first close ``E_p = N_p = 0``. Money moved
  in or out is never profit or loss. A **profitable day** has daily PnL > 0, a
  **losing day** < 0 (PnL is net of fees).
* **Profitable days** (the phase metric): profitable days minus losing days over the
  whole record (:func:`net_positive`); a flat day counts neither way. A losing day
  takes one back, so a strategy that loses as often as it wins never gets there.
* **Daily return**: daily PnL over the capital at work, ``E_p + (N_d - N_p)`` (the
  previous close plus money added since); a day with capital <= 0 has no return.
* **Sharpe ratio**: ``mean(r) / s(r) * sqrt(365)`` over the daily returns of the close
  days in the window (``s`` the sample standard deviation, n - 1; risk-free rate 0;
  365 because the book trades every calendar day). Undefined (None) with fewer than
  two returns or no variation (exactly: the sums are computed without rounding).
* **Max drawdown**: the largest fall from a running peak of the compounded return
  index ``prod(1 + r)``, as a fraction (0 to 1); deposits and withdrawals do not move it.
  Undefined (None) without returns.
* **Win rate**: winning round trips (PnL > 0) over all closed round trips.
* **Profit factor**: gross profit over gross loss of round trips; None without a loss.
* **Correlation**: Pearson's r of two equally long series; None when either is flat.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, localcontext
from itertools import pairwise

ZERO = Decimal(0)
ONE = Decimal(1)
ANNUALISATION_DAYS = 365
WINDOW_DAYS = 60
EXACT_PRECISION = 120  # digits: sums of products of 28-digit numbers stay exact


def mean(xs: Sequence[Decimal]) -> Decimal | None:
    return sum(xs, ZERO) / len(xs) if xs else None


def _sums(xs: Sequence[Decimal], ys: Sequence[Decimal]) -> Decimal:
    """``n * sum(x*y) - sum(x) * sum(y)``, exact (``n**2`` times the co-moment).

    Computed in a context wide enough for the products of 28-digit inputs, so a
    series without variation gives exactly 0, never a rounding residue whose square
    root would divide a mean into ~1e28.
    """
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION
        n = len(xs)
        sx, sy = sum(xs, ZERO), sum(ys, ZERO)
        sxy = sum((x * y for x, y in zip(xs, ys, strict=True)), ZERO)
        return n * sxy - sx * sy


def sample_stdev(xs: Sequence[Decimal]) -> Decimal | None:
    """Standard deviation with n - 1 in the denominator; None below two values.

    0 exactly when every value is the same (the sums are exact, see :func:`_sums`).
    """
    n = len(xs)
    if n < 2:
        return None
    return (+_sums(xs, xs) / (n * (n - 1))).sqrt()


def sharpe_ratio(
    returns: Sequence[Decimal], periods_per_year: int = ANNUALISATION_DAYS
) -> Decimal | None:
    """Annualised mean over sample deviation (risk-free 0).

    None (undefined) below two returns or when they do not vary: a constant series
    has no risk to divide by, and a near-zero rounding residue is not one either.
    """
    sd = sample_stdev(returns)
    if sd is None or sd == 0:
        return None
    m = sum(returns, ZERO) / len(returns)
    return m / sd * Decimal(periods_per_year).sqrt()


def max_drawdown(returns: Sequence[Decimal]) -> Decimal | None:
    """Largest peak-to-trough fall of the compounded index of ``returns`` (0 to 1).

    None without returns: no record has no drawdown to show, not a drawdown of 0.
    """
    if not returns:
        return None
    index = peak = ONE
    worst = ZERO
    for r in returns:
        index *= ONE + r
        if index <= 0:
            return ONE  # everything lost
        peak = max(peak, index)
        worst = max(worst, (peak - index) / peak)
    return worst


def win_rate(pnls: Sequence[Decimal]) -> Decimal | None:
    """Fraction of results > 0 (a zero result is not a win); None without results."""
    if not pnls:
        return None
    return Decimal(sum(1 for p in pnls if p > 0)) / len(pnls)


def net_positive(values: Iterable[Decimal]) -> int:
    """How many values are > 0 minus how many are < 0 (zeros count neither way)."""
    return sum((v > 0) - (v < 0) for v in values)


def gross(pnls: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """(gross profit, gross loss), both >= 0."""
    profit = sum((p for p in pnls if p > 0), ZERO)
    loss = -sum((p for p in pnls if p < 0), ZERO)
    return profit, loss


def profit_factor(pnls: Sequence[Decimal]) -> Decimal | None:
    """Gross profit / gross loss; None when there is no loss (undefined, not infinite)."""
    profit, loss = gross(pnls)
    return profit / loss if loss > 0 else None


def correlation(xs: Sequence[Decimal], ys: Sequence[Decimal]) -> Decimal | None:
    """Pearson's r in [-1, 1]; None below two pairs or when either series is flat.

    Flat means exactly flat: the sums are exact (:func:`_sums`), so no rounding
    residue passes for variation.
    """
    if len(xs) != len(ys):
        raise ValueError(f"series differ in length: {len(xs)} and {len(ys)}")
    if len(xs) < 2:
        return None
    sxx, syy = _sums(xs, xs), _sums(ys, ys)
    if sxx <= 0 or syy <= 0:
        return None
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION
        r = _sums(xs, ys) / (sxx * syy).sqrt()
    return max(-ONE, min(ONE, +r))  # rounding may step a hair outside


def simple_returns(prices: Sequence[Decimal]) -> list[Decimal]:
    """``p[i] / p[i-1] - 1`` for consecutive prices; a price <= 0 is an error, not a return."""
    if any(p <= 0 for p in prices):
        raise ValueError("prices must be positive")
    return [b / a - 1 for a, b in pairwise(prices)]


# --- daily closes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DailyClose:
    day: date
    equity: Decimal
    net_deposits: Decimal


@dataclass(frozen=True, slots=True)
class DayResult:
    day: date
    pnl: Decimal
    capital: Decimal
    ret: Decimal | None  # None when capital <= 0


def daily_results(closes: Sequence[DailyClose]) -> list[DayResult]:
    """PnL and return of each close day, deposits excluded (see the module docstring)."""
    out = []
    prev_equity = prev_deposits = ZERO
    for c in sorted(closes, key=lambda c: c.day):
        added = c.net_deposits - prev_deposits
        pnl = (c.equity - c.net_deposits) - (prev_equity - prev_deposits)
        capital = prev_equity + added
        out.append(DayResult(c.day, pnl, capital, pnl / capital if capital > 0 else None))
        prev_equity, prev_deposits = c.equity, c.net_deposits
    return out


def in_window(day: date, end: date, days: int = WINDOW_DAYS) -> bool:
    """``day`` is one of the ``days`` UTC days ending with ``end`` (inclusive)."""
    return end - timedelta(days=days) < day <= end


def changes(cumulative: Sequence[tuple[date, Decimal]]) -> list[tuple[date, Decimal]]:
    """Per-day change of a cumulative series (the first from zero), in day order."""
    out = []
    prev = ZERO
    for day, value in sorted(cumulative, key=lambda p: p[0]):
        out.append((day, value - prev))
        prev = value
    return out
