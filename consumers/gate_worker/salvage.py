"""What a bad entry still says: a bad intent's id, agent, symbol and side, a bad
event's type and id; read from bounded JSON, else scanned from the bytes."""

from __future__ import annotations

import json
import re
from typing import Any

from schemas.messages import MAX_ENTRY_BYTES, MessageError, check_shape

#: "intent_id": "<id>" in bytes that are not JSON (or not UTF-8): no parse needed.
_ID_FIELD = re.compile(rb'"intent_id"\s*:\s*"([A-Za-z0-9._:-]{1,128})"\s*[,}]')
_TEXT_FIELD = {
    name: re.compile(b'"' + name.encode() + rb'"\s*:\s*"([^"\\\x00-\x1f]{1,128})"')
    for name in ("agent_id", "symbol", "side")
}
#: what a bad event still says: its type and id (an unreadable fill halts the portfolio)
_EVENT_FIELD = {
    name: re.compile(b'"' + name.encode() + rb'"\s*:\s*"([^"\\\x00-\x1f]{1,128})"')
    for name in ("type", "event_id")
}


def _scan(raw: bytes) -> dict[str, Any]:
    """The readable string fields of bytes that are not a usable JSON object."""
    found = _ID_FIELD.search(raw)
    if found is None:
        return {}
    out: dict[str, Any] = {"intent_id": found.group(1).decode()}
    for name, pattern in _TEXT_FIELD.items():
        m = pattern.search(raw)
        if m is not None:
            out[name] = m.group(1).decode("utf-8", "replace")
    return out


def _salvage(raw: bytes | None) -> dict[str, Any]:
    """Whatever a bad intent still tells us: its id, agent, symbol, side.

    JSON first (bounded by check_shape; bytes that are not UTF-8 read with
    replacement), else a scan of the bytes for ``"intent_id": "..."``.
    """
    if raw is None or len(raw) > MAX_ENTRY_BYTES:
        return {}
    try:
        data = json.loads(check_shape(raw).decode("utf-8", "replace"))
    except (MessageError, ValueError, RecursionError):
        return _scan(raw)
    return data if isinstance(data, dict) else {}


def event_salvage(raw: bytes | None) -> dict[str, str]:
    """A bad event's ``type`` and ``event_id`` where they can still be read."""
    if raw is None:
        return {}
    found: dict[str, Any] = {}
    if len(raw) <= MAX_ENTRY_BYTES:
        try:
            data = json.loads(check_shape(raw).decode("utf-8", "replace"))
        except (MessageError, ValueError, RecursionError):
            data = None
        if isinstance(data, dict):
            found = data
    out = {}
    for name, pattern in _EVENT_FIELD.items():
        value = found.get(name)
        if not found:
            m = pattern.search(raw[:MAX_ENTRY_BYTES])
            value = m.group(1).decode("utf-8", "replace") if m else None
        if isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable():
            out[name] = value
    return out
