"""Where a gate worker's time goes: seconds spent in each stage of its loop.

Stages nest (deciding happens inside planning); each second is charged to the
innermost stage running, so the stages add up to the time the worker spent in them:

- ``read``: reading entries (XREADGROUP through the bounded read script);
- ``parse``: checking and parsing them into intents and events;
- ``decide``: :func:`gate.decide.decide_batch`, the pure decision;
- ``encode``: the rest of planning: events applied, intents screened, decisions,
  orders and state changes encoded, the commit's arguments built;
- ``send``: writing a pipelined commit to Redis;
- ``commit``: waiting for a commit's reply (the script's run, and the round trip);
- ``report``: after a commit: counts, logs, telemetry, publishing a durable outbox.

``riskgate bench`` prints them per intent; ``/metrics`` has them as
``riskgate_gate_stage_seconds_total{stage}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STAGES = ("read", "parse", "decide", "encode", "send", "commit", "report")


class Stages:
    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._running: list[str] = []
        self._since = 0.0

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        now = self.clock()
        if self._running:
            self._charge(now)
        self._running.append(stage)
        self._since = now
        try:
            yield
        finally:
            self._charge(self.clock())
            self._running.pop()

    def _charge(self, now: float) -> None:
        stage = self._running[-1]
        self.seconds[stage] = self.seconds.get(stage, 0.0) + (now - self._since)
        self._since = now

    def reset(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)


NO_STAGES = Stages()  # for a Planner used alone: timed, never read
