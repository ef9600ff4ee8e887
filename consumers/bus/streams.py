"""Shared Redis Streams plumbing: groups, reads, reclaiming, delivery counts, trimming.

Entries and their delivery counts are in ``entries.py``, the byte-bounded reads the
gate uses in ``bounded_read.py``; this module re-exports both.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

from consumers.bus.bounded_read import READ_LUA, RECLAIM_LUA, BoundedReader
from consumers.bus.entries import (
    HEAD_KEEP,
    MAX_BATCH_BYTES,
    Entry,
    Reclaimed,
    _text,
    delivery_counts,
    entry_of,
    stream_time,
    to_entries,
)

__all__ = [
    "HEAD_KEEP",
    "LAG_COUNT_CAP",
    "MAX_BATCH_BYTES",
    "READ_LUA",
    "RECLAIM_LUA",
    "BoundedReader",
    "Entry",
    "Reclaimed",
    "delivery_counts",
    "ensure_group",
    "entry_of",
    "group_lag",
    "is_nogroup",
    "read_group",
    "reclaim",
    "safe_trim_id",
    "stream_time",
    "to_entries",
    "trim_consumed",
]


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


def read_group(
    redis: Redis,
    group: str,
    consumer: str,
    streams: Iterable[str],
    *,
    count: int,
    block_ms: int | None,
    pending: bool = False,
    after: str = "0",
) -> list[Entry]:
    """New entries (``>``), or with ``pending`` this consumer's own unacked ones after
    the id ``after``."""
    ids = dict.fromkeys(streams, after if pending else ">")
    reply = redis.xreadgroup(group, consumer, ids, count=count, block=None if pending else block_ms)  # type: ignore[arg-type]
    return to_entries(reply)


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
    entries = [entry_of(stream, i, f, counts.get(i, 1)) for i, f in live]
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
