"""The asset config file: its contents, and every way a bad file is reported."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from schemas.config import AssetClass, ConfigError, load_config, parse_config
from tests.builders import CONFIG_PATH, base_config

D = Decimal
TEXT = CONFIG_PATH.read_text()


def test_config_when_loaded_then_22_assets_6_classes_13_sources_7_phases() -> None:
    """The packaged file carries the source document's whole universe."""
    cfg = base_config()
    assert len(cfg.assets) == 22
    assert set(cfg.asset_classes) == set(AssetClass)
    assert len(cfg.data_sources) == 13
    assert list(cfg.phases) == [
        "phase_0_crypto",
        "phase_1_stocks",
        "phase_2_leveraged_etfs",
        "phase_3_forex_majors",
        "phase_4_forex_em",
        "phase_5_commodities",
        "phase_6_meme_stocks",
    ]
    per_class = {c: sum(a.asset_class is c for a in cfg.assets.values()) for c in AssetClass}
    assert per_class == {
        AssetClass.CRYPTO: 2,
        AssetClass.STOCKS: 3,
        AssetClass.LEVERAGED_ETFS: 3,
        AssetClass.FOREX: 5,
        AssetClass.COMMODITIES: 3,
        AssetClass.MEME_STOCKS: 6,
    }


def test_config_when_loaded_then_risk_management_is_the_sources() -> None:
    """The five global limits are exactly the source's numbers."""
    rm = base_config().risk_management
    assert (
        rm.max_portfolio_heat,
        rm.max_correlation_exposure,
        rm.max_single_asset_class,
        rm.emergency_stop_drawdown,
        rm.daily_loss_limit,
    ) == (D("0.25"), D("0.60"), D("0.40"), D("0.25"), D("0.05"))


def test_config_when_loaded_then_only_btc_and_eth_enabled() -> None:
    """Phase 0: crypto only."""
    cfg = base_config()
    assert [s for s, a in cfg.assets.items() if a.enabled] == ["BTC/USDT", "ETH/USDT"]
    assert [c for c, cc in cfg.asset_classes.items() if cc.enabled] == [AssetClass.CRYPTO]


def test_config_when_loaded_then_special_rules_match_the_source() -> None:
    """NVDA, TSLA, GBP/JPY and TQQQ carry the source's specific rules."""
    a = base_config().assets
    assert (a["NVDA"].risk.max_position_pct, a["NVDA"].risk.stop_loss_pct) == (D("0.10"), D("0.08"))
    assert a["NVDA"].special_rules.earnings_blackout_days == 3
    assert a["TSLA"].special_rules.tweet_monitor
    assert a["TSLA"].special_rules.monitored_accounts == ("@elonmusk",)
    assert (a["TSLA"].risk.max_position_pct, a["TSLA"].risk.stop_loss_pct) == (D("0.08"), D("0.10"))
    gj = a["GBP/JPY"]
    assert (gj.risk.stop_loss_pips, gj.risk.take_profit_pips, gj.risk.max_position_pct) == (
        D(50),
        D(100),
        D("0.10"),
    )
    assert gj.trading.pip_size == D("0.01")
    tq = a["TQQQ"]
    assert (tq.risk.max_position_pct, tq.risk.stop_loss_pct, tq.risk.leverage) == (
        D("0.05"),
        D("0.05"),
        D(3),
    )
    assert (
        tq.special_rules.max_hold_days,
        tq.special_rules.avoid_sideways_market,
        tq.special_rules.decay_warning,
    ) == (5, True, True)


def test_config_when_loaded_then_phase_1_requirements_and_capital_are_the_sources() -> None:
    """Phase 1: 30 profitable crypto days, Sharpe > 1.5, drawdown < 15 %, win rate > 50 %;
    and the sample sizes behind them (chosen): 50 daily returns, 50 round trips."""
    cfg = base_config()
    req = {k: v.describe() for k, v in cfg.phases["phase_1_stocks"].requirements.items()}
    assert req == {
        "crypto_profitable_days": ">= 30",
        "sharpe_ratio": "> 1.5",
        "max_drawdown": "< 0.15",
        "win_rate": "> 0.50",
        "sharpe_days": ">= 50",
        "trades": ">= 50",
    }
    caps = {k: (v.minimum, v.recommended) for k, v in cfg.capital_requirements.items()}
    assert caps["phase_0_crypto"] == (D(1000), D(2500))
    assert caps["phase_6_meme_stocks"] == (D(15000), D(50000))
    assert cfg.phases["phase_6_meme_stocks"].activation == "manual"
    statuses = {k: v.status for k, v in cfg.data_sources.items()}
    assert sorted(k for k, v in statuses.items() if v == "active") == [
        "ccxt_binance",
        "coinmetrics",
        "defillama",
        "etherscan",
        "glassnode",
    ]


def test_config_when_loaded_then_every_asset_has_order_caps_above_one_minimum_order() -> None:
    """Every class caps an order's value, every asset its quantity; none below min_size."""
    cfg = base_config()
    values = {c.value: cc.max_order_value for c, cc in cfg.asset_classes.items()}
    assert values == {
        "crypto": D(40000),
        "stocks": D(40000),
        "leveraged_etfs": D(15000),
        "forex": D(30000),
        "commodities": D(20000),
        "meme_stocks": D(10000),
    }
    for sym, asset in cfg.assets.items():
        qty = asset.risk.max_order_quantity
        assert qty is not None and qty >= asset.risk.min_size, sym
        assert asset.risk.max_order_value is None, sym  # the class's value applies
    assert cfg.assets["BTC/USDT"].risk.max_order_quantity == D(1)
    assert cfg.risk_management.duplicate_order_window_seconds == 10


def test_config_when_floats_in_yaml_then_exact_decimals() -> None:
    """No float reaches a limit: 0.1 in the file is Decimal('0.1')."""
    assert base_config().risk_management.fx_rates["JPY"] == D("0.0066")


BAD = [
    (
        "heat -3",
        "max_portfolio_heat: 0.25",
        "max_portfolio_heat: -3",
        "risk_management.max_portfolio_heat",
        "greater than 0",
    ),
    (
        "fraction above 1",
        "max_correlation_exposure: 0.60",
        "max_correlation_exposure: 1.5",
        "risk_management.max_correlation_exposure",
        "less than or equal to 1",
    ),
    (
        "typo'd key",
        "    volatility_score: 6 ",
        "    volatilty_score: 6 ",
        "assets['BTC/USDT'].volatilty_score",
        "Extra inputs are not permitted",
    ),
    (
        "volatility 11",
        "volatility_score: 6 ",
        "volatility_score: 11 ",
        "assets['BTC/USDT'].volatility_score",
        "less than or equal to 10",
    ),
    (
        "unknown class",
        "asset_class: crypto\n    enabled: true\n    volatility_score: 6",
        "asset_class: cryptos\n    enabled: true\n    volatility_score: 6",
        "assets['BTC/USDT'].asset_class",
        "Input should be",
    ),
    (
        "phase names unknown symbol",
        "assets: [NVDA, TSLA, AMD]",
        "assets: [NVDA, TSLAX, AMD]",
        "phases.phase_1_stocks.assets[1]",
        "unknown symbol 'TSLAX'",
    ),
    (
        "two stop rules",
        "      stop_loss_pct: 0.06 ",
        "      stop_loss_pips: 5\n      stop_loss_pct: 0.06 ",
        "assets['BTC/USDT'].risk",
        "exactly one of stop_loss_pct",
    ),
    (
        "unknown data source",
        "data_sources: [ccxt_binance, glassnode, coinmetrics]",
        "data_sources: [ccxt_binance, glassnode, coinmetricz]",
        "assets['BTC/USDT'].data_sources[2]",
        "unknown data source",
    ),
    (
        "missing fx rate",
        "    JPY: 0.0066\n",
        "",
        "assets['GBP/JPY'].trading.quote_currency",
        "no fx rate for 'JPY'",
    ),
    (
        "unknown metric",
        "crypto_profitable_days: {min: 30}",
        "crypto_profitible_days: {min: 30}",
        "phases.phase_1_stocks.requirements.crypto_profitible_days",
        "Input should be",
    ),
    (
        "class without max_order_value",
        "    max_order_value: 15000 ",
        "",
        "asset_classes.leveraged_etfs.max_order_value",
        "Field required",
    ),
    (
        "max_order_quantity under min_size",
        "      max_order_quantity: 20 ",
        "      max_order_quantity: 0.0005 ",
        "assets['ETH/USDT'].risk",
        "max_order_quantity 0.0005 is below min_size 0.001",
    ),
    (
        "max_order_value under one minimum order",
        "max_order_value: 10000 ",
        "max_order_value: 0.5 ",
        "assets.GME.risk",  # 1 share at 23
        "max_order_value 0.5 is below the value of min_size at the reference price (23 USD)",
    ),
    (
        "class max_order_quantity under an asset's min_size",
        "    max_order_value: 20000 ",
        "    max_order_value: 20000\n    max_order_quantity: 5\n",
        "assets['NATGAS/USD'].risk",  # min_size 10; its own cap overrides: removed below
        "max_order_quantity 5 is below min_size 10",
    ),
    (
        "duplicate window over a minute",
        "duplicate_order_window_seconds: 10",
        "duplicate_order_window_seconds: 61",
        "risk_management.duplicate_order_window_seconds",
        "less than or equal to 60",
    ),
    (
        "non-finite",
        "max_portfolio_heat: 0.25",
        "max_portfolio_heat: .inf",
        "not valid YAML",
        "non-finite",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "path", "problem"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_parse_config_when_file_is_bad_then_error_names_file_key_path_and_problem(
    old: str, new: str, path: str, problem: str
) -> None:
    """A bad file fails at load naming the file (and line), the key path and the problem."""
    assert old in TEXT
    text = TEXT.replace(old, new, 1)
    if "max_order_quantity: 5" in new:  # the class's cap applies where the asset sets none
        text = text.replace("      max_order_quantity: 12000 ", "      # no own cap ", 1)
    with pytest.raises(ConfigError) as err:
        parse_config(text, "bad.yaml")
    msg = str(err.value)
    assert msg.startswith("bad.yaml")
    assert path in msg
    assert problem in msg


def test_parse_config_when_error_then_line_number_points_at_key() -> None:
    """The reported line is the offending key's line in the file."""
    bad = TEXT.replace("max_portfolio_heat: 0.25", "max_portfolio_heat: -3")
    line = next(i for i, t in enumerate(bad.splitlines(), 1) if "max_portfolio_heat" in t)
    with pytest.raises(ConfigError, match=rf"^bad.yaml:{line}: "):
        parse_config(bad, "bad.yaml")


@pytest.mark.parametrize("text", ["[1, 2]", "", "key: [unclosed"])
def test_parse_config_when_not_a_mapping_then_error(text: str) -> None:
    """Not a mapping of sections, or not YAML at all: a ConfigError naming the file."""
    with pytest.raises(ConfigError, match=r"^x\.yaml"):
        parse_config(text, "x.yaml")


def test_load_config_when_missing_file_then_error_names_it(tmp_path: Path) -> None:
    """A missing file is a ConfigError, not a traceback."""
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_config_hash_when_enabled_changes_then_hash_changes() -> None:
    """Decisions carry the hash of the effective config, enable overrides included."""
    cfg = base_config()
    enabled = cfg.with_enabled({"NVDA": True}, {})
    assert cfg.config_hash == parse_config(TEXT).config_hash
    assert enabled.config_hash != cfg.config_hash
    assert enabled.assets["NVDA"].enabled and not cfg.assets["NVDA"].enabled
