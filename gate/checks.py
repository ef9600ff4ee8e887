"""The rules. Each is a small function returning a finding or nothing.

Three kinds, one module each:
- *portfolio gates* (:mod:`gate.standing`) look only at the portfolio (halt, drawdown,
  daily loss, equity, stale marks): evaluated once per batch, they reject every opening
  intent in it;
- *intent gates* (here) look at one intent (age, enabled, stop, earnings, regime, max
  hold, rate): they reject it whatever its size;
- *limits* (:mod:`gate.limits`) are linear caps ``used + q * per_unit <= cap`` that
  sizing folds into the largest allowed quantity.

``reason`` and ``pct`` build the findings all three report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from gate.enrich import Context
from gate.money import plain, show
from schemas.messages import Reason, ReasonCode, Side, construct_unchecked

PERCENT = Decimal("0.01")
#: Enum members read on the hot path, bound once: in Python 3.11 reading a member through
#: its class goes through ``EnumType.__getattr__`` (~140 ns); a module global costs ~2 ns.
BUY = Side.BUY


def pct(fraction: Decimal) -> str:
    return f"{show(fraction * 100, PERCENT)}%"


@lru_cache(maxsize=4096)
def pct_constant(fraction: Decimal) -> str:
    """:func:`pct` for the few values that repeat (configured limits): cached."""
    return pct(fraction)


def _text(x: object) -> str | None:
    if x is None or type(x) is str:
        return x
    return plain(x) if isinstance(x, Decimal) else str(x)


def reason(code: ReasonCode, message: str, value: object = None, limit: object = None) -> Reason:
    return construct_unchecked(
        Reason, {"code": code, "message": message, "value": _text(value), "limit": _text(limit)}
    )


# --- intent gates ---------------------------------------------------------------------

Gate = Callable[[Context], Reason | None]


def intent_age(ctx: Context) -> Reason | None:
    age, lst = ctx.now - ctx.intent.created_at, ctx.listing
    if age > lst.max_age:
        return reason(
            ReasonCode.STALE_INTENT,
            f"intent is {int(age.total_seconds())}s old; its price is stale",
            int(age.total_seconds()),
            ctx.config.risk_management.max_intent_age_seconds,
        )
    if -age > lst.max_skew:
        return reason(
            ReasonCode.STALE_INTENT,
            f"intent is dated {int(-age.total_seconds())}s in the future",
            int(age.total_seconds()),
            -ctx.config.risk_management.max_clock_skew_seconds,
        )
    return None


def market_price(ctx: Context) -> Reason | None:
    """An opening needs a recent mark: exposure is valued at the market, not the agent."""
    if ctx.market is not None:
        return None
    max_age = ctx.config.risk_management.max_mark_age_seconds
    q = ctx.quote
    if q is None:
        return reason(
            ReasonCode.NO_MARKET_PRICE,
            f"no mark on record for {ctx.symbol}; an opening needs a market price",
            None,
            max_age,
        )
    age = int((ctx.now - q.at).total_seconds())
    when = f"{age}s old" if age >= 0 else f"dated {-age}s ahead of the gate's clock"
    return reason(
        ReasonCode.NO_MARKET_PRICE,
        f"the latest {ctx.symbol} mark is {when} (limit {max_age}s); an opening needs a "
        "recent market price",
        age,
        max_age,
    )


def price_collar(ctx: Context) -> Reason | None:
    """The intent's price within ``collar`` of the recent mark (a fat finger is refused)."""
    mark, price = ctx.market, ctx.intent.price
    if mark is None:
        return None
    off = abs(price - mark) / mark
    if off <= ctx.collar:
        return None
    q = ctx.quote
    assert q is not None
    where = "above" if price > mark else "below"
    low, high = mark * (1 - ctx.collar), mark * (1 + ctx.collar)
    return reason(
        ReasonCode.PRICE_COLLAR,
        f"price {plain(price)} is {pct(off)} {where} the {ctx.symbol} mark {plain(mark)} "
        f"({q.at.isoformat()}); the collar is ±{pct(ctx.collar)}: "
        f"{plain(low)} to {plain(high)}",
        show(off),
        ctx.collar,
    )


def asset_enabled(ctx: Context) -> Reason | None:
    if ctx.asset.enabled:
        return None
    return reason(ReasonCode.ASSET_DISABLED, f"{ctx.symbol} is not enabled for trading")


def class_enabled(ctx: Context) -> Reason | None:
    if ctx.config.asset_classes[ctx.asset.asset_class].enabled:
        return None
    return reason(ReasonCode.CLASS_DISABLED, f"asset class {ctx.asset_class} is not enabled")


def valid_stop(ctx: Context) -> Reason | None:
    """The stop on the losing side of both the price and the recent mark."""
    stop, price = ctx.stop, ctx.intent.price
    if stop is None:
        return None
    buy = ctx.intent.side is BUY
    mark = ctx.market
    worst = price if mark is None else (min(price, mark) if buy else max(price, mark))
    wrong_side = stop >= worst if buy else stop <= worst
    if stop > 0 and not wrong_side:
        return None
    where = "below" if buy else "above"
    against = f"the price {plain(price)}"
    if mark is not None:
        against += f" and the mark {plain(mark)}"
    return reason(
        ReasonCode.INVALID_STOP,
        f"stop {plain(stop)} must be {where} {against} for a {ctx.intent.side}",
        stop,
        worst,
    )


def valid_take_profit(ctx: Context) -> Reason | None:
    tp, price = ctx.take_profit, ctx.intent.price
    if tp is None:
        return None
    wrong_side = tp <= price if ctx.intent.side is BUY else tp >= price
    if tp > 0 and not wrong_side:
        return None
    where = "above" if ctx.intent.side is Side.BUY else "below"
    return reason(
        ReasonCode.INVALID_TAKE_PROFIT,
        f"take profit {plain(tp)} must be {where} the price {plain(price)}",
        tp,
        price,
    )


def earnings_blackout(ctx: Context) -> Reason | None:
    days = ctx.asset.special_rules.earnings_blackout_days
    if days is None:
        return None
    when = ctx.snapshot.flags.earnings.get(ctx.symbol)
    if when is None:
        return reason(
            ReasonCode.EARNINGS_BLACKOUT,
            f"no earnings date on record for {ctx.symbol}; set one before trading it",
            None,
            days,
        )
    until = (when - ctx.now.date()).days
    if until < 0:  # a past date says nothing about the next report: unknown
        return reason(
            ReasonCode.EARNINGS_BLACKOUT,
            f"the earnings date on record for {ctx.symbol}, {when.isoformat()}, has passed; "
            "set the next one before trading it",
            until,
            days,
        )
    if until <= days:
        return reason(
            ReasonCode.EARNINGS_BLACKOUT,
            f"{ctx.symbol} reports earnings on {when.isoformat()}, inside the {days}-day blackout",
            until,
            days,
        )
    return None


def sideways_market(ctx: Context) -> Reason | None:
    if not ctx.asset.special_rules.avoid_sideways_market:
        return None
    flag = ctx.snapshot.flags.regimes.get(ctx.symbol)
    rm = ctx.config.risk_management
    regime = flag.value if flag is not None else None
    if flag is not None and regime == "trending":
        age = ctx.now - flag.as_of if flag.as_of is not None else None
        if age is not None and -timedelta(seconds=rm.max_clock_skew_seconds) <= age <= timedelta(
            hours=rm.regime_max_age_hours
        ):
            return None
        when = "without a time" if age is None else f"{int(age.total_seconds()) // 3600}h ago"
        return reason(
            ReasonCode.SIDEWAYS_MARKET,
            f"{ctx.symbol} is only traded in trending markets; the 'trending' flag was set "
            f"{when} and has expired (regime_max_age_hours {rm.regime_max_age_hours})",
            regime,
            "trending",
        )
    what = "sideways" if regime == "sideways" else f"unknown ({regime or 'not set'})"
    return reason(
        ReasonCode.SIDEWAYS_MARKET,
        f"{ctx.symbol} is only traded in trending markets; the regime is {what}",
        regime,
        "trending",
    )


def max_hold(ctx: Context) -> Reason | None:
    days = ctx.asset.special_rules.max_hold_days
    pos = ctx.snapshot.positions.get(ctx.symbol) if days is not None else None
    if days is None or pos is None:
        return None
    held = ctx.now - pos.opened_at
    if held < timedelta(days=days):
        return None
    return reason(
        ReasonCode.MAX_HOLD,
        f"the {ctx.symbol} position is {held.days} days old, over the {days}-day max hold; "
        "close it before adding",
        held.days,
        days,
    )


def rate_limit(ctx: Context) -> Reason | None:
    limit = ctx.listing.agent_rate_limit
    if ctx.agent_intents < limit:
        return None
    return reason(
        ReasonCode.RATE_LIMITED,
        f"agent {ctx.intent.agent_id} sent {ctx.agent_intents} intents this minute, limit {limit}",
        ctx.agent_intents,
        limit,
    )


def agent_cap(ctx: Context) -> Reason | None:
    """A new agent this minute is refused once the portfolio has counted the cap of them:
    each counted agent is a field in the portfolio's state until the minute ends."""
    limit = ctx.listing.agents_limit
    if ctx.agent_intents > 0 or ctx.agents < limit:
        return None
    return reason(
        ReasonCode.TOO_MANY_AGENTS,
        f"{ctx.agents} agents already sent intents to this portfolio this minute, limit "
        f"{limit}; agent {ctx.intent.agent_id} may send from the next minute",
        ctx.agents,
        limit,
    )


#: Findings that keep an intent out of its agent's count (and out of the state).
UNCOUNTED = frozenset({ReasonCode.RATE_LIMITED, ReasonCode.TOO_MANY_AGENTS})


def rate_window(now: datetime) -> int:
    """The per-agent rate limit counts intents per UTC minute."""
    return int(now.timestamp()) // 60


def duplicate_order(ctx: Context) -> Reason | None:
    """An opening identical (agent, symbol, side, quantity) to one the gate approved or
    resized within ``duplicate_order_window_seconds``: a retry or a loop, not a decision
    (SEC 15c3-5 (c)(1)(ii) duplicative orders; FIA duplicate-order checks)."""
    at = ctx.duplicate_of
    if at is None:
        return None
    window = ctx.config.risk_management.duplicate_order_window_seconds
    age = Decimal((ctx.now - at) // timedelta(microseconds=1)).scaleb(-6)
    i = ctx.intent
    return reason(
        ReasonCode.DUPLICATE_ORDER,
        f"agent {i.agent_id} had the same {i.side} of {plain(i.quantity)} {ctx.symbol} "
        f"approved {plain(age)}s ago ({at.isoformat()}); an identical opening within the "
        f"{window}s duplicate window is refused (change the quantity, or wait)",
        age,
        window,
    )


#: Intent gates reported before the portfolio's reasons, then after them.
GATES_BEFORE: tuple[Gate, ...] = (
    intent_age,
    asset_enabled,
    class_enabled,
    market_price,
    price_collar,
)
GATES_AFTER: tuple[Gate, ...] = (
    valid_stop,
    valid_take_profit,
    earnings_blackout,
    sideways_market,
    max_hold,
    rate_limit,
    agent_cap,
    duplicate_order,
)
#: Intent gates that read only the intent's symbol (its asset, class and mark), the
#: snapshot and the time: their finding is the same for every intent of a symbol in a
#: batch, so a batch evaluates them once per symbol (:func:`per_symbol`).
SYMBOL_GATES = frozenset(
    {asset_enabled, class_enabled, market_price, earnings_blackout, sideways_market, max_hold}
)
#: Reduce-only intents shrink risk: they skip everything but the intent's own age and,
#: when a recent mark exists, the price collar (an exit at a fat-finger price is still an
#: erroneous order). Without a mark they pass: an exit must always be possible. They are
#: never a duplicate_order: an exit can only close what is left (reduce_limit counts the
#: pending exits), and closing in equal slices is how a capped exit is done.
REDUCING_GATES: tuple[Gate, ...] = (intent_age, price_collar)


class Found:
    """A symbol gate's finding, evaluated once for the batch: returns it for any intent."""

    __slots__ = ("finding",)

    def __init__(self, finding: Reason) -> None:
        self.finding = finding

    def __call__(self, ctx: Context) -> Reason:
        return self.finding


def per_symbol(gates: tuple[Gate, ...], ctx: Context) -> tuple[Gate, ...]:
    """``gates`` for the intents of ``ctx``'s symbol in this batch: each symbol gate
    replaced by its finding for ``ctx`` (dropped when it finds nothing); the others kept,
    in order."""
    out: list[Gate] = []
    for gate in gates:
        if gate not in SYMBOL_GATES:
            out.append(gate)
            continue
        finding = gate(ctx)
        if finding is not None:
            out.append(Found(finding))
    return tuple(out)
