"""Intake: sort a batch of raw entries into intents, events and dead letters.

Bad input never stops a worker. Each entry is sorted in its own guard: whatever
cannot be used, for any reason (an oversize entry, one delivered more than the cap,
unparseable bytes, or any exception at all while looking at it), becomes that
entry's dead letter (the raw payload, truncated, and the error) and is acked with
the batch; where an ``intent_id`` can still be read, the agent also gets a
``rejected`` decision. The delivery cap is checked first, before any parsing; size
and depth are checked before a full parse (schemas.messages.check_shape).

What a bad entry still says is read in ``salvage.py``; its dead letter and rejection
are written in ``rejections.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from consumers.bus.streams import Entry
from consumers.gate_worker.rejections import RAW_KEEP, dead_letter, rejection
from consumers.gate_worker.salvage import _salvage, _scan, event_salvage
from schemas.messages import (
    MAX_ENTRY_BYTES,
    AnyEvent,
    MessageError,
    TradeIntent,
    intent_digest,
    is_intent_id,
    parse_event,
    parse_intent,
    raw_digest,
)

__all__ = [
    "RAW_KEEP",
    "Bad",
    "Intake",
    "PortfolioEvent",
    "dead_letter",
    "describe",
    "event_salvage",
    "rejection",
    "sort_entries",
]

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
