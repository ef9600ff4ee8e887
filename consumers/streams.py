"""Shared Redis Streams plumbing: groups, reads, reclaiming, delivery counts, trimming."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

from consumers.keys import DATA


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as read: ``raw`` is the ``data`` field (None if missing)."""

    stream: str
    msg_id: bytes
    raw: bytes | None
    fields: dict[bytes, bytes]
    deliveries: int = 1

    @property
    def ms(self) -> int:
        """Milliseconds timestamp of the entry id."""
        return int(self.msg_id.split(b"-", 1)[0])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def ensure_group(redis: Redis, stream: str, group: str, start: str = "0") -> bool:
    """Create stream and group if absent. True when created, False if it existed."""
    try:
        redis.xgroup_create(stream, group, id=start, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise
    return True


def is_nogroup(exc: BaseException) -> bool:
    return isinstance(exc, ResponseError) and "NOGROUP" in str(exc)


def to_entries(reply: Any, deliveries: int = 1) -> list[Entry]:
    """Flatten an XREADGROUP reply ([[stream, [(id, fields), ...]], ...])."""
    out: list[Entry] = []
    for stream, items in reply or []:
        name = _text(stream)
        for msg_id, raw_fields in items:
            fields = raw_fields or {}
            out.append(Entry(name, msg_id, fields.get(DATA), fields, deliveries))
    return out


def read_group(
    redis: Redis,
    group: str,
    consumer: str,
    streams: Iterable[str],
    *,
    count: int,
    block_ms: int | None,
    pending: bool = False,
) -> list[Entry]:
    """New entries (``>``), or with ``pending`` this consumer's own unacked ones (``0``)."""
    ids = dict.fromkeys(streams, "0" if pending else ">")
    reply = redis.xreadgroup(group, consumer, ids, count=count, block=None if pending else block_ms)  # type: ignore[arg-type]
    return to_entries(reply)


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


def reclaim(
    redis: Redis,
    stream: str,
    group: str,
    consumer: str,
    *,
    min_idle_ms: int,
    count: int,
    cursor: bytes | str = b"0-0",
) -> Reclaimed:
    """One XAUTOCLAIM step from ``cursor``, with each claimed entry's delivery count."""
    reply = redis.xautoclaim(stream, group, consumer, min_idle_ms, cursor, count=count)
    next_cursor, items = reply[0], reply[1]
    deleted = list(reply[2]) if len(reply) > 2 else []
    live = [(i, f) for i, f in items if f]
    deleted += [i for i, f in items if not f]  # Redis < 7 returns trimmed entries as nil
    counts = delivery_counts(redis, stream, group, consumer, [i for i, _ in live])
    entries = [Entry(stream, i, f.get(DATA), f, counts.get(i, 1)) for i, f in live]
    return Reclaimed(entries, deleted, next_cursor)


LAG_COUNT_CAP = 100_000


def group_lag(redis: Redis, stream: str, group: dict[str, Any]) -> int:
    """Entries of ``stream`` not yet delivered to ``group`` (an XINFO GROUPS row).

    Redis 7 reports it (``lag``); Redis 6.2 does not, so count the entries after the
    group's last-delivered id (capped at LAG_COUNT_CAP: enough to see it is behind).
    """
    lag = group.get("lag")
    if lag is not None:
        return int(lag)
    after = _text(group["last-delivered-id"])
    rows = redis.xrange(stream, min=f"({after}", max="+", count=LAG_COUNT_CAP)
    return len(rows or [])


def safe_trim_id(redis: Redis, stream: str) -> bytes | None:
    """The lowest id any group still needs: its oldest pending entry or next undelivered.

    Entries below it are acked by every group; None when the stream has no groups.
    """
    try:
        groups = redis.xinfo_groups(stream)
    except ResponseError:
        return None
    if not groups:
        return None
    floor: tuple[int, int] | None = None
    for g in groups:
        last = _parse_id(g["last-delivered-id"])
        candidate = (last[0], last[1] + 1)
        if g["pending"]:
            summary = redis.xpending(stream, g["name"])
            candidate = min(candidate, _parse_id(summary["min"]))
        floor = candidate if floor is None else min(floor, candidate)
    assert floor is not None
    return f"{floor[0]}-{floor[1]}".encode()


def _parse_id(value: bytes | str) -> tuple[int, int]:
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


def trim_consumed(redis: Redis, stream: str, keep_s: float, *, exact: bool = False) -> int:
    """Trim entries older than ``keep_s``, but never one a group has not acked yet.

    Approximate by default (whole radix-tree nodes, cheap); ``exact`` trims to the id.
    """
    floor = (int((time.time() - keep_s) * 1000), 0)
    safe = safe_trim_id(redis, stream)
    if safe is not None:
        floor = min(_parse_id(safe), floor)
    return int(redis.xtrim(stream, minid=f"{floor[0]}-{floor[1]}", approximate=not exact))
