"""The whole state hash (HGETALL) into a :class:`gate.portfolio.Snapshot`, decoding only
the fields that changed since the last load; the control hash into flags and enable
overrides; the correlations key. An unreadable field raises
:class:`consumers.state.codec.StateError` (fail closed)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from consumers.bus import keys as k
from consumers.state.codec import (
    StateError,
    _dec,
    decode_account,
    decode_approvals,
    decode_position,
    decode_quote,
    decode_rate,
    decode_regime,
    decode_reservation,
)
from gate.layered import changed
from gate.portfolio import (
    Account,
    Approval,
    Correlations,
    Flags,
    Position,
    Quote,
    RateCount,
    Regime,
    Reservation,
    Snapshot,
)
from schemas.config import AssetClass


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


def _cached(name: str, raw: bytes | str, hit: tuple[bytes | str, Any] | None) -> Any:
    """The decoded field: the cache's when its raw value is the same, else decoded."""
    if hit is not None and hit[0] == raw:
        return hit[1]
    try:
        return _decode_field(name, _text(raw))
    except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
        raise StateError(f"state field {name!r} is unreadable: {exc!r}") from exc


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
        name = _text(raw_name)
        obj = _cached(name, raw_value, cache.get(raw_name) if cache is not None else None)
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


def apply_fields(
    held: Snapshot,
    version: int,
    fields: Mapping[str, bytes | str | None],
    cache: DecodeCache,
) -> tuple[Snapshot, frozenset[str]]:
    """``held`` with the state ``fields`` that changed since its version (a value of None:
    deleted) and the ``version`` they make; with the reservation ids they touched.

    Decodes only those fields (updating ``cache`` as :func:`decode_state` would) and
    shares everything else with ``held`` (gate.layered): it costs what changed.
    """
    account = held.account
    maps: dict[str, tuple[dict[Any, Any], list[Any]]] = {
        k.P_POSITION: ({}, []),
        k.P_RESERVATION: ({}, []),
        k.P_RATE: ({}, []),
        k.P_MARK: ({}, []),
        k.P_APPROVAL: ({}, []),
    }
    for name, raw in fields.items():
        if name == k.F_VERSION:
            continue
        prefix = next((p for p in maps if name.startswith(p)), None)
        if raw is None:
            cache.pop(name, None)
            cache.pop(name.encode(), None)
            if name == k.F_ACCOUNT:
                account = Account()
            elif prefix == k.P_APPROVAL:
                maps[prefix][1].append(_approval_key(name))
            elif prefix is not None:
                maps[prefix][1].append(name[len(prefix) :])
            continue
        key: bytes | str = name.encode()
        obj = _cached(name, raw, cache.get(key))
        cache[key] = (raw, obj)
        if name == k.F_ACCOUNT:
            account = obj
        elif prefix == k.P_APPROVAL:
            maps[prefix][0][obj[0]] = obj[1]
        elif prefix is not None:
            maps[prefix][0][name[len(prefix) :]] = obj
    touched = maps[k.P_RESERVATION]
    snapshot = Snapshot(
        version=version,
        account=account,
        positions=changed(held.positions, *maps[k.P_POSITION]),
        reservations=changed(held.reservations, *touched),
        rates=changed(held.rates, *maps[k.P_RATE]),
        marks=changed(held.marks, *maps[k.P_MARK]),
        approvals=changed(held.approvals, *maps[k.P_APPROVAL]),
    )
    return snapshot, frozenset(touched[0]) | frozenset(touched[1])


def _approval_key(name: str) -> tuple[str, str]:
    agent, symbol = json.loads(name[len(k.P_APPROVAL) :])
    return str(agent), str(symbol)


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
