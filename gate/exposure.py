"""Aggregated exposure: heat, notional by class and symbol, reducible size.

Two parts, so a batch costs what changed rather than what exists:

- the *positions* part, recomputed when positions or the account change (events);
- the *reserved* part, kept up to date one reservation at a time: ``reserve`` when an
  order is approved, ``release`` when a fill, cancel or TTL ends it.

``Exposure.of`` builds both from scratch and is the definition the incremental path
must always equal (a property test holds them to it). Amounts are in the account
currency at the snapshot's fx rates; when those rates change, rebuild from scratch.

Opening orders count gross (a sell against a long is new exposure until filled);
only ``reduce_only`` orders shrink a position, and they never add exposure.

Reservations are valued at the more conservative of their order's price and the
symbol's latest mark (the larger notional, the larger risk to stop); positions at
their mark. When a mark moves under reserved quantity the reserved part is rebuilt.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from gate.money import ZERO
from gate.portfolio import Account, Reservation, Snapshot, equity, fx_rate, position_risk
from schemas.config import AssetsConfig
from schemas.messages import Side


@dataclass(slots=True)
class Part:
    heat: Decimal = ZERO
    total: Decimal = ZERO  # notional of every symbol, of any class or none
    class_notional: dict[str, Decimal] = field(default_factory=dict)
    symbol_notional: dict[str, Decimal] = field(default_factory=dict)
    symbol_quantity: dict[str, Decimal] = field(default_factory=dict)

    def add(
        self, symbol: str, asset_class: str | None, qty: Decimal, notional: Decimal, risk: Decimal
    ) -> None:
        self.heat += risk
        self.total += notional
        self.symbol_quantity[symbol] = self.symbol_quantity.get(symbol, ZERO) + qty
        self.symbol_notional[symbol] = self.symbol_notional.get(symbol, ZERO) + notional
        if asset_class is not None:
            self.class_notional[asset_class] = self.class_notional.get(asset_class, ZERO) + notional

    def copy(self) -> Part:
        return Part(
            self.heat,
            self.total,
            dict(self.class_notional),
            dict(self.symbol_notional),
            dict(self.symbol_quantity),
        )


def reference_prices(snapshot: Snapshot) -> dict[str, Decimal]:
    """The latest mark per symbol (:meth:`Snapshot.quote`), for every symbol that has one."""
    refs = {s: p.mark_price for s, p in snapshot.positions.items()}
    refs.update((s, q.price) for s, q in snapshot.marks.items())
    return refs


def reservation_amounts(
    r: Reservation, account: Account, config: AssetsConfig, mark: Decimal | None = None
) -> tuple[Decimal, Decimal]:
    """(notional, risk to stop) of an opening reservation, in the account currency,
    at the more conservative of its price and ``mark``."""
    fx = fx_rate(r.quote_currency, account, config)
    price = r.price if mark is None else max(r.price, mark)
    notional = r.quantity * price * fx
    if r.stop_price is None:
        return notional, notional
    distance = abs(r.price - r.stop_price)
    if mark is not None:
        distance = max(distance, abs(mark - r.stop_price))
    return notional, r.quantity * distance * fx


@dataclass(slots=True)
class Openings:
    """Which opening reservations each symbol has had: ids by symbol, so a mark that
    moves one symbol revalues that symbol's reservations, not every one.

    Only ever added to, and shared by an exposure and every copy made of it (a copy
    per batch must not cost the index): it may name ids that a snapshot no longer has
    (released, or reserved by a plan that was never committed) but never misses one
    that a snapshot counted here has. Readers look each id up in the snapshot; the
    index is rebuilt from one once stale ids outnumber live ones.
    """

    by_symbol: dict[str, dict[str, None]] = field(default_factory=dict)
    size: int = 0

    def add(self, r: Reservation) -> None:
        ids = self.by_symbol.setdefault(r.symbol, {})
        if r.intent_id not in ids:
            ids[r.intent_id] = None
            self.size += 1

    def rebuild(self, reservations: Iterable[Reservation]) -> None:
        self.by_symbol, self.size = {}, 0
        for r in reservations:
            if not r.reduce_only:
                self.add(r)


@dataclass(slots=True)
class Exposure:
    equity: Decimal
    positions: Part
    reserved: Part
    symbol_class: dict[str, str | None]  # every symbol that has or had exposure
    pending_reduce: dict[str, Decimal]
    oldest_mark: datetime | None
    fx: Mapping[str, Decimal]  # the account fx the amounts were computed with
    refs: Mapping[str, Decimal]  # the marks reservations were valued at
    class_symbols: dict[str, dict[str, None]] = field(default_factory=dict)  # ordered sets
    revision: int = 0  # bumped when a symbol gains exposure from none (see Correlated)
    openings: Openings = field(default_factory=Openings)  # shared by copies: see Openings

    def _seen(self, symbol: str, asset_class: str | None) -> None:
        if symbol not in self.symbol_class:
            self.symbol_class[symbol] = asset_class
            if asset_class is not None:
                self.class_symbols.setdefault(asset_class, {})[symbol] = None

    @classmethod
    def of(cls, snapshot: Snapshot, config: AssetsConfig) -> Exposure:
        """From scratch: every position and every reservation (one past its order's
        ``good_till`` too: it holds risk until the order is confirmed ended)."""
        exp = cls(
            ZERO, Part(), Part(), {}, {}, None, snapshot.account.fx, reference_prices(snapshot)
        )
        exp.revalue_positions(snapshot, config)
        for r in snapshot.reservations.values():
            exp.reserve(r, snapshot.account, config)
        return exp

    def rebase(
        self,
        old: Snapshot,
        new: Snapshot,
        config: AssetsConfig,
        touched: Collection[str] | None = None,
    ) -> Exposure:
        """This exposure (of every reservation in ``old``) moved to ``new``, by identity.

        Entries that are the same objects in both are not touched, so a reload that
        reuses decoded objects costs what changed; with ``touched`` (the only
        reservation ids that may differ) it looks at those alone. Rates moved: built
        from scratch.
        """
        if dict(new.account.fx) != dict(old.account.fx) or self.repriced(new):
            return Exposure.of(new, config)
        out = self.copy()
        out.refs = reference_prices(new)  # equal for every symbol with reserved quantity
        if touched is None:
            keys: Iterable[str] = old.reservations.keys() | new.reservations.keys()
        else:
            keys = touched
        for key in keys:
            was, now = old.reservations.get(key), new.reservations.get(key)
            if was is not now:
                if was is not None:
                    out.release(was, old.account, config)
                if now is not None:
                    out.reserve(now, new.account, config)
        positions_moved = len(old.positions) != len(new.positions) or any(
            new.positions.get(s) is not p for s, p in old.positions.items()
        )
        if positions_moved or new.account is not old.account:
            out.revalue_positions(new, config)
        return out

    def repriced(self, snapshot: Snapshot, symbols: Iterable[str] | None = None) -> bool:
        """Has the mark of a symbol with reserved quantity moved (in ``symbols``, or any)?"""
        refs = reference_prices(snapshot)
        held = self.reserved.symbol_quantity
        names = held if symbols is None else symbols
        return any(held.get(s, ZERO) != 0 and refs.get(s) != self.refs.get(s) for s in names)

    def reprice(self, snapshot: Snapshot, symbols: Iterable[str], config: AssetsConfig) -> None:
        """Revalue the reserved part at ``snapshot``'s marks for ``symbols`` whose mark
        moved; ``snapshot.reservations`` must be exactly the reservations counted here.

        Costs the moved symbols' reservations (a difference per reservation: exact, no
        division), found through :class:`Openings`; nothing when no reserved mark moved.
        """
        refs = reference_prices(snapshot)
        held = self.reserved.symbol_quantity
        moved = {s for s in symbols if held.get(s, ZERO) != 0 and refs.get(s) != self.refs.get(s)}
        old, self.refs = self.refs, refs
        if not moved:
            return
        live = snapshot.reservations
        if self.openings.size > 2 * len(live) + 1024:  # mostly stale ids: start afresh
            self.openings.rebuild(live.values())
        acc = snapshot.account
        index = self.openings.by_symbol
        if sum(len(index.get(s, ())) for s in moved) * 2 > len(live):  # most of them: scan
            found: Iterable[Reservation] = (r for r in live.values() if r.symbol in moved)
        else:
            found = (
                r
                for s in moved
                for intent_id in index.get(s, ())
                # released, or reserved by a plan never committed: not in the snapshot
                if (r := live.get(intent_id)) is not None and r.symbol == s
            )
        for r in found:
            if not r.reduce_only:
                n0, k0 = reservation_amounts(r, acc, config, old.get(r.symbol))
                n1, k1 = reservation_amounts(r, acc, config, refs.get(r.symbol))
                self.reserved.add(r.symbol, r.asset_class, ZERO, n1 - n0, k1 - k0)

    def copy(self) -> Exposure:
        return Exposure(
            self.equity,
            self.positions.copy(),
            self.reserved.copy(),
            dict(self.symbol_class),
            dict(self.pending_reduce),
            self.oldest_mark,
            self.fx,
            self.refs,
            {c: dict(s) for c, s in self.class_symbols.items()},
            self.revision,
            self.openings,  # shared, not copied
        )

    # -- changes -------------------------------------------------------------------------

    def revalue_positions(self, snapshot: Snapshot, config: AssetsConfig) -> None:
        """Recompute the positions part (and equity) for ``snapshot``'s positions."""
        acc = snapshot.account
        part = Part()
        oldest = None
        for p in snapshot.positions.values():
            fx = fx_rate(p.quote_currency, acc, config)
            qty = abs(p.quantity)
            part.add(
                p.symbol, p.asset_class, qty, qty * p.mark_price * fx, position_risk(p, acc, config)
            )
            self._seen(p.symbol, p.asset_class)
            if oldest is None or p.marked_at < oldest:
                oldest = p.marked_at
        self.positions = part
        self.oldest_mark = oldest
        self.equity = equity(snapshot, config)

    def reserve(
        self,
        r: Reservation,
        account: Account,
        config: AssetsConfig,
        amounts: tuple[Decimal, Decimal] | None = None,
    ) -> None:
        """Count an approved order's risk (or, if reduce-only, its claim on the position).

        ``amounts``: its :func:`reservation_amounts` at this exposure's mark, when the
        caller has them already (the same numbers, computed the same way).
        """
        if r.reduce_only:
            self.pending_reduce[r.symbol] = self.pending_reduce.get(r.symbol, ZERO) + r.quantity
            return
        if amounts is None:
            amounts = reservation_amounts(r, account, config, self.refs.get(r.symbol))
        notional, risk = amounts
        self.openings.add(r)
        if self.symbol_notional(r.symbol) <= 0:
            self.revision += 1
        self.reserved.add(r.symbol, r.asset_class, r.quantity, notional, risk)
        self._seen(r.symbol, r.asset_class)

    def release(self, r: Reservation, account: Account, config: AssetsConfig) -> None:
        """Undo :meth:`reserve` exactly (same fx: rebuild instead if rates moved)."""
        if r.reduce_only:
            self.pending_reduce[r.symbol] = self.pending_reduce.get(r.symbol, ZERO) - r.quantity
            return
        notional, risk = reservation_amounts(r, account, config, self.refs.get(r.symbol))
        self.reserved.add(r.symbol, r.asset_class, -r.quantity, -notional, -risk)

    # -- reads ---------------------------------------------------------------------------

    @property
    def heat(self) -> Decimal:
        return self.positions.heat + self.reserved.heat

    @property
    def total_notional(self) -> Decimal:
        return self.positions.total + self.reserved.total

    def class_notional(self, asset_class: str) -> Decimal:
        return self.positions.class_notional.get(asset_class, ZERO) + (
            self.reserved.class_notional.get(asset_class, ZERO)
        )

    def symbol_notional(self, symbol: str) -> Decimal:
        return self.positions.symbol_notional.get(symbol, ZERO) + (
            self.reserved.symbol_notional.get(symbol, ZERO)
        )

    def symbol_quantity(self, symbol: str) -> Decimal:
        return self.positions.symbol_quantity.get(symbol, ZERO) + (
            self.reserved.symbol_quantity.get(symbol, ZERO)
        )

    def reducible(self, snapshot: Snapshot, symbol: str, side: Side) -> Decimal:
        """How much of the position a reduce-only order on ``side`` may still close."""
        pos = snapshot.positions.get(symbol)
        if pos is None or (side is Side.SELL) != pos.is_long:
            return ZERO
        return max(ZERO, abs(pos.quantity) - self.pending_reduce.get(symbol, ZERO))

    def same(self, other: Exposure) -> bool:
        """Equal totals (zero entries ignored): the incremental path vs from scratch."""

        def nz(d: Mapping[str, Decimal]) -> dict[str, Decimal]:
            return {k: v for k, v in d.items() if v != 0}

        return (
            self.equity == other.equity
            and self.positions.heat == other.positions.heat
            and self.total_notional == other.total_notional
            and self.reserved.heat == other.reserved.heat
            and all(
                nz(getattr(a, f)) == nz(getattr(b, f))
                for a, b in ((self.positions, other.positions), (self.reserved, other.reserved))
                for f in ("class_notional", "symbol_notional", "symbol_quantity")
            )
            and nz(self.pending_reduce) == nz(other.pending_reduce)
            and self.oldest_mark == other.oldest_mark
        )
