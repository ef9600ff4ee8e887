"""The phase monitor: portfolio events into the track record, phases unlocked by it.

Reads ``events`` with group ``phase``. A batch is one transaction: the event ids go
into ``applied_events`` (ON CONFLICT DO NOTHING: only new ones are applied), the new
events are applied with the gate's ledger (:mod:`gate.track`), and the fills, round
trips, daily closes, per-asset PnL, asset performance and the monitor's own ledger
state are written; then the batch is acked (:mod:`consumers.db.stream_to_pg`).

After a batch that changed something, and every ``evaluate_every_s`` anyway, every
phase that is not complete is evaluated (:func:`gate.phases.evaluate_phase`); when
all its requirements hold a ``phase_ready`` event is emitted, and a
``phase_activated`` one when the phase's activation is automatic
(:mod:`consumers.phase.log`: logged once, then published).

Event order matters to average-cost accounting, so one monitor per portfolio writes:
it holds a PostgreSQL advisory lock; others stand by. The one that takes over first
claims every pending entry of the group (XAUTOCLAIM, no idle minimum), oldest first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import structlog
from redis import Redis

from consumers.bus.keys import GROUP_PHASE, Keys
from consumers.bus.signing import operator_problem, operator_signer
from consumers.bus.streams import Entry, stream_time
from consumers.db.audit import Reject, insert_rejects, parse_entry, printable
from consumers.db.connection import Connection, PartitionCache
from consumers.db.stream_to_pg import ConsumerSettings, PgLink, Standby, StreamToPg
from consumers.phase.log import (
    complete_phases,
    live_config,
    log_ready,
    logged_phases,
    publish,
    publish_unsent,
    snapshot,
)
from consumers.phase.metrics import current_metrics, refresh_asset_performance
from consumers.phase.track_store import (
    EventKey,
    claim_events,
    load_track,
    save_track,
    write_derived,
)
from gate.ledger import PortfolioEvent, event_window, too_old
from gate.phases import evaluate_phase
from gate.track import record
from schemas.config import AssetsConfig
from schemas.messages import Fill, OperatorEvent, parse_event

MIN_EVALUATION_GAP_S = 1.0
DEDUPE_TTL_S = 10_800  # the gate's default RISKGATE_EVENT_DEDUPE_TTL_S
LOCK_CLASS = 0x7068  # advisory lock (class, hashtext(portfolio)): one writer per portfolio


def utcnow() -> datetime:
    return datetime.now(UTC)


entry_time = stream_time  # when the entry was added to the stream (Redis's clock)


def parse(entry: Entry) -> PortfolioEvent | Reject:
    return parse_entry(entry, parse_event, "a portfolio event")


class PhaseMonitor(StreamToPg):
    group = GROUP_PHASE

    def __init__(
        self,
        redis: Redis,
        pg: PgLink,
        keys: Keys,
        config: AssetsConfig,
        settings: ConsumerSettings,
        *,
        evaluate_every_s: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
        dedupe_ttl_s: int = DEDUPE_TTL_S,
    ) -> None:
        log = structlog.get_logger("riskgate.phase").bind(
            portfolio=keys.portfolio, consumer=settings.consumer, stream=keys.events
        )
        super().__init__(redis, pg, settings, log)
        self.keys = keys
        self.stream = keys.events
        self.config = config
        # deposits the gate refuses as unsigned are no capital here either
        self.operators = operator_signer(keys)
        # events the gate refuses as too old (the same window: RISKGATE_EVENT_DEDUPE_TTL_S)
        self.event_window = event_window(
            dedupe_ttl_s, config.risk_management.max_clock_skew_seconds
        )
        self.clock = clock
        self.evaluate_every_s = evaluate_every_s
        self.partitions = PartitionCache()
        self.dirty = True  # evaluate at start
        self._last_evaluation = -1e9
        self._took_over = False

    # -- one writer per portfolio ----------------------------------------------------------

    def on_connect(self, conn: Connection) -> None:
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, self.keys.portfolio)
        ).fetchone()
        if not row or not row[0]:
            raise Standby(f"another phase monitor writes portfolio {self.keys.portfolio}")
        self.log.info("phase monitor lock held; taking over pending entries")
        self._took_over = True

    def close(self) -> None:
        """Let the portfolio go (a process serving several, when it is unregistered):
        its lock too, on the connection the others keep using."""
        if not self.pg.fresh and self._ready_on == self.pg.generation:
            try:
                self.pg.get().execute(
                    "SELECT pg_advisory_unlock(%s, hashtext(%s))",
                    (LOCK_CLASS, self.keys.portfolio),
                )
            except Exception as exc:  # the lock goes with the session anyway
                self.log.warning("phase monitor lock not released", error=repr(exc))
        super().close()

    def drain_pending(self) -> bool:
        self.connection()
        if self._took_over:  # every pending entry is ours now, in stream order
            self._took_over = False
            while self.reclaim_all():
                pass
        return super().drain_pending()

    def reclaim_all(self) -> int:
        saved = self.settings
        self.settings = replace(saved, min_idle_ms=0)
        try:
            return self.reclaim_idle()
        finally:
            self.settings = saved

    # -- a batch ---------------------------------------------------------------------------

    def write(self, conn: Connection, entries: list[Entry]) -> None:
        events: list[tuple[PortfolioEvent, datetime, str]] = []
        rejects: list[Reject] = []
        for entry in entries:
            parsed = parse(entry)
            if isinstance(parsed, OperatorEvent) and self.operators.enabled:
                problem = operator_problem(self.operators, entry.raw or b"")
                if problem is not None:
                    parsed = Reject(entry.msg_id.decode(), printable(entry.raw), problem)
            if not isinstance(parsed, Reject):  # as the gate: against its stream id
                old = too_old(parsed, entry_time(entry), self.event_window)
                if old is not None:
                    parsed = Reject(entry.msg_id.decode(), printable(entry.raw), f"refused: {old}")
            if isinstance(parsed, Reject):
                rejects.append(parsed)
            else:
                events.append((parsed, entry_time(entry), entry.msg_id.decode()))
        fills = [ev.at or t for ev, t, _ in events if isinstance(ev, Fill)]
        self.partitions.ensure(conn, "trades", fills)
        portfolio = self.keys.portfolio
        with conn.transaction():
            track = load_track(conn, portfolio)
            keys = [EventKey(ev.event_id, ev.type, ev.at or t, sid) for ev, t, sid in events]
            fresh = claim_events(conn, portfolio, keys)
            todo = []
            for ev, t, _ in events:
                if ev.event_id in fresh:
                    fresh.discard(ev.event_id)  # the first of two in one batch wins
                    todo.append((ev, t))
            track, derived = record(track, todo, self.config)
            write_derived(conn, portfolio, derived, track, self.config)
            last = entries[-1].msg_id.decode() if entries else None
            save_track(conn, portfolio, track, len(todo), last)
            insert_rejects(conn, portfolio, self.group, self.stream, rejects)
            if derived.fills or derived.closes:
                refresh_asset_performance(conn, portfolio, self.clock().date())
        self.dirty = self.dirty or bool(todo)
        self.stats["applied"] += len(todo)
        self.stats["duplicates"] += len(events) - len(todo)
        self.stats["rejected"] += len(rejects)
        for r in rejects:
            self.log.error("entry rejected", msg_id=r.stream_id, error=r.error)
        self.log.debug(
            "batch applied",
            entries=len(entries),
            applied=len(todo),
            fills=len(derived.fills),
            round_trips=len(derived.trips),
            closes=len(derived.closes),
        )

    # -- phases ----------------------------------------------------------------------------

    def idle(self, conn: Connection) -> None:
        """Evaluate after changes (at most once a second under load), and periodically."""
        now = time.monotonic()
        if (self.dirty and now >= self._last_evaluation + MIN_EVALUATION_GAP_S) or (
            now >= self._last_evaluation + self.evaluate_every_s
        ):
            self._last_evaluation = now
            self.evaluate(conn)

    def evaluate(self, conn: Connection | None = None) -> list[str]:
        """Emit what the track record earns; returns the stream ids of events published."""
        conn = conn or self.connection()
        self.dirty = False
        portfolio, config = self.keys.portfolio, self.config
        published = publish_unsent(conn, self.redis, self.keys, config)
        with conn.transaction():
            metrics = current_metrics(conn, portfolio, config, self.clock().date())
            logged = logged_phases(conn, portfolio)
        done = complete_phases(config, live_config(self.redis, self.keys, config), logged)
        for name, phase in config.phases.items():
            if name in done or name in logged:
                continue
            results = evaluate_phase(config, name, metrics.values(), done)
            if not all(r.met for r in results):
                continue
            decided_on = snapshot(metrics, results)
            if log_ready(conn, portfolio, config, name, decided_on=decided_on, at=self.clock()):
                published += publish(conn, self.redis, self.keys, config, name)
                self.log.warning(
                    "phase ready", phase=name, activation=phase.activation, **decided_on
                )
            if phase.activation == "automatic":
                done.add(name)
        return published
