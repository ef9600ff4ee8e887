"""Schema of ``config/assets_config.yaml`` and its loader.

The file is loaded with ``yaml.safe_load`` semantics, except that every YAML float
becomes a ``Decimal`` (no float ever reaches a limit). Every model is frozen and
forbids unknown keys. A bad file raises :class:`ConfigError` naming the file, the
key path, the line and the problem.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class AssetClass(StrEnum):
    """The six asset classes. Forex majors and EM forex are both ``forex``."""

    CRYPTO = "crypto"
    STOCKS = "stocks"
    LEVERAGED_ETFS = "leveraged_etfs"
    FOREX = "forex"
    COMMODITIES = "commodities"
    MEME_STOCKS = "meme_stocks"


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


Fraction = Annotated[Decimal, Field(ge=0, le=1)]
OpenFraction = Annotated[Decimal, Field(gt=0, le=1)]
PositiveDecimal = Annotated[Decimal, Field(gt=0, lt=Decimal("1e15"))]
NonNegativeDecimal = Annotated[Decimal, Field(ge=0, lt=Decimal("1e15"))]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class RiskManagement(Strict):
    """Portfolio-wide limits. The first five keys are the source document's."""

    max_portfolio_heat: OpenFraction
    max_correlation_exposure: OpenFraction
    max_single_asset_class: OpenFraction
    emergency_stop_drawdown: OpenFraction
    daily_loss_limit: OpenFraction
    correlation_threshold: OpenFraction = Decimal("0.70")
    correlation_max_age_hours: Annotated[int, Field(gt=0)] = 48
    risk_per_trade: OpenFraction = Decimal("0.01")
    max_intents_per_agent_per_minute: Annotated[int, Field(gt=0)] = 120
    # chosen: distinct agents counted per portfolio per minute (each is a state field)
    max_agents_per_portfolio: Annotated[int, Field(gt=0, le=100_000)] = 1000
    # an approved order's time in force (its ``good_till``); the reservation is held
    # past it until the executor confirms how the order ended (or an operator releases it)
    reservation_ttl_seconds: Annotated[int, Field(gt=0)] = 3600
    # a fill the gate never approved (or over its approval) that adds risk halts the
    # portfolio until an operator resumes; off: it is still counted and alerted
    halt_on_unknown_fill: bool = True
    max_mark_age_seconds: Annotated[int, Field(gt=0)] = 900
    max_intent_age_seconds: Annotated[int, Field(gt=0)] = 300
    # chosen: NTP keeps hosts within milliseconds; 5 s tolerates a bad one, not a lie
    max_clock_skew_seconds: Annotated[int, Field(ge=0, le=300)] = 5
    # chosen: a regime is assessed on daily bars; a day-old assessment is the oldest used
    regime_max_age_hours: Annotated[int, Field(gt=0)] = 24
    # a correlation that is unknown or older than correlation_max_age_hours: fail closed
    unknown_correlation: Literal["correlated", "uncorrelated"] = "correlated"
    # an opening identical to one of the agent's approved or resized openings of the
    # last N seconds (same symbol, side and quantity) is rejected duplicate_order; 0 turns
    # the check off. At most a minute: a repeat within seconds is a retry or a loop, a
    # repeat minutes later is a strategy's decision (and the remembered approvals are
    # then bounded by the per-minute agent counts)
    duplicate_order_window_seconds: Annotated[int, Field(ge=0, le=60)] = 10
    account_currency: Annotated[str, Field(pattern=r"^[A-Z]{3,5}$")] = "USD"
    fx_rates: Mapping[str, PositiveDecimal] = Field(default_factory=dict)


class RiskParams(Strict):
    """Per-asset sizing and stop rules. Exactly one of the stop rules is set."""

    max_position_pct: OpenFraction
    stop_loss_pct: OpenFraction | None = None
    stop_loss_pips: PositiveDecimal | None = None
    take_profit_pct: OpenFraction | None = None
    take_profit_pips: PositiveDecimal | None = None
    leverage: Annotated[Decimal, Field(ge=1, le=500)] = Decimal(1)
    price_collar: OpenFraction | None = None  # overrides the class's collar
    # fat-finger caps per order (SEC 15c3-5 (c)(1)(ii), RTS 6 art. 15): these override
    # the class's; the value is in account currency, the quantity in asset units
    max_order_value: PositiveDecimal | None = None
    max_order_quantity: PositiveDecimal | None = None
    lot_size: PositiveDecimal
    min_size: PositiveDecimal

    @model_validator(mode="after")
    def _one_stop_rule(self) -> RiskParams:
        if (self.stop_loss_pct is None) == (self.stop_loss_pips is None):
            raise ValueError("set exactly one of stop_loss_pct and stop_loss_pips")
        if self.take_profit_pct is not None and self.take_profit_pips is not None:
            raise ValueError("set at most one of take_profit_pct and take_profit_pips")
        if self.min_size < self.lot_size:
            raise ValueError(f"min_size {self.min_size} is below lot_size {self.lot_size}")
        if self.max_order_quantity is not None and self.max_order_quantity < self.min_size:
            raise ValueError(
                f"max_order_quantity {self.max_order_quantity} is below min_size "
                f"{self.min_size}: no order could pass"
            )
        return self


class SpecialRules(Strict):
    earnings_blackout_days: Annotated[int, Field(ge=0, le=60)] | None = None
    tweet_monitor: bool = False
    monitored_accounts: tuple[Name, ...] = ()
    max_hold_days: Annotated[int, Field(gt=0, le=3650)] | None = None
    avoid_sideways_market: bool = False
    decay_warning: bool = False
    notes: str | None = None


class TradingSpec(Strict):
    exchange: Name
    quote_currency: Annotated[str, Field(pattern=r"^[A-Z]{3,5}$")]
    trading_hours: Name
    pip_size: PositiveDecimal | None = None


class AssetConfig(Strict):
    name: Name
    asset_class: AssetClass
    enabled: bool
    volatility_score: Annotated[int, Field(ge=1, le=10)]
    reference_price: PositiveDecimal
    leading_indicators: Annotated[tuple[Name, ...], Field(min_length=1)]
    data_sources: Annotated[tuple[Name, ...], Field(min_length=1)]
    risk: RiskParams
    special_rules: SpecialRules = SpecialRules()
    trading: TradingSpec

    @model_validator(mode="after")
    def _pips_need_pip_size(self) -> AssetConfig:
        uses_pips = self.risk.stop_loss_pips is not None or self.risk.take_profit_pips is not None
        if uses_pips and self.trading.pip_size is None:
            raise ValueError("stop or take profit in pips needs trading.pip_size")
        return self


class AssetClassConfig(Strict):
    enabled: bool
    description: Name
    max_allocation: OpenFraction
    # an intent priced further than this fraction from the latest mark is refused
    # (MiFID II RTS 6 art. 15 price collars; SEC 15c3-5 erroneous-order controls)
    price_collar: OpenFraction = Decimal("0.05")
    # an executor's fill priced further than this fraction from the latest mark is
    # refused (a typo, a wrong symbol, a wrong unit): wider than the collar, because a
    # fill is a fact (slippage, a gap) where an intent is only a request
    fill_band: OpenFraction = Decimal("0.25")
    # the largest order of this class, in account currency, valued at the larger of its
    # price and the latest mark (SEC 15c3-5 (c)(1)(ii) size parameters, RTS 6 art. 15
    # maximum order value); no default: an amount only means something in a currency
    max_order_value: PositiveDecimal
    # the largest order in asset units, when the class's units are comparable (an asset's
    # own max_order_quantity overrides it; neither set: only the value caps the order)
    max_order_quantity: PositiveDecimal | None = None

    @model_validator(mode="after")
    def _band_wider_than_collar(self) -> AssetClassConfig:
        if self.fill_band <= self.price_collar:
            raise ValueError(
                f"fill_band {self.fill_band} must be wider than price_collar {self.price_collar}"
            )
        return self


class Requirement(Strict):
    """One bound on one metric: ``min``/``max`` are inclusive, ``above``/``below`` strict."""

    min: Decimal | None = None
    above: Decimal | None = None
    max: Decimal | None = None
    below: Decimal | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Requirement:
        given = [k for k in ("min", "above", "max", "below") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of min, above, max, below")
        return self

    def holds(self, value: Decimal) -> bool:
        if self.min is not None:
            return value >= self.min
        if self.above is not None:
            return value > self.above
        if self.max is not None:
            return value <= self.max
        assert self.below is not None
        return value < self.below

    def describe(self) -> str:
        for key, sign in (("min", ">="), ("above", ">"), ("max", "<="), ("below", "<")):
            bound = getattr(self, key)
            if bound is not None:
                return f"{sign} {bound}"
        raise AssertionError("unreachable")  # pragma: no cover


Metric = Literal[
    "crypto_profitable_days",  # net: profitable minus losing close days (crypto class)
    "profitable_days",  # net: profitable minus losing close days
    "sharpe_ratio",
    "sharpe_days",  # daily returns in the Sharpe window: its sample size
    "max_drawdown",
    "win_rate",
    "capital",
    "trades",  # closed round trips: the win rate's sample size
]
PHASE_METRICS: frozenset[str] = frozenset(get_args(Metric))

# A statistic needs its sample: requiring the first needs a minimum on the second.
SAMPLE_OF: Mapping[str, str] = {"sharpe_ratio": "sharpe_days", "win_rate": "trades"}
MIN_SAMPLE: Mapping[str, int] = {"sharpe_days": 2, "trades": 1}  # below: undefined anyway


class Phase(Strict):
    title: Name
    description: Name
    activation: Literal["automatic", "manual"]
    requires_phase: str | None = None
    classes: tuple[AssetClass, ...]
    assets: tuple[str, ...]
    requirements: Mapping[Metric, Requirement] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _statistics_need_samples(self) -> Phase:
        """A Sharpe of 2 returns or a win rate of 1 trade proves nothing: a phase that
        requires the statistic must require a minimum sample size for it."""
        for metric, sample in SAMPLE_OF.items():
            if metric not in self.requirements:
                continue
            req = self.requirements.get(sample)  # type: ignore[call-overload]
            floor = MIN_SAMPLE[sample]
            if req is None or req.min is None or req.min < floor:
                raise ValueError(
                    f"requiring {metric} needs {sample}: {{min: N}} with N >= {floor} "
                    "(its sample size)"
                )
        return self


class CapitalRequirement(Strict):
    label: Name
    minimum: NonNegativeDecimal
    recommended: NonNegativeDecimal

    @model_validator(mode="after")
    def _ordered(self) -> CapitalRequirement:
        if self.recommended < self.minimum:
            raise ValueError("recommended capital is below the minimum")
        return self


class RateLimit(Strict):
    requests: Annotated[int, Field(gt=0)]
    per_seconds: Annotated[int, Field(gt=0)]


class DataSource(Strict):
    description: Name
    status: Literal["active", "ready"]
    asset_classes: Annotated[tuple[AssetClass, ...], Field(min_length=1)]
    monthly_cost_usd: NonNegativeDecimal
    rate_limit: RateLimit
    env_vars: tuple[Name, ...] = ()


class AssetsConfig(Strict):
    version: Literal[1]
    risk_management: RiskManagement
    asset_classes: Mapping[AssetClass, AssetClassConfig]
    assets: Mapping[str, AssetConfig]
    phases: Mapping[str, Phase]
    capital_requirements: Mapping[str, CapitalRequirement]
    data_sources: Mapping[str, DataSource]

    @cached_property
    def config_hash(self) -> str:
        """Stable short hash of the effective configuration (sorted-key JSON)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def with_enabled(
        self, assets: Mapping[str, bool], classes: Mapping[AssetClass, bool]
    ) -> AssetsConfig:
        """A copy with the enabled flags overridden (the file itself never changes)."""
        new_assets = {
            sym: a.model_copy(update={"enabled": assets[sym]}) if sym in assets else a
            for sym, a in self.assets.items()
        }
        new_classes = {
            c: cc.model_copy(update={"enabled": classes[c]}) if c in classes else cc
            for c, cc in self.asset_classes.items()
        }
        copy = self.model_copy(update={"assets": new_assets, "asset_classes": new_classes})
        copy.__dict__.pop("config_hash", None)  # model_copy would carry the cached hash over
        return copy


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says where and why."""


# --- loading --------------------------------------------------------------------------


_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it


class _DecimalLoader(_SafeLoader):  # type: ignore[misc]
    """``yaml.SafeLoader`` (libyaml's when present) whose floats are ``Decimal``."""


def _construct_decimal(loader: Any, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise yaml.constructor.ConstructorError(
            None, None, f"non-finite number {text!r} is not allowed", node.start_mark
        )
    return value


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def _format_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest node of ``loc`` found in the composed YAML tree."""
    node = root
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            key = next((k for k, _ in node.value if k.value == str(part)), None)
            if match is None or key is None:
                break
            line = key.start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _problems(err: ValidationError) -> Iterator[tuple[tuple[int | str, ...], str]]:
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p))
        yield loc, e["msg"]


Problems = list[tuple[tuple[int | str, ...], str]]


def _check_assets(cfg: AssetsConfig) -> Problems:
    problems: Problems = []
    missing_classes = sorted(set(AssetClass) - set(cfg.asset_classes))
    if missing_classes:
        problems.append((("asset_classes",), f"missing class(es) {missing_classes}"))
    fx_known = {cfg.risk_management.account_currency, *cfg.risk_management.fx_rates}
    for sym, asset in cfg.assets.items():
        for i, src in enumerate(asset.data_sources):
            if src not in cfg.data_sources:
                problems.append(
                    (("assets", sym, "data_sources", i), f"unknown data source {src!r}")
                )
        ccy = asset.trading.quote_currency
        if ccy not in fx_known:
            problems.append(
                (
                    ("assets", sym, "trading", "quote_currency"),
                    f"no fx rate for {ccy!r} in risk_management.fx_rates",
                )
            )
        problems.extend(_check_order_caps(cfg, sym, asset))
    return problems


def _check_order_caps(cfg: AssetsConfig, sym: str, asset: AssetConfig) -> Problems:
    """Caps under one minimum order would refuse every order of the asset: a config error."""
    cls = cfg.asset_classes.get(asset.asset_class)
    if cls is None:
        return []  # reported as a missing class
    risk, where = asset.risk, ("assets", sym, "risk")
    problems: Problems = []
    qty = risk.max_order_quantity or cls.max_order_quantity
    if qty is not None and qty < risk.min_size:
        why = f"max_order_quantity {qty} is below min_size {risk.min_size}: no order could pass"
        problems.append((where, why))
    rm = cfg.risk_management
    ccy = asset.trading.quote_currency
    fx = Decimal(1) if ccy == rm.account_currency else rm.fx_rates.get(ccy)
    value = risk.max_order_value or cls.max_order_value
    smallest = risk.min_size * asset.reference_price * fx if fx is not None else None
    if smallest is not None and value < smallest:
        why = (
            f"max_order_value {value} is below the value of min_size at the reference price "
            f"({smallest} {rm.account_currency}): no order could pass"
        )
        problems.append((where, why))
    return problems


def _check_phase_assets(cfg: AssetsConfig) -> Problems:
    problems: Problems = []
    owner: dict[str, str] = {}
    for name, phase in cfg.phases.items():
        for i, sym in enumerate(phase.assets):
            where = ("phases", name, "assets", i)
            if sym not in cfg.assets:
                problems.append((where, f"unknown symbol {sym!r}"))
                continue
            if sym in owner:
                problems.append((where, f"{sym!r} is already in {owner[sym]}"))
            owner.setdefault(sym, name)
            cls = cfg.assets[sym].asset_class
            if cls not in phase.classes:
                problems.append((where, f"{sym!r} is {cls.value}, not one of the phase's classes"))
    problems.extend(
        (("assets", sym), "asset is in no phase") for sym in cfg.assets if sym not in owner
    )
    return problems


def _check_phases(cfg: AssetsConfig) -> Problems:
    problems: Problems = []
    for name, phase in cfg.phases.items():
        if phase.requires_phase is not None and phase.requires_phase not in cfg.phases:
            problems.append(
                (("phases", name, "requires_phase"), f"unknown phase {phase.requires_phase!r}")
            )
        if name not in cfg.capital_requirements:
            problems.append((("phases", name), "phase has no capital_requirements entry"))
    problems.extend(
        (("capital_requirements", name), f"unknown phase {name!r}")
        for name in cfg.capital_requirements
        if name not in cfg.phases
    )
    return problems


def check_references(cfg: AssetsConfig) -> Problems:
    """Cross-references a single model cannot see: symbols, phases, sources, currencies."""
    return _check_assets(cfg) + _check_phase_assets(cfg) + _check_phases(cfg)


def parse_config(text: str, source: str = "<string>") -> AssetsConfig:
    """Parse and validate config text; ``source`` names the file in errors."""
    try:
        data: Any = yaml.load(text, Loader=_DecimalLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: (top level): expected a mapping of sections")
    try:
        cfg = AssetsConfig.model_validate(data)
    except ValidationError as exc:
        problems = list(_problems(exc))
    else:
        problems = check_references(cfg)
    if problems:
        root = yaml.compose(text, Loader=_DecimalLoader)  # only now: for line numbers
        lines = []
        for loc, msg in problems:
            line = _line_of(root, loc)
            where = f"{source}:{line}" if line else source
            lines.append(f"{where}: {_format_path(loc)}: {msg}")
        raise ConfigError("\n".join(lines))
    return cfg


def load_config(path: str | Path) -> AssetsConfig:
    """Load and validate a config file; raises ConfigError naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    return parse_config(text, str(p))
