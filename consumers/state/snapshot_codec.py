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
