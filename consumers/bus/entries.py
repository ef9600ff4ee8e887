"""Stream entries as the workers hold them (:class:`Entry`: an oversize one kept as its
size and first bytes only), parsed from XREADGROUP and XAUTOCLAIM replies, with their
delivery counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from consumers.bus.keys import DATA
from schemas.messages import MAX_ENTRY_BYTES

#: Bytes of an oversize entry kept (for its dead letter); the rest is never held.
HEAD_KEEP = 4096
#: Default byte budget of one read (all streams together), besides its COUNT.
MAX_BATCH_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as read: ``raw`` is the ``data`` field (None if missing).

    ``oversize``: the entry's size (every field name and value) when it was over
    MAX_ENTRY_BYTES; then ``raw`` is None, ``fields`` empty and ``head`` holds its
    first HEAD_KEEP bytes: the rest was never read (bounded reads) or dropped at once.
    """

    stream: str
    msg_id: bytes
    raw: bytes | None
    fields: dict[bytes, bytes]
    deliveries: int = 1
    oversize: int = 0
    head: bytes = b""

    @property
    def ms(self) -> int:
        """Milliseconds timestamp of the entry id."""
        return int(self.msg_id.split(b"-", 1)[0])


def stream_time(entry: Entry) -> datetime:
    """When Redis took the entry in: its id's milliseconds, on Redis's clock."""
    ms = entry.ms
    return datetime.fromtimestamp(ms // 1000, UTC) + timedelta(milliseconds=ms % 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def entry_of(stream: str, msg_id: bytes, fields: dict[bytes, bytes], deliveries: int = 1) -> Entry:
    """An Entry, its payload dropped at once (kept: HEAD_KEEP bytes) when oversize."""
    size = sum(len(k) + len(v) for k, v in fields.items())
    if size <= MAX_ENTRY_BYTES:
        return Entry(stream, msg_id, fields.get(DATA), fields, deliveries)
    head = fields.get(DATA) or next(iter(fields.values()), b"")
    return Entry(stream, msg_id, None, {}, deliveries, size, head[:HEAD_KEEP])


def to_entries(reply: Any, deliveries: int = 1) -> list[Entry]:
    """Flatten an XREADGROUP reply ([[stream, [(id, fields), ...]], ...])."""
    out: list[Entry] = []
    for stream, items in reply or []:
        name = _text(stream)
        for msg_id, raw_fields in items:
            out.append(entry_of(name, msg_id, raw_fields or {}, deliveries))
    return out


def delivery_counts(
    redis: Redis, stream: str, group: str, consumer: str, ids: Sequence[bytes]
) -> dict[bytes, int]:
    """How many times each of ``ids`` (pending for ``consumer``) has been delivered."""
    if not ids:
        return {}
    rows = redis.xpending_range(
        stream, group, min=min(ids), max=max(ids), count=len(ids) * 2 + 10, consumername=consumer
    )
    wanted = set(ids)
    return {r["message_id"]: int(r["times_delivered"]) for r in rows if r["message_id"] in wanted}


@dataclass(frozen=True, slots=True)
class Reclaimed:
    entries: list[Entry]
    deleted: list[bytes]  # pending ids whose entries were trimmed away
    cursor: bytes
