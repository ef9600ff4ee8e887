"""Portfolio gates: what the portfolio alone decides (halted, emergency stop, daily
loss, no equity, stale marks), evaluated once per batch on its :class:`Standing`;
a finding rejects every opening intent of the batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gate.checks import pct, reason
from gate.money import show
from gate.portfolio import Snapshot, Vitals
from schemas.config import AssetsConfig
from schemas.messages import Reason, ReasonCode

# --- once per batch -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Standing:
    """The portfolio as a batch sees it: what the portfolio gates look at."""

    snapshot: Snapshot
    vitals: Vitals
    oldest_mark: datetime | None
    config: AssetsConfig
    now: datetime


PortfolioGate = Callable[[Standing], Reason | None]


def not_halted(s: Standing) -> Reason | None:
    """The operator's kill switch, or a halt the ledger set (an escalated fill)."""
    by = s.snapshot.account.halted_by
    if by is not None:
        return reason(
            ReasonCode.TRADING_HALTED,
            f"trading is halted since {by.at.isoformat()} by event {by.event_id}: {by.reason}; "
            "reduce-only only until an operator runs riskgate resume --reason",
        )
    if not s.snapshot.flags.halted:
        return None
    return reason(ReasonCode.TRADING_HALTED, "trading is halted by an operator; reduce-only only")


RESUME_HINT = "reduce-only only until an operator runs riskgate resume"


def emergency_stop(s: Standing) -> Reason | None:
    """Drawdown of the deposit-free return index at the stop; once tripped, latched."""
    limit = s.config.risk_management.emergency_stop_drawdown
    latch, dd = s.vitals.stopped, s.vitals.drawdown
    if latch is None and dd < limit:
        return None
    if latch is None:
        message = f"drawdown {pct(dd)} is at or beyond the {pct(limit)} emergency stop"
    else:
        message = (
            f"emergency stop latched {latch.at.isoformat()} at a drawdown of "
            f"{pct(latch.value)} (limit {pct(limit)}; now {pct(dd)})"
        )
    return reason(ReasonCode.EMERGENCY_STOP, f"{message}; {RESUME_HINT}", show(dd), limit)


def daily_loss(s: Standing) -> Reason | None:
    """Today's deposit-free loss at the limit; once tripped, latched for the UTC day."""
    limit = s.config.risk_management.daily_loss_limit
    latch, loss = s.vitals.day_stopped, s.vitals.daily_loss
    if latch is None and loss < limit:
        return None
    if latch is None:
        message = f"down {pct(loss)} today, at or beyond the {pct(limit)} daily loss limit"
    else:
        message = (
            f"daily loss limit latched {latch.at.isoformat()} at a loss of "
            f"{pct(latch.value)} (limit {pct(limit)}; now {pct(loss)}) for the UTC day"
        )
    return reason(
        ReasonCode.DAILY_LOSS_LIMIT,
        f"{message}; reduce-only only until the next UTC day or riskgate resume",
        show(loss),
        limit,
    )


def has_equity(s: Standing) -> Reason | None:
    if s.vitals.equity > 0:
        return None
    return reason(
        ReasonCode.NO_EQUITY, "portfolio equity is not positive; deposit first", s.vitals.equity, 0
    )


def fresh_marks(s: Standing) -> Reason | None:
    max_age = s.config.risk_management.max_mark_age_seconds
    if s.oldest_mark is None:
        return None
    age_td = s.now - s.oldest_mark
    if age_td < timedelta(0):  # a negative age is never fresh
        ahead = int(-age_td.total_seconds())
        return reason(
            ReasonCode.STALE_PORTFOLIO,
            f"a position mark is dated {ahead}s ahead of the gate's clock; not trusted",
            -ahead,
            max_age,
        )
    if age_td <= timedelta(seconds=max_age):
        return None
    age = int(age_td.total_seconds())
    return reason(
        ReasonCode.STALE_PORTFOLIO,
        f"the oldest position mark is {age}s old; portfolio state is stale",
        age,
        max_age,
    )


PORTFOLIO_GATES: tuple[PortfolioGate, ...] = (
    not_halted,
    emergency_stop,
    daily_loss,
    has_equity,
    fresh_marks,
)
