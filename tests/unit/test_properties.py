"""Properties of the limit arithmetic, over random portfolios and batches of intents.

The oracle here re-adds exposure item by item from the snapshot and the decisions,
independently of ``gate.exposure``'s running totals.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.decide import decide_batch
from gate.money import floor_to_lot
from gate.portfolio import (
    Correlations,
    Flags,
    Quote,
    Regime,
    Reservation,
    Snapshot,
    equity,
    fx_rate,
    position_risk,
)
from schemas.config import AssetsConfig
from schemas.messages import Decision, ReasonCode, Side, Status, TradeIntent
from tests.builders import NOW, all_enabled, intent, position, snapshot

D = Decimal
CFG: AssetsConfig = all_enabled()
SYMBOLS = sorted(CFG.assets)
LIMIT_CODES = {
    ReasonCode.MAX_POSITION,
    ReasonCode.PORTFOLIO_HEAT,
    ReasonCode.ASSET_CLASS_LIMIT,
    ReasonCode.CORRELATED_EXPOSURE,
    ReasonCode.MAX_ORDER_VALUE,
    ReasonCode.MAX_ORDER_QUANTITY,
}
FLAGS = Flags(
    earnings={s: NOW.date() + timedelta(days=30) for s in SYMBOLS},
    regimes={s: Regime("trending", NOW) for s in SYMBOLS},
)

factor = st.decimals(min_value=D("0.5"), max_value=D("1.5"), places=3)
near = st.decimals(min_value=D("0.92"), max_value=D("1.08"), places=3)


@st.composite
def positions(draw: st.DrawFn) -> list:
    out = []
    for sym in draw(st.lists(st.sampled_from(SYMBOLS), max_size=5, unique=True)):
        ref = CFG.assets[sym].reference_price
        mark = ref * draw(factor)
        lots = draw(st.integers(min_value=-50, max_value=50).filter(bool))
        qty = CFG.assets[sym].risk.min_size * lots
        stop = None
        if draw(st.booleans()):
            stop = mark * draw(
                st.sampled_from([D("0.9"), D("1.02")])
                if qty > 0
                else st.sampled_from([D("1.1"), D("0.98")])
            )
        out.append(position(sym, qty, mark, stop, config=CFG))
    return out


@st.composite
def portfolios(draw: st.DrawFn) -> Snapshot:
    """Random cash, positions, correlations and a market: most symbols marked (at any
    price, some stale), some never."""
    cash = draw(st.decimals(min_value=1000, max_value=2_000_000, places=2))
    pos = draw(positions())
    pairs = {}
    for a, b in draw(
        st.lists(st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(SYMBOLS)), max_size=8)
    ):
        if a != b:
            pairs[Correlations.key(a, b)] = draw(st.decimals(min_value=-1, max_value=1, places=2))
    quotes = {}
    for sym in draw(st.lists(st.sampled_from(SYMBOLS), min_size=10, max_size=22, unique=True)):
        age = draw(st.sampled_from([0, 60, 900, 901, -1]))
        price = CFG.assets[sym].reference_price * draw(factor)
        quotes[sym] = Quote(price, NOW - timedelta(seconds=age))
    return snapshot(cash, pos, flags=FLAGS, correlations=Correlations(pairs, NOW), quotes=quotes)


@st.composite
def intents(draw: st.DrawFn, snap: Snapshot | None = None) -> TradeIntent:
    """Any intent; priced near the symbol's mark (when ``snap`` has one) or anywhere."""
    sym = draw(st.sampled_from(SYMBOLS))
    asset = CFG.assets[sym]
    quote = snap.quote(sym) if snap is not None else None
    if quote is not None and draw(st.booleans()):
        price = quote.price * draw(near)
    else:
        price = asset.reference_price * draw(factor)
    lots = draw(st.integers(min_value=1, max_value=5000))
    qty = asset.risk.lot_size * lots + draw(st.sampled_from([D(0), asset.risk.lot_size * D("0.3")]))
    side = draw(st.sampled_from(["buy", "sell"]))
    stop = None
    if draw(st.booleans()):
        k = draw(st.decimals(min_value=D("0.5"), max_value=D("0.99"), places=3))
        stop = price * k if side == "buy" else price * (2 - k)
    return intent(
        sym,
        side,
        qty,
        price,
        stop_price=stop,
        reduce_only=draw(st.integers(0, 4)) == 0,
        agent_id=draw(st.sampled_from(["a", "b"])),
    )


def _mark(snap: Snapshot, symbol: str) -> Decimal:
    quote = snap.quote(symbol)
    assert quote is not None, f"{symbol} approved without any mark"
    return quote.price


def _limits_hold(snap: Snapshot, held: list[Reservation], cfg: AssetsConfig) -> list[str]:
    """Recompute every cap from scratch, everything valued at the mark."""
    acc = snap.account
    eq = equity(snap, cfg)
    rm = cfg.risk_management
    heat = sum((position_risk(p, acc, cfg) for p in snap.positions.values()), D(0))
    by_sym_val: dict[str, Decimal] = {
        s: abs(p.quantity) * p.mark_price * fx_rate(p.quote_currency, acc, cfg)
        for s, p in snap.positions.items()
    }
    for r in held:
        if r.reduce_only:
            continue
        fx = fx_rate(r.quote_currency, acc, cfg)
        mark = _mark(snap, r.symbol)
        heat += (
            r.quantity * abs(mark - r.stop_price) * fx if r.stop_price else r.quantity * mark * fx
        )
        by_sym_val[r.symbol] = by_sym_val.get(r.symbol, D(0)) + r.quantity * mark * fx
    broken = []
    if heat > rm.max_portfolio_heat * eq:
        broken.append("heat")
    return broken, by_sym_val, eq  # type: ignore[return-value]


def _check_order_caps(d: Decision, snap: Snapshot, cfg: AssetsConfig) -> None:
    """Every approval within its asset's max order quantity and value, the value at the
    larger of its price and the latest mark (however old), in account currency."""
    asset = cfg.assets[d.symbol]
    cls = cfg.asset_classes[asset.asset_class]
    max_qty = asset.risk.max_order_quantity or cls.max_order_quantity
    max_value = asset.risk.max_order_value or cls.max_order_value
    assert max_qty is None or d.approved_quantity <= max_qty, d
    quote = snap.quote(d.symbol)
    assert d.price is not None
    ref = d.price if quote is None else max(d.price, quote.price)
    fx = fx_rate(asset.trading.quote_currency, snap.account, cfg)
    assert d.approved_quantity * ref * fx <= max_value, d


def _check_no_duplicates(decisions: tuple[Decision, ...]) -> None:
    """No two approved openings of one batch (one instant) repeat agent, symbol, side and
    requested quantity: the second is a duplicate_order."""
    seen = set()
    for d in decisions:
        if d.status is Status.REJECTED or d.reduce_only:
            continue
        key = (d.agent_id, d.symbol, d.side, d.requested_quantity)
        assert key not in seen, d
        seen.add(key)


def _check_decision(
    d: Decision, snap: Snapshot, held: list[Reservation], cfg: AssetsConfig
) -> None:
    broken, val, eq = _limits_hold(snap, held, cfg)
    assert not broken, (d, broken)
    asset = cfg.assets[d.symbol]
    rm = cfg.risk_management
    quote = snap.quote(d.symbol)
    assert quote is not None and timedelta(0) <= NOW - quote.at <= timedelta(seconds=900), d
    collar = asset.risk.price_collar or cfg.asset_classes[asset.asset_class].price_collar
    assert d.price is not None and abs(d.price - quote.price) <= collar * quote.price, d
    # position: all quantity held and reserved, valued at the mark
    assert val[d.symbol] <= asset.risk.max_position_pct * eq, d
    cls = asset.asset_class
    cap = min(rm.max_single_asset_class, cfg.asset_classes[cls].max_allocation) * eq
    in_class = sum((v for s, v in val.items() if cfg.assets[s].asset_class is cls), D(0))
    assert in_class <= cap, d
    # unknown correlations count (the default unknown_correlation: correlated)
    corr = sum(
        (
            v
            for s, v in val.items()
            if s == d.symbol
            or (c := snap.correlations.get(d.symbol, s)) is None
            or abs(c) >= rm.correlation_threshold
        ),
        D(0),
    )
    assert corr <= rm.max_correlation_exposure * eq, d


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_decide_batch_when_anything_then_no_approval_breaks_a_limit(data: st.DataObject) -> None:
    """For any marks and any intent prices, replayed in order (some intents sent twice),
    every approved or resized decision keeps every cap valued at the mark, inside the
    collar of a recent mark, within its order caps, and repeats no approved opening."""
    snap = data.draw(portfolios())
    batch = data.draw(st.lists(intents(snap), min_size=1, max_size=8))
    for n, again in enumerate(data.draw(st.lists(st.sampled_from(batch), max_size=3))):
        batch.append(again.model_copy(update={"intent_id": f"{again.intent_id}-again-{n}"}))
    result = decide_batch(batch, snap, CFG, NOW)
    held: list[Reservation] = []
    _check_no_duplicates(result.decisions)
    for d in result.decisions:
        if d.status is Status.REJECTED:
            assert d.approved_quantity == 0
            continue
        res = result.snapshot.reservations[d.intent_id]
        assert res.quantity == d.approved_quantity <= d.requested_quantity
        _check_order_caps(d, snap, CFG)
        held.append(res)
        if d.reduce_only:
            pos = snap.positions[d.symbol]
            reduced = sum(r.quantity for r in held if r.reduce_only and r.symbol == d.symbol)
            assert reduced <= abs(pos.quantity)
            assert (d.side is Side.SELL) == pos.is_long
        else:
            _check_decision(d, snap, held, CFG)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_decide_when_resized_by_a_limit_then_one_more_lot_breaks_it(data: st.DataObject) -> None:
    """Resizing is maximal: the approved quantity plus one lot no longer fits."""
    snap = data.draw(portfolios())
    one = data.draw(intents(snap))
    (d,) = decide_batch([one], snap, CFG, NOW).decisions
    if d.status is not Status.RESIZED or not {r.code for r in d.reasons} & LIMIT_CODES:
        return
    lot = CFG.assets[d.symbol].risk.lot_size
    bigger = one.model_copy(update={"quantity": d.approved_quantity + lot})
    (d2,) = decide_batch([bigger], snap, CFG, NOW).decisions
    assert d2.approved_quantity < bigger.quantity


@given(
    st.decimals(min_value=0, max_value=10**9, places=8),
    st.sampled_from([D("0.00001"), D("0.001"), D(1), D(1000), D("0.5")]),
)
def test_floor_to_lot_when_applied_twice_then_unchanged(q: Decimal, lot: Decimal) -> None:
    """Rounding is idempotent, never rounds up, and loses less than one lot."""
    once = floor_to_lot(q, lot)
    assert floor_to_lot(once, lot) == once
    assert once <= q < once + lot
    assert once % lot == 0


def test_side_enum_round_trip() -> None:
    """Sides parse from their wire names."""
    assert Side("buy") is Side.BUY


@st.composite
def events(draw: st.DrawFn, snap: Snapshot) -> list:
    """Fills (of reservations or not), cancels and marks against ``snap``."""
    from schemas.messages import Cancel, Fill, Mark

    out: list = []
    ids = sorted(snap.reservations)
    for n in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["fill", "cancel", "mark", "stray"]))
        if kind in ("fill", "cancel") and ids:
            r = snap.reservations[draw(st.sampled_from(ids))]
            if kind == "cancel":
                out.append(Cancel(type="cancel", event_id=f"c{n}", intent_id=r.intent_id))
            else:
                part = r.quantity * draw(st.sampled_from([D("0.5"), D(1), D("1.5")]))
                out.append(
                    Fill(
                        type="fill",
                        event_id=f"f{n}",
                        intent_id=r.intent_id,
                        symbol=r.symbol,
                        side=r.side,
                        quantity=part,
                        price=r.price,
                    )
                )
        elif kind == "stray":
            sym = draw(st.sampled_from(SYMBOLS))
            out.append(
                Fill(
                    type="fill",
                    event_id=f"s{n}",
                    intent_id="none",
                    symbol=sym,
                    side=Side.BUY,
                    quantity=CFG.assets[sym].risk.min_size,
                    price=CFG.assets[sym].reference_price,
                )
            )
        else:
            sym = draw(st.sampled_from(SYMBOLS))
            out.append(
                Mark(
                    type="mark",
                    event_id=f"m{n}",
                    at=NOW,
                    prices={sym: CFG.assets[sym].reference_price * draw(factor)},
                )
            )
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_exposure_when_followed_incrementally_then_equals_from_scratch(data: st.DataObject) -> None:
    """Batches of decisions and events over time: the threaded exposure equals Exposure.of."""
    from consumers.gate_worker.batch import _follow
    from gate.exposure import Exposure
    from gate.ledger import apply_events

    snap = data.draw(portfolios())
    book = Exposure.of(snap, CFG)
    now = NOW
    for _ in range(3):
        # a plan never committed (a lost race, a pipelined batch dropped): its copy of
        # the exposure shares what the real one shares, and must leave it exact
        decide_batch(data.draw(st.lists(intents(snap), max_size=4)), snap, CFG, now, exposure=book)
        result = decide_batch(
            data.draw(st.lists(intents(snap), max_size=6)), snap, CFG, now, exposure=book
        )
        snap, book = result.snapshot, result.exposure
        assert book.same(Exposure.of(snap, CFG))
        now = now + timedelta(minutes=data.draw(st.sampled_from([0, 30, 61])))
        book = book.copy()
        applied = apply_events(snap, data.draw(events(snap)), CFG, now)
        book = _follow(book, snap, applied, CFG, now)
        snap = applied.snapshot
        assert book.same(Exposure.of(snap, CFG))


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, places=8),
    st.decimals(min_value=D("0.01"), max_value=10**10, places=2),
)
def test_fraction6_when_formatting_then_same_text_as_show_ratio(
    value: Decimal, scale: Decimal
) -> None:
    """The report's fast fraction formatter prints exactly what show(ratio()) prints."""
    from decimal import localcontext

    from gate.money import fraction6, ratio, show

    with localcontext() as ctx:
        ctx.prec = 60
        assert fraction6(value, scale) == show(ratio(value, scale))


def test_reprice_when_marks_move_after_plans_never_committed_then_exact() -> None:
    """A mark revalues its symbol's reservations through the exposure's index of
    openings, which plans never committed also wrote to: what the snapshot holds is
    revalued exactly, what it does not hold is ignored, other symbols untouched."""
    from consumers.gate_worker.batch import _follow
    from gate.exposure import Exposure
    from gate.ledger import apply_events
    from schemas.messages import Mark

    snap = snapshot("10000000")
    book = Exposure.of(snap, CFG)
    orders = [intent("BTC/USDT", quantity="0.01", agent_id=f"a{i}") for i in range(6)]
    orders += [intent("ETH/USDT", quantity="0.2", price="3900", agent_id=f"b{i}") for i in range(4)]
    # a plan that was never committed: its reservations are in the index, not the snapshot
    ghost = [intent("BTC/USDT", quantity="0.03", agent_id=f"g{i}") for i in range(3)]
    decide_batch(ghost, snap, CFG, NOW, exposure=book)
    result = decide_batch(orders, snap, CFG, NOW, exposure=book)
    assert sum(d.status is not Status.REJECTED for d in result.decisions) == 10
    snap, book = result.snapshot, result.exposure
    for price in ("101000", "99000", "120000"):  # up past the orders' price, down, up
        book = book.copy()
        mark = Mark(type="mark", event_id=f"m{price}", at=NOW, prices={"BTC/USDT": D(price)})
        applied = apply_events(snap, [mark], CFG, NOW)
        book = _follow(book, snap, applied, CFG, NOW)
        snap = applied.snapshot
        assert book.same(Exposure.of(snap, CFG)), price
    assert book.openings.size == 13  # the ghosts are indexed, and ignored


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, places=8),
    st.decimals(min_value=D("-1"), max_value=10**10, places=2),
)
def test_percent2_when_formatting_then_same_text_as_pct_of_ratio(
    value: Decimal, scale: Decimal
) -> None:
    """A limit reason's fast percentage prints exactly what pct(ratio()) prints."""
    from decimal import localcontext

    from gate.checks import pct
    from gate.money import percent2, ratio

    with localcontext() as ctx:
        ctx.prec = 60
        assert f"{percent2(value, scale)}%" == pct(ratio(value, scale))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_correlated_members_when_unknown_counts_then_same_as_the_general_walk(
    data: st.DataObject,
) -> None:
    """The one-pass listing of correlated symbols (unknown correlations count) names the
    same symbols in the same order as the general walk over classes and known pairs."""
    from gate.correlation import Correlated
    from gate.exposure import Exposure

    snap = data.draw(portfolios())
    batch = data.draw(st.lists(intents(snap), max_size=6))
    result = decide_batch(batch, snap, CFG, NOW)
    exposure = Exposure.of(result.snapshot, CFG)
    corr = Correlated(result.snapshot, exposure, CFG, NOW)
    limit = data.draw(st.integers(min_value=1, max_value=25))
    for symbol in SYMBOLS:
        walk = corr._collect(symbol, dict.fromkeys(exposure.symbol_class), limit)
        assert corr.members(symbol, limit) == walk, symbol


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_correlated_members_when_exposure_grows_between_calls_then_same_as_afresh(
    data: st.DataObject,
) -> None:
    """The exposed symbols are found lazily and remembered per revision: asked again and
    again while reservations land on the same exposure (as within a batch), every
    listing is what a fresh look at that exposure gives."""
    from gate.correlation import Correlated
    from gate.exposure import Exposure

    snap = data.draw(portfolios())
    batch = data.draw(st.lists(intents(snap), max_size=8))
    reserved = decide_batch(batch, snap, CFG, NOW).reserved
    exposure = Exposure.of(snap, CFG)
    corr = Correlated(snap, exposure, CFG, NOW)
    asked = st.lists(
        st.tuples(st.sampled_from(SYMBOLS), st.integers(min_value=1, max_value=25)),
        min_size=1,
        max_size=4,
    )
    for r in (None, *reserved):
        if r is not None:
            exposure.reserve(r, snap.account, CFG)
        for symbol, limit in data.draw(asked):
            afresh = Correlated(snap, exposure.copy(), CFG, NOW)
            assert corr.members(symbol, limit) == afresh.members(symbol, limit), symbol
