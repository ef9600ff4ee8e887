"""Intake: sort a batch of raw entries into intents, events and dead letters.

Bad input never stops a worker. Each entry is sorted in its own guard: whatever
cannot be used, for any reason (an oversize entry, one delivered more than the cap,
unparseable bytes, or any exception at all while looking at it), becomes that
entry's dead letter (the raw payload, truncated, and the error) and is acked with
the batch; where an ``intent_id`` can still be read, the agent also gets a
``rejected`` decision. The delivery cap is checked first, before any parsing; size
and depth are checked before a full parse (schemas.messages.check_shape).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import ValidationError

from consumers.bus.streams import Entry
from consumers.gate_worker.commit_plan import DeadEntry
from schemas.messages import (
    MAX_ENTRY_BYTES,
    AnyEvent,
    Decision,
    MessageError,
    Reason,
    ReasonCode,
    Side,
    Status,
    TradeIntent,
    _bounded,
    check_shape,
    intent_digest,
    is_intent_id,
    parse_event,
    parse_intent,
    raw_digest,
)

RAW_KEEP = 4096  # bytes of a bad payload kept in its dead letter
PortfolioEvent = AnyEvent
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
    # same intent id as an earlier entry of the batch, different content: handled after
    # this batch commits (then the id is marked and the entry is a reuse)
    later: list[Entry] = field(default_factory=list)
    digests: dict[bytes, str] = field(default_factory=dict)  # msg id -> intent digest
    oversize: int = 0


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


def _unexpected(exc: BaseException) -> str:
    return f"unexpected {type(exc).__name__} while reading the entry: {exc}"[:1000]


class _Sorter:
    def __init__(self, intents_stream: str, max_deliveries: int | None) -> None:
        self.intents_stream = intents_stream
        self.max_deliveries = max_deliveries
        self.out = Intake()
        self.seen_intents: dict[str, str] = {}  # intent id -> digest
        self.seen_events: set[str] = set()

    def sort(self, entry: Entry) -> None:
        is_intent = entry.stream == self.intents_stream
        try:
            error = self._refused(entry)
            if error is not None:
                raw = entry.raw or entry.head
                salvage = _scan(raw) if is_intent else event_salvage(raw)
                self._bad(entry, is_intent, error, salvage=salvage, digest="")
            elif is_intent:
                self._intent(entry)
            else:
                self._event(entry)
        except Exception as exc:  # the guard: nothing about one entry reaches the others
            salvage = {} if is_intent else event_salvage(entry.raw)
            self._bad(entry, is_intent, _unexpected(exc), salvage=salvage, digest="")

    def _refused(self, entry: Entry) -> str | None:
        """Why ``entry`` is not even parsed, if so: the cap, its size, a missing field."""
        cap = self.max_deliveries
        if cap is not None and entry.deliveries > cap:
            return f"delivered {entry.deliveries} times without being handled"
        if entry.oversize:
            self.out.oversize += 1
            return f"entry is {entry.oversize} bytes, over the {MAX_ENTRY_BYTES} limit"
        if entry.raw is None:
            return (
                "entry has no 'data' field"
                if entry.fields
                else "entry was trimmed from the stream before it was read"
            )
        return None

    def _intent(self, entry: Entry) -> None:
        assert entry.raw is not None
        try:
            intent = parse_intent(entry.raw)
        except (MessageError, ValidationError, ValueError, RecursionError) as exc:
            self._bad(
                entry,
                True,
                describe(exc),
                salvage=_salvage(entry.raw),
                digest=raw_digest(entry.raw),
            )
            return
        iid, digest = intent.intent_id, intent_digest(intent)
        seen = self.seen_intents.get(iid)
        if seen == digest:
            self.out.repeats_intents.append(entry)
        elif seen is not None:
            self.out.later.append(entry)
        else:
            self.seen_intents[iid] = digest
            self.out.digests[entry.msg_id] = digest
            self.out.intents.append((entry, intent))

    def _event(self, entry: Entry) -> None:
        assert entry.raw is not None
        try:
            event = parse_event(entry.raw)
        except (MessageError, ValidationError, ValueError, RecursionError) as exc:
            self._bad(entry, False, describe(exc), salvage=event_salvage(entry.raw), digest="")
            return
        if event.event_id in self.seen_events:
            self.out.repeats_events.append(entry)
        else:
            self.seen_events.add(event.event_id)
            self.out.events.append((entry, event))

    def _bad(
        self, entry: Entry, is_intent: bool, error: str, *, salvage: dict[str, Any], digest: str
    ) -> None:
        """A dead letter; a rejection too when the intent id is readable. ``digest``: of
        the bytes when they were parsed and refused, "" when they were not looked at
        (then an id already decided counts as a duplicate, never as reused)."""
        bad = Bad(entry, error)
        if not is_intent:
            bad.salvage = salvage
            self.out.bad_events.append(bad)
            return
        iid = salvage.get("intent_id")
        if is_intent_id(iid):
            assert isinstance(iid, str)
            seen = self.seen_intents.get(iid)
            if seen is not None and digest and seen != digest:
                self.out.later.append(entry)
                return
            if seen is None:
                bad.intent_id, bad.salvage = iid, salvage
                self.seen_intents[iid] = digest
                self.out.digests[entry.msg_id] = digest
        self.out.bad_intents.append(bad)


def sort_entries(
    entries: list[Entry], intents_stream: str, max_deliveries: int | None = None
) -> Intake:
    """Sort every entry; each lands in exactly one list of the result (``later``
    included), whatever its bytes. ``max_deliveries``: entries delivered more often
    are dead-lettered without being parsed."""
    sorter = _Sorter(intents_stream, max_deliveries)
    for entry in entries:
        sorter.sort(entry)
    return sorter.out


def dead_letter(entry: Entry, error: str, worker: str, now: datetime) -> DeadEntry:
    if entry.oversize:
        raw, size = entry.head, entry.oversize
    else:
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
        size = len(raw)
    payload = {
        "stream": entry.stream,
        "msg_id": entry.msg_id.decode(),
        "error": error,
        "raw": raw[:RAW_KEEP].decode("utf-8", errors="replace"),
        "raw_bytes": size,
        "truncated": size > RAW_KEEP,
        "deliveries": entry.deliveries,
        "worker": worker,
        "at": now.isoformat(),
    }
    source: Literal["i", "e"] = "i" if entry.stream.endswith(":intents") else "e"
    return DeadEntry(source, entry.msg_id, json.dumps(payload, separators=(",", ":")))


def _short(value: Any, limit: int = 128) -> str:
    """A salvaged text field, as text every JSON writer can encode (no lone surrogates)."""
    if not isinstance(value, str):
        return ""
    return value[:limit].encode("utf-8", "replace").decode("utf-8")


def rejection(
    intent_id: str,
    salvage: dict[str, Any],
    *,
    code: ReasonCode,
    message: str,
    now: datetime,
    config_hash: str,
    value: str | None = None,
    limit: str | None = None,
    checks: dict[str, Any] | None = None,
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
        reasons=(Reason(code=code, message=message[:1000], value=value, limit=limit),),
        checks=checks or {},
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
    try:  # the wire's bounds (finite, < 1e15, <= 18 places): every reader can parse it
        bounded = _bounded(d)
    except ValueError:
        return Decimal(0)
    return bounded if bounded >= 0 else Decimal(0)
