"""Encode the pure snapshot into Redis hash fields and back; diff two snapshots.

State hash fields hold JSON with decimals as strings (money never goes through a
float). A field that cannot be decoded raises :class:`StateError`: the worker then
decides nothing (fail closed) until an operator repairs the state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from consumers.bus import keys as k
from gate.portfolio import (
    Account,
    Approval,
    Correlations,
    Flags,
    Halt,
    Latch,
    Position,
    Quote,
    RateCount,
    Regime,
    Reservation,
    Snapshot,
)
from schemas.config import AssetClass
from schemas.messages import Side


class StateError(RuntimeError):
    """The portfolio state in Redis cannot be read; nothing may be decided on it."""


def _dec(value: Decimal) -> str:
    return str(value)


def _opt_dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _latch(latch: Latch | None) -> list[str] | None:
    return None if latch is None else [latch.at.isoformat(), _dec(latch.value)]


def _unlatch(raw: Any) -> Latch | None:
    if raw is None:
        return None
    at, value = raw
    return Latch(datetime.fromisoformat(at), Decimal(value))


def _halt(h: Halt | None) -> list[str] | None:
    return None if h is None else [h.at.isoformat(), h.event_id, h.reason]


def _unhalt(raw: Any) -> Halt | None:
    if raw is None:
        return None
    at, event_id, why = raw
    return Halt(datetime.fromisoformat(at), event_id, why)


def encode_account(a: Account) -> str:
    return json.dumps(
        {
            "cash": _dec(a.cash),
            "peak_equity": _dec(a.peak_equity),
            "day_start_equity": _dec(a.day_start_equity),
            "day": a.day.isoformat() if a.day else None,
            "realized_pnl": _dec(a.realized_pnl),
            "marked_at": a.marked_at.isoformat() if a.marked_at else None,
            "fx": {c: _dec(v) for c, v in a.fx.items()},
            "units": _dec(a.units),
            "peak_nav": _dec(a.peak_nav),
            "day_start_nav": _dec(a.day_start_nav),
            "stopped": _latch(a.stopped),
            "day_stopped": _latch(a.day_stopped),
            "fees": _dec(a.fees),
            "halted_by": _halt(a.halted_by),
        },
        separators=(",", ":"),
    )


def decode_account(raw: Mapping[str, Any]) -> Account:
    peak = Decimal(raw["peak_equity"])
    day_start = Decimal(raw["day_start_equity"])
    if "units" in raw:
        units, peak_nav = Decimal(raw["units"]), Decimal(raw["peak_nav"])
        day_nav = Decimal(raw["day_start_nav"])
    elif peak > 0:  # written before the return index: one unit per unit of peak equity
        units, peak_nav, day_nav = peak, Decimal(1), day_start / peak
    else:
        units = peak_nav = day_nav = Decimal(0)
    return Account(
        cash=Decimal(raw["cash"]),
        peak_equity=peak,
        day_start_equity=day_start,
        day=date.fromisoformat(raw["day"]) if raw.get("day") else None,
        realized_pnl=Decimal(raw["realized_pnl"]),
        marked_at=datetime.fromisoformat(raw["marked_at"]) if raw.get("marked_at") else None,
        fx={c: Decimal(v) for c, v in raw.get("fx", {}).items()},
        units=units,
        peak_nav=peak_nav,
        day_start_nav=day_nav,
        stopped=_unlatch(raw.get("stopped")),
        day_stopped=_unlatch(raw.get("day_stopped")),
        fees=Decimal(raw.get("fees", "0")),
        halted_by=_unhalt(raw.get("halted_by")),
    )


def encode_quote(q: Quote) -> str:
    return f"{q.price}|{iso(q.at)}"


def decode_quote(raw: str) -> Quote:
    price, at = raw.split("|")
    return Quote(Decimal(price), datetime.fromisoformat(at))


def encode_regime(value: str, as_of: datetime) -> str:
    return f"{value}|{as_of.isoformat()}"


def decode_regime(raw: str) -> Regime:
    """``value|as_of``; a bare value (written without a time) has no ``as_of``."""
    value, sep, at = raw.partition("|")
    return Regime(value, datetime.fromisoformat(at) if sep else None)


def encode_position(p: Position) -> str:
    return json.dumps(
        {
            "symbol": p.symbol,
            "asset_class": p.asset_class,
            "quote_currency": p.quote_currency,
            "quantity": _dec(p.quantity),
            "avg_price": _dec(p.avg_price),
            "mark_price": _dec(p.mark_price),
            "marked_at": p.marked_at.isoformat(),
            "opened_at": p.opened_at.isoformat(),
            "stop_price": _opt_dec(p.stop_price),
            "changed_at": p.changed_at.isoformat() if p.changed_at else None,
        },
        separators=(",", ":"),
    )


def decode_position(raw: Mapping[str, Any]) -> Position:
    return Position(
        symbol=raw["symbol"],
        asset_class=raw["asset_class"],
        quote_currency=raw["quote_currency"],
        quantity=Decimal(raw["quantity"]),
        avg_price=Decimal(raw["avg_price"]),
        mark_price=Decimal(raw["mark_price"]),
        marked_at=datetime.fromisoformat(raw["marked_at"]),
        opened_at=datetime.fromisoformat(raw["opened_at"]),
        stop_price=Decimal(raw["stop_price"]) if raw.get("stop_price") is not None else None,
        changed_at=datetime.fromisoformat(raw["changed_at"]) if raw.get("changed_at") else None,
    )


@lru_cache(maxsize=256)
def iso(moment: datetime) -> str:
    """isoformat, cached: a batch stamps many records with the same few moments."""
    return moment.isoformat()


#: Reservations are many and written on the hot path: a compact JSON array, in this order.
RESERVATION_FIELDS = (
    "intent_id",
    "agent_id",
    "symbol",
    "asset_class",
    "quote_currency",
    "side",
    "quantity",
    "price",
    "stop_price",
    "reduce_only",
    "expires_at",
)


def encode_reservation(r: Reservation) -> str:
    return json.dumps(
        [
            r.intent_id,
            r.agent_id,
            r.symbol,
            r.asset_class,
            r.quote_currency,
            r.side.value,
            _dec(r.quantity),
            _dec(r.price),
            _opt_dec(r.stop_price),
            r.reduce_only,
            iso(r.expires_at),
        ],
        separators=(",", ":"),
    )


def decode_reservation(raw: list[Any]) -> Reservation:
    (
        intent_id,
        agent_id,
        symbol,
        asset_class,
        quote,
        side,
        qty,
        price,
        stop,
        reduce_only,
        expires_at,
    ) = raw
    return Reservation(
        intent_id=intent_id,
        agent_id=agent_id,
        symbol=symbol,
        asset_class=asset_class,
        quote_currency=quote,
        side=Side(side),
        quantity=Decimal(qty),
        price=Decimal(price),
        stop_price=Decimal(stop) if stop is not None else None,
        reduce_only=bool(reduce_only),
        expires_at=datetime.fromisoformat(expires_at),
    )


def encode_rate(rc: RateCount) -> str:
    return f"{rc.window}:{rc.count}"


def decode_rate(raw: str) -> RateCount:
    window, count = raw.split(":")
    return RateCount(int(window), int(count))


def approval_field(key: tuple[str, str]) -> str:
    """``dup:["agent","symbol"]``: JSON, since agent ids and symbols may hold any separator."""
    return k.P_APPROVAL + json.dumps(list(key), separators=(",", ":"))


def encode_approvals(entries: tuple[Approval, ...]) -> str:
    return json.dumps(
        [[side.value, _dec(qty), iso(at)] for side, qty, at in entries], separators=(",", ":")
    )


def decode_approvals(name: str, raw: str) -> tuple[tuple[str, str], tuple[Approval, ...]]:
    agent, symbol = json.loads(name[len(k.P_APPROVAL) :])
    if not isinstance(agent, str) or not isinstance(symbol, str):
        raise TypeError("the approval key must be [agent, symbol]")
    entries = tuple(
        (Side(side), Decimal(qty), datetime.fromisoformat(at)) for side, qty, at in json.loads(raw)
    )
    if not entries:
        raise ValueError("no approvals")
    return (agent, symbol), tuple(sorted(entries, key=lambda e: e[2]))


# --- whole snapshot ---------------------------------------------------------------------


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


#: Decoded state fields by field name: (raw bytes, decoded object). Reloading with the
#: previous cache decodes only what changed, and unchanged entries come back as the
#: same objects (so callers can tell what changed by identity).
DecodeCache = dict[bytes | str, tuple[bytes | str, Any]]


def _decode_field(name: str, value: str) -> Any:
    if name == k.F_ACCOUNT:
        return decode_account(json.loads(value))
    if name.startswith(k.P_POSITION):
        return decode_position(json.loads(value))
    if name.startswith(k.P_RESERVATION):
        return decode_reservation(json.loads(value))
    if name.startswith(k.P_RATE):
        return decode_rate(value)
    if name.startswith(k.P_MARK):
        return decode_quote(value)
    if name.startswith(k.P_APPROVAL):
        return decode_approvals(name, value)
    return int(value) if name == k.F_VERSION else None


def decode_state(
    fields: Mapping[bytes | str, bytes | str],
    cache: DecodeCache | None = None,
) -> Snapshot:
    """Decode the state hash (HGETALL); an empty hash is a fresh, empty portfolio.

    The snapshot's flags and correlations (other keys) are left empty. With ``cache``
    (from the previous call), unchanged fields are not decoded again; the cache is
    updated in place to the fields given.
    """
    version = 0
    account = Account()
    positions: dict[str, Position] = {}
    reservations: dict[str, Reservation] = {}
    rates: dict[str, RateCount] = {}
    marks: dict[str, Quote] = {}
    approvals: dict[tuple[str, str], tuple[Approval, ...]] = {}
    fresh: DecodeCache = {}
    for raw_name, raw_value in fields.items():
        hit = cache.get(raw_name) if cache is not None else None
        name = _text(raw_name)
        if hit is not None and hit[0] == raw_value:
            obj = hit[1]
        else:
            try:
                obj = _decode_field(name, _text(raw_value))
            except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
                raise StateError(f"state field {name!r} is unreadable: {exc!r}") from exc
        fresh[raw_name] = (raw_value, obj)
        if name == k.F_VERSION:
            version = obj
        elif name == k.F_ACCOUNT:
            account = obj
        elif name.startswith(k.P_POSITION):
            positions[name[len(k.P_POSITION) :]] = obj
        elif name.startswith(k.P_RESERVATION):
            reservations[name[len(k.P_RESERVATION) :]] = obj
        elif name.startswith(k.P_RATE):
            rates[name[len(k.P_RATE) :]] = obj
        elif name.startswith(k.P_MARK):
            marks[name[len(k.P_MARK) :]] = obj
        elif name.startswith(k.P_APPROVAL):
            approvals[obj[0]] = obj[1]
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    # good_till order, which overdue() relies on (a hash has no order of its own)
    reservations = dict(sorted(reservations.items(), key=lambda kv: kv[1].expires_at))
    return Snapshot(
        version=version,
        account=account,
        positions=positions,
        reservations=reservations,
        rates=rates,
        marks=marks,
        approvals=approvals,
    )


def decode_control(
    fields: Mapping[bytes | str, bytes | str],
) -> tuple[Flags, dict[str, bool], dict[AssetClass, bool]]:
    """Flags plus the enable overrides (symbol -> on/off, class -> on/off)."""
    halted = False
    earnings: dict[str, date] = {}
    regimes: dict[str, Regime] = {}
    assets: dict[str, bool] = {}
    classes: dict[AssetClass, bool] = {}
    for raw_name, raw_value in fields.items():
        name, value = _text(raw_name), _text(raw_value)
        try:
            if name == k.F_HALTED:
                halted = value == "1"
            elif name.startswith(k.P_ASSET_ENABLED):
                assets[name[len(k.P_ASSET_ENABLED) :]] = value == "1"
            elif name.startswith(k.P_CLASS_ENABLED):
                classes[AssetClass(name[len(k.P_CLASS_ENABLED) :])] = value == "1"
            elif name.startswith(k.P_EARNINGS):
                earnings[name[len(k.P_EARNINGS) :]] = date.fromisoformat(value)
            elif name.startswith(k.P_REGIME):
                regimes[name[len(k.P_REGIME) :]] = decode_regime(value)
        except ValueError as exc:
            raise StateError(f"control field {name!r} is unreadable: {exc}") from exc
    return Flags(halted=halted, earnings=earnings, regimes=regimes), assets, classes


def encode_correlations(c: Correlations) -> str:
    return json.dumps(
        {
            "as_of": c.as_of.isoformat() if c.as_of else None,
            "pairs": {f"{a}|{b}": _dec(v) for (a, b), v in sorted(c.pairs.items())},
        },
        separators=(",", ":"),
    )


def decode_correlations(raw: bytes | str | None) -> Correlations:
    if raw is None:
        return Correlations()
    try:
        data = json.loads(raw)
        pairs = {}
        for key, value in data["pairs"].items():
            a, b = key.split("|")
            pairs[Correlations.key(a, b)] = Decimal(value)
        as_of = datetime.fromisoformat(data["as_of"]) if data.get("as_of") else None
    except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
        raise StateError(f"correlations are unreadable: {exc!r}") from exc
    return Correlations(pairs, as_of)


def changes(
    new: Snapshot,
    *,
    account: bool,
    positions: Iterable[str] = (),
    reservations: Iterable[str] = (),
    rates: Iterable[str] = (),
    marks: Iterable[str] = (),
    approvals: Iterable[tuple[str, str]] = (),
) -> tuple[dict[str, str], list[str]]:
    """State hash fields to set and delete for what a batch touched, as found in ``new``.

    A touched position, reservation, agent rate or (agent, symbol) approval memory
    absent from ``new`` is deleted.
    """
    hset: dict[str, str] = {}
    hdel: list[str] = []
    if account:
        hset[k.F_ACCOUNT] = encode_account(new.account)
    for symbol in positions:
        pos = new.positions.get(symbol)
        if pos is None:
            hdel.append(k.P_POSITION + symbol)
        else:
            hset[k.P_POSITION + symbol] = encode_position(pos)
    for intent_id in reservations:
        res = new.reservations.get(intent_id)
        if res is None:
            hdel.append(k.P_RESERVATION + intent_id)
        else:
            hset[k.P_RESERVATION + intent_id] = encode_reservation(res)
    for agent in rates:  # an agent no longer counted (its minute is over): deleted
        rc = new.rates.get(agent)
        if rc is None:
            hdel.append(k.P_RATE + agent)
        else:
            hset[k.P_RATE + agent] = encode_rate(rc)
    for symbol in marks:
        q = new.marks.get(symbol)
        if q is not None:
            hset[k.P_MARK + symbol] = encode_quote(q)
    for key in approvals:  # forgotten past the duplicate window: deleted
        entries = new.approvals.get(key)
        if entries is None:
            hdel.append(approval_field(key))
        else:
            hset[approval_field(key)] = encode_approvals(entries)
    return hset, hdel


def approvals_touched(before: Snapshot, after: Snapshot) -> set[tuple[str, str]]:
    """The (agent, symbol) approval memories that differ: added, changed or forgotten."""
    old, new = before.approvals, after.approvals
    if not old and not new:
        return set()
    return {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
