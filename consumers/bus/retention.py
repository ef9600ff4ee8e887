"""Stream retention: trim what every group that needs an entry has acked, and stop
waiting for a group nobody runs (docs/OPERATIONS.md, "Retention").

Per stream, each consumer group *needs* its oldest pending entry (delivered, not acked)
or, with none pending, its next undelivered one (XINFO GROUPS, XPENDING). A group is
*live* while one of its consumers has talked to Redis within ``idle_ms`` (XINFO
CONSUMERS: reads, claims, acks); a group with no consumers, or only idle ones, is run by
nobody. Then, one pass:

1. everything below the lowest need of every group, and older than the stream's floor
   (``keep_ms``: decisions stay readable that long), is trimmed (approximately, whole
   radix-tree nodes, at most ``limit`` entries per XTRIM);
2. a group nobody runs holds entries back ``unconsumed_keep_ms`` at most: older ones
   are trimmed although it never acked them. Those are *dropped unconsumed*: counted
   exactly (the trim of phase 1 is finished exactly first, so the second XTRIM removes
   nothing else) and named with the groups that lost them. A stream with no group at
   all (``orphans="hold"``: the orders stream before an executor made its group) is
   held the same way; ``orphans="free"`` (dead letters) is trimmed by time alone.

Live groups are never overtaken: a slow consumer holds its entries (and its lag alert
fires); only a group nobody runs loses them, loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from redis import Redis
from redis.exceptions import ResponseError

from consumers.bus.entries import _text

StreamId = tuple[int, int]
TOP: StreamId = (2**64 - 1, 2**64 - 1)


@dataclass(frozen=True, slots=True)
class Hold:
    """What one group needs kept: ids from ``need`` on; ``live``: someone runs it."""

    group: str
    need: StreamId
    live: bool


@dataclass(slots=True)
class Trimmed:
    """One pass over one stream: entries removed, and those no group had acked."""

    stream: str
    trimmed: int = 0  # every group that needed them had acked them (or none needed them)
    dropped: int = 0  # a group nobody runs had not acked them
    groups: list[str] = field(default_factory=list)  # the groups that lost them


@dataclass(frozen=True, slots=True)
class Policy:
    """How long a stream keeps what it no longer owes any group."""

    keep_ms: int = 0  # floor: entries younger than this stay, acked or not
    unconsumed_keep_ms: int = 3_600_000  # a group nobody runs holds entries this long
    idle_ms: int = 60_000  # a consumer idle this long is not running the group
    limit: int = 100_000  # entries one XTRIM may remove
    orphans: Literal["hold", "free"] = "hold"  # a stream with no group


def parse_id(value: bytes | str) -> StreamId:
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


def show(sid: StreamId) -> str:
    return f"{sid[0]}-{sid[1]}"


def holds(redis: Redis, stream: str, idle_ms: int) -> list[Hold]:
    """Each group of ``stream`` with what it needs kept and whether anyone runs it."""
    try:
        groups = redis.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return []
    out = []
    for g in groups:
        name = _text(g["name"])
        last = parse_id(g["last-delivered-id"])
        need = (last[0], last[1] + 1)
        if g["pending"]:
            need = min(need, parse_id(redis.xpending(stream, name)["min"]))
        live = False
        if g["consumers"]:
            rows = redis.xinfo_consumers(stream, name)
            live = any(int(c["idle"]) < idle_ms for c in rows)
        out.append(Hold(name, need, live))
    return out


def trim_stream(redis: Redis, stream: str, now_ms: int, policy: Policy) -> Trimmed:
    """One retention pass over ``stream`` at ``now_ms`` (Redis's clock)."""
    out = Trimmed(stream)
    floor: StreamId = (max(0, now_ms - policy.keep_ms), 0)
    found = holds(redis, stream, policy.idle_ms)
    if found:
        acked = min(*(h.need for h in found), floor)
    else:
        acked = floor if policy.orphans == "free" else (0, 0)
    if acked > (0, 0):
        out.trimmed += _xtrim(redis, stream, acked, policy.limit)
    # nobody runs some group (or no group exists yet): it holds entries this long at most
    cap: StreamId = (max(0, now_ms - policy.unconsumed_keep_ms), 0)
    if found:
        kept = [h.need if h.live else max(h.need, cap) for h in found]
        target = min(*kept, floor)
        losers = [h.group for h in found if not h.live and _has(redis, stream, h.need, target)]
    else:
        target = min(cap, floor) if policy.orphans == "hold" else acked
        losers = ["(no group)"]
    if target > acked:
        out.trimmed += _xtrim(redis, stream, acked, 0, exact=True)  # what phase 1 left
        out.dropped = _xtrim(redis, stream, target, policy.limit)
        out.groups = losers if out.dropped else []
    return out


def _xtrim(redis: Redis, stream: str, minid: StreamId, limit: int, *, exact: bool = False) -> int:
    """XTRIM MINID: exact, or approximate (whole nodes) with at most ``limit`` entries."""
    if minid <= (0, 0):
        return 0
    if exact:
        return int(redis.xtrim(stream, minid=show(minid), approximate=False))
    return int(redis.xtrim(stream, minid=show(minid), approximate=True, limit=limit))


def _has(redis: Redis, stream: str, low: StreamId, high: StreamId) -> bool:
    """Whether ``stream`` has an entry from ``low`` up to (not including) ``high``."""
    if low >= high:
        return False
    rows: Any = redis.xrange(stream, min=show(low), max="+", count=1)
    return bool(rows) and parse_id(rows[0][0]) < high
