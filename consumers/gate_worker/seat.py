"""One portfolio in a gate process: stand by until its lease is ours, then decide it.

A seat is a unit of :class:`~consumers.bus.rotation.Rotation` (host.py drives them):

- **Standby.** Every ``lease_renew_ms`` it tries to take the lease (``SET NX PX``). It
  reads nothing from the portfolio's streams meanwhile (its consumer never appears in
  the ``gate`` group), so standbys cost the owner nothing.
- **Takeover.** Once the lease is ours the worker forgets every cached view and first
  claims every pending entry of the group (XAUTOCLAIM with min idle 0, one page a turn):
  a dead owner's entries are decided at once, not after ``--min-idle-ms``. Then its own
  pending entries, then new ones.
- **Owner.** It renews the lease every ``lease_renew_ms`` (compare-and-renew); blocking
  reads are cut short so a renewal is never late because of one. Commits are fenced: the
  commit script refuses them once the lease is another's (commit.py). A renewal that
  fails or a fenced commit means another process owns the portfolio: stand by again.
- **Shutdown.** :meth:`Seat.close` releases the lease (compare-and-delete), so a standby
  takes over within one poll instead of one TTL.

After kill -9 of the owner a standby takes over within ``lease_ttl_ms`` (the lease
expires) + ``lease_renew_ms`` (its next poll).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.exceptions import RedisError

from consumers.bus.lease import Holder, Lease, LeaseLost, holder
from consumers.bus.redis_errors import count_redis_error
from consumers.bus.runtime import REDIS_TRANSIENT, Backoff
from consumers.gate_worker.worker import GateWorker


class Seat:
    def __init__(
        self,
        worker: GateWorker,
        lease: Lease,
        *,
        renew_ms: int,
        clock: Callable[[], float] = time.monotonic,
        may_take: Callable[[], bool] = lambda: True,
    ) -> None:
        self.worker = worker
        # fair shares (host.py): a free lease is left to the others while we hold our
        # share, but taken after ``defer_s`` if nobody did (they may not serve it)
        self.may_take = may_take
        self.defer_s = 2 * lease.ttl_ms / 1000 + renew_ms / 1000
        self.deferred_at: float | None = None
        self.unwanted = False  # taken after deferring: nobody else wanted it
        self.lease = lease
        self.renew_s = renew_ms / 1000
        self.clock = clock
        self.portfolio = worker.keys.portfolio
        self.log = worker.log
        self.next_lease = 0.0  # standby: the next attempt to take it; owner: to renew it
        self.retry_at = 0.0  # after an error: nothing before this
        self.backoff = Backoff()

    @property
    def owner(self) -> bool:
        return self.lease.held

    # -- as a unit of the rotation -----------------------------------------------------

    @property
    def reading(self) -> bool:
        return self.lease.held and self.clock() >= self.retry_at

    @property
    def wake_at(self) -> float:
        if not self.lease.held:
            return max(self.next_lease, self.retry_at)
        if self.retry_at > self.clock():
            return min(self.next_lease, self.retry_at)
        return self.next_lease

    def turn(self, block_ms: int) -> int:
        now = self.clock()
        try:
            if not self._hold(now):
                return 0
        except Exception as exc:  # one portfolio's trouble never stops the others
            transient = isinstance(exc, REDIS_TRANSIENT)
            if transient:
                count_redis_error(self.worker.stats, exc)  # by kind: failovers show
            else:
                self.worker.stats["errors"] += 1
            delay = self.backoff.next_delay()
            self.retry_at = now + delay
            what = "redis unavailable; retrying" if transient else "lease unusable; retrying"
            level = "warning" if transient else "error"
            getattr(self.log, level)(what, error=repr(exc), delay=round(delay, 3))
            return 0
        if now < self.retry_at:
            return 0
        block = min(block_ms, max(0, int((self.next_lease - now) * 1000)))
        try:
            done = self.worker.turn(block)
        except LeaseLost as exc:
            self._lost(str(exc), exc.holder)
            return 0
        if done.retry_in:
            self.retry_at = self.clock() + done.retry_in
        return done.handled

    def close(self) -> None:
        """Release the lease (if ours) so a standby takes over at once."""
        if not self.lease.held:
            return
        try:
            released = self.lease.release()
        except RedisError as exc:  # it expires by itself
            self.log.warning("lease not released; it expires by itself", error=str(exc))
            return
        self.worker.stats["lease_released"] += 1
        self.worker.stand_down()
        if released:
            self.log.info("lease released; a standby takes over at once")
        else:
            self.log.warning("lease already gone when released")

    # -- the lease -----------------------------------------------------------------------

    def _hold(self, now: float) -> bool:
        """Renew or take the lease when due; True while it is ours."""
        if self.lease.held:
            if now >= self.next_lease:
                self.next_lease = now + self.renew_s
                if not self.lease.renew():
                    self._lost("not renewed in time: it expired or another process holds it")
                    return False
                self.backoff.reset()
            return True
        if now < max(self.next_lease, self.retry_at):
            return False
        self.next_lease = now + self.renew_s
        if self._deferring(now):
            return False
        acquired = self.lease.acquire()
        self.unwanted = acquired and self.deferred_at is not None
        self.deferred_at = None
        self.backoff.reset()
        if self.worker.telemetry is not None:
            self.worker.telemetry.beat()  # a standby's turn against Redis: healthy
        if not acquired:
            return False
        self.worker.stats["lease_acquired"] += 1
        self.log.info(
            "lease acquired; taking the portfolio over",
            ttl_ms=self.lease.ttl_ms,
            renew_ms=int(self.renew_s * 1000),
        )
        self.worker.take_over()
        return True

    def _deferring(self, now: float) -> bool:
        """Over our share: leave the lease to the others for ``defer_s``."""
        if self.may_take():
            self.deferred_at = None
            return False
        if self.deferred_at is None:
            self.deferred_at = now
        if now - self.deferred_at < self.defer_s:
            if self.worker.telemetry is not None:
                self.worker.telemetry.beat()  # a deferring standby is healthy too
            return True
        return False  # nobody took it: take it ourselves

    def _lost(self, why: str, value: str | None = None) -> None:
        """Stand by; hand what we hold to the new owner (best effort: without it, its
        reclaim sweep takes the entries once they are ``--min-idle-ms`` idle)."""
        self.lease.forget()
        self.worker.stand_down()
        self.worker.stats["lease_lost"] += 1
        self.next_lease = self.clock() + self.renew_s
        self.log.warning("lease lost; standing by", why=why)
        try:
            found = (
                Holder.parse(value, -1) if value else holder(self.worker.redis, self.worker.keys)
            )
            if found is not None and found.owner != self.worker.settings.consumer:
                self.worker.hand_over(found.owner)
        except RedisError as exc:
            self.log.warning("pending entries not handed over", error=str(exc))
