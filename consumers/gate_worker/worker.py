"""The gate worker: read intents and events, decide, commit atomically, repeat.

Ack policy: an entry is acked only inside the commit script that writes its output
(decision, order, applied event, or dead letter). A worker killed anywhere leaves
its entries pending; any worker reclaims them after ``min_idle_ms`` (XAUTOCLAIM) and
the commit's "decided" markers make the second attempt a no-op for what was done.

Error policy: Redis unreachable -> nothing acked, retry with backoff and jitter;
NOGROUP -> recreate the groups and say so; unreadable state -> decide nothing;
anything unexpected -> logged, nothing approved, the batch retried later.

Here: one turn of the loop (:meth:`GateWorker.turn`) and the loop of a worker that
serves one portfolio alone. Settings and their check are in ``settings.py``, the phases
stream in ``phases.py``, reclaim/trim/publish in ``housekeeping.py``, one batch (plan,
commit, retry, report) in ``handle.py``, taking over and handing over in
``ownership.py``; ``riskgate gate`` runs workers in a host (``host.py``: many
portfolios, each owned by lease, ``seat.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import ResponseError

from consumers.bus import keys as k
from consumers.bus.agent_signing import intent_verifier
from consumers.bus.keys import Keys
from consumers.bus.lease import Lease, LeaseLost
from consumers.bus.nodes import server_time
from consumers.bus.redis_errors import count_redis_error
from consumers.bus.rotation import Turn
from consumers.bus.runtime import REDIS_TRANSIENT, Backoff, Shutdown
from consumers.bus.signing import operator_signer, order_signer
from consumers.bus.streams import (
    BoundedReader,
    Entry,
    delivery_counts,
    ensure_group,
    is_nogroup,
)
from consumers.gate_worker.batch import Planner
from consumers.gate_worker.commit import CommitError, Committer
from consumers.gate_worker.handle import BatchHandling
from consumers.gate_worker.ownership import Ownership
from consumers.gate_worker.settings import (
    MAX_BATCH,
    MAX_BLOCK_MS,
    MAX_MARKER_TTL_S,
    MAX_REPLICAS,
    MAX_WAIT_MS,
    GateSettings,
    SettingsError,
    intent_window,
    settings_problems,
)
from consumers.gate_worker.stages import Stages
from consumers.ops.telemetry import GateTelemetry, serve_gate, serving
from consumers.state.codec import StateError
from consumers.state.outbox import DurabilityError, Outbox
from consumers.state.store import Loaded, Store
from gate.exposure import Exposure
from gate.ledger import event_window
from schemas.config import AssetsConfig

__all__ = [  # the settings keep their old address too
    "MAX_BATCH",
    "MAX_BLOCK_MS",
    "MAX_MARKER_TTL_S",
    "MAX_REPLICAS",
    "MAX_WAIT_MS",
    "GateSettings",
    "GateWorker",
    "SettingsError",
    "redis_clock",
    "settings_problems",
]


def redis_clock(redis: Redis, key: str | None = None) -> Callable[[], datetime]:
    """The gate's clock: Redis's ``TIME``, one clock for every worker, whatever the hosts'
    (with ``key``: the node holding it, on a cluster the portfolio's primary)."""

    def now() -> datetime:
        seconds, micros = server_time(redis, key) if key is not None else redis.time()
        return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))

    return now


class GateWorker(BatchHandling, Ownership):
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        config: AssetsConfig,
        settings: GateSettings,
        *,
        clock: Callable[[], datetime] | None = None,
        telemetry: GateTelemetry | None = None,
        lease: Lease | None = None,
    ) -> None:
        settings.validate(config)  # bad settings stop the worker here, at start-up
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.clock = clock or redis_clock(redis, keys.state)
        self.store = Store(redis, keys, config)
        self.stages = Stages()  # where the loop's time goes (stages.py)
        self._frozen_at = 0  # the state's size when the heap was last frozen (handle.py)
        self.committer = Committer(
            redis,
            keys,
            k.GROUP_GATE,
            settings.marker_ttl_s,
            outbox=settings.durable,
            lease=lease,  # fenced commits: only while the lease is ours (seat.py)
            event_marker_ttl_s=settings.event_marker_ttl_s,
        )
        # every gate publishes what is in the outbox: a durable one once replicas hold
        # it, any other at once (what a durable gate or a failed-over primary left)
        self.outbox = Outbox(
            redis,
            keys,
            replicas=settings.replicas,
            aof=settings.aof,
            timeout_ms=settings.wait_timeout_ms,
        )
        # bad RISKGATE_ORDER_KEYS stop the worker here, at start-up
        self.planner = Planner(
            settings.consumer,
            settings.max_deliveries,
            order_signer(keys),
            operator_signer(keys),
            intent_verifier(keys),  # RISKGATE_AGENT_KEYS: agents are who their key says
            quota=settings.agent_quota,
            quota_marker_ttl_s=settings.marker_ttl_s,
            # older events may have outlived their applied marker: refused, not re-applied
            event_window=event_window(
                settings.event_marker_ttl_s, config.risk_management.max_clock_skew_seconds
            ),
            # older intents may have outlived their decided marker: refused, not decided
            marker_ttl_s=settings.marker_ttl_s,
            intent_window=intent_window(settings.marker_ttl_s, config),
            stages=self.stages,
        )
        self._flooded = False  # most of the last batch was past an agent's quota
        self.loaded: Loaded | None = None  # the last committed snapshot, if still ours
        self.exposure: Exposure | None = None  # and its exposure
        self._stale: Loaded | None = None  # the snapshot a lost race left us with
        self.stats: Counter[str] = Counter()
        self.log = structlog.get_logger("riskgate.gate").bind(
            portfolio=keys.portfolio, consumer=settings.consumer
        )
        self._next_reclaim = 0.0
        self._next_trim = 0.0
        self.reader = BoundedReader(redis, settings.max_batch_bytes)
        self._drain_from: dict[str, str] = {}  # own-pending drain: after these ids
        self.telemetry = telemetry  # instrumentation only (consumers.ops.telemetry)
        # the loop's state between turns
        self._ready = False  # groups created (Redis may be away at start-up too)
        self._drain = True  # first our own pending entries, then new ones
        self._takeover: list[tuple[str, bytes]] = []  # (stream, cursor) still to claim
        self._backoff = Backoff()

    # -- topology ------------------------------------------------------------------------

    def setup(self) -> None:
        """Create our groups (and the audit/phase groups, so trimming waits for them)."""
        kk = self.keys
        for stream, group in (
            (kk.intents, k.GROUP_GATE),
            (kk.events, k.GROUP_GATE),
            (kk.phases, k.GROUP_GATE),
            (kk.decisions, k.GROUP_AUDIT),
            (kk.events, k.GROUP_PHASE),
        ):
            if ensure_group(self.redis, stream, group):
                self.log.info("group created", stream=stream, group=group)
        if self.settings.durable:
            connected = self.outbox.check_server()  # DurabilityError: cannot start
            if connected < self.outbox.replicas:
                self.log.warning(
                    "fewer replicas connected than --replicas: orders held until they are",
                    connected=connected,
                    replicas=self.outbox.replicas,
                )
        self.publish()  # what an earlier worker (or a failed-over primary) left held

    # -- main loop -----------------------------------------------------------------------

    def run(self, shutdown: Shutdown) -> None:
        with serving(serve_gate, self):  # metrics when a port is set
            self._loop(shutdown)

    def _loop(self, shutdown: Shutdown) -> None:
        self.log.info("gate worker started", batch=self.settings.batch)
        while not shutdown.requested:
            done = self.turn()
            if done.retry_in:
                shutdown.wait(done.retry_in)
        self.log.info("gate worker stopped", **dict(self.stats))

    def turn(self, block_ms: int | None = None) -> Turn:
        """One turn: set up if needed, claim what a dead owner left (after
        :meth:`take_over`), drain our own pending entries, else housekeeping and one
        read blocking up to ``block_ms`` (default: the setting; 0: not at all).

        Errors end the turn, not the worker: the Turn says how long to back off.
        DurabilityError (the server cannot give the durability asked for) and LeaseLost
        (another process owns the portfolio now) are the caller's.
        """
        try:
            if not self._ready:
                self.setup()
                self._ready = True
            if self._takeover:
                handled = self._take_over_page()
            elif self._drain:
                self._drain = self.drain_pending()
                handled = int(self._drain)
            else:
                self.maintain()
                handled = self.step(block_ms)
            self._backoff.reset()
            if self.telemetry is not None:
                self.telemetry.beat()
            return Turn(handled)
        except (DurabilityError, LeaseLost):
            raise  # what no retry here can mend
        except REDIS_TRANSIENT as exc:  # before ResponseError: MOVED, CLUSTERDOWN are both
            self._forget()
            self._drain = True
            kind = count_redis_error(self.stats, exc)
            delay = self._backoff.next_delay()
            self.log.warning(
                "redis unavailable; retrying", error=str(exc), kind=kind, delay=round(delay, 3)
            )
            return Turn(retry_in=delay)
        except ResponseError as exc:
            if not is_nogroup(exc):
                return self._failed(exc)
            self.log.warning("consumer group missing; recreating", error=str(exc))
            self.stats["nogroup"] += 1
            self._ready = False
            self._drain = True
            return Turn()
        except Exception as exc:
            return self._failed(exc)

    def _forget(self) -> None:
        """Drop every cached view of the portfolio: the next batch reads it afresh."""
        self.loaded, self.exposure, self._stale = None, None, None

    def _failed(self, exc: Exception) -> Turn:
        self._forget()
        self.stats["errors"] += 1
        level = "error" if isinstance(exc, StateError | CommitError) else "exception"
        getattr(self.log, level)("batch failed; nothing approved, will retry", error=repr(exc))
        return Turn(retry_in=self._backoff.next_delay())

    def _read(self, *, pending: bool, block_ms: int | None = None) -> list[Entry]:
        """New entries, or (``pending``) our own unacked ones after the drain cursor;
        bounded by count per stream and by ``max_batch_bytes`` (streams.BoundedReader)."""
        starts, count = self._read_span(pending)
        return self.reader.read(
            k.GROUP_GATE,
            self.settings.consumer,
            starts,
            count=count,
            block_ms=None if pending else block_ms,
        )

    def _read_command(self) -> tuple[Any, ...]:
        """The read of new entries :meth:`_read` makes (not blocking) as one command, for
        the pipelined loop to send behind a commit (handle.py)."""
        starts, count = self._read_span(pending=False)
        return self.reader.command(k.GROUP_GATE, self.settings.consumer, starts, count=count)

    def _read_span(self, pending: bool) -> tuple[dict[str, str], int]:
        streams = (self.keys.intents, self.keys.events, self.keys.phases)
        if pending:
            starts = {s: self._drain_from.get(s, "0") for s in streams}
        else:
            starts = dict.fromkeys(streams, ">")
        count = self.settings.batch
        if self._flooded and not pending:
            count *= self.settings.flood_read_factor
        return starts, count

    def step(self, block_ms: int | None = None) -> int:
        """Read one batch of new entries (blocking up to ``block_ms``, default the
        setting's; 0: not at all) and handle it."""
        block = self.settings.block_ms if block_ms is None else block_ms
        with self.stages.time("read"):
            entries = self._read(pending=False, block_ms=block)
        if not entries:
            return 0
        if self.settings.pipeline > 1:
            return self.pipelined(entries)  # and up to pipeline - 1 batches more
        self.process(entries)
        return len(entries)

    def drain_pending(self) -> bool:
        """Handle this consumer's own unacked entries; False once there are none.

        One pass walks the pending list forward from a cursor, so it ends: a batch that
        fails for any reason but Redis being away is not read again by this pass (its
        entries wait for XAUTOCLAIM, which counts their deliveries toward the cap).
        """
        entries = self._read(pending=True)
        if not entries:
            self._drain_from = {}
            return False
        by_stream: dict[str, list[bytes]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.msg_id)
        counts: dict[bytes, int] = {}
        for stream, ids in by_stream.items():
            counts |= delivery_counts(self.redis, stream, k.GROUP_GATE, self.settings.consumer, ids)
        self.stats["drained"] += len(entries)
        before = dict(self._drain_from)
        self._drain_from |= {stream: max(ids).decode() for stream, ids in by_stream.items()}
        try:
            self.process(
                [replace(e, deliveries=counts.get(e.msg_id, e.deliveries)) for e in entries]
            )
        except REDIS_TRANSIENT:
            self._drain_from = before  # not the entries' fault: read them again
            raise
        return True

    # -- one batch -----------------------------------------------------------------------
