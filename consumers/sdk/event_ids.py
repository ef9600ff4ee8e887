"""Event ids derived from what an event is (docs/PROTOCOL.md, "Event ids"): the same
fill, cancel, deposit, resume or mark sent twice gets the same id, so it is applied once."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from schemas.messages import is_intent_id

#: The longest event id the gate accepts (schemas.messages.EventId).
MAX_EVENT_ID = 128
_TOKEN = re.compile(r"[^\x00-\x1f\x7f\s]+")
_FILL_ID = re.compile(r"[^\x00-\x1f\x7f\s:]+")


def _stamp(at: datetime | None) -> str:
    """An event's ``at`` on the wire: UTC ISO-8601 (a naive time is taken as UTC)."""
    when = at or datetime.now(UTC)
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.isoformat()


def token(name: str, value: object, *, colon: bool = True) -> str:
    """``value`` as a part of an event id: 1–128 printable characters without spaces (and
    without ``:`` when ``colon`` is false); else ValueError naming ``name``."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    pattern = _TOKEN if colon else _FILL_ID
    if len(text) > MAX_EVENT_ID or pattern.fullmatch(text) is None:
        allowed = "no spaces or control characters" + ("" if colon else ", no ':'")
        raise ValueError(f"{name} must be 1-{MAX_EVENT_ID} characters, {allowed}: {text!r}")
    return text


def derived_event_id(kind: str, *parts: str) -> str:
    """``<kind>:<part>:<part>...``; past 128 characters, ``<kind>:#`` and 40 hex chars of
    the sha256 of that text (the same parts give the same id either way)."""
    text = ":".join((kind, *parts))
    if len(text) <= MAX_EVENT_ID:
        return text
    return f"{kind}:#{hashlib.sha256(text.encode()).hexdigest()[:40]}"


def _intent_part(intent_id: str) -> str:
    if not is_intent_id(intent_id):
        raise ValueError(f"intent_id must be 1-128 chars of A-Za-z0-9._:-, got {intent_id!r}")
    return intent_id


def fill_event_id(intent_id: str, fill_id: str | int) -> str:
    """``fill:<intent_id>:<fill_id>``: ``fill_id`` may not contain ``:``, so the id splits
    unambiguously at its last colon (intent ids may contain colons)."""
    return derived_event_id("fill", _intent_part(intent_id), token("fill_id", fill_id, colon=False))


def cancel_event_id(intent_id: str) -> str:
    return derived_event_id("cancel", _intent_part(intent_id))


def mark_event_id(at: str, prices: Mapping[str, str], fx: Mapping[str, str]) -> str:
    """``mark:<at>:<16 hex chars>``: the digest of the prices and fx rates, decimals
    normalized, so two marks at the same time with different prices differ."""
    body = {
        "prices": {s: _normal(p) for s, p in sorted(prices.items())},
        "fx": {c: _normal(r) for c, r in sorted(fx.items())},
    }
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    return derived_event_id("mark", at, hashlib.sha256(text.encode()).hexdigest()[:16])


def _normal(value: str) -> str:
    try:
        return format(Decimal(value).normalize(), "f")
    except (ArithmeticError, ValueError):
        return value  # not a number: the gate refuses the mark; the id is still stable


def resume_reference(latches: Iterable[str]) -> str:
    """A resume's reference from what it clears (each latch's kind and time, a halt's
    event id): ``latches-`` and 24 hex chars of their sha256, in sorted order."""
    text = "\n".join(sorted(latches))
    return "latches-" + hashlib.sha256(text.encode()).hexdigest()[:24]
