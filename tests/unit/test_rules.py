"""Every rule of decide() at, just below and just above its limit.

Portfolio unless stated: 100,000 USD cash, no positions, NOW = 2026-11-24 12:00 UTC.
BTC at 100,000 with the default 6 % stop risks 6,000 per coin; its max position is
20 % (0.2 BTC); the crypto class cap is 40 %; correlated exposure 60 %; heat 25 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from gate.decide import decide, decide_batch
from gate.portfolio import Flags, RateCount, Regime, Snapshot
from schemas.config import AssetClass, AssetsConfig
from schemas.messages import Side, Status, TradeIntent
from tests.builders import (
    NOW,
    all_enabled,
    base_config,
    codes,
    correlations,
    intent,
    marks,
    position,
    reservation,
    snapshot,
)

D = Decimal


@dataclass
class Case:
    id: str
    intent: TradeIntent
    status: str
    quantity: str
    reasons: list[str] = field(default_factory=list)
    snap: Snapshot = field(default_factory=snapshot)
    config: AssetsConfig = field(default_factory=base_config)


def _heavy_eth() -> Snapshot:
    # ETH 6 @ 3,900 with a stop at 100: 22,800 of risk, 23,400 notional (23.4 %)
    return snapshot("76600", [position("ETH/USDT", "6", "3900", "100")])


def _eth_35pct() -> Snapshot:
    # ETH 10 @ 3,500 (35 % of equity), stop 3,400: 1,000 of risk
    return snapshot("65000", [position("ETH/USDT", "10", "3500", "3400")])


def _nvda_55pct(corr: str | None, fresh: bool = True) -> Snapshot:
    pairs = {} if corr is None else {("BTC/USDT", "NVDA"): corr}
    as_of = NOW if fresh else NOW - timedelta(hours=49)
    return snapshot(
        "45000",
        [position("NVDA", "500", "110", "108", config=all_enabled())],
        correlations=correlations(pairs, as_of),
    )


def _earnings(days_ahead: int | None) -> Snapshot:
    earnings = {} if days_ahead is None else {"NVDA": NOW.date() + timedelta(days=days_ahead)}
    return snapshot(flags=Flags(earnings=earnings))


def _regime(value: str | None, age: timedelta | None = timedelta(hours=1)) -> Snapshot:
    as_of = None if age is None else NOW - age
    return snapshot(flags=Flags(regimes={} if value is None else {"TQQQ": Regime(value, as_of)}))


def _tqqq_held(age: timedelta) -> Snapshot:
    pos = position("TQQQ", "10", "100", "95", config=all_enabled(), opened_at=NOW - age)
    return snapshot("99000", [pos], flags=Flags(regimes={"TQQQ": Regime("trending", NOW)}))


def _unknown_uncorrelated() -> AssetsConfig:
    cfg = all_enabled()
    rm = cfg.risk_management.model_copy(update={"unknown_correlation": "uncorrelated"})
    return cfg.model_copy(update={"risk_management": rm})


def _rates(count: int, window_offset: int = 0) -> Snapshot:
    window = int(NOW.timestamp()) // 60 + window_offset
    return replace(snapshot(), rates={"agent-1": RateCount(window, count)})


def _marked(age_s: int) -> Snapshot:
    pos = position("ETH/USDT", "1", "3900", marked_at=NOW - timedelta(seconds=age_s))
    return snapshot("96100", [pos])


def _long_btc(qty: str = "0.3", **kw: Any) -> Snapshot:
    # 30,000 of BTC: an exit of all of it fits the 40,000 max order value
    return snapshot("0", [position("BTC/USDT", qty, "100000", "94000")], **kw)


def _rich(**kw: Any) -> Snapshot:
    # 1,000,000 USD: BTC's position cap is 200,000, the 40,000 max order value binds first
    return snapshot("1000000", **kw)


def _caps(classwide: dict[str, str | None] | None = None, **risk: str | None) -> AssetsConfig:
    """The base config with BTC's order caps (and the crypto class's) overridden."""
    cfg = base_config()
    btc = cfg.assets["BTC/USDT"]
    own = btc.risk.model_copy(update={k: None if v is None else D(v) for k, v in risk.items()})
    assets = {**cfg.assets, "BTC/USDT": btc.model_copy(update={"risk": own})}
    classes = dict(cfg.asset_classes)
    crypto = AssetClass.CRYPTO
    update = {k: None if v is None else D(v) for k, v in (classwide or {}).items()}
    classes[crypto] = classes[crypto].model_copy(update=update)
    copy = cfg.model_copy(update={"assets": assets, "asset_classes": classes})
    copy.__dict__.pop("config_hash", None)
    return copy


def _remembered(*entries: tuple[str, str, str, timedelta], **kw: Any) -> Snapshot:
    """A portfolio whose duplicate memory holds ``(agent, side, quantity, age)`` in BTC."""
    memory: dict[tuple[str, str], tuple[Any, ...]] = {}
    for agent, side, qty, age in entries:
        key = (agent, "BTC/USDT")
        memory[key] = (*memory.get(key, ()), (Side(side), D(qty), NOW - age))
    return replace(snapshot(**kw), approvals=memory)


def _no_duplicates() -> AssetsConfig:
    cfg = base_config()
    rm = cfg.risk_management.model_copy(update={"duplicate_order_window_seconds": 0})
    copy = cfg.model_copy(update={"risk_management": rm})
    copy.__dict__.pop("config_hash", None)
    return copy


S5, S10 = timedelta(seconds=5), timedelta(seconds=10)


CASES = [
    # -- max position: 0.2 BTC ------------------------------------------------------------
    Case("max_position at limit", intent(quantity="0.2"), "approved", "0.2"),
    Case("max_position below", intent(quantity="0.19999"), "approved", "0.19999"),
    Case(
        "max_position above",
        intent(quantity="0.20001"),
        "resized",
        "0.2",
        ["max_position"],
    ),
    Case(
        "max_position counts held and reserved",
        intent(quantity="0.1"),
        "resized",
        "0.05",
        ["max_position"],
        snapshot(
            "95000",
            [position("BTC/USDT", "0.05", "100000", "94000")],
            [reservation("r1", "BTC/USDT", "0.1", "100000", "94000")],
        ),
    ),
    # -- portfolio heat: 2,200 of room, a 50,000 stop risks 50,000 per coin ---------------
    Case(
        "heat at limit",
        intent(quantity="0.044", stop_price="50000"),
        "approved",
        "0.044",
        snap=_heavy_eth(),
    ),
    Case(
        "heat below",
        intent(quantity="0.04399", stop_price="50000"),
        "approved",
        "0.04399",
        snap=_heavy_eth(),
    ),
    Case(
        "heat above",
        intent(quantity="0.04401", stop_price="50000"),
        "resized",
        "0.044",
        ["portfolio_heat"],
        _heavy_eth(),
    ),
    # -- class share: crypto 35 % used, 5,000 of room = 0.05 BTC -------------------------
    Case("class at limit", intent(quantity="0.05"), "approved", "0.05", snap=_eth_35pct()),
    Case("class below", intent(quantity="0.04999"), "approved", "0.04999", snap=_eth_35pct()),
    Case(
        "class above",
        intent(quantity="0.05001"),
        "resized",
        "0.05",
        ["asset_class_limit"],
        _eth_35pct(),
    ),
    # -- correlated exposure: NVDA 55 % correlated with BTC, 5,000 of room ---------------
    Case(
        "correlated at limit",
        intent(quantity="0.05"),
        "approved",
        "0.05",
        snap=_nvda_55pct("0.9"),
        config=all_enabled(),
    ),
    Case(
        "correlated below",
        intent(quantity="0.04999"),
        "approved",
        "0.04999",
        snap=_nvda_55pct("0.9"),
        config=all_enabled(),
    ),
    Case(
        "correlated above",
        intent(quantity="0.05001"),
        "resized",
        "0.05",
        ["correlated_exposure"],
        _nvda_55pct("0.9"),
        all_enabled(),
    ),
    Case(
        "negative correlation counts",
        intent(quantity="0.1"),
        "resized",
        "0.05",
        ["correlated_exposure"],
        _nvda_55pct("-0.75"),
        all_enabled(),
    ),
    Case(
        "correlation at threshold counts",
        intent(quantity="0.1"),
        "resized",
        "0.05",
        ["correlated_exposure"],
        _nvda_55pct("0.70"),
        all_enabled(),
    ),
    Case(
        "correlation below threshold ignored",
        intent(quantity="0.1"),
        "approved",
        "0.1",
        snap=_nvda_55pct("0.69"),
        config=all_enabled(),
    ),
    Case(
        "unknown cross-class correlation counts (fail closed)",
        intent(quantity="0.1"),
        "resized",
        "0.05",
        ["correlated_exposure"],
        _nvda_55pct(None),
        all_enabled(),
    ),
    Case(
        "unknown cross-class correlation ignored when configured uncorrelated",
        intent(quantity="0.1"),
        "approved",
        "0.1",
        snap=_nvda_55pct(None),
        config=_unknown_uncorrelated(),
    ),
    Case(
        "stale correlation counts as correlated",
        intent(quantity="0.1"),
        "resized",
        "0.05",
        ["correlated_exposure"],
        _nvda_55pct("0.1", fresh=False),
        all_enabled(),
    ),
    Case(
        "fresh low correlation frees the other class",
        intent(quantity="0.1"),
        "approved",
        "0.1",
        snap=_nvda_55pct("0.1"),
        config=all_enabled(),
    ),
    # -- emergency stop at 25 % drawdown --------------------------------------------------
    Case(
        "drawdown at limit",
        intent(),
        "rejected",
        "0",
        ["emergency_stop"],
        snapshot("75000", peak="100000"),
    ),
    Case("drawdown just below", intent(), "approved", "0.1", snap=snapshot("75001", peak="100000")),
    Case(
        "drawdown above",
        intent(),
        "rejected",
        "0",
        ["emergency_stop"],
        snapshot("70000", peak="100000"),
    ),
    # -- daily loss at 5 % ----------------------------------------------------------------
    Case(
        "daily loss at limit",
        intent(),
        "rejected",
        "0",
        ["daily_loss_limit"],
        snapshot("95000", day_start="100000"),
    ),
    Case(
        "daily loss just below",
        intent(),
        "approved",
        "0.1",
        snap=snapshot("95001", day_start="100000"),
    ),
    Case(
        "daily loss above",
        intent(),
        "rejected",
        "0",
        ["daily_loss_limit"],
        snapshot("90000", day_start="100000"),
    ),
    # -- operator halt --------------------------------------------------------------------
    Case(
        "halted", intent(), "rejected", "0", ["trading_halted"], snapshot(flags=Flags(halted=True))
    ),
    # -- earnings blackout: 3 days ---------------------------------------------------------
    Case(
        "earnings in 3 days",
        intent("NVDA", quantity="10", price="132"),
        "rejected",
        "0",
        ["earnings_blackout"],
        _earnings(3),
        all_enabled(),
    ),
    Case(
        "earnings today",
        intent("NVDA", quantity="10", price="132"),
        "rejected",
        "0",
        ["earnings_blackout"],
        _earnings(0),
        all_enabled(),
    ),
    Case(
        "earnings in 4 days",
        intent("NVDA", quantity="10", price="132"),
        "approved",
        "10",
        snap=_earnings(4),
        config=all_enabled(),
    ),
    Case(
        "earnings yesterday: the next date is unknown",
        intent("NVDA", quantity="10", price="132"),
        "rejected",
        "0",
        ["earnings_blackout"],
        _earnings(-1),
        all_enabled(),
    ),
    Case(
        "earnings 200 days ago",
        intent("NVDA", quantity="10", price="132"),
        "rejected",
        "0",
        ["earnings_blackout"],
        _earnings(-200),
        all_enabled(),
    ),
    Case(
        "earnings date unknown",
        intent("NVDA", quantity="10", price="132"),
        "rejected",
        "0",
        ["earnings_blackout"],
        _earnings(None),
        all_enabled(),
    ),
    # -- sideways market (TQQQ) -----------------------------------------------------------
    Case(
        "tqqq sideways",
        intent("TQQQ", quantity="10", price="100"),
        "rejected",
        "0",
        ["sideways_market"],
        _regime("sideways"),
        all_enabled(),
    ),
    Case(
        "tqqq regime unknown",
        intent("TQQQ", quantity="10", price="100"),
        "rejected",
        "0",
        ["sideways_market"],
        _regime(None),
        all_enabled(),
    ),
    Case(
        "tqqq trending",
        intent("TQQQ", quantity="10", price="100"),
        "approved",
        "10",
        snap=_regime("trending"),
        config=all_enabled(),
    ),
    Case(
        "tqqq trending flag just inside its age",
        intent("TQQQ", quantity="10", price="100"),
        "approved",
        "10",
        snap=_regime("trending", timedelta(hours=24)),
        config=all_enabled(),
    ),
    Case(
        "tqqq trending flag expired",
        intent("TQQQ", quantity="10", price="100"),
        "rejected",
        "0",
        ["sideways_market"],
        _regime("trending", timedelta(hours=24, seconds=1)),
        all_enabled(),
    ),
    Case(
        "tqqq trending flag without a time",
        intent("TQQQ", quantity="10", price="100"),
        "rejected",
        "0",
        ["sideways_market"],
        _regime("trending", None),
        all_enabled(),
    ),
    # -- max hold (TQQQ 5 days) -----------------------------------------------------------
    Case(
        "held 5 days",
        intent("TQQQ", quantity="10", price="100"),
        "rejected",
        "0",
        ["max_hold"],
        _tqqq_held(timedelta(days=5)),
        all_enabled(),
    ),
    Case(
        "held just under 5 days",
        intent("TQQQ", quantity="10", price="100"),
        "approved",
        "10",
        snap=_tqqq_held(timedelta(days=5) - timedelta(seconds=1)),
        config=all_enabled(),
    ),
    # -- per-agent rate limit: 120 a minute ----------------------------------------------
    Case("rate just below", intent(), "approved", "0.1", snap=_rates(119)),
    Case("rate at limit", intent(), "rejected", "0", ["rate_limited"], _rates(120)),
    Case("rate of last minute ignored", intent(), "approved", "0.1", snap=_rates(500, -1)),
    # -- minimum size and lots ------------------------------------------------------------
    Case("min size", intent(quantity="0.0001"), "approved", "0.0001"),
    Case("below min size", intent(quantity="0.00009"), "rejected", "0", ["below_min_size"]),
    Case("off-lot rounded down", intent(quantity="0.123456"), "resized", "0.12345", ["lot_size"]),
    Case(
        "resized below min size",
        intent(quantity="0.1"),
        "rejected",
        "0",
        ["max_position", "below_min_size"],
        snapshot("80000", [position("BTC/USDT", "0.19995", "100000", "94000")]),
    ),
    # -- stale portfolio marks: 900 s -----------------------------------------------------
    Case("marks at max age", intent(), "approved", "0.1", snap=_marked(900)),
    Case("marks too old", intent(), "rejected", "0", ["stale_portfolio"], _marked(901)),
    # -- stale intents: 300 s old, 60 s ahead ---------------------------------------------
    Case("intent 300s old", intent(created_at=NOW - timedelta(seconds=300)), "approved", "0.1"),
    Case(
        "intent 301s old",
        intent(created_at=NOW - timedelta(seconds=301)),
        "rejected",
        "0",
        ["stale_intent"],
    ),
    Case(
        "intent from the future",
        intent(created_at=NOW + timedelta(seconds=61)),
        "rejected",
        "0",
        ["stale_intent"],
    ),
    # -- stops and take profits ------------------------------------------------------------
    Case("buy stop above price", intent(stop_price="100001"), "rejected", "0", ["invalid_stop"]),
    Case("buy stop at price", intent(stop_price="100000"), "rejected", "0", ["invalid_stop"]),
    Case(
        "sell stop below price",
        intent(side="sell", stop_price="99999"),
        "rejected",
        "0",
        ["invalid_stop"],
    ),
    Case("sell with derived stop", intent(side="sell"), "approved", "0.1"),
    Case(
        "buy take profit below price",
        intent(take_profit="99000"),
        "rejected",
        "0",
        ["invalid_take_profit"],
    ),
    # -- unknown, disabled, no equity ------------------------------------------------------
    Case("unknown symbol", intent("DOGE/USDT"), "rejected", "0", ["unknown_symbol"]),
    Case(
        "disabled asset and class",
        intent("NVDA", quantity="1", price="132"),
        "rejected",
        "0",
        ["asset_disabled", "class_disabled", "earnings_blackout"],
    ),
    Case("no equity", intent(), "rejected", "0", ["no_equity"], snapshot("0")),
    # -- max order value: 40,000 USD for crypto, at the larger of price and mark ----------
    Case("max_order_value at limit", intent(quantity="0.4"), "approved", "0.4", snap=_rich()),
    Case(
        "max_order_value above",
        intent(quantity="0.40001"),
        "resized",
        "0.4",
        ["max_order_value"],
        snap=_rich(),
    ),
    Case(
        "max_order_value at the mark when it is above the price",
        intent(quantity="0.4", price="98000"),
        "approved",
        "0.4",
        snap=_rich(),
    ),
    Case(
        "max_order_value at the mark, above",
        intent(quantity="0.40001", price="98000"),
        "resized",
        "0.4",
        ["max_order_value"],
        snap=_rich(),
    ),
    Case(
        "max_order_value per-asset override",
        intent(quantity="0.3"),
        "resized",
        "0.25",
        ["max_order_value"],
        snap=_rich(),
        config=_caps(max_order_value="25000"),
    ),
    Case(
        # 150,000 USD: 0.3 BTC of position, 0.4 of order value
        "max_order_value with max_position: both named, the tighter wins",
        intent(quantity="0.45"),
        "resized",
        "0.3",
        ["max_position", "max_order_value"],
        snap=snapshot("150000"),
    ),
    Case(
        # the config was written at 110,000 a coin; at 200,000 the cap of 15 buys
        # 0.000075 BTC, under the 0.0001 minimum
        "max_order_value leaves less than min size",
        intent(quantity="0.001", price="200000"),
        "rejected",
        "0",
        ["max_order_value", "below_min_size"],
        snap=snapshot(quotes=marks({"BTC/USDT": "200000"})),
        config=_caps(max_order_value="15"),
    ),
    Case(
        "max_order_value caps reduce-only too",
        intent(side="sell", quantity="1", reduce_only=True),
        "resized",
        "0.4",
        ["max_order_value"],
        snap=_long_btc("1"),
    ),
    Case(
        "reduce-only above the position and the caps",
        intent(side="sell", quantity="1.5", reduce_only=True),
        "resized",
        "0.4",
        ["reduce_only", "max_order_value", "max_order_quantity"],
        snap=_long_btc("1"),
    ),
    # -- max order quantity: BTC's 1 (its value cap raised out of the way) --------------------
    Case(
        "max_order_quantity at limit",
        intent(quantity="1"),
        "approved",
        "1",
        snap=_rich(),
        config=_caps(max_order_value="1000000"),
    ),
    Case(
        "max_order_quantity above",
        intent(quantity="1.00001"),
        "resized",
        "1",
        ["max_order_quantity"],
        snap=_rich(),
        config=_caps(max_order_value="1000000"),
    ),
    Case(
        "max_order_quantity of the class when the asset sets none",
        intent(quantity="0.35"),
        "resized",
        "0.3",
        ["max_order_quantity"],
        snap=_rich(),
        config=_caps({"max_order_quantity": "0.3"}, max_order_quantity=None),
    ),
    Case(
        "max_order_quantity of the asset overrides the class's",
        intent(quantity="0.35"),
        "approved",
        "0.35",
        snap=_rich(),
        config=_caps({"max_order_quantity": "0.3"}),
    ),
    Case(
        "max_order_quantity none at all: the value alone caps",
        intent(quantity="0.5"),
        "resized",
        "0.4",
        ["max_order_value"],
        snap=_rich(),
        config=_caps(max_order_quantity=None),
    ),
    Case(
        "max_order_quantity leaves less than min size",
        intent(quantity="0.001"),
        "rejected",
        "0",
        ["max_order_quantity", "below_min_size"],
        config=_caps(max_order_quantity="0.00005"),  # the loader refuses this; built here
    ),
    # -- duplicate order: agent-1 bought 0.1 BTC (approved) n seconds ago, window 10 s -------
    Case(
        "duplicate_order within the window",
        intent(quantity="0.1"),
        "rejected",
        "0",
        ["duplicate_order"],
        snap=_remembered(("agent-1", "buy", "0.1", S5)),
    ),
    Case(
        "duplicate_order exactly at the window",
        intent(quantity="0.1"),
        "rejected",
        "0",
        ["duplicate_order"],
        snap=_remembered(("agent-1", "buy", "0.1", S10)),
    ),
    Case(
        "duplicate_order just past the window",
        intent(quantity="0.1"),
        "approved",
        "0.1",
        snap=_remembered(("agent-1", "buy", "0.1", S10 + timedelta(microseconds=1))),
    ),
    Case(
        "duplicate_order same number in other notation",
        intent(quantity="0.10000"),
        "rejected",
        "0",
        ["duplicate_order"],
        snap=_remembered(("agent-1", "buy", "0.1", S5)),
    ),
    Case(
        "duplicate_order not for another quantity",
        intent(quantity="0.10001"),
        "approved",
        "0.10001",
        snap=_remembered(("agent-1", "buy", "0.1", S5)),
    ),
    Case(
        "duplicate_order not for the other side",
        intent(side="sell", quantity="0.1"),
        "approved",
        "0.1",
        snap=_remembered(("agent-1", "buy", "0.1", S5)),
    ),
    Case(
        "duplicate_order not for another agent",
        intent(quantity="0.1"),
        "approved",
        "0.1",
        snap=_remembered(("agent-2", "buy", "0.1", S5)),
    ),
    Case(
        "duplicate_order finds an older entry behind a newer one",
        intent(quantity="0.1"),
        "rejected",
        "0",
        ["duplicate_order"],
        snap=_remembered(("agent-1", "buy", "0.1", S10), ("agent-1", "buy", "0.05", S5)),
    ),
    Case(
        "duplicate_order off at window 0",
        intent(quantity="0.1"),
        "approved",
        "0.1",
        snap=_remembered(("agent-1", "buy", "0.1", S5)),
        config=_no_duplicates(),
    ),
    Case(
        "duplicate_order never for reduce-only",
        intent(side="sell", quantity="0.1", reduce_only=True),
        "approved",
        "0.1",
        snap=replace(
            _long_btc(), approvals={("agent-1", "BTC/USDT"): ((Side.SELL, D("0.1"), NOW),)}
        ),
    ),
    # -- reduce-only ----------------------------------------------------------------------
    Case(
        "reduce-only within position",
        intent(side="sell", quantity="0.2", reduce_only=True),
        "approved",
        "0.2",
        snap=_long_btc(),
    ),
    Case(
        "reduce-only larger than position",
        intent(side="sell", quantity="0.35", reduce_only=True),
        "resized",
        "0.3",
        ["reduce_only"],
        _long_btc(),
    ),
    Case(
        "reduce-only closes odd-sized position whole",
        intent(side="sell", quantity="0.3", reduce_only=True),
        "resized",
        "0.1234567",
        ["reduce_only"],
        _long_btc("0.1234567"),
    ),
    Case(
        "reduce-only wrong side",
        intent(quantity="0.2", reduce_only=True),
        "rejected",
        "0",
        ["reduce_only"],
        _long_btc(),
    ),
    Case(
        "reduce-only without position",
        intent(side="sell", reduce_only=True),
        "rejected",
        "0",
        ["reduce_only"],
    ),
    Case(
        "reduce-only passes halt",
        intent(side="sell", quantity="0.2", reduce_only=True),
        "approved",
        "0.2",
        snap=_long_btc(flags=Flags(halted=True)),
    ),
    Case(
        "reduce-only passes emergency stop",
        intent(side="sell", quantity="0.3", reduce_only=True),
        "approved",
        "0.3",
        snap=_long_btc(peak="1000000"),
    ),
    Case(
        "reduce-only passes daily loss",
        intent(side="sell", quantity="0.3", reduce_only=True),
        "approved",
        "0.3",
        snap=_long_btc(day_start="1000000"),
    ),
    Case(
        "reduce-only counts pending reductions",
        intent(side="sell", quantity="0.3", reduce_only=True),
        "resized",
        "0.2",
        ["reduce_only"],
        snapshot(
            "0",
            [position("BTC/USDT", "0.5", "100000", "94000")],
            [
                reservation(
                    "r",
                    "BTC/USDT",
                    "0.3",
                    "100000",
                    None,
                    side=intent(side="sell").side,
                    reduce_only=True,
                )
            ],
        ),
    ),
    # -- a reservation past its good_till still holds its risk ----------------------------
    Case(
        "overdue reservation still counts",
        intent(quantity="0.2"),
        "rejected",
        "0",
        ["max_position", "below_min_size"],
        snap=snapshot(
            "100000",
            reservations=[reservation("old", "BTC/USDT", "0.2", "100000", "94000", expires_at=NOW)],
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide_when_rule_at_below_or_above_limit_then_expected_outcome(case: Case) -> None:
    """Each rule approves at its limit, resizes or rejects just past it, with its code."""
    d = decide(case.intent, case.snap, case.config, NOW)
    assert (d.status.value, d.approved_quantity, codes(d)) == (
        case.status,
        D(case.quantity),
        case.reasons,
    )
    if d.status is Status.REJECTED:
        assert d.approved_quantity == 0
    assert d.config_hash == case.config.config_hash


def test_decide_when_forex_without_stop_then_stop_and_take_profit_in_pips() -> None:
    """GBP/JPY: 50-pip stop, 100-pip take profit, size capped at 10 % in whole lots."""
    # 200 JPY x 0.0066 = 1.32 USD a unit; 10 % of 100,000 = 10,000 USD -> 7,575 -> 7,000
    d = decide(intent("GBP/JPY", quantity="10000", price="200"), snapshot(), all_enabled(), NOW)
    assert (d.status, d.approved_quantity, d.stop_price, d.take_profit) == (
        Status.RESIZED,
        D(7000),
        D("199.50"),
        D("201.00"),
    )
    assert codes(d) == ["max_position"]


def test_decide_when_sell_without_stop_then_stop_above_price() -> None:
    """The asset's percentage stop is placed on the losing side of a short."""
    d = decide(intent(side="sell"), snapshot(), base_config(), NOW)
    assert d.stop_price == D("106000.00")


def test_decide_batch_when_two_intents_share_a_cap_then_second_is_resized() -> None:
    """A batch reserves as it goes: 0.15 + 0.16 BTC against a 0.2 cap."""
    first, second = intent(quantity="0.15"), intent(quantity="0.16")
    result = decide_batch([first, second], snapshot(), base_config(), NOW)
    assert [(d.status, d.approved_quantity) for d in result.decisions] == [
        (Status.APPROVED, D("0.15")),
        (Status.RESIZED, D("0.05")),
    ]
    assert set(result.snapshot.reservations) == {first.intent_id, second.intent_id}
    assert result.snapshot.rates["agent-1"].count == 2


def test_decide_when_approved_then_checks_carry_values_and_limits() -> None:
    """Every decision explains itself: before/after/limit for each limit, equity, drawdown."""
    d = decide(intent(quantity="0.1"), snapshot(), base_config(), NOW)
    c = d.checks
    assert (c["heat_before"], c["heat_after"], c["heat_limit"]) == ("0", "0.006", "0.25")
    assert (c["position_after"], c["position_limit"]) == ("0.1", "0.2")
    assert (c["class_share_after"], c["class_share_limit"]) == ("0.1", "0.4")
    assert (c["correlated_exposure_after"], c["correlated_exposure_limit"]) == ("0.1", "0.6")
    assert (c["equity"], c["drawdown"], c["daily_pnl"]) == ("100000", "0", "0")
    assert c["stop_price"] == "94000"


def test_decide_when_resized_then_reason_names_value_and_limit() -> None:
    """A binding limit reports the share the request would have reached and the cap."""
    d = decide(intent(quantity="0.3"), snapshot(), base_config(), NOW)
    (r,) = d.reasons
    assert (r.code.value, r.value, r.limit) == ("max_position", "0.3", "0.2")
    assert "at most 0.2" in r.message


def test_decide_when_same_class_correlation_unknown_then_counted() -> None:
    """Unknown correlation within one class counts as correlated (fail closed)."""
    snap = snapshot("45000", [position("ETH/USDT", "14.1025641", "3900", "3800")])
    d = decide(intent(quantity="0.2"), snap, base_config(), NOW)
    assert d.checks["correlated_with"] == ["ETH/USDT"]


def test_decide_when_new_utc_day_without_marks_then_daily_loss_restarts() -> None:
    """Yesterday's loss does not block today before any mark of today arrives."""
    snap = snapshot("95000", day_start="100000")
    snap = replace(snap, account=replace(snap.account, day=date(2026, 11, 23)))
    assert decide(intent(), snap, base_config(), NOW).status is Status.APPROVED


def test_decide_when_same_class_symbol_known_uncorrelated_then_not_counted() -> None:
    """A fresh |correlation| below the threshold removes a same-class symbol."""
    pos = position("ETH/USDT", "10", "3000", "2900")  # 30 % of equity in ETH
    known = snapshot("70000", [pos], correlations=correlations({("BTC/USDT", "ETH/USDT"): "0.3"}))
    unknown = snapshot("70000", [pos])
    d_known = decide(intent(quantity="0.1"), known, base_config(), NOW)
    d_unknown = decide(intent(quantity="0.1"), unknown, base_config(), NOW)
    assert (d_known.status, d_unknown.status) == (Status.APPROVED, Status.APPROVED)
    assert d_known.checks["correlated_with"] == []
    assert d_known.checks["correlated_exposure_after"] == "0.1"
    assert d_unknown.checks["correlated_with"] == ["ETH/USDT"]
    assert d_unknown.checks["correlated_exposure_after"] == "0.4"


def test_decide_when_above_the_order_caps_then_reasons_name_value_and_limit() -> None:
    """The caps' reasons say the order's value (or quantity), the cap and what fits."""
    d = decide(intent(quantity="1.5", price="98000"), _rich(), base_config(), NOW)
    assert (d.status, d.approved_quantity) == (Status.RESIZED, D("0.4"))
    value, qty = d.reasons
    assert (value.code.value, value.value, value.limit) == ("max_order_value", "150000", "40000")
    assert value.message == (
        "BTC/USDT order value 150000 USD (1.5 at 100000, the larger of price and mark) is "
        "above the maximum of 40000 USD per order; at most 0.4"
    )
    assert (qty.code.value, qty.value, qty.limit) == ("max_order_quantity", "1.5", "1")
    assert (
        qty.message
        == "BTC/USDT order quantity 1.5 is above the maximum of 1 per order; at most 0.4"
    )
    assert (d.checks["max_order_value"], d.checks["max_order_quantity"]) == ("40000", "1")


def test_decide_when_order_value_in_a_quote_currency_then_valued_in_account_currency() -> None:
    """GBP/JPY at 200 JPY (1.32 USD a unit): 30,000 USD is 22,727 units, 22,000 in lots."""
    d = decide(intent("GBP/JPY", quantity="30000", price="200"), _rich(), all_enabled(), NOW)
    assert (d.status, d.approved_quantity, codes(d)) == (
        Status.RESIZED,
        D(22000),
        ["max_order_value"],
    )
    assert d.reasons[0].value == "39600"


def test_decide_when_duplicate_then_reason_names_the_first_approval() -> None:
    """The duplicate's reason says when the same order was approved and the window."""
    snap = _remembered(("agent-1", "buy", "0.1", timedelta(seconds=2.5)))
    (r,) = decide(intent(quantity="0.1"), snap, base_config(), NOW).reasons
    assert (r.code.value, r.value, r.limit) == ("duplicate_order", "2.5", "10")
    assert r.message.startswith(
        "agent agent-1 had the same buy of 0.1 BTC/USDT approved 2.5s ago "
        "(2026-11-24T11:59:57.500000+00:00); an identical opening within the 10s"
    )
