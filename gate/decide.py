"""``decide()``: intent + snapshot + config + time -> Decision. No I/O, no clock.

A batch is decided in order against one snapshot: each approval reserves its risk
before the next intent is looked at, so a batch never approves more than the limits
allow together. :func:`decide_batch` returns the snapshot with those reservations and
the per-agent rate counts, ready to be committed, and the exposure that goes with it
(hand it back in with the next batch to skip recomputing it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from gate import checks, duplicates
from gate.checks import pct_constant, reason
from gate.correlation import Correlated
from gate.enrich import Ask, Context, Listing, enrich, listing
from gate.exposure import Exposure
from gate.layered import changed
from gate.limits import (
    ORDER_CAPS,
    Caps,
    Limit,
    caps,
    opening_limits,
    order_caps,
    reduce_limit,
)
from gate.money import ZERO, fraction6, percent2, plain, plain_constant, show
from gate.portfolio import RateCount, Reservation, Snapshot, Vitals
from gate.size import size
from gate.standing import PORTFOLIO_GATES, Standing
from schemas.config import AssetsConfig
from schemas.messages import (
    Decision,
    Reason,
    ReasonCode,
    Status,
    TradeIntent,
    construct_unchecked,
)

#: Working precision for limit arithmetic: far beyond any product of bounded inputs.
PRECISION = 60
#: Correlated symbols listed in a decision's checks (the count is always there).
LISTED_CORRELATED = 20

#: Enum members read on the hot path, bound once: in Python 3.11 reading a member through
#: its class goes through ``EnumType.__getattr__`` (~140 ns); a module global costs ~2 ns.
APPROVED, RESIZED, REJECTED = Status.APPROVED, Status.RESIZED, Status.REJECTED
REDUCE_ONLY = ReasonCode.REDUCE_ONLY


@dataclass(frozen=True, slots=True)
class BatchResult:
    decisions: tuple[Decision, ...]
    snapshot: Snapshot  # the input plus this batch's reservations and rate counts
    exposure: Exposure  # the exposure of ``snapshot`` at ``now``
    reserved: tuple[Reservation, ...]  # the reservations this batch made


def decide(
    intent: TradeIntent, snapshot: Snapshot, config: AssetsConfig, now: datetime
) -> Decision:
    """Decide one intent."""
    return decide_batch([intent], snapshot, config, now).decisions[0]


def decide_batch(
    intents: Iterable[TradeIntent],
    snapshot: Snapshot,
    config: AssetsConfig,
    now: datetime,
    *,
    exposure: Exposure | None = None,
) -> BatchResult:
    """Decide intents in order; each approval reserves risk seen by the ones after it.

    ``exposure``, when given, must be the exposure of ``snapshot`` at ``now`` (as a
    previous result returned it); it is copied, never changed.
    """
    with localcontext() as ctx:
        ctx.prec = PRECISION
        batch = _Batch(snapshot, config, now, exposure)
        decisions = tuple(batch.decide(intent) for intent in intents)
        return batch.result(decisions)


class _Symbol:
    """One symbol within a batch: its listing and caps, its intent gates with the symbol
    gates already evaluated, the skeleton of its decisions' reports (every key in order,
    what is the same for all filled in) and where its share fractions are remembered."""

    __slots__ = (
        "caps",
        "listing",
        "memo",
        "opening",
        "opening_report",
        "reducing",
        "reducing_report",
    )

    def __init__(self, lst: Listing, ctx: Context, batch: _Batch) -> None:
        self.listing = lst
        self.caps = caps(ctx, batch.vitals)
        gates_after = checks.per_symbol(checks.GATES_AFTER, ctx)
        self.opening = (checks.per_symbol(checks.GATES_BEFORE, ctx), gates_after)
        self.opening_report = batch.report_skeleton(self.caps, opening=True)
        # built when the symbol's first reduce-only intent comes (most batches have none)
        self.reducing: tuple[checks.Gate, ...] | None = None
        self.reducing_report: dict[str, Any] | None = None
        # the position is the symbol's own, the class share its class's; heat and (mostly)
        # correlated exposure are the portfolio's: what one intent leaves, the next sees
        self.memo = {
            ReasonCode.MAX_POSITION: ("position", lst.symbol),
            ReasonCode.PORTFOLIO_HEAT: ("heat", ""),
            ReasonCode.ASSET_CLASS_LIMIT: ("class", lst.asset_class),
            ReasonCode.CORRELATED_EXPOSURE: ("correlated", ""),
        }


class _Batch:
    """Working state of one batch: exposure grows with each approval."""

    def __init__(
        self, snapshot: Snapshot, config: AssetsConfig, now: datetime, exposure: Exposure | None
    ) -> None:
        self.snapshot = snapshot
        self.config = config
        self.config_hash = config.config_hash
        self.currency = config.risk_management.account_currency
        self.now = now
        self.exposure = exposure.copy() if exposure else Exposure.of(snapshot, config)
        self.vitals = Vitals.of(snapshot, self.exposure.equity, now.date())
        standing = Standing(snapshot, self.vitals, self.exposure.oldest_mark, config, now)
        self.blockers = [r for r in (g(standing) for g in PORTFOLIO_GATES) if r]
        self.correlated = Correlated(snapshot, self.exposure, config, now)
        self.window = checks.rate_window(now)
        # counts of past minutes are over: dropped here, deleted from the state on commit
        self.rates = {a: rc for a, rc in snapshot.rates.items() if rc.window >= self.window}
        # approvals past the duplicate window are forgotten here (deleted on commit)
        self.dup_window = config.risk_management.duplicate_order_window_seconds
        self.approvals = duplicates.recent_approvals(snapshot.approvals, now, self.dup_window)
        self.reserved: list[Reservation] = []
        self.expires_at = now + timedelta(seconds=config.risk_management.reservation_ttl_seconds)
        self.base_report = _portfolio_checks(snapshot, self.vitals, config)
        corr, oldest = snapshot.correlations, self.exposure.oldest_mark
        self.opening_report = {
            **self.base_report,
            "correlations_age_s": _age(now, corr.as_of),
            "correlations_fresh": self.correlated.fresh,
            "oldest_mark_age_s": _age(now, oldest),
            "agent_rate_limit": config.risk_management.max_intents_per_agent_per_minute,
            "agents_limit": config.risk_management.max_agents_per_portfolio,
        }
        self.symbols: dict[str, _Symbol | None] = {}
        # every share limit is a fraction of equity: the last text of each, and its value
        self.fractions: dict[tuple[str, str], tuple[Decimal, str]] = {}
        self.counts: dict[int, RateCount] = {}

    def result(self, decisions: tuple[Decision, ...]) -> BatchResult:
        reservations = changed(
            self.snapshot.reservations, ((r.intent_id, r) for r in self.reserved)
        )
        snap = replace(
            self.snapshot, reservations=reservations, rates=self.rates, approvals=self.approvals
        )
        return BatchResult(decisions, snap, self.exposure, tuple(self.reserved))

    def fraction(self, key: tuple[str, str], value: Decimal) -> str:
        """``fraction6(value, equity)``, remembered under ``key`` until the value moves."""
        last = self.fractions.get(key)
        if last is not None and last[0] == value:
            return last[1]
        text = fraction6(value, self.vitals.equity)
        self.fractions[key] = (value, text)
        return text

    def decide(self, intent: TradeIntent) -> Decision:
        ask = Ask(intent)
        seen = self.rates.get(ask.agent_id)
        count = seen.count if seen is not None and seen.window == self.window else 0
        decision, counted = self._decide(ask, count)
        if counted and not ask.reduce_only:
            rc = self.counts.get(count)
            if rc is None:
                rc = self.counts[count] = RateCount(self.window, count + 1)
            self.rates[ask.agent_id] = rc
        return decision

    def _reserve(self, ctx: Context, qty: Decimal) -> None:
        reservation = _reservation(ctx, qty, self.expires_at)
        self.reserved.append(reservation)
        amounts = None
        if ctx.exposure.refs.get(ctx.symbol) == (ctx.quote.price if ctx.quote else None):
            # the exposure values this symbol at the mark the limits used: the amounts
            # reservation_amounts would compute, the same operations in the same order
            distance = ctx.distance
            notional = qty * ctx.reference * ctx.fx
            amounts = (notional, notional if distance is None else qty * distance * ctx.fx)
        self.exposure.reserve(reservation, self.snapshot.account, self.config, amounts)
        if self.dup_window and not ctx.intent.reduce_only:
            duplicates.remember_approval(self.approvals, ctx.intent, self.now)

    def _symbol(self, intent: Ask) -> tuple[_Symbol, Context] | None:
        sym = self.symbols.get(intent.symbol, _MISSING)
        if sym is None:
            return None
        if sym is _MISSING:
            lst = listing(intent.symbol, self.snapshot, self.config, self.now)
            if lst is None:
                self.symbols[intent.symbol] = None
                return None
            ctx = self._enrich(intent, lst)
            self.symbols[intent.symbol] = _Symbol(lst, ctx, self)
            return self.symbols[intent.symbol], ctx  # type: ignore[return-value]
        assert isinstance(sym, _Symbol)
        return sym, self._enrich(intent, sym.listing)

    def _enrich(self, intent: Ask, lst: Listing) -> Context:
        """Its context, counts and duplicate left to fill in."""
        return enrich(
            intent,
            lst,
            self.snapshot,
            self.exposure,
            config=self.config,
            now=self.now,
            agents=len(self.rates),
        )

    def _decide(self, intent: Ask, count: int) -> tuple[Decision, bool]:
        """The decision, and whether it counts towards its agent's rate (a gate may say
        not: :data:`checks.UNCOUNTED`); an approval or a resize reserves its quantity."""
        found = self._symbol(intent)
        if found is None:
            unknown = reason(
                ReasonCode.UNKNOWN_SYMBOL, f"{intent.symbol} is not a configured asset"
            )
            return self._reject(intent, None, [unknown], dict(self.base_report)), True
        sym, ctx = found
        ctx.agent_intents = count
        if intent.reduce_only:
            if sym.reducing is None:
                sym.reducing = checks.per_symbol(checks.REDUCING_GATES, ctx)
            blocked = _findings(sym.reducing, ctx, [])
            limits = [reduce_limit(ctx), *order_caps(ctx, sym.caps)]
        else:
            ctx.duplicate_of = duplicates.previous_approval(self.approvals, intent)
            gates_before, gates_after = sym.opening
            blocked = _findings(gates_after, ctx, _findings(gates_before, ctx, []) + self.blockers)
            limits = opening_limits(ctx, sym.caps, self.correlated.used(ctx.symbol))
        report = self._checks(ctx, sym, limits)
        if blocked:
            counted = not any(r.code in checks.UNCOUNTED for r in blocked)
            return self._reject(intent, ctx, blocked, report), counted

        whole = limits[0].cap if intent.reduce_only else None
        sizing = size(intent.quantity, limits, ctx.listing.lot_size, whole)
        reasons: list[Reason] = []
        if sizing.binding:
            fits = plain(sizing.quantity)
            reasons = [self._limit_reason(lim, ctx, fits) for lim in sizing.binding]
        if sizing.rounded:
            lot = ctx.listing.lot_size
            reasons.append(
                reason(
                    ReasonCode.LOT_SIZE,
                    f"quantity rounded down to a whole number of {plain(lot)} lots",
                    intent.quantity,
                    lot,
                )
            )
        qty = sizing.quantity
        min_size = ctx.listing.min_size
        if qty <= 0 or (not intent.reduce_only and qty < min_size):
            if not intent.reduce_only:  # a reduce-only zero is explained by reduce_only
                allowed, least = plain(qty), plain_constant(min_size)
                reasons.append(
                    reason(
                        ReasonCode.BELOW_MIN_SIZE,
                        f"the largest allowed quantity {allowed} is below the minimum {least}",
                        allowed,
                        least,
                    )
                )
            return self._reject(intent, ctx, reasons, report), True

        status = APPROVED if qty == intent.quantity else RESIZED
        if status is APPROVED:
            qty = intent.quantity  # same number; keep the agent's own notation
        memo = sym.memo
        for lim in limits:
            if lim.code not in _NO_SHARE:
                after = lim.used + qty * lim.per_unit
                report[_AFTER[lim.code]] = self.fraction(memo[lim.code], after)
        decision = _decision(
            intent,
            self.config_hash,
            self.now,
            status=status,
            qty=qty,
            ctx=ctx,
            reasons=reasons,
            report=report,
        )
        self._reserve(ctx, qty)
        return decision, True

    def report_skeleton(self, c: Caps, *, opening: bool) -> dict[str, Any]:
        """The report's keys in order, with what is the same for every intent of the
        symbol filled in (the limits and caps) and the rest left to fill."""
        report = dict(self.opening_report if opening else self.base_report)
        report["stop_price"] = None
        if opening:
            limits = [c.position, c.heat, c.share, c.correlated]
        else:
            report["reducible"] = None
            limits = []
        orders = [c.order_value] if c.order_quantity is None else [c.order_value, c.order_quantity]
        for lim in (*limits, *orders):
            cap_key = _CAP_KEYS.get(lim.code)
            if cap_key is not None:
                report[cap_key] = plain_constant(lim.cap)
                continue
            report[_BEFORE[lim.code]] = report[_AFTER[lim.code]] = None
            report[_LIMIT[lim.code]] = plain_constant(lim.limit)
        if opening:
            report["correlated_with"] = None
            report["agent_intents_this_minute"] = None
            report["agents_this_minute"] = None
        return report

    def _checks(self, ctx: Context, sym: _Symbol, limits: list[Limit]) -> dict[str, Any]:
        opening = not ctx.intent.reduce_only
        if opening:
            report = sym.opening_report.copy()
        else:
            if sym.reducing_report is None:
                sym.reducing_report = self.report_skeleton(sym.caps, opening=False)
            report = sym.reducing_report.copy()
        report["stop_price"] = plain(ctx.stop) if ctx.stop is not None else None
        for lim in limits:
            code = lim.code
            if code is REDUCE_ONLY:
                report["reducible"] = plain(lim.cap)
            elif code not in _CAP_KEYS:
                text = self.fraction(sym.memo[code], lim.used)
                report[_BEFORE[code]] = report[_AFTER[code]] = text
        if opening:
            report["correlated_with"] = self.correlated.members(ctx.symbol, LISTED_CORRELATED)
            report["agent_intents_this_minute"] = ctx.agent_intents
            report["agents_this_minute"] = ctx.agents
        return report

    def _reject(
        self,
        intent: Ask,
        ctx: Context | None,
        reasons: list[Reason],
        report: dict[str, Any],
    ) -> Decision:
        return _decision(
            intent,
            self.config_hash,
            self.now,
            status=REJECTED,
            qty=ZERO,
            ctx=ctx,
            reasons=reasons,
            report=report,
        )

    def _limit_reason(self, lim: Limit, ctx: Context, fits: str) -> Reason:
        if lim.code in ORDER_CAPS:
            return _order_cap_reason(lim, ctx, fits, self.currency)
        return _limit_reason(lim, ctx.intent.quantity, fits)


_MISSING: Any = object()


def _findings(gates: tuple[checks.Gate, ...], ctx: Context, out: list[Reason]) -> list[Reason]:
    """``out`` with what each of ``gates`` finds for ``ctx``, in order."""
    for gate in gates:
        finding = gate(ctx)
        if finding is not None:
            out.append(finding)
    return out


def _order_cap_reason(lim: Limit, ctx: Context, fits: str, currency: str) -> Reason:
    requested, cap = plain(ctx.intent.quantity), plain_constant(lim.cap)
    if lim.code is ReasonCode.MAX_ORDER_QUANTITY:
        return reason(
            lim.code,
            f"{ctx.symbol} order quantity {requested} is above the maximum of {cap} "
            f"per order; at most {fits}",
            requested,
            cap,
        )
    value = plain(ctx.intent.quantity * lim.per_unit)
    return reason(
        lim.code,
        f"{ctx.symbol} order value {value} {currency} ({requested} at "
        f"{plain(lim.per_unit)}, the larger of price and mark) is above the maximum of "
        f"{cap} {currency} per order; at most {fits}",
        value,
        cap,
    )


def _limit_reason(lim: Limit, requested: Decimal, fits: str) -> Reason:
    if lim.code is ReasonCode.REDUCE_ONLY:
        return reason(
            lim.code,
            f"reduce-only {plain(requested)} exceeds the open position left to reduce "
            f"({plain(lim.cap)}); at most {fits}",
            requested,
            lim.cap,
        )
    used = lim.used + requested * lim.per_unit  # the share is used / scale
    return reason(
        lim.code,
        f"{lim.label} would be {percent2(used, lim.scale)}% of equity, "
        f"limit {pct_constant(lim.limit)}; at most {fits} fits",
        fraction6(used, lim.scale),
        plain_constant(lim.limit),
    )


#: The order caps' keys in ``checks`` (their reason codes' names).
_CAP_KEYS = {code: code.value for code in ORDER_CAPS}
#: Limits without a share of equity to report before and after.
_NO_SHARE = frozenset({ReasonCode.REDUCE_ONLY, *ORDER_CAPS})

_NAMES = {
    ReasonCode.MAX_POSITION: "position",
    ReasonCode.PORTFOLIO_HEAT: "heat",
    ReasonCode.ASSET_CLASS_LIMIT: "class_share",
    ReasonCode.CORRELATED_EXPOSURE: "correlated_exposure",
}
_BEFORE = {code: f"{name}_before" for code, name in _NAMES.items()}
_AFTER = {code: f"{name}_after" for code, name in _NAMES.items()}
_LIMIT = {code: f"{name}_limit" for code, name in _NAMES.items()}


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
        "halted": snapshot.flags.halted or snapshot.account.halted_by is not None,
    }


def _age(now: datetime, then: datetime | None) -> int | None:
    return int((now - then).total_seconds()) if then is not None else None


def _reservation(ctx: Context, qty: Decimal, expires_at: datetime) -> Reservation:
    return Reservation(
        intent_id=ctx.intent.intent_id,
        agent_id=ctx.intent.agent_id,
        symbol=ctx.symbol,
        asset_class=ctx.asset_class,
        quote_currency=ctx.listing.quote_currency,
        side=ctx.intent.side,
        quantity=qty,
        price=ctx.intent.price,
        stop_price=ctx.stop,
        reduce_only=ctx.intent.reduce_only,
        expires_at=expires_at,
    )


def _decision(
    intent: Ask,
    config_hash: str,
    now: datetime,
    *,
    status: Status,
    qty: Decimal,
    ctx: Context | None,
    reasons: list[Reason],
    report: dict[str, Any],
) -> Decision:
    # our own output, built from validated inputs: constructed without re-validation
    return construct_unchecked(
        Decision,
        {
            "intent_id": intent.intent_id,
            "agent_id": intent.agent_id,
            "symbol": intent.symbol,
            "side": intent.side,
            "status": status,
            "requested_quantity": intent.quantity,
            "approved_quantity": qty,
            "stop_price": ctx.stop if ctx is not None else intent.stop_price,
            "reasons": tuple(reasons),
            "checks": report,
            "decided_at": now,
            "config_hash": config_hash,
            "price": intent.price,
            "take_profit": ctx.take_profit if ctx is not None else intent.take_profit,
            "reduce_only": intent.reduce_only,
        },
    )
