"""One process, many portfolios: a loop that gives each portfolio's consumer its turn.

A *unit* is one portfolio's consumer (a gate seat, an audit writer, a phase monitor). It
handles its own errors (a failing unit backs off alone; the others go on) and says when
it next needs a turn: :attr:`Unit.reading` while it has stream entries to look for (a
portfolio's owner), :attr:`Unit.wake_at` for its timers (a lease to renew or poll, a
retry after an error).

Fairness: round robin, every reading unit one read (at most one batch) per round, in a
fixed order, so a flooded portfolio costs the others at most one batch of its own per
round and never starves them. Blocking: with one reading unit the round is that unit's
blocking read (``block_ms``, cut short when another unit's timer is due), exactly as a
process serving one portfolio always read. With several, a blocking read on one would
leave the others waiting and on a Redis Cluster one command cannot block on keys of
several portfolios (their hash tags differ), so rounds do not block; after a round that
found nothing the loop sleeps 1 ms, doubling up to ``idle_ms`` while nothing comes. An
idle process with N reading portfolios therefore makes about N x 1000 / idle_ms cheap
reads a second, and a lone intent waits at most ``idle_ms`` more than on a busy one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from consumers.bus.runtime import Shutdown

MAX_WAIT_S = 1.0  # longest sleep with nothing due: the registry is re-read this often at least


@dataclass(frozen=True, slots=True)
class Turn:
    """What one turn of a consumer did: entries handled, or how long to back off."""

    handled: int = 0
    retry_in: float = 0.0


class Unit(Protocol):
    @property
    def reading(self) -> bool:
        """True while it has stream entries to look for every round."""
        ...

    @property
    def wake_at(self) -> float:
        """Monotonic time at which its timers need a turn (math.inf: none)."""
        ...

    def turn(self, block_ms: int) -> int:
        """One turn (a read blocking up to ``block_ms``; 0: none); entries handled.
        Never raises for Redis or PostgreSQL being away: it backs off by itself."""
        ...

    def close(self) -> None:
        """Graceful end (hand a lease over); never raises."""
        ...


class Rotation:
    """Drives units round robin until shutdown (see the module's docstring)."""

    def __init__(
        self,
        *,
        block_ms: int,
        idle_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.block_ms = block_ms
        self.idle_ms = idle_ms
        self.clock = clock
        self.rounds = 0

    # -- to provide ------------------------------------------------------------------------

    def units(self) -> Sequence[Unit]:
        raise NotImplementedError

    def refresh(self) -> None:
        """Called before each round (a registry re-read when due)."""
        return None

    def beat(self) -> None:
        """Called after each round (the process's own liveness)."""
        return None

    # -- the loop --------------------------------------------------------------------------

    def round(self, stop: Callable[[], bool] = lambda: False) -> tuple[int, bool]:
        """One round: (entries handled, whether it blocked waiting for entries); it ends
        early, between two units, once ``stop()`` (a shutdown: no batch is left half done)."""
        self.rounds += 1
        units = list(self.units())
        now = self.clock()
        readers = [u for u in units if u.reading]
        if len(readers) == 1:  # the one that reads blocks, until another's timer is due
            only = readers[0]
            due = min((u.wake_at for u in units), default=math.inf)
            block = int(max(0.0, min(self.block_ms / 1000, due - now)) * 1000)
            handled = only.turn(block)
            for u in units:
                if stop():
                    break
                if u is not only and u.wake_at <= self.clock():
                    handled += u.turn(0)
            return handled, block > 0
        handled = 0
        for u in units:
            if stop():
                break
            if u.reading or u.wake_at <= self.clock():
                handled += u.turn(0)
        return handled, False

    def run(self, shutdown: Shutdown) -> None:
        idle = 0.0
        try:
            while not shutdown.requested:
                self.refresh()
                handled, blocked = self.round(lambda: shutdown.requested)
                self.beat()
                if handled or blocked:
                    idle = 0.0
                    continue
                units = list(self.units())
                now = self.clock()
                if any(u.reading for u in units):
                    idle = min(self.idle_ms / 1000, max(0.001, idle * 2))
                    wait = idle
                else:
                    wait = min((u.wake_at for u in units), default=math.inf) - now
                shutdown.wait(max(0.0, min(wait, MAX_WAIT_S)))
        finally:
            for u in list(self.units()):
                u.close()
