"""Telemetry instruments: a lock-free histogram (:class:`Buckets`), the loop's
:class:`Heartbeat`, and a consumer group's backlog (pending, lag in entries and seconds)."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from prometheus_client.core import HistogramMetricFamily
from redis import Redis
from redis.exceptions import ResponseError

from consumers.bus.streams import group_lag as undelivered


class Buckets:
    """A histogram observed without locks (one writer thread), exported cumulatively."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = list(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, doc: str, labels: dict[str, str]) -> HistogramMetricFamily:
        counts, total = list(self.counts), self.sum
        cumulative, running = [], 0
        for bound, n in zip([*self.bounds, float("inf")], counts, strict=True):
            running += n
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        fam = HistogramMetricFamily(name, doc, labels=list(labels))
        fam.add_metric(list(labels.values()), cumulative, total)
        return fam


class Heartbeat:
    """When the worker's loop last completed a turn against Redis."""

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.last = time.monotonic()  # a starting worker gets one period to connect
        self.last_wall: float | None = None

    def beat(self) -> None:
        self.last = time.monotonic()
        self.last_wall = time.time()

    def healthy(self) -> bool:
        return time.monotonic() - self.last <= self.stale_after_s


def _id_ms(value: Any) -> int | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    try:
        return int(text.split("-", 1)[0])
    except ValueError:
        return None


def group_backlog(redis: Redis, stream: str, group: str) -> dict[str, float | None]:
    """Pending entries, and lag in entries and in seconds (Redis 6.2 and 7).

    Seconds: from the last entry delivered to the group to the newest entry of the
    stream, by their ids' times; 0 when the group has read everything.
    """
    try:
        groups = redis.xinfo_groups(stream)
        last_id = _id_ms(redis.xinfo_stream(stream).get("last-generated-id"))
    except ResponseError:  # no stream yet
        return {"pending": 0.0, "lag": 0.0, "lag_seconds": 0.0}
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name != group:
            continue
        delivered = _id_ms(g.get("last-delivered-id"))
        lag = undelivered(redis, stream, g)
        behind = 0.0
        if last_id is not None and delivered is not None and lag != 0:
            behind = max(0.0, (last_id - delivered) / 1000)
        return {
            "pending": float(g["pending"]),
            "lag": float(lag),
            "lag_seconds": behind,
        }
    return {"pending": 0.0, "lag": None, "lag_seconds": 0.0}
