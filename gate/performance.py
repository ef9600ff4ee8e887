"""Phase metrics and per-asset / per-class performance from the track record. Pure.

Inputs are what the phase monitor keeps: daily closes, each symbol's cumulative PnL
at every close day, and the PnL of every closed round trip, all net of fees. The
metric definitions are in :mod:`gate.stats`; the window is the ``WINDOW_DAYS`` UTC
days ending ``today``. A statistic that is undefined (no returns, no variation, no
round trip) is None and left out of :meth:`PhaseMetrics.values`, so a requirement on
it does not hold; the sample sizes behind them (``sharpe_days``, ``trades``) are
metrics of their own, for phases to require a minimum of.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from gate import stats
from gate.money import plain, show
from gate.stats import WINDOW_DAYS, DailyClose

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class TripResult:
    symbol: str
    asset_class: str | None
    pnl: Decimal


@dataclass(frozen=True, slots=True)
class AssetDays:
    """One symbol's cumulative PnL at each close day."""

    asset_class: str | None
    cumulative: Sequence[tuple[date, Decimal]]


@dataclass(frozen=True, slots=True)
class PhaseMetrics:
    as_of: date
    window_days: int
    capital: Decimal
    profitable_days: int  # net: profitable close days minus losing ones
    crypto_profitable_days: int  # net, of the crypto class's daily PnL
    sharpe_ratio: Decimal | None
    sharpe_days: int  # daily returns in the window: the Sharpe's sample size
    max_drawdown: Decimal | None
    win_rate: Decimal | None
    trades: int  # closed round trips: the win rate's sample size
    close_days: int
    winning_days: int = 0
    losing_days: int = 0
    crypto_winning_days: int = 0
    crypto_losing_days: int = 0

    def values(self) -> dict[str, Decimal]:
        """The metrics :func:`gate.phases.evaluate_phase` reads (undefined ones left out)."""
        out = {
            "capital": self.capital,
            "profitable_days": Decimal(self.profitable_days),
            "crypto_profitable_days": Decimal(self.crypto_profitable_days),
            "sharpe_days": Decimal(self.sharpe_days),
            "trades": Decimal(self.trades),
        }
        if self.max_drawdown is not None:
            out["max_drawdown"] = self.max_drawdown
        if self.sharpe_ratio is not None:
            out["sharpe_ratio"] = self.sharpe_ratio
        if self.win_rate is not None:
            out["win_rate"] = self.win_rate
        return out

    def to_json(self) -> dict[str, object]:
        """For logs, events and JSONB: ratios to 6 places, money exact, None kept."""
        return {
            "as_of": self.as_of.isoformat(),
            "window_days": self.window_days,
            "capital": plain(self.capital),
            "profitable_days": self.profitable_days,
            "crypto_profitable_days": self.crypto_profitable_days,
            "winning_days": self.winning_days,
            "losing_days": self.losing_days,
            "crypto_winning_days": self.crypto_winning_days,
            "crypto_losing_days": self.crypto_losing_days,
            "sharpe_ratio": show(self.sharpe_ratio),
            "sharpe_days": self.sharpe_days,
            "max_drawdown": show(self.max_drawdown),
            "win_rate": show(self.win_rate),
            "trades": self.trades,
            "close_days": self.close_days,
        }


def daily_pnl_by(assets: Mapping[str, AssetDays], key: str) -> dict[str, dict[date, Decimal]]:
    """Daily PnL per symbol (``key="asset"``) or per asset class (``key="class"``)."""
    out: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for symbol, a in assets.items():
        name = symbol if key == "asset" else a.asset_class
        if name is None:
            continue
        days = out[name]
        for day, pnl in stats.changes(a.cumulative):
            days[day] = days.get(day, ZERO) + pnl
    return dict(out)


def phase_metrics(
    closes: Sequence[DailyClose],
    assets: Mapping[str, AssetDays],
    trips: Sequence[TripResult],
    *,
    capital: Decimal,
    today: date,
    window_days: int = WINDOW_DAYS,
) -> PhaseMetrics:
    results = stats.daily_results(closes)
    returns = [r.ret for r in results if r.ret is not None]
    recent = [
        r.ret for r in results if r.ret is not None and stats.in_window(r.day, today, window_days)
    ]
    crypto = list(daily_pnl_by(assets, "class").get("crypto", {}).values())
    pnls = [t.pnl for t in trips]
    return PhaseMetrics(
        as_of=today,
        window_days=window_days,
        capital=capital,
        profitable_days=stats.net_positive(r.pnl for r in results),
        crypto_profitable_days=stats.net_positive(crypto),
        sharpe_ratio=stats.sharpe_ratio(recent),
        sharpe_days=len(recent),
        max_drawdown=stats.max_drawdown(returns),
        win_rate=stats.win_rate(pnls),
        trades=len(pnls),
        close_days=len(results),
        winning_days=sum(1 for r in results if r.pnl > 0),
        losing_days=sum(1 for r in results if r.pnl < 0),
        crypto_winning_days=sum(1 for pnl in crypto if pnl > 0),
        crypto_losing_days=sum(1 for pnl in crypto if pnl < 0),
    )


@dataclass(frozen=True, slots=True)
class Performance:
    scope: str  # "asset" | "class"
    name: str
    asset_class: str | None
    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None
    gross_profit: Decimal
    gross_loss: Decimal
    profit_factor: Decimal | None
    realized_pnl: Decimal
    sharpe_ratio: Decimal | None
    sharpe_days: int


def _performance(
    scope: str,
    name: str,
    asset_class: str | None,
    *,
    pnls: Sequence[Decimal],
    daily: Mapping[date, Decimal],
    today: date,
    window_days: int,
) -> Performance:
    profit, loss = stats.gross(pnls)
    recent = [pnl for day, pnl in sorted(daily.items()) if stats.in_window(day, today, window_days)]
    return Performance(
        scope=scope,
        name=name,
        asset_class=asset_class,
        trades=len(pnls),
        wins=sum(1 for p in pnls if p > 0),
        losses=sum(1 for p in pnls if p < 0),
        win_rate=stats.win_rate(pnls),
        gross_profit=profit,
        gross_loss=loss,
        profit_factor=stats.profit_factor(pnls),
        realized_pnl=sum(pnls, ZERO),
        sharpe_ratio=stats.sharpe_ratio(recent),
        sharpe_days=len(recent),
    )


def asset_performance(
    trips: Sequence[TripResult],
    assets: Mapping[str, AssetDays],
    today: date,
    window_days: int = WINDOW_DAYS,
) -> list[Performance]:
    """One row per symbol and per class that has a round trip or a close.

    Sharpe here is of daily PnL in money (mean / sample deviation * sqrt(365)) over the
    window: a symbol's capital is not separable, its PnL is.
    """
    by_symbol: dict[str, list[Decimal]] = defaultdict(list)
    by_class: dict[str, list[Decimal]] = defaultdict(list)
    classes: dict[str, str | None] = {s: a.asset_class for s, a in assets.items()}
    for t in trips:
        by_symbol[t.symbol].append(t.pnl)
        classes.setdefault(t.symbol, t.asset_class)
        if t.asset_class is not None:
            by_class[t.asset_class].append(t.pnl)
    asset_daily = daily_pnl_by(assets, "asset")
    class_daily = daily_pnl_by(assets, "class")
    rows = [
        _performance(
            "asset",
            s,
            classes.get(s),
            pnls=by_symbol.get(s, []),
            daily=asset_daily.get(s, {}),
            today=today,
            window_days=window_days,
        )
        for s in sorted(set(by_symbol) | set(asset_daily))
    ]
    rows += [
        _performance(
            "class",
            c,
            c,
            pnls=by_class.get(c, []),
            daily=class_daily.get(c, {}),
            today=today,
            window_days=window_days,
        )
        for c in sorted(set(by_class) | set(class_daily))
    ]
    return rows
