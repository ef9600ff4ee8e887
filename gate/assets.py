"""``AssetManager`` and ``AssetClass``: the source document's asset API.

    from gate.assets import AssetManager, AssetClass

    manager = AssetManager()                     # RISKGATE_CONFIG or the packaged file
    enabled = manager.get_enabled_assets()       # BTC/USDT, ETH/USDT
    asset = manager.get_asset("NVDA")
    size = manager.calculate_position_size(asset=asset, portfolio_value=10000)

Enabling changes the manager's state, never the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from importlib import resources
from pathlib import Path

from gate.checks import reason
from gate.money import ZERO, floor_to_lot, ratio
from gate.phases import RequirementResult, active_phases, evaluate_phase, normalize_metrics
from schemas.config import AssetClass, AssetConfig, AssetsConfig, Phase, load_config
from schemas.messages import Reason, ReasonCode

__all__ = ["AllocationReport", "Asset", "AssetClass", "AssetManager", "default_config_path"]

CENT = Decimal("0.01")


def default_config_path() -> Path:
    """``$RISKGATE_CONFIG``, else the packaged ``config/assets_config.yaml``."""
    env = os.environ.get("RISKGATE_CONFIG")
    if env:
        return Path(env)
    try:
        packaged = resources.files("riskgate_config").joinpath("assets_config.yaml")
        if packaged.is_file():
            return Path(str(packaged))
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "config" / "assets_config.yaml"


def _number(value: Decimal | int | float | str) -> Decimal:
    """Caller-supplied numbers; floats go through their shortest repr, never binary."""
    if isinstance(value, bool):
        raise TypeError("expected a number, got bool")
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class Asset:
    """One configured asset as the manager sees it now."""

    symbol: str
    config: AssetConfig
    enabled: bool

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def asset_class(self) -> AssetClass:
        return self.config.asset_class

    @property
    def volatility_score(self) -> int:
        return self.config.volatility_score

    @property
    def reference_price(self) -> Decimal:
        return self.config.reference_price

    @property
    def is_crypto(self) -> bool:
        return self.config.asset_class is AssetClass.CRYPTO

    @property
    def is_forex(self) -> bool:
        return self.config.asset_class is AssetClass.FOREX

    @property
    def is_stock(self) -> bool:
        return self.config.asset_class in (AssetClass.STOCKS, AssetClass.MEME_STOCKS)

    def __str__(self) -> str:
        return f"{self.symbol} ({self.name}) - {self.asset_class.value}"


@dataclass(frozen=True, slots=True)
class AllocationReport:
    valid: bool
    violations: tuple[Reason, ...]

    def __bool__(self) -> bool:
        return self.valid


class AssetManager:
    """The configured assets, their enabled state, sizing and phase gating."""

    def __init__(
        self, config_path: str | Path | None = None, *, config: AssetsConfig | None = None
    ) -> None:
        self._base = (
            config if config is not None else load_config(config_path or default_config_path())
        )
        self._assets: dict[str, bool] = {}
        self._classes: dict[AssetClass, bool] = {}
        self._config = self._base

    # -- state ---------------------------------------------------------------------------

    @property
    def config(self) -> AssetsConfig:
        """The effective configuration: the file plus this manager's enable/disable calls."""
        return self._config

    def _set(self, assets: Mapping[str, bool], classes: Mapping[AssetClass, bool]) -> None:
        self._assets.update(assets)
        self._classes.update(classes)
        self._config = self._base.with_enabled(self._assets, self._classes)

    def _symbol(self, symbol: str) -> str:
        if symbol not in self._base.assets:
            raise KeyError(f"unknown symbol {symbol!r}")
        return symbol

    def enable_asset(self, symbol: str) -> None:
        self._set({self._symbol(symbol): True}, {})

    def disable_asset(self, symbol: str) -> None:
        self._set({self._symbol(symbol): False}, {})

    def enable_asset_class(self, asset_class: AssetClass | str) -> None:
        self._set({}, {AssetClass(asset_class): True})

    def disable_asset_class(self, asset_class: AssetClass | str) -> None:
        self._set({}, {AssetClass(asset_class): False})

    def enable_phase(self, phase: str) -> None:
        """Enable every class and asset a phase names."""
        p = self._phase(phase)
        self._set(dict.fromkeys(p.assets, True), dict.fromkeys(p.classes, True))

    # -- queries -------------------------------------------------------------------------

    def _asset(self, symbol: str) -> Asset:
        cfg = self._config.assets[symbol]
        return Asset(symbol, cfg, cfg.enabled)

    def get_asset(self, symbol: str) -> Asset | None:
        return self._asset(symbol) if symbol in self._config.assets else None

    def get_all_assets(self) -> list[Asset]:
        return [self._asset(s) for s in self._config.assets]

    def is_class_enabled(self, asset_class: AssetClass | str) -> bool:
        return self._config.asset_classes[AssetClass(asset_class)].enabled

    def is_tradable(self, symbol: str) -> bool:
        """Enabled itself and in an enabled class."""
        a = self._config.assets.get(symbol)
        return a is not None and a.enabled and self.is_class_enabled(a.asset_class)

    def get_enabled_assets(self) -> list[Asset]:
        """Assets that can be traded now: enabled, in an enabled class."""
        return [self._asset(s) for s in self._config.assets if self.is_tradable(s)]

    def get_assets_by_class(self, asset_class: AssetClass | str) -> list[Asset]:
        cls = AssetClass(asset_class)
        return [self._asset(s) for s, a in self._config.assets.items() if a.asset_class is cls]

    def enabled_classes(self) -> list[AssetClass]:
        return [c for c in AssetClass if self.is_class_enabled(c)]

    def active_phases(self) -> list[str]:
        return active_phases(self._config)

    def summary(self) -> dict[str, object]:
        return {
            "total_assets": len(self._config.assets),
            "enabled_assets": len(self.get_enabled_assets()),
            "enabled_classes": [c.value for c in self.enabled_classes()],
        }

    # -- sizing --------------------------------------------------------------------------

    def _resolve(self, asset: Asset | str) -> Asset:
        if isinstance(asset, Asset):
            return asset
        found = self.get_asset(asset)
        if found is None:
            raise KeyError(f"unknown symbol {asset!r}")
        return found

    def stop_fraction(self, asset: Asset | str, price: Decimal | None = None) -> Decimal:
        """The asset's stop distance as a fraction of the price."""
        a = self._resolve(asset)
        risk = a.config.risk
        if risk.stop_loss_pct is not None:
            return risk.stop_loss_pct
        assert risk.stop_loss_pips is not None and a.config.trading.pip_size is not None
        px = price if price is not None else a.reference_price
        return risk.stop_loss_pips * a.config.trading.pip_size / px

    def calculate_position_size(
        self,
        asset: Asset | str,
        portfolio_value: Decimal | int | float | str,
        price: Decimal | int | str | None = None,
    ) -> Decimal:
        """Risk-adjusted position value in the account currency (cents, rounded down).

        ``risk_per_trade`` of the portfolio is put at risk to the asset's stop, and the
        result is capped at the asset's ``max_position_pct``: never above it.
        """
        a = self._resolve(asset)
        value = _number(portfolio_value)
        if value <= 0:
            return ZERO
        px = _number(price) if price is not None else None
        risk_budget = value * self._config.risk_management.risk_per_trade
        by_risk = risk_budget / self.stop_fraction(a, px)
        cap = value * a.config.risk.max_position_pct
        return min(by_risk, cap).quantize(CENT, rounding=ROUND_DOWN)

    def calculate_position_quantity(
        self,
        asset: Asset | str,
        portfolio_value: Decimal | int | float | str,
        price: Decimal | int | str | None = None,
        fx_rate: Decimal | None = None,
    ) -> Decimal:
        """:meth:`calculate_position_size` in asset units, rounded down to the lot size.

        ``price`` is in the asset's quote currency; ``fx_rate`` (account-currency value
        of one unit of it) defaults to the configured ``risk_management.fx_rates``
        entry, so 100 USD/JPY-quoted units are not mistaken for 100 dollars.
        """
        a = self._resolve(asset)
        px = _number(price) if price is not None else a.reference_price
        fx = self._fx(a) if fx_rate is None else _number(fx_rate)
        if px <= 0 or fx <= 0:
            raise ValueError(f"price and fx rate must be positive, got {px} and {fx}")
        value = self.calculate_position_size(a, portfolio_value, px)
        return floor_to_lot(value / (px * fx), a.config.risk.lot_size)

    def _fx(self, asset: Asset) -> Decimal:
        """The configured value of one unit of the asset's quote currency."""
        rm = self._config.risk_management
        ccy = asset.config.trading.quote_currency
        if ccy == rm.account_currency:
            return Decimal(1)
        if ccy not in rm.fx_rates:  # the loader refuses such a file; fail closed anyway
            raise KeyError(f"no fx rate for {ccy} in risk_management.fx_rates")
        return rm.fx_rates[ccy]

    # -- phases --------------------------------------------------------------------------

    def _phase(self, phase: str) -> Phase:
        if phase not in self._config.phases:
            raise KeyError(f"unknown phase {phase!r}; known: {', '.join(self._config.phases)}")
        return self._config.phases[phase]

    def phase_requirements(
        self, phase: str, metrics: Mapping[str, object]
    ) -> list[RequirementResult]:
        """Each requirement with its current value; capital is checked when given."""
        return evaluate_phase(
            self._config,
            phase,
            metrics,
            self.active_phases(),
            require_capital="capital" in normalize_metrics(metrics),
        )

    def can_enable_phase(self, phase: str, metrics: Mapping[str, object]) -> bool:
        """True when every requirement of ``phase`` holds for ``metrics``.

        Accepts the source's metric names (``sharpe_ratio_min`` ...). A metric the
        phase needs but the dict lacks fails the check; the previous phase must be
        active in this manager; capital is checked against the capital table when the
        dict carries ``capital`` (the phase monitor always passes it).
        """
        return all(r.met for r in self.phase_requirements(phase, metrics))

    # -- allocation ----------------------------------------------------------------------

    def validate_portfolio_allocation(
        self,
        allocations: Mapping[str, Decimal | int | float | str],
        portfolio_value: Decimal | int | float | str,
    ) -> AllocationReport:
        """Check proposed position values (account currency) against the static limits.

        Per asset: known, tradable, within ``max_position_pct``. Per class: within the
        class cap. Whole book: heat to the default stops within ``max_portfolio_heat``.
        A portfolio value <= 0 makes every allocation invalid (``no_equity``): there is
        nothing to take a share of, and a share of nothing is not 0 %.
        """
        value = _number(portfolio_value)
        rm = self._config.risk_management
        if value <= 0:
            return AllocationReport(
                False,
                (reason(ReasonCode.NO_EQUITY, "portfolio value is not positive", value, ZERO),),
            )
        violations: list[Reason] = []
        by_class: dict[AssetClass, Decimal] = {}
        heat = ZERO
        for symbol, raw in allocations.items():
            amount = abs(_number(raw))
            asset = self.get_asset(symbol)
            if asset is None:
                violations.append(reason(ReasonCode.UNKNOWN_SYMBOL, f"{symbol} is not configured"))
                continue
            if not self.is_tradable(symbol):
                violations.append(reason(ReasonCode.ASSET_DISABLED, f"{symbol} is not tradable"))
            share = ratio(amount, value)
            cap = asset.config.risk.max_position_pct
            if share > cap:
                violations.append(
                    reason(
                        ReasonCode.MAX_POSITION,
                        f"{symbol} is {share:.2%} of the portfolio",
                        share,
                        cap,
                    )
                )
            by_class[asset.asset_class] = by_class.get(asset.asset_class, ZERO) + amount
            heat += amount * self.stop_fraction(asset)
        for cls, amount in by_class.items():
            cap = min(rm.max_single_asset_class, self._config.asset_classes[cls].max_allocation)
            share = ratio(amount, value)
            if share > cap:
                violations.append(
                    reason(ReasonCode.ASSET_CLASS_LIMIT, f"{cls.value} is {share:.2%}", share, cap)
                )
        if ratio(heat, value) > rm.max_portfolio_heat:
            violations.append(
                reason(
                    ReasonCode.PORTFOLIO_HEAT,
                    "risk to the default stops is too high",
                    ratio(heat, value),
                    rm.max_portfolio_heat,
                )
            )
        return AllocationReport(not violations, tuple(violations))
