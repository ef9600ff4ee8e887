"""Intake: sort a batch of raw entries into intents, events and dead letters.

Bad input never stops a worker: whatever cannot be parsed becomes a dead letter
(the raw payload, truncated, and the error) and is acked with the batch; where an
``intent_id`` can still be read, the agent also gets a ``rejected`` decision.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import ValidationError

from consumers.commit import DeadEntry
from consumers.streams import Entry
from schemas.messages import (
    INTENT_ID_PATTERN,
    MAX_ENTRY_BYTES,
    AnyEvent,
    Decision,
    MessageError,
    Reason,
    ReasonCode,
    Side,
    Status,
    TradeIntent,
    parse_event,
    parse_intent,
)

RAW_KEEP = 4096  # bytes of a bad payload kept in its dead letter
_INTENT_ID = re.compile(INTENT_ID_PATTERN)
PortfolioEvent = AnyEvent


@dataclass(slots=True)
class Bad:
    entry: Entry
    error: str
    intent_id: str | None = None
    salvage: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Intake:
    intents: list[tuple[Entry, TradeIntent]] = field(default_factory=list)
    events: list[tuple[Entry, PortfolioEvent]] = field(default_factory=list)
    bad_intents: list[Bad] = field(default_factory=list)
    bad_events: list[Bad] = field(default_factory=list)
    repeats_intents: list[Entry] = field(default_factory=list)  # same id twice in a batch
    repeats_events: list[Entry] = field(default_factory=list)


def describe(exc: Exception) -> str:
    """A one-line, human-readable description of a parse failure."""
    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors(include_url=False)[:5]:
            loc = ".".join(str(p) for p in e["loc"]) or "(message)"
            parts.append(f"{loc}: {e['msg']}")
        more = exc.error_count() - 5
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return str(exc)


def _salvage(raw: bytes | None) -> dict[str, Any]:
    """Whatever a bad intent still tells us: its id, agent, symbol, side."""
    if raw is None or len(raw) > MAX_ENTRY_BYTES:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def sort_entries(entries: list[Entry], intents_stream: str) -> Intake:
    """Parse every entry; each lands in exactly one list of the result."""
    out = Intake()
    seen_intents: set[str] = set()
    seen_events: set[str] = set()
    for entry in entries:
        is_intent = entry.stream == intents_stream
        try:
            if entry.raw is None:
                raise MessageError(
                    "entry has no 'data' field"
                    if entry.fields
                    else "entry was trimmed from the stream before it was read"
                )
            if is_intent:
                intent = parse_intent(entry.raw)
            else:
                event = parse_event(entry.raw)
        except (MessageError, ValidationError, ValueError) as exc:
            bad = Bad(entry, describe(exc))
            if is_intent:
                data = _salvage(entry.raw)
                iid = data.get("intent_id")
                if isinstance(iid, str) and _INTENT_ID.match(iid) and iid not in seen_intents:
                    bad.intent_id, bad.salvage = iid, data
                    seen_intents.add(iid)
                out.bad_intents.append(bad)
            else:
                out.bad_events.append(bad)
            continue
        if is_intent:
            if intent.intent_id in seen_intents:
                out.repeats_intents.append(entry)
            else:
                seen_intents.add(intent.intent_id)
                out.intents.append((entry, intent))
        elif event.event_id in seen_events:
            out.repeats_events.append(entry)
        else:
            seen_events.add(event.event_id)
            out.events.append((entry, event))
    return out


def dead_letter(entry: Entry, error: str, worker: str, now: datetime) -> DeadEntry:
    raw = (
        entry.raw
        if entry.raw is not None
        else json.dumps(
            {
                k.decode(errors="replace"): v.decode(errors="replace")
                for k, v in entry.fields.items()
            }
        ).encode()
    )
    payload = {
        "stream": entry.stream,
        "msg_id": entry.msg_id.decode(),
        "error": error,
        "raw": raw[:RAW_KEEP].decode("utf-8", errors="replace"),
        "raw_bytes": len(raw),
        "truncated": len(raw) > RAW_KEEP,
        "deliveries": entry.deliveries,
        "worker": worker,
        "at": now.isoformat(),
    }
    source: Literal["i", "e"] = "i" if entry.stream.endswith(":intents") else "e"
    return DeadEntry(source, entry.msg_id, json.dumps(payload, separators=(",", ":")))


def _short(value: Any, limit: int = 128) -> str:
    return value[:limit] if isinstance(value, str) else ""


def rejection(
    intent_id: str,
    salvage: dict[str, Any],
    *,
    code: ReasonCode,
    message: str,
    now: datetime,
    config_hash: str,
) -> Decision:
    """The rejected decision an agent gets for an intent that could not be decided."""
    side = salvage.get("side")
    return Decision.model_construct(
        intent_id=intent_id,
        agent_id=_short(salvage.get("agent_id")),
        symbol=_short(salvage.get("symbol"), 32),
        side=Side(side) if side in ("buy", "sell") else None,
        status=Status.REJECTED,
        requested_quantity=_decimal_or_zero(salvage.get("quantity")),
        approved_quantity=_decimal_or_zero(0),
        stop_price=None,
        take_profit=None,
        price=None,
        reduce_only=salvage.get("reduce_only") is True,
        reasons=(Reason(code=code, message=message[:1000]),),
        checks={},
        decided_at=now,
        config_hash=config_hash,
    )


def _decimal_or_zero(value: Any) -> Decimal:
    """The requested quantity an invalid intent named, if it is a usable one, else 0
    (the reason's message says what was wrong with it)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return Decimal(0)
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    return d if d.is_finite() and 0 <= d < Decimal("1e15") else Decimal(0)
