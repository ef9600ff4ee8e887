"""Small builders for intents and snapshots used across the test tiers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from gate.portfolio import Account, Correlations, Flags, Position, Quote, Reservation, Snapshot
from schemas.config import AssetClass, AssetsConfig, load_config
from schemas.messages import Side, TradeIntent

ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = ROOT / "config" / "assets_config.yaml"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
D = Decimal


@cache
def base_config() -> AssetsConfig:
    return load_config(CONFIG_PATH)


@cache
def all_enabled() -> AssetsConfig:
    """Every asset and class enabled (for rules that need non-crypto assets)."""
    cfg = base_config()
    return cfg.with_enabled(dict.fromkeys(cfg.assets, True), dict.fromkeys(AssetClass, True))


_counter = iter(range(10**9))


def intent(
    symbol: str = "BTC/USDT",
    side: str = "buy",
    quantity: str | Decimal = "0.1",
    price: str | Decimal = "100000",
    **kw: Any,
) -> TradeIntent:
    data: dict[str, Any] = {
        "intent_id": kw.pop("intent_id", f"t-{next(_counter)}"),
        "agent_id": kw.pop("agent_id", "agent-1"),
        "symbol": symbol,
        "side": side,
        "quantity": D(quantity),
        "price": D(price),
        "created_at": kw.pop("created_at", NOW),
    }
    data.update(kw)
    return TradeIntent.model_validate(data)


def position(
    symbol: str,
    quantity: str | Decimal,
    mark: str | Decimal,
    stop: str | Decimal | None = None,
    *,
    config: AssetsConfig | None = None,
    marked_at: datetime = NOW,
    opened_at: datetime | None = None,
) -> Position:
    cfg = config or base_config()
    asset = cfg.assets[symbol]
    return Position(
        symbol=symbol,
        asset_class=asset.asset_class.value,
        quote_currency=asset.trading.quote_currency,
        quantity=D(quantity),
        avg_price=D(mark),
        mark_price=D(mark),
        marked_at=marked_at,
        opened_at=opened_at or marked_at - timedelta(hours=1),
        stop_price=None if stop is None else D(stop),
    )


def reservation(
    intent_id: str,
    symbol: str,
    quantity: str | Decimal,
    price: str | Decimal,
    stop: str | Decimal | None,
    *,
    side: Side = Side.BUY,
    reduce_only: bool = False,
    expires_at: datetime = NOW + timedelta(hours=1),
) -> Reservation:
    asset = base_config().assets[symbol]
    return Reservation(
        intent_id=intent_id,
        agent_id="agent-1",
        symbol=symbol,
        asset_class=asset.asset_class.value,
        quote_currency=asset.trading.quote_currency,
        side=side,
        quantity=D(quantity),
        price=D(price),
        stop_price=None if stop is None else D(stop),
        reduce_only=reduce_only,
        expires_at=expires_at,
    )


@cache
def market_prices() -> dict[str, Decimal]:
    """The marks tests trade at: every asset's reference price, BTC at 100,000."""
    prices = {s: a.reference_price for s, a in base_config().assets.items()}
    prices["BTC/USDT"] = D(100000)
    return prices


def marks(prices: dict[str, str] | None = None, at: datetime = NOW) -> dict[str, Quote]:
    """Quotes at ``at``: the test market, with ``prices`` overriding."""
    out = {s: Quote(p, at) for s, p in market_prices().items()}
    out.update((s, Quote(D(p), at)) for s, p in (prices or {}).items())
    return out


def snapshot(
    cash: str | Decimal = "100000",
    positions: Iterable[Position] = (),
    reservations: Iterable[Reservation] = (),
    *,
    peak: str | Decimal | None = None,
    day_start: str | Decimal | None = None,
    flags: Flags | None = None,
    correlations: Correlations | None = None,
    version: int = 1,
    quotes: dict[str, Quote] | None = None,
) -> Snapshot:
    """A portfolio as of NOW, marked at the test market (``quotes``; positions at their
    own marks). Peak and day start default to the current equity; the return index
    has one unit per unit of peak equity."""
    held = {p.symbol: p for p in positions}
    market = marks() if quotes is None else dict(quotes)
    market.update((s, Quote(p.mark_price, p.marked_at)) for s, p in held.items())
    snap = Snapshot(
        version=version,
        account=Account(cash=D(cash), day=NOW.date(), marked_at=NOW),
        positions=held,
        reservations={r.intent_id: r for r in reservations},
        flags=flags or Flags(),
        correlations=correlations or Correlations(),
        marks=market,
    )
    from gate.portfolio import equity

    eq = equity(snap, all_enabled())
    peak_equity = D(peak) if peak is not None else eq
    day_equity = D(day_start) if day_start is not None else eq
    units = peak_equity if peak_equity > 0 else D(0)
    account = replace(
        snap.account,
        peak_equity=peak_equity,
        day_start_equity=day_equity,
        units=units,
        peak_nav=D(1) if units > 0 else D(0),
        day_start_nav=day_equity / units if units > 0 else D(0),
    )
    return replace(snap, account=account)


def correlations(pairs: dict[tuple[str, str], str], as_of: datetime = NOW) -> Correlations:
    return Correlations({Correlations.key(a, b): D(v) for (a, b), v in pairs.items()}, as_of)


def codes(decision: Any) -> list[str]:
    return [r.code.value for r in decision.reasons]
