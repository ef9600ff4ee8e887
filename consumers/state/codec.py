"""Encode the pure snapshot's parts into Redis hash fields and back, one field at a time.

State hash fields hold JSON with decimals as strings (money never goes through a
float). A field that cannot be decoded raises :class:`StateError`: the worker then
decides nothing (fail closed) until an operator repairs the state. The whole hash is
decoded by :mod:`consumers.state.snapshot_codec`; what a batch writes back is
:mod:`consumers.state.changes`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson

from consumers.bus import keys as k
from gate.portfolio import (
    Account,
    Approval,
    Halt,
    Latch,
    Position,
    Quote,
    RateCount,
    Regime,
    Reservation,
)
from schemas.messages import Side

#: ``json.dumps(value, separators=(",", ":"))``, without making an encoder per call
compact = json.JSONEncoder(separators=(",", ":")).encode


def values_json(value: list[Any]) -> str:
    """Compact JSON of strings, booleans and nulls, written by orjson (a third of
    ``compact``'s cost): the reservations and approval memories a batch writes. Not for
    hash field names: non-ASCII text is written as UTF-8 where ``compact`` escapes it,
    and a field's name must never change. A lone surrogate (no parsed intent holds one)
    is escaped by ``compact``."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return compact(value)


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
    return compact(
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
        }
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
    return compact(
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
        }
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


def iso(moment: datetime) -> str:
    """``moment.isoformat()``; cached for UTC moments (the gate's clock, every expiry),
    and only for those: equal moments in other offsets compare and hash alike, and
    must each keep their own text."""
    if moment.tzinfo is UTC:
        return _iso_utc(moment)
    return moment.isoformat()


@lru_cache(maxsize=256)
def _iso_utc(moment: datetime) -> str:
    return moment.isoformat()


def encode_reservation(r: Reservation) -> str:
    """Reservations are many and written on the hot path: a compact JSON array, its
    fields in ``Reservation.FIELDS`` order."""
    return values_json(
        [
            r.intent_id,
            r.agent_id,
            r.symbol,
            r.asset_class,
            r.quote_currency,
            r.side._value_,
            _dec(r.quantity),
            _dec(r.price),
            _opt_dec(r.stop_price),
            r.reduce_only,
            iso(r.expires_at),
        ]
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
    return k.P_APPROVAL + compact(list(key))


def encode_approvals(entries: tuple[Approval, ...]) -> str:
    """One (agent, symbol)'s memory: ``[[side, quantity, at], ...]``. Each approval adds
    an entry and writes back the whole memory (up to DEPTH entries): the entries met
    before are not encoded again (:func:`_entry_text`)."""
    return "[" + ",".join(map(_entry_text, entries)) + "]"


#: id(entry) -> (the entry, its text). Keyed by identity, not value: equal Decimals and
#: datetimes in other notations compare (and hash) alike, and the text must be the
#: entry's own. Holding the entry keeps its id from being reused while it is here.
_ENTRY_TEXTS: dict[int, tuple[Approval, str]] = {}
ENTRY_TEXTS_MAX = 16384


def _entry_text(entry: Approval) -> str:
    known = _ENTRY_TEXTS.get(id(entry))
    if known is not None and known[0] is entry:
        return known[1]
    side, qty, at = entry
    text = values_json([side._value_, _dec(qty), iso(at)])
    if len(_ENTRY_TEXTS) >= ENTRY_TEXTS_MAX:
        _ENTRY_TEXTS.clear()
    _ENTRY_TEXTS[id(entry)] = (entry, text)
    return text


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
