"""``decide()``: intent + snapshot + config + time -> Decision. No I/O, no clock.

A batch is decided in order against one snapshot: each approval reserves its risk
before the next intent is looked at, so a batch never approves more than the limits
allow together. :func:`decide_batch` returns the snapshot with those reservations
and the per-agent rate counts, ready to be committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from gate import checks
from gate.checks import Limit, pct, reason
from gate.enrich import Context, enrich
from gate.exposure import Exposure
from gate.money import ZERO, plain, show
from gate.portfolio import RateCount, Reservation, Snapshot, Vitals
from gate.size import Sizing, size
from schemas.config import AssetsConfig
from schemas.messages import Decision, Reason, ReasonCode, Status, TradeIntent

#: Working precision for limit arithmetic: far beyond any product of bounded inputs.
PRECISION = 60


@dataclass(frozen=True, slots=True)
class BatchResult:
    decisions: tuple[Decision, ...]
    snapshot: Snapshot  # the input plus this batch's reservations and rate counts


def decide(
    intent: TradeIntent, snapshot: Snapshot, config: AssetsConfig, now: datetime
) -> Decision:
    """Decide one intent."""
    return decide_batch([intent], snapshot, config, now).decisions[0]


def decide_batch(
    intents: Iterable[TradeIntent], snapshot: Snapshot, config: AssetsConfig, now: datetime
) -> BatchResult:
    """Decide intents in order; each approval reserves risk seen by the ones after it."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        batch = _Batch(snapshot, config, now)
        decisions = tuple(batch.decide(intent) for intent in intents)
        return BatchResult(decisions, batch.result())


def _has(decision: Decision, code: ReasonCode) -> bool:
    return any(r.code is code for r in decision.reasons)


class _Batch:
    """Working state of one batch: exposure grows with each approval."""

    def __init__(self, snapshot: Snapshot, config: AssetsConfig, now: datetime) -> None:
        self.snapshot = snapshot
        self.config = config
        self.now = now
        self.exposure = Exposure.of(snapshot, config, now)
        self.vitals = Vitals.of(snapshot, self.exposure.equity, now.date())
        self.reservations = dict(snapshot.reservations)
        self.rates = dict(snapshot.rates)

    def result(self) -> Snapshot:
        return replace(self.snapshot, reservations=self.reservations, rates=self.rates)

    def decide(self, intent: TradeIntent) -> Decision:
        decision, reservation = self._decide(intent)
        if reservation is not None:
            self.reservations[intent.intent_id] = reservation
            self.exposure.reserve(reservation, self.snapshot, self.config)
        if not intent.reduce_only and not _has(decision, ReasonCode.RATE_LIMITED):
            window = checks.rate_window(self.now)
            seen = self.rates.get(intent.agent_id)
            count = seen.count + 1 if seen is not None and seen.window == window else 1
            self.rates[intent.agent_id] = RateCount(window, count)
        return decision

    def _decide(self, intent: TradeIntent) -> tuple[Decision, Reservation | None]:
        view = replace(self.snapshot, reservations=self.reservations, rates=self.rates)
        ctx = enrich(intent, view, self.exposure, self.config, self.now)
        if ctx is None:
            unknown = reason(
                ReasonCode.UNKNOWN_SYMBOL, f"{intent.symbol} is not a configured asset"
            )
            report = _portfolio_checks(view, self.vitals, self.config)
            return self._reject(intent, None, [unknown], report), None

        gates = checks.REDUCING_GATES if intent.reduce_only else checks.OPENING_GATES
        blocked = [r for r in (g(ctx, self.vitals) for g in gates) if r is not None]
        limits = _limits(ctx, self.vitals)
        report = _checks(ctx, self.vitals, limits)
        if blocked:
            return self._reject(intent, ctx, blocked, report), None

        whole = limits[0].cap if intent.reduce_only else None
        sizing = size(intent.quantity, limits, ctx.asset.risk.lot_size, whole)
        reasons = [_limit_reason(lim, intent.quantity, sizing) for lim in sizing.binding]
        if sizing.rounded:
            lot = ctx.asset.risk.lot_size
            reasons.append(
                reason(
                    ReasonCode.LOT_SIZE,
                    f"quantity rounded down to a whole number of {plain(lot)} lots",
                    intent.quantity,
                    lot,
                )
            )
        qty = sizing.quantity
        min_size = ctx.asset.risk.min_size
        if qty <= 0 or (not intent.reduce_only and qty < min_size):
            if not intent.reduce_only:  # a reduce-only zero is explained by reduce_only
                reasons.append(
                    reason(
                        ReasonCode.BELOW_MIN_SIZE,
                        f"the largest allowed quantity {plain(qty)} is below the minimum "
                        f"{plain(min_size)}",
                        qty,
                        min_size,
                    )
                )
            return self._reject(intent, ctx, reasons, report), None

        report.update(_after(limits, qty))
        status = Status.APPROVED if qty == intent.quantity else Status.RESIZED
        if status is Status.APPROVED:
            qty = intent.quantity  # same number; keep the agent's own notation
        decision = _decision(
            intent,
            self.config,
            self.now,
            status=status,
            qty=qty,
            ctx=ctx,
            reasons=reasons,
            report=report,
        )
        return decision, _reservation(ctx, qty)

    def _reject(
        self,
        intent: TradeIntent,
        ctx: Context | None,
        reasons: list[Reason],
        report: dict[str, Any],
    ) -> Decision:
        return _decision(
            intent,
            self.config,
            self.now,
            status=Status.REJECTED,
            qty=ZERO,
            ctx=ctx,
            reasons=reasons,
            report=report,
        )


def _limits(ctx: Context, vitals: Vitals) -> list[Limit]:
    if ctx.intent.reduce_only:
        return [checks.reduce_limit(ctx)]
    return [make(ctx, vitals) for make in checks.OPENING_LIMITS]


def _limit_reason(lim: Limit, requested: Decimal, sizing: Sizing) -> Reason:
    fits = plain(sizing.quantity)
    if lim.code is ReasonCode.REDUCE_ONLY:
        return reason(
            lim.code,
            f"reduce-only {plain(requested)} exceeds the open position left to reduce "
            f"({plain(lim.cap)}); at most {fits}",
            requested,
            lim.cap,
        )
    return reason(
        lim.code,
        f"{lim.label} would be {pct(lim.share(requested))} of equity, limit {pct(lim.limit)}; "
        f"at most {fits} fits",
        show(lim.share(requested)),
        show(lim.limit),
    )


_NAMES = {
    ReasonCode.MAX_POSITION: "position",
    ReasonCode.PORTFOLIO_HEAT: "heat",
    ReasonCode.ASSET_CLASS_LIMIT: "class_share",
    ReasonCode.CORRELATED_EXPOSURE: "correlated_exposure",
}


def _portfolio_checks(snapshot: Snapshot, v: Vitals, config: AssetsConfig) -> dict[str, Any]:
    rm = config.risk_management
    return {
        "portfolio_version": snapshot.version,
        "equity": plain(v.equity),
        "cash": plain(v.cash),
        "peak_equity": plain(v.peak_equity),
        "drawdown": show(v.drawdown),
        "drawdown_limit": plain(rm.emergency_stop_drawdown),
        "daily_pnl": plain(v.daily_pnl),
        "daily_loss": show(v.daily_loss),
        "daily_loss_limit": plain(rm.daily_loss_limit),
        "halted": snapshot.flags.halted,
    }


def _checks(ctx: Context, v: Vitals, limits: list[Limit]) -> dict[str, Any]:
    report = _portfolio_checks(ctx.snapshot, v, ctx.config)
    report["stop_price"] = plain(ctx.stop) if ctx.stop is not None else None
    for lim in limits:
        if lim.code is ReasonCode.REDUCE_ONLY:
            report["reducible"] = plain(lim.cap)
            continue
        name = _NAMES[lim.code]
        report[f"{name}_before"] = report[f"{name}_after"] = show(lim.share(ZERO))
        report[f"{name}_limit"] = show(lim.limit)
    if not ctx.intent.reduce_only:
        report["correlated_with"] = checks.correlated_symbols(ctx)
        corr = ctx.snapshot.correlations
        report["correlations_age_s"] = (
            int((ctx.now - corr.as_of).total_seconds()) if corr.as_of is not None else None
        )
        report["correlations_fresh"] = checks.correlations_fresh(ctx)
        oldest = ctx.exposure.oldest_mark
        report["oldest_mark_age_s"] = (
            int((ctx.now - oldest).total_seconds()) if oldest is not None else None
        )
        report["agent_intents_this_minute"] = checks.intents_this_minute(ctx)
        report["agent_rate_limit"] = ctx.config.risk_management.max_intents_per_agent_per_minute
    return report


def _after(limits: Sequence[Limit], qty: Decimal) -> dict[str, Any]:
    return {
        f"{_NAMES[lim.code]}_after": show(lim.share(qty))
        for lim in limits
        if lim.code is not ReasonCode.REDUCE_ONLY
    }


def _reservation(ctx: Context, qty: Decimal) -> Reservation:
    ttl = ctx.config.risk_management.reservation_ttl_seconds
    return Reservation(
        intent_id=ctx.intent.intent_id,
        agent_id=ctx.intent.agent_id,
        symbol=ctx.symbol,
        asset_class=ctx.asset_class,
        quote_currency=ctx.asset.trading.quote_currency,
        side=ctx.intent.side,
        quantity=qty,
        price=ctx.intent.price,
        stop_price=ctx.stop,
        reduce_only=ctx.intent.reduce_only,
        expires_at=ctx.now + timedelta(seconds=ttl),
    )


def _decision(
    intent: TradeIntent,
    config: AssetsConfig,
    now: datetime,
    *,
    status: Status,
    qty: Decimal,
    ctx: Context | None,
    reasons: list[Reason],
    report: dict[str, Any],
) -> Decision:
    return Decision(
        intent_id=intent.intent_id,
        agent_id=intent.agent_id,
        symbol=intent.symbol,
        side=intent.side,
        status=status,
        requested_quantity=intent.quantity,
        approved_quantity=qty,
        stop_price=ctx.stop if ctx is not None else intent.stop_price,
        take_profit=ctx.take_profit if ctx is not None else intent.take_profit,
        price=intent.price,
        reduce_only=intent.reduce_only,
        reasons=tuple(reasons),
        checks=report,
        decided_at=now,
        config_hash=config.config_hash,
    )
