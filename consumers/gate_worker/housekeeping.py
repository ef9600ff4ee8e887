"""Gate worker housekeeping between batches: publish the outbox, reclaim idle entries
(XAUTOCLAIM) from dead or stuck consumers, record entries trimmed before they were
handled, and trim the streams (every ``trim_every_s``: inputs once the gate, and the
phase monitor for events, acked them; decisions once the audit writer did and the floor
passed; orders once every executor group did; dead letters by age and count; a group
nobody runs holds entries ``unconsumed_keep_s`` at most: consumers/bus/retention.py)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from redis import Redis

from consumers.bus import keys as k
from consumers.bus.keys import Keys
from consumers.bus.retention import Policy, Trimmed, trim_stream
from consumers.bus.streams import BoundedReader, Entry
from consumers.gate_worker.settings import GateSettings
from consumers.state.outbox import Outbox


class Housekeeping:
    """GateWorker's housekeeping half (a mixin: the attributes are the worker's)."""

    redis: Redis
    keys: Keys
    settings: GateSettings
    outbox: Outbox
    reader: BoundedReader
    stats: Counter[str]
    log: Any
    clock: Callable[[], datetime]
    _next_reclaim: float
    _next_trim: float

    def process(self, entries: list[Entry]) -> None:
        raise NotImplementedError  # the worker's

    def publish(self) -> None:
        """A durable gate: publish the outbox once replicas hold it (consumers/state/outbox.py)."""
        box = self.outbox
        failures = box.wait_failures
        moved = box.release()
        self.stats["outbox_published"] += moved
        if box.wait_failures > failures:
            self.stats["outbox_wait_failures"] += box.wait_failures - failures
            self.log.warning(
                "replicas did not confirm in time: decisions and orders held in the outbox",
                acked=box.last_acked,
                replicas=box.replicas,
                timeout_ms=box.timeout_ms,
            )

    def maintain(self) -> None:
        now = time.monotonic()
        if now >= self._next_reclaim:
            self._next_reclaim = now + self.settings.reclaim_every_s
            self.publish()  # held entries, and what a worker that died left
            self.reclaim_idle()
        if now >= self._next_trim:
            self._next_trim = now + self.settings.trim_every_s
            self.trim()

    def reclaim_idle(self, max_pages: int = 20) -> int:
        """Take over entries idle for ``min_idle_ms`` (from dead or stuck consumers)."""
        total = 0
        for stream in (self.keys.intents, self.keys.events):
            cursor: bytes = b"0-0"
            for _ in range(max_pages):
                handled, cursor = self.reclaim_page(stream, cursor)
                total += handled
                if cursor in (b"0-0", "0-0"):
                    break
        return total

    def reclaim_page(
        self, stream: str, cursor: bytes, *, min_idle_ms: int | None = None
    ) -> tuple[int, bytes]:
        """One XAUTOCLAIM page from ``cursor``, handled: (entries, the next cursor).
        ``min_idle_ms`` 0: a new owner claiming everything pending (worker.take_over)."""
        idle = self.settings.min_idle_ms if min_idle_ms is None else min_idle_ms
        got = self.reader.reclaim(
            stream,
            k.GROUP_GATE,
            self.settings.consumer,
            min_idle_ms=idle,
            count=self.settings.batch,
            cursor=cursor,
        )
        for msg_id in got.deleted:
            self._lost(stream, msg_id)
        if got.entries:
            n = len(got.entries)
            if idle:
                self.stats["reclaimed"] += n
                self.log.info("reclaimed idle entries", stream=stream, count=n)
            else:
                self.stats["taken_over"] += n
                self.log.info("took over pending entries", stream=stream, count=n)
            self.process(got.entries)
        return len(got.entries), got.cursor

    def _lost(self, stream: str, msg_id: bytes) -> None:
        """A pending entry trimmed away before it was handled: record it, loudly."""
        self.stats["lost"] += 1
        self.log.error(
            "pending entry was trimmed before it was handled", stream=stream, msg_id=msg_id.decode()
        )
        payload = {
            "stream": stream,
            "msg_id": msg_id.decode(),
            "error": "entry was trimmed from the stream before it was handled",
            "raw": None,
            "worker": self.settings.consumer,
            "at": self.clock().isoformat(),
        }
        self.redis.xadd(self.keys.deadletter, {k.DATA: json.dumps(payload)})

    def trim(self) -> list[Trimmed]:
        """One retention pass over the portfolio's streams (not ``phases``: a handful of
        entries ever, which the phase monitor reads back). Returns what each pass did."""
        s, kk = self.settings, self.keys
        seconds, micros = self.redis.time()  # Redis's memory, Redis's clock
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        base = Policy(
            unconsumed_keep_ms=int(s.unconsumed_keep_s * 1000),
            idle_ms=int(s.idle_group_s * 1000),
            limit=s.trim_limit,
        )
        inputs = replace(base, keep_ms=int(s.intents_keep_s * 1000))
        plan = [
            (kk.intents, inputs),
            (kk.events, inputs),
            (kk.decisions, replace(base, keep_ms=int(s.decisions_keep_s * 1000))),
            (kk.orders, base),
            (kk.deadletter, replace(base, keep_ms=int(s.retention_s * 1000), orphans="free")),
        ]
        done = [trim_stream(self.redis, stream, now_ms, policy) for stream, policy in plan]
        over = self.redis.xtrim(
            kk.deadletter, maxlen=s.deadletter_max, approximate=True, limit=s.trim_limit
        )
        done[-1].trimmed += int(over)
        for t in done:
            self._trimmed(t)
        return done

    def _trimmed(self, t: Trimmed) -> None:
        """Count a pass; entries a group never acked are an error, said loudly."""
        role = t.stream.rsplit(":", 1)[-1]
        self.stats["trimmed"] += t.trimmed
        if t.dropped:
            self.stats[f"unconsumed:{role}"] += t.dropped
            self.log.error(
                "entries trimmed unconsumed: no one runs the group that needs them",
                stream=t.stream,
                groups=t.groups,
                count=t.dropped,
                unconsumed_keep_s=self.settings.unconsumed_keep_s,
                idle_group_s=self.settings.idle_group_s,
            )
