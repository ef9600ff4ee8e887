"""A gate worker changing hands (the owner by lease: seat.py): taking a portfolio over
(claim every pending entry at once, one page a turn), standing down, and handing the
entries it still holds to the new owner."""

from __future__ import annotations

from collections import Counter
from typing import Any

from redis import Redis

from consumers.bus import keys as k
from consumers.bus.keys import Keys
from consumers.gate_worker.settings import GateSettings

HAND_OVER_MAX = 10_000  # entries one owner can hold: a few batches
HANDED_IDLE_MS = 10**12  # idle "forever": past any --min-idle-ms


class Ownership:
    """GateWorker's ownership half (a mixin: the attributes are the worker's)."""

    redis: Redis
    keys: Keys
    settings: GateSettings
    stats: Counter[str]
    log: Any
    _ready: bool
    _drain: bool
    _drain_from: dict[str, str]
    _takeover: list[tuple[str, bytes]]

    def _forget(self) -> None:
        raise NotImplementedError  # the worker's

    def reclaim_page(
        self, stream: str, cursor: bytes, *, min_idle_ms: int | None = None
    ) -> tuple[int, bytes]:
        raise NotImplementedError  # housekeeping's

    def take_over(self) -> None:
        """This worker now owns the portfolio (its lease): forget every cached view,
        and claim every pending entry of the group at once (XAUTOCLAIM, min idle 0),
        one page a turn, before our own and new ones. Claiming entries another worker
        may still hold is safe: exactly-once rests on the commit's decided and applied
        markers and its version check, not on who holds an entry."""
        self._forget()
        self._ready = False
        self._drain = True
        self._drain_from = {}
        kk = self.keys
        self._takeover = [(s, b"0-0") for s in (kk.intents, kk.events, kk.phases)]

    def stand_down(self) -> None:
        """This worker no longer owns the portfolio: drop what it knew and planned."""
        self._forget()
        self._takeover = []
        self._drain = True
        self._drain_from = {}

    def _take_over_page(self) -> int:
        stream, cursor = self._takeover[0]
        handled, cursor = self.reclaim_page(stream, cursor, min_idle_ms=0)
        if cursor in (b"0-0", "0-0"):
            self._takeover.pop(0)
        else:
            self._takeover[0] = (stream, cursor if isinstance(cursor, bytes) else cursor.encode())
        return max(handled, 1)  # work was done: the next page comes next round

    def hand_over(self, to: str) -> int:
        """We lost the portfolio to ``to``: give it the entries we still hold, marked
        long idle, so its next reclaim sweep (``--reclaim-every``) decides them instead
        of waiting ``--min-idle-ms`` for them (entries an owner read after its lease
        expired, while it stalled). JUSTID: their delivery counts stay as they are."""
        moved = 0
        for stream in (self.keys.intents, self.keys.events, self.keys.phases):
            rows = self.redis.xpending_range(
                stream, k.GROUP_GATE, "-", "+", HAND_OVER_MAX, self.settings.consumer
            )
            ids: list[Any] = [r["message_id"] for r in rows]
            if ids:
                self.redis.xclaim(
                    stream, k.GROUP_GATE, to, 0, ids, idle=HANDED_IDLE_MS, justid=True
                )
                moved += len(ids)
        if moved:
            self.stats["handed_over"] += moved
            self.log.info("pending entries handed to the new owner", to=to, count=moved)
        return moved
