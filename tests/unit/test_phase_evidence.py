"""Phases on real evidence: undefined statistics, sample sizes, net profitable days, fees,
the resume event, fail-closed AssetManager helpers and common-interval correlations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from consumers.market.correlations import common_returns, pair_correlations
from gate import stats
from gate.assets import AssetManager
from gate.ledger import PortfolioEvent
from gate.performance import TripResult, phase_metrics
from gate.phases import RequirementResult, evaluate_phase
from gate.stats import DailyClose
from gate.track import Derived, Track, record
from schemas.config import ConfigError, parse_config
from schemas.messages import Deposit, Fill, Mark, ReasonCode, Resume
from tests.builders import CONFIG_PATH, base_config

D = Decimal
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TODAY = date(2026, 6, 30)
_ids = iter(range(10**9))


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def fill(
    symbol: str, side: str, qty: str, price: str, hours: float = 0, fee: str | None = None
) -> Fill:
    n = next(_ids)
    return Fill.model_validate(
        {
            "type": "fill",
            "event_id": f"f{n}",
            "intent_id": f"i{n}",
            "symbol": symbol,
            "side": side,
            "quantity": qty,
            "price": price,
            "fee": fee,
            "at": at(hours),
        }
    )


def mark(prices: dict[str, str], hours: float) -> Mark:
    return Mark(
        type="mark",
        event_id=f"m{next(_ids)}",
        prices={s: D(p) for s, p in prices.items()},
        at=at(hours),
    )


def deposit(amount: str, **signed: str) -> Deposit:
    return Deposit.model_validate(
        {"type": "deposit", "event_id": f"d{next(_ids)}", "amount": amount, "at": T0, **signed}
    )


def resume() -> Resume:
    return Resume(
        type="resume", event_id=f"r{next(_ids)}", operator="alice", reason="reviewed", at=at(5)
    )


def run(events: Iterable[PortfolioEvent], track: Track | None = None) -> tuple[Track, Derived]:
    # each event reaches the stream when it happens (the stream id is its clock)
    stamped = [(e, getattr(e, "at", None) or T0) for e in events]
    return record(track or Track(), stamped, base_config())


# --- undefined statistics ---------------------------------------------------------------

THIRD, TWO_THIRDS = D(1) / 3, D(2) / 3


@pytest.mark.parametrize(
    "returns",
    [
        [],
        [D("0.01")],
        [TWO_THIRDS] * 7,  # the mean rounds: the old sd was ~1e-28, the Sharpe ~6e28
        [THIRD] * 3,
        [D("0.0123456789012345678901234567")] * 60,
        [D("1E-20")] * 5,
        [D(0)] * 10,
    ],
    ids=["none", "one", "2/3 x7", "1/3 x3", "28 digits x60", "tiny x5", "zeros"],
)
def test_sharpe_when_series_constant_or_short_then_undefined(returns: list[Decimal]) -> None:
    """Below two returns or without variation the Sharpe is None, never a huge number."""
    assert stats.sharpe_ratio(returns) is None


@pytest.mark.parametrize(
    ("xs", "sd"),
    [([TWO_THIRDS] * 7, D(0)), ([THIRD] * 3, D(0)), ([D(1), D(3)], D(2).sqrt()), ([D(5)], None)],
)
def test_sample_stdev_when_values_equal_then_exactly_zero(
    xs: list[Decimal], sd: Decimal | None
) -> None:
    """The deviation of equal values is exactly 0 (the sums are exact); n - 1 otherwise."""
    assert stats.sample_stdev(xs) == sd


@pytest.mark.parametrize(
    ("xs", "ys", "expected"),
    [
        ([TWO_THIRDS] * 5, [D(i) for i in range(5)], None),
        ([D(i) for i in range(5)], [THIRD] * 5, None),
        ([D(i) / 3 for i in range(5)], [D(i) for i in range(5)], D(1)),
    ],
)
def test_correlation_when_a_series_is_flat_after_rounding_then_undefined(
    xs: list[Decimal], ys: list[Decimal], expected: Decimal | None
) -> None:
    """A series of equal (rounded) values has no correlation, not a rounding artefact."""
    assert stats.correlation(xs, ys) == expected


@pytest.mark.parametrize(
    ("returns", "expected"), [([], None), ([D("0.1")], D(0)), ([D("-0.2")], D("0.2"))]
)
def test_max_drawdown_when_no_returns_then_undefined(
    returns: list[Decimal], expected: Decimal | None
) -> None:
    """No return is no evidence of a small drawdown: None, not 0."""
    assert stats.max_drawdown(returns) == expected


def test_simple_returns_when_a_price_is_not_positive_then_value_error() -> None:
    """A zero price would divide by zero; it is refused plainly."""
    with pytest.raises(ValueError, match="positive"):
        stats.simple_returns([D(1), D(0), D(2)])


def test_phase_metrics_when_no_record_then_statistics_undefined_and_left_out() -> None:
    """An empty record has no Sharpe, drawdown or win rate; values() omits them, so no
    requirement on them holds, and the sample sizes read 0."""
    m = phase_metrics([], {}, [], capital=D(5000), today=TODAY)
    assert (m.sharpe_ratio, m.max_drawdown, m.win_rate) == (None, None, None)
    assert m.values() == {
        "capital": D(5000),
        "profitable_days": D(0),
        "crypto_profitable_days": D(0),
        "sharpe_days": D(0),
        "trades": D(0),
    }
    results = evaluate_phase(base_config(), "phase_1_stocks", m.values(), {"phase_0_crypto"})
    assert {r.name: r.met for r in results} == {
        "previous_phase": True,
        "crypto_profitable_days": False,
        "sharpe_ratio": False,
        "max_drawdown": False,
        "win_rate": False,
        "sharpe_days": False,
        "trades": False,
        "capital": True,
    }


# --- sample sizes -----------------------------------------------------------------------


def three_marks_in_the_window() -> list[DailyClose]:
    """A long-ago close, then 3 closes in the window returning 0.1 %, 0.2 % and 0.3 %."""
    e1 = D(10010)
    e2 = e1 * D("1.002")
    e3 = e2 * D("1.003")
    closes = [DailyClose(TODAY - timedelta(days=200), D(10000), D(10000))]
    closes += [
        DailyClose(TODAY - timedelta(days=n), e, D(10000)) for n, e in ((2, e1), (1, e2), (0, e3))
    ]
    return closes


def test_phase_metrics_when_three_marks_in_window_then_huge_sharpe_on_three_returns() -> None:
    """The reviewer's record: mean 0.2 %, sd 0.1 %: a Sharpe of 2 sqrt(365) = 38.2 from the
    window's 3 daily returns (which, alone, read as phase 1's Sharpe > 1.5)."""
    m = phase_metrics(three_marks_in_the_window(), {}, [], capital=D(10060), today=TODAY)
    assert m.sharpe_days == 3
    assert m.sharpe_ratio is not None
    assert abs(m.sharpe_ratio - 2 * D(365).sqrt()) < D("1e-20")
    assert m.values()["sharpe_days"] == D(3)


@pytest.mark.parametrize(
    ("sharpe_days", "trades", "unmet"),
    [
        (3, 60, {"sharpe_ratio", "sharpe_days"}),
        (49, 60, {"sharpe_ratio", "sharpe_days"}),
        (50, 49, {"win_rate", "trades"}),
        (2, 2, {"sharpe_ratio", "sharpe_days", "win_rate", "trades"}),
        (50, 50, set()),
    ],
)
def test_evaluate_phase_when_samples_below_minimum_then_not_ready(
    sharpe_days: int, trades: int, unmet: set[str]
) -> None:
    """A Sharpe or win rate resting on fewer samples than the phase's minimum does not
    hold, however high; nor does the sample-size requirement itself."""
    metrics = {
        "crypto_profitable_days": 35,
        "sharpe_ratio": 38,
        "max_drawdown": "0.01",
        "win_rate": "0.9",
        "capital": 5000,
        "sharpe_days": sharpe_days,
        "trades": trades,
    }
    results = evaluate_phase(base_config(), "phase_1_stocks", metrics, {"phase_0_crypto"})
    assert {r.name for r in results if not r.met} == unmet


def test_evaluate_phase_when_sharpe_from_three_returns_then_says_count_and_minimum() -> None:
    """The evaluation names the requirement, the count and the minimum."""
    metrics = {"sharpe_ratio": 38, "sharpe_days": 3}
    results = {
        r.name: r
        for r in evaluate_phase(base_config(), "phase_1_stocks", metrics, {"phase_0_crypto"})
    }
    assert results["sharpe_days"] == RequirementResult(
        "sharpe_days", ">= 50", D(3), False, "sample too small"
    )
    assert results["sharpe_ratio"] == RequirementResult(
        "sharpe_ratio", "> 1.5", D(38), False, "sample too small: sharpe_days is 3, needs >= 50"
    )
    assert results["sharpe_days"].explain() == "sharpe_days is 3, needs >= 50 (sample too small)"
    assert results["win_rate"].explain() == (
        "win_rate is unknown, needs > 0.50 (undefined: no closed round trip; "
        "sample too small: trades is unknown, needs >= 50)"
    )


@pytest.mark.parametrize(
    ("requirements", "problem"),
    [
        ("sharpe_ratio: {above: 1.5}", "requiring sharpe_ratio needs sharpe_days"),
        ("sharpe_ratio: {above: 1.5}\n      sharpe_days: {min: 1}", "N >= 2"),
        ("win_rate: {above: 0.5}\n      sharpe_days: {min: 50}", "requiring win_rate needs trades"),
        ("win_rate: {above: 0.5}\n      trades: {above: 40}", "requiring win_rate needs trades"),
    ],
)
def test_config_when_statistic_required_without_its_sample_then_refused(
    requirements: str, problem: str
) -> None:
    """The loader refuses a phase that requires a Sharpe or win rate but no sample size."""
    text = CONFIG_PATH.read_text()
    start = text.index("    requirements:                   # (source), net")
    end = text.index("  phase_2_leveraged_etfs:")
    broken = text[:start] + f"    requirements:\n      {requirements}\n" + text[end:]
    with pytest.raises(ConfigError, match=problem) as err:
        parse_config(broken, "assets.yaml")
    assert "phases.phase_1_stocks" in str(err.value)


# --- net profitable days ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pnls", "net"),
    [
        ([], 0),
        (["20", "20", "20"], 3),
        (["20", "-10", "20"], 1),
        (["20", "0", "0", "-1"], 0),  # flat days count neither way
        (["-5", "-5", "20"], -1),
        (["20", "-10"] * 100, 0),  # wins as often as it loses: never gets there
    ],
)
def test_net_positive_when_days_given_then_losing_days_count_against(
    pnls: list[str], net: int
) -> None:
    """Profitable days are profitable days minus losing days."""
    assert stats.net_positive(D(p) for p in pnls) == net


def test_phase_metrics_when_losing_every_other_day_then_profitable_days_stay_at_zero() -> None:
    """200 days of +20 / -10: the old count reached 100; the net one stays at 0 for the
    portfolio and for crypto."""
    closes, equity = [DailyClose(TODAY - timedelta(days=200), D(10000), D(10000))], D(10000)
    cumulative, btc = [], D(0)
    for i in range(200):
        pnl = D(20) if i % 2 == 0 else D(-10)
        equity, btc = equity + pnl, btc + pnl
        day = TODAY - timedelta(days=199 - i)
        closes.append(DailyClose(day, equity, D(10000)))
        cumulative.append((day, btc))
    from gate.performance import AssetDays

    assets = {"BTC/USDT": AssetDays("crypto", tuple(cumulative))}
    m = phase_metrics(closes, assets, [], capital=equity, today=TODAY)
    assert (m.profitable_days, m.winning_days, m.losing_days) == (0, 100, 100)
    assert (m.crypto_profitable_days, m.crypto_winning_days, m.crypto_losing_days) == (0, 100, 100)


# --- fees -------------------------------------------------------------------------------


def test_record_when_round_trip_has_fees_then_every_pnl_is_net() -> None:
    """+20 gross, 12.5 fee on each fill: fills, the trip, the symbol, cash and the day's
    close all carry the net -5."""
    track, derived = run(
        [
            deposit("10000"),
            fill("BTC/USDT", "buy", "10", "100", 1, fee="12.5"),
            fill("BTC/USDT", "sell", "10", "102", 2, fee="12.5"),
            mark({"BTC/USDT": "102"}, 3),
        ]
    )
    assert [(f.realized_pnl, f.fee, f.fee_account) for f in derived.fills] == [
        (D("-12.5"), D("12.5"), D("12.5")),
        (D("7.5"), D("12.5"), D("12.5")),
    ]
    [trip] = derived.trips
    assert (trip.realized_pnl, trip.fees) == (D(-5), D(25))
    assert track.realized == {"BTC/USDT": D(-5)}
    assert track.snapshot.account.cash == D(9995)
    [close] = derived.closes
    assert (close.equity, close.asset_pnl) == (D(9995), {"BTC/USDT": D(-5)})


def test_record_when_fee_turns_a_gross_win_into_a_loss_then_win_rate_counts_a_loss() -> None:
    """The win rate is over net trip PnL: a +20 trip with 25 of fees is a loss."""
    _, derived = run(
        [
            deposit("10000"),
            fill("BTC/USDT", "buy", "10", "100", 1, fee="12.5"),
            fill("BTC/USDT", "sell", "10", "102", 2, fee="12.5"),
            fill("BTC/USDT", "buy", "10", "100", 3),
            fill("BTC/USDT", "sell", "10", "102", 4),
        ]
    )
    trips = [TripResult(t.symbol, t.asset_class, t.realized_pnl) for t in derived.trips]
    m = phase_metrics([], {}, trips, capital=D(1), today=TODAY)
    assert [t.pnl for t in trips] == [D(-5), D(20)]
    assert (m.trades, m.win_rate) == (2, D("0.5"))


def test_record_when_jpy_fill_has_fee_then_converted_at_the_fills_fx() -> None:
    """GBP/JPY is quoted in JPY: 500 JPY of fee at the configured 0.0066 is 3.3 USD, the
    rate the ledger uses for the fill's price."""
    track, derived = run([deposit("10000"), fill("GBP/JPY", "buy", "1000", "200", 1, fee="500")])
    [row] = derived.fills
    assert (row.fee, row.fee_account, row.realized_pnl) == (D(500), D("3.3000"), D("-3.3000"))
    assert track.snapshot.account.cash == D(10000) - D(1000) * D(200) * D("0.0066") - D("3.3")
    assert track.trips["GBP/JPY"].realized == D("-3.3")
    assert track.trips["GBP/JPY"].fees == D("3.3")


def test_record_when_flip_fill_has_fee_then_shared_by_quantity() -> None:
    """Long 1, sell 3 with a fee of 3: 1 to the long trip it closes, 2 to the short it opens."""
    track, derived = run(
        [
            fill("BTC/USDT", "buy", "1", "100", 1),
            fill("BTC/USDT", "sell", "3", "110", 2, fee="3"),
            fill("BTC/USDT", "buy", "2", "105", 3),
        ]
    )
    long, short = derived.trips
    assert (long.direction, long.realized_pnl, long.fees) == ("long", D(9), D(1))
    assert (short.direction, short.realized_pnl, short.fees) == ("short", D(8), D(2))
    assert track.realized == {"BTC/USDT": D(17)}
    assert track.trips == {}


def test_record_when_fee_absent_or_zero_then_as_before() -> None:
    """No fee and a fee of 0 give the same track as the ledger alone (nothing charged)."""
    events = [fill("BTC/USDT", "buy", "1", "100", 1), fill("BTC/USDT", "sell", "1", "101", 2)]
    zero = [
        fill("BTC/USDT", "buy", "1", "100", 1, "0"),
        fill("BTC/USDT", "sell", "1", "101", 2, "0"),
    ]
    (a, da), (b, db) = run(events), run(zero)
    assert a.realized == b.realized == {"BTC/USDT": D(1)}
    assert a.snapshot.account.cash == b.snapshot.account.cash == D(1)
    assert [t.fees for t in da.trips] == [t.fees for t in db.trips] == [D(0)]


# --- resume and signed deposits ---------------------------------------------------------


def test_record_when_resume_event_then_track_unchanged_and_nothing_derived() -> None:
    """A resume moves no money: the track is the same object's equal, nothing is derived."""
    track, _ = run([deposit("1000"), fill("TSLA", "buy", "2", "400", 1), mark({"TSLA": "401"}, 2)])
    after, derived = run([resume()], track)
    assert after == track
    assert derived == Derived()


def test_record_when_deposit_signed_then_counted_like_any_deposit() -> None:
    """key_id and signature are the operator's proof, not money: the amount counts once."""
    signed = deposit("2500", key_id="ops-1", signature="ab" * 32)
    track, _ = run([deposit("1000"), signed])
    assert (track.net_deposits, track.snapshot.account.cash) == (D(3500), D(3500))


# --- AssetManager fails closed ----------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, "0", D("-10000")])
def test_validate_portfolio_allocation_when_value_not_positive_then_invalid(value: Any) -> None:
    """No portfolio value: every allocation is invalid (no_equity), even an empty one."""
    m = AssetManager(CONFIG_PATH)
    for allocations in ({"BTC/USDT": 100}, {}):
        report = m.validate_portfolio_allocation(allocations, value)
        assert not report.valid
        assert [r.code for r in report.violations] == [ReasonCode.NO_EQUITY]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_asset_manager_when_value_not_finite_then_value_error(value: str) -> None:
    """A non-finite portfolio value is refused, not turned into a share of 0."""
    m = AssetManager(CONFIG_PATH)
    with pytest.raises(ValueError, match="finite"):
        m.validate_portfolio_allocation({"BTC/USDT": 100}, value)
    with pytest.raises(ValueError, match="finite"):
        m.calculate_position_size("BTC/USDT", value)


@pytest.mark.parametrize(
    ("symbol", "price", "fx", "quantity"),
    [
        # 10 % of 100,000 USD = 10,000 USD; at 200 JPY x 0.0066 = 1.32 USD a unit: 7,575
        # units, 7,000 in lots of 1,000 (at an fx of 1 it was 50 units: 0 lots)
        ("GBP/JPY", "200", None, D(7000)),
        ("GBP/JPY", "200", D("0.0066"), D(7000)),
        ("GBP/JPY", "200", D(1), D(0)),  # an explicit rate is still honoured
        ("NVDA", "132", None, D(75)),  # USD: rate 1
    ],
)
def test_calculate_position_quantity_when_quote_not_usd_then_configured_fx(
    symbol: str, price: str, fx: Decimal | None, quantity: Decimal
) -> None:
    """Units are the account-currency size over price x the quote currency's fx rate."""
    m = AssetManager(CONFIG_PATH)
    assert m.calculate_position_quantity(symbol, 100000, price, fx) == quantity


# --- correlations over common close days --------------------------------------------------

MONDAY = date(2026, 1, 5)
# crypto's interval returns, and a pattern orthogonal to it (both zero mean, equal norm):
# the stock's 0.8 X + 0.6 Y has correlation exactly 0.8 with X over the same intervals
X = [D(v) / 100 for v in (1, -1, 1, -1)]
Y = [D(v) / 100 for v in (1, 1, -1, -1)]


def weekday_pair(start: date, weeks: int) -> tuple[dict[date, Decimal], dict[date, Decimal]]:
    """Crypto closes every day, stock closes on weekdays. Between two consecutive weekdays
    crypto returns X and the stock 0.8 X + 0.6 Y (cycling); over a weekend crypto moves
    +3 % on Saturday and -2 % on Sunday, then whatever makes Friday to Monday X."""
    crypto: dict[date, Decimal] = {start: D(100)}
    stock: dict[date, Decimal] = {start: D(50)}
    weekdays = [start + timedelta(days=i) for i in range(7 * weeks + 1)]
    weekdays = [d for d in weekdays if d.weekday() < 5]
    for i, (d1, d2) in enumerate(pairwise(weekdays)):
        x, y = X[i % 4], Y[i % 4]
        crypto[d2] = crypto[d1] * (1 + x)
        stock[d2] = stock[d1] * (1 + D("0.8") * x + D("0.6") * y)
        if d2 - d1 == timedelta(days=3):  # a weekend in between
            crypto[d1 + timedelta(days=1)] = crypto[d1] * D("1.03")
            crypto[d1 + timedelta(days=2)] = crypto[d1] * D("1.03") * D("0.98")
    return crypto, stock


def own_interval_correlation(
    a: Mapping[date, Decimal], b: Mapping[date, Decimal]
) -> Decimal | None:
    """The old way: each series' return from its own previous close, matched by day."""

    def returns(c: Mapping[date, Decimal]) -> dict[date, Decimal]:
        days = sorted(c)
        return {d2: c[d2] / c[d1] - 1 for d1, d2 in pairwise(days)}

    ra, rb = returns(a), returns(b)
    days = sorted(set(ra) & set(rb))
    return stats.correlation([ra[d] for d in days], [rb[d] for d in days])


def test_pair_correlations_when_stock_closes_on_weekdays_only_then_true_correlation() -> None:
    """True 0.8 over common intervals is measured as 0.800000 over 60 of them; matching a
    stock's Friday-to-Monday return with the coin's Sunday-to-Monday one read far less."""
    crypto, stock = weekday_pair(MONDAY, 12)
    pairs, skipped = pair_correlations({"BTC/USDT": crypto, "NVDA": stock}, 20)
    assert skipped == 0
    assert [(p.a, p.b, p.value, p.observations) for p in pairs] == [
        ("BTC/USDT", "NVDA", D("0.800000"), 60)
    ]
    old = own_interval_correlation(crypto, stock)
    assert old is not None and round(old, 6) == D("0.749503")


def test_common_returns_when_same_prices_sampled_on_weekdays_then_identical_returns() -> None:
    """A stock that is the coin sampled on weekdays has the coin's returns over the same
    intervals: correlation exactly 1."""
    crypto, _ = weekday_pair(MONDAY, 4)
    stock = {d: p for d, p in crypto.items() if d.weekday() < 5}
    ra, rb = common_returns(crypto, stock)
    assert ra == rb and len(ra) == 20
    assert stats.correlation(ra, rb) == D(1)


def test_pair_correlations_when_holiday_on_one_side_then_day_dropped_for_the_pair() -> None:
    """A day only one series has is skipped: the return runs over the days both have."""
    a = {date(2026, 1, d): D(p) for d, p in ((5, "100"), (6, "110"), (7, "121"), (8, "133.1"))}
    b = {date(2026, 1, d): D(p) for d, p in ((5, "10"), (7, "12"), (8, "13.2"))}
    ra, rb = common_returns(a, b)
    assert ra == [D("0.21"), D("0.1")] and rb == [D("0.2"), D("0.1")]
