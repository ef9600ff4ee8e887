"""gate.stats: the performance arithmetic, as tables of known answers and properties."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate import stats
from gate.stats import DailyClose

D = Decimal
SQRT365 = D(365).sqrt()


def ds(*xs: str | int) -> list[Decimal]:
    return [D(str(x)) for x in xs]


def close_to(a: Decimal | None, b: Decimal, places: int = 20) -> bool:
    return a is not None and abs(a - b) < D(10) ** -places


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        ([], None),
        (ds("0.01"), None),  # one return: no deviation
        (ds("0.01", "0.01", "0.01"), None),  # no variation: undefined, not infinite
        (ds("0.01", "-0.01"), D(0)),
        # mean 0.01, sample sd sqrt(0.0002): 0.01 / 0.0141421356... * sqrt(365)
        (ds("0.02", "0"), D("0.5").sqrt() * SQRT365),
        (ds("-0.02", "0"), -D("0.5").sqrt() * SQRT365),
        # mean 0.02, sd 0.01 (n - 1): 2 * sqrt(365)
        (ds("0.01", "0.02", "0.03"), 2 * SQRT365),
    ],
)
def test_sharpe_when_returns_given_then_annualised_mean_over_sample_deviation(
    returns: list[Decimal], expected: Decimal | None
) -> None:
    """Sharpe = mean / sample sd * sqrt(365); None below two returns or without variation."""
    got = stats.sharpe_ratio(returns)
    assert got == expected if expected is None else close_to(got, expected)


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        (ds("0.1", "0.1"), D(0)),  # only up
        (ds("0.1", "-0.5"), D("0.5")),
        (ds("0.1", "-0.1", "-0.1"), D("0.19")),  # 1.1 -> 0.891: compounded, not summed
        (ds("-0.2", "0.5", "-0.5"), D("0.5")),  # peak 1.2 after a loss, trough 0.6
        (ds("-0.1", "0.5", "-0.1", "0.2"), D("0.1")),
        (ds("-1"), D(1)),  # everything lost
        (ds("-1.5", "0.3"), D(1)),
    ],
)
def test_max_drawdown_when_returns_given_then_largest_fall_of_the_compounded_index(
    returns: list[Decimal], expected: Decimal
) -> None:
    """Drawdown is the largest peak-to-trough fall of prod(1 + r), as a fraction."""
    assert close_to(stats.max_drawdown(returns), expected)


@pytest.mark.parametrize(
    ("pnls", "rate", "factor"),
    [
        ([], None, None),
        (ds(1, 2), D(1), None),  # no loss: profit factor undefined
        (ds(-1, -2), D(0), D(0)),
        (ds(1, -1), D("0.5"), D(1)),
        (ds(0, 1), D("0.5"), None),  # a flat trip is not a win, and no loss
        (ds(3, -1, -2), D(1) / 3, D(1)),
        (ds(4, 4, 4, -1), D("0.75"), D(12)),
    ],
)
def test_win_rate_and_profit_factor_when_trips_given_then_fraction_and_ratio(
    pnls: list[Decimal], rate: Decimal | None, factor: Decimal | None
) -> None:
    """Win rate counts results > 0; profit factor is gross profit over gross loss."""
    assert stats.win_rate(pnls) == rate
    assert stats.profit_factor(pnls) == factor


X = ds(1, -1, 1, -1, 2, -2, 1, -1)
Y = ds(1, 1, -1, -1, 1, 1, -1, -1)


@pytest.mark.parametrize(
    ("xs", "ys", "expected"),
    [
        (X, [2 * x for x in X], D(1)),
        (X, [-3 * x + 5 for x in X], D(-1)),
        (ds(1, -1, 1, -1), ds(1, 1, -1, -1), D(0)),  # orthogonal, zero means
        (X, [x + y for x, y in zip(X, Y, strict=True)], None),  # checked below
        (ds(1, 2, 3), ds(5, 5, 5), None),  # flat: undefined
        (ds(1), ds(2), None),
        ([], [], None),
    ],
)
def test_correlation_when_series_given_then_pearson_r(
    xs: list[Decimal], ys: list[Decimal], expected: Decimal | None
) -> None:
    """Pearson's r: 1 for a positive multiple, -1 for a negative one, 0 for orthogonal."""
    got = stats.correlation(xs, ys)
    if expected is not None:
        assert close_to(got, expected)
    elif len(set(ys)) > 1 and len(xs) > 1:  # x + y, x and y uncorrelated
        sx, sy = sum(x * x for x in X), sum(y * y for y in Y)
        assert close_to(got, sx / (sx * (sx + sy)).sqrt())
    else:
        assert got is None


def test_correlation_when_lengths_differ_then_value_error() -> None:
    """Two series of different lengths are a programming error, said plainly."""
    with pytest.raises(ValueError, match="differ in length"):
        stats.correlation(ds(1, 2), ds(1))


DAY = date(2026, 1, 1)


def day(i: int) -> date:
    return DAY + timedelta(days=i)


@pytest.mark.parametrize(
    ("closes", "pnls", "returns"),
    [
        # first close: deposits are not profit
        ([(0, "1000", "1000")], ["0"], ["0"]),
        ([(0, "1010", "1000")], ["10"], ["0.01"]),
        # a deposit on a later day: capital is the previous close plus the new money
        ([(0, "1000", "1000"), (1, "1010", "1000"), (2, "1510", "1500")], ["0", "10", "0"],
         ["0", "0.01", "0"]),
        # a withdrawal of 500 and a loss of 10
        ([(0, "1510", "1500"), (1, "1000", "1000")], ["10", "-10"],
         [str(D(10) / 1500), str(D(-10) / 1010)]),
        # days with no close between: the change is since the previous close
        ([(0, "100", "100"), (5, "90", "100")], ["0", "-10"], ["0", "-0.1"]),
    ],
)  # fmt: skip
def test_daily_results_when_deposits_move_equity_then_pnl_excludes_them(
    closes: list[tuple[int, str, str]], pnls: list[str], returns: list[str]
) -> None:
    """Daily PnL = change in (equity - net deposits); return = PnL / capital at work."""
    got = stats.daily_results([DailyClose(day(i), D(e), D(n)) for i, e, n in closes])
    assert [r.pnl for r in got] == ds(*pnls)
    assert all(close_to(r.ret, D(x)) for r, x in zip(got, returns, strict=True))


def test_daily_results_when_capital_not_positive_then_no_return() -> None:
    """A day whose capital at work is zero or less has PnL but no return."""
    got = stats.daily_results([DailyClose(day(0), D(0), D(0)), DailyClose(day(1), D(5), D(0))])
    assert [(r.pnl, r.ret) for r in got] == [(D(0), None), (D(5), None)]


@pytest.mark.parametrize(
    ("offset", "inside"), [(0, True), (-59, True), (-60, False), (1, False), (-1, True)]
)
def test_in_window_when_day_near_edges_then_last_60_days_inclusive_of_today(
    offset: int, inside: bool
) -> None:
    """The window is the 60 UTC days ending today: today - 59 .. today."""
    assert stats.in_window(day(offset), day(0), 60) is inside


def test_changes_when_cumulative_series_then_per_day_differences_from_zero() -> None:
    """Changes of a cumulative series start from zero and follow day order."""
    series = [(day(2), D(5)), (day(0), D(3)), (day(1), D(-1))]
    assert stats.changes(series) == [(day(0), D(3)), (day(1), D(-4)), (day(2), D(6))]


def test_simple_returns_when_prices_then_ratio_minus_one() -> None:
    """Simple returns of consecutive prices."""
    assert stats.simple_returns(ds(100, 110, 99)) == [D("0.1"), D("-0.1")]


# --- properties -------------------------------------------------------------------------

returns_st = st.lists(
    st.decimals(min_value=D("-0.5"), max_value=D("0.5"), places=4, allow_nan=False),
    min_size=0,
    max_size=40,
)
series_st = st.lists(
    st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False),
    min_size=2,
    max_size=30,
)


@given(returns_st)
def test_max_drawdown_when_any_returns_then_between_zero_and_one(rs: list[Decimal]) -> None:
    """Drawdown is a fraction; without returns it is undefined."""
    dd = stats.max_drawdown(rs)
    assert dd is None if not rs else dd is not None and D(0) <= dd <= D(1)


@given(returns_st, st.integers(min_value=1, max_value=1000))
def test_sharpe_when_returns_scaled_then_unchanged(rs: list[Decimal], k: int) -> None:
    """Sharpe is scale free: k * r has the same Sharpe for k > 0."""
    a, b = stats.sharpe_ratio(rs), stats.sharpe_ratio([r * k for r in rs])
    assert (a is None) == (b is None)
    if a is not None and b is not None:
        assert abs(a - b) < D("1e-15") * (1 + abs(a))


@given(series_st, st.data())
def test_correlation_when_any_series_then_bounded_symmetric_and_affine_invariant(
    xs: list[Decimal], data: st.DataObject
) -> None:
    """|r| <= 1, r(x, y) = r(y, x), and r(a*x + b, y) = r(x, y) for a > 0."""
    pool = st.sampled_from([*xs, D(0), D(7)])
    ys = data.draw(st.lists(pool, min_size=len(xs), max_size=len(xs)))
    r = stats.correlation(xs, ys)
    assert r == stats.correlation(ys, xs)
    if r is not None:
        assert -1 <= r <= 1
        shifted = stats.correlation([3 * x + 11 for x in xs], ys)
        assert shifted is not None and abs(shifted - r) < D("1e-15")


@given(st.lists(st.decimals(min_value=-100, max_value=100, places=2), max_size=30))
def test_win_rate_when_any_trips_then_fraction_and_profit_factor_non_negative(
    pnls: list[Decimal],
) -> None:
    """Win rate is in [0, 1]; profit factor is >= 0 when defined."""
    rate, factor = stats.win_rate(pnls), stats.profit_factor(pnls)
    assert rate is None or D(0) <= rate <= D(1)
    assert factor is None or factor >= 0
