"""The gate worker: read intents and events, decide, commit atomically, repeat.

Ack policy: an entry is acked only inside the commit script that writes its output
(decision, order, applied event, or dead letter). A worker killed anywhere leaves
its entries pending; any worker reclaims them after ``min_idle_ms`` (XAUTOCLAIM) and
the commit's "decided" markers make the second attempt a no-op for what was done.

Error policy: Redis unreachable -> nothing acked, retry with backoff and jitter;
NOGROUP -> recreate the groups and say so; unreadable state -> decide nothing;
anything unexpected -> logged, nothing approved, the batch retried later.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import ResponseError

from consumers.bus import keys as k
from consumers.bus.agent_signing import intent_verifier
from consumers.bus.keys import Keys
from consumers.bus.runtime import REDIS_TRANSIENT, Backoff, Shutdown
from consumers.bus.signing import operator_signer, order_signer
from consumers.bus.streams import (
    MAX_BATCH_BYTES,
    BoundedReader,
    Entry,
    delivery_counts,
    ensure_group,
    is_nogroup,
    trim_consumed,
)
from consumers.gate_worker.batch import Planned, Planner
from consumers.gate_worker.commit import CommitError, Committer, Outcome
from consumers.gate_worker.intake import dead_letter, describe, sort_entries
from consumers.ops.telemetry import GateTelemetry, serve_gate, serving
from consumers.state.codec import StateError
from consumers.state.outbox import DurabilityError, Outbox
from consumers.state.store import Loaded, Store
from gate.exposure import Exposure
from gate.ledger import event_window
from schemas.config import AssetsConfig
from schemas.messages import MAX_ENTRY_BYTES, MessageError, Status, parse_json


@dataclass(frozen=True, slots=True)
class GateSettings:
    consumer: str
    batch: int = 256
    block_ms: int = 1000
    min_idle_ms: int = 10_000
    reclaim_every_s: float = 2.0
    max_deliveries: int = 5
    marker_ttl_s: int = 7 * 86400
    retention_s: float = 7 * 86400
    intents_keep_s: float = 3600.0
    trim_every_s: float = 30.0
    log_decisions: bool = True
    verify_exposure: bool = False  # tests: check every batch's exposure from scratch
    max_batch_bytes: int = MAX_BATCH_BYTES  # what one read may bring in, all streams
    # backpressure (docs/PROTOCOL.md): intents past their agent's quota are rejected
    # before enrichment; while most of a batch is, the next read takes flood_read_factor
    # times as many entries, so a flood drains fast and other agents' intents with it
    agent_quota: bool = True
    flood_read_factor: int = 4
    # durable approvals (consumers/state/outbox.py): decisions and orders are published only
    # once this many replicas (and, with aof, the append-only files) hold the commit
    replicas: int = 0
    aof: bool = False
    wait_timeout_ms: int = 500

    @property
    def durable(self) -> bool:
        return self.replicas > 0 or self.aof

    def problems(self, config: AssetsConfig) -> list[str]:
        """What is wrong with these settings for ``config``: one message per setting."""
        return settings_problems(self, config)

    def validate(self, config: AssetsConfig) -> None:
        """Raise :class:`SettingsError` naming every setting that cannot be used."""
        found = self.problems(config)
        if found:
            raise SettingsError(found)


class SettingsError(ValueError):
    """Gate settings that cannot be used; ``problems`` has one message per setting."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


# how an operator sets each (riskgate gate's flag and environment variable)
_SET_BY = {
    "batch": "--batch, RISKGATE_BATCH",
    "block_ms": "--block-ms, RISKGATE_BLOCK_MS",
    "min_idle_ms": "--min-idle-ms, RISKGATE_MIN_IDLE_MS",
    "reclaim_every_s": "--reclaim-every, RISKGATE_RECLAIM_EVERY_S",
    "max_deliveries": "--max-deliveries, RISKGATE_MAX_DELIVERIES",
    "marker_ttl_s": "RISKGATE_DEDUPE_TTL_S",
    "retention_s": "RISKGATE_RETENTION_S",
    "replicas": "--replicas, RISKGATE_REPLICAS",
    "wait_timeout_ms": "--wait-timeout-ms, RISKGATE_WAIT_TIMEOUT_MS",
}
MAX_MARKER_TTL_S = 10**9  # ~31 years; SET EX takes at most 12 digits in the commit script
MAX_BLOCK_MS = 600_000  # a blocked read delays shutdown and the liveness beat this long
MAX_BATCH = 100_000
MAX_REPLICAS = 64
MAX_WAIT_MS = 60_000  # one wait blocks the worker this long at most


def settings_problems(s: GateSettings, config: AssetsConfig) -> list[str]:
    """Each setting that cannot be used, said in one sentence (library users and the CLI
    get the same check: GateWorker refuses such settings at start-up)."""
    rm = config.risk_management
    out: list[str] = []

    def name(field: str) -> str:
        how = _SET_BY.get(field)
        return f"{field} ({how})" if how else field

    def whole(
        field: str, low: int, high: int | None = None, *, unit: str = "", why: str = ""
    ) -> None:
        value = getattr(s, field)
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not (ok and value >= low and (high is None or value <= high)):
            span = f"from {low} to {high}" if high is not None else f"of at least {low}"
            out.append(f"{name(field)} is {value!r}: it must be a whole number{unit} {span}{why}")

    def seconds(field: str) -> None:
        value = getattr(s, field)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not (ok and math.isfinite(value) and value > 0):
            out.append(f"{name(field)} is {value!r}: it must be a positive number of seconds")

    if not isinstance(s.consumer, str) or not s.consumer.strip():
        out.append(f"consumer is {s.consumer!r}: it must name this worker")
    whole("batch", 1, MAX_BATCH)
    whole("block_ms", 1, MAX_BLOCK_MS, why=" (0 would block forever)")
    whole("min_idle_ms", 1)
    seconds("reclaim_every_s")
    whole("max_deliveries", 1)
    # an intent re-sent after its marker expired but still young enough to be decided
    # would be decided (and approved) a second time
    age = rm.max_intent_age_seconds + rm.max_clock_skew_seconds
    before = len(out)
    whole(
        "marker_ttl_s",
        age,
        MAX_MARKER_TTL_S,
        unit=" of seconds",
        why=f" (at least max_intent_age_seconds {rm.max_intent_age_seconds} + "
        f"max_clock_skew_seconds {rm.max_clock_skew_seconds}: an intent re-sent after its "
        "marker expired, still young enough to be decided, would be decided again)",
    )
    if len(out) == before:
        try:  # events older than the window are refused; it needs a margin
            event_window(s.marker_ttl_s, rm.max_clock_skew_seconds)
        except ValueError as exc:
            out.append(f"{name('marker_ttl_s')}: {exc}")
    for field in ("retention_s", "intents_keep_s", "trim_every_s"):
        seconds(field)
    whole("max_batch_bytes", 1)
    whole("flood_read_factor", 1, 1000)
    whole("replicas", 0, MAX_REPLICAS)
    whole("wait_timeout_ms", 1, MAX_WAIT_MS, why=" (0 would wait forever)")
    return out


def redis_clock(redis: Redis) -> Callable[[], datetime]:
    """The gate's clock: Redis's ``TIME``, one clock for every worker, whatever the hosts'."""

    def now() -> datetime:
        seconds, micros = redis.time()
        return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))

    return now


class GateWorker:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        config: AssetsConfig,
        settings: GateSettings,
        *,
        clock: Callable[[], datetime] | None = None,
        telemetry: GateTelemetry | None = None,
    ) -> None:
        settings.validate(config)  # bad settings stop the worker here, at start-up
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.clock = clock or redis_clock(redis)
        self.store = Store(redis, keys, config)
        self.committer = Committer(
            redis, keys, k.GROUP_GATE, settings.marker_ttl_s, outbox=settings.durable
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
            quota_marker_ttl_s=max(1, int(settings.intents_keep_s)),
            # older events may have outlived their applied marker: refused, not re-applied
            event_window=event_window(
                settings.marker_ttl_s, config.risk_management.max_clock_skew_seconds
            ),
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
        backoff = Backoff()
        ready = False  # groups created (Redis may be away at start-up too)
        drain = True  # first our own pending entries, then new ones
        self.log.info("gate worker started", batch=self.settings.batch)
        while not shutdown.requested:
            try:
                if not ready:
                    self.setup()
                    ready = True
                if drain:
                    drain = self.drain_pending()
                else:
                    self.maintain()
                    self.step()
                backoff.reset()
                if self.telemetry is not None:
                    self.telemetry.beat()
            except DurabilityError:
                raise  # the durability asked for cannot be had from this server
            except ResponseError as exc:
                if not is_nogroup(exc):
                    self._failed(exc, shutdown, backoff)
                    continue
                self.log.warning("consumer group missing; recreating", error=str(exc))
                self.stats["nogroup"] += 1
                ready = False
                drain = True
            except REDIS_TRANSIENT as exc:
                self._forget()
                drain = True
                self.stats["redis_errors"] += 1
                delay = backoff.next_delay()
                self.log.warning(
                    "redis unavailable; retrying", error=str(exc), delay=round(delay, 3)
                )
                shutdown.wait(delay)
            except Exception as exc:
                self._failed(exc, shutdown, backoff)
        self.log.info("gate worker stopped", **dict(self.stats))

    def _forget(self) -> None:
        """Drop every cached view of the portfolio: the next batch reads it afresh."""
        self.loaded, self.exposure, self._stale = None, None, None

    def _failed(self, exc: Exception, shutdown: Shutdown, backoff: Backoff) -> None:
        self._forget()
        self.stats["errors"] += 1
        level = "error" if isinstance(exc, StateError | CommitError) else "exception"
        getattr(self.log, level)("batch failed; nothing approved, will retry", error=repr(exc))
        shutdown.wait(backoff.next_delay())

    def _read(self, *, pending: bool) -> list[Entry]:
        """New entries, or (``pending``) our own unacked ones after the drain cursor;
        bounded by count per stream and by ``max_batch_bytes`` (streams.BoundedReader)."""
        streams = (self.keys.intents, self.keys.events, self.keys.phases)
        if pending:
            starts = {s: self._drain_from.get(s, "0") for s in streams}
        else:
            starts = dict.fromkeys(streams, ">")
        count = self.settings.batch
        if self._flooded and not pending:
            count *= self.settings.flood_read_factor
        return self.reader.read(
            k.GROUP_GATE,
            self.settings.consumer,
            starts,
            count=count,
            block_ms=None if pending else self.settings.block_ms,
        )

    def step(self) -> int:
        """Read one batch of new entries (blocking up to block_ms) and handle it."""
        entries = self._read(pending=False)
        if entries:
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

    def process(self, entries: list[Entry]) -> None:
        """Handle one batch; entries that reuse an intent id of an earlier entry of the
        batch with other content go in a batch of their own after it (a reuse then)."""
        rest = self._process_once(entries)
        while rest:
            rest = self._process_once(rest)

    def _process_once(self, entries: list[Entry]) -> list[Entry]:
        phase_entries = [e for e in entries if e.stream == self.keys.phases]
        if phase_entries:
            self.apply_phase_events(phase_entries)
        intake = sort_entries(
            [e for e in entries if e.stream != self.keys.phases],
            self.keys.intents,
            self.settings.max_deliveries,
        )
        self.stats["oversize"] += intake.oversize
        done_intents: set[str] = set()
        done_events: set[str] = set()
        reused: dict[str, str] = {}
        conflicts = 0
        while True:
            loaded = self.loaded
            if loaded is None:
                loaded = self._reload()
            planned = self.planner.plan(
                intake,
                loaded,
                self.clock(),
                done_intents=done_intents,
                done_events=done_events,
                exposure=self.exposure,
                reused=reused,
            )
            if planned.plan.empty():
                return intake.later
            outcome = self.committer.commit(planned.plan)
            if outcome.kind == "ok":
                self._unproven(outcome)
                self.loaded = Loaded(
                    replace(planned.snapshot, version=outcome.version), loaded.config
                )
                self.exposure = planned.exposure
                if self.settings.verify_exposure:
                    self._verify(planned, loaded.config)
                self._report(planned, entries)
                if self.settings.durable:
                    self.publish()
                self.stats["intent_id_reused"] += planned.reused
                return intake.later
            self._stale = self.loaded
            self.loaded = None
            if outcome.kind == "duplicate":
                self.stats["duplicates"] += len(outcome.duplicate_intents) + len(
                    outcome.duplicate_events
                )
                self.log.info(
                    "already decided or applied; acking only",
                    intents=list(outcome.duplicate_intents),
                    events=list(outcome.duplicate_events),
                )
                done_intents.update(outcome.duplicate_intents)
                done_events.update(outcome.duplicate_events)
                reused.update(outcome.reused)
                continue
            conflicts += 1
            self.stats["conflicts"] += 1
            # another worker committed first: let it keep going for a moment rather than
            # racing it again (each lost race costs a full reload and re-decision)
            time.sleep(random.uniform(0.001, min(0.05, 0.004 * 2**conflicts)))

    def _unproven(self, outcome: Outcome) -> None:
        """Markers whose commit never wrote its state: not proof, so decided again."""
        n = len(outcome.unproven_intents) + len(outcome.unproven_events)
        if n:
            self.stats["unproven_markers"] += n
            self.log.warning(
                "markers without their state: decided and applied again, markers overwritten",
                intents=list(outcome.unproven_intents),
                events=list(outcome.unproven_events),
            )

    def _reload(self) -> Loaded:
        """A fresh snapshot; the exposure rebased from the last one when we have it."""
        loaded = self.store.load()
        stale, self._stale = self._stale, None
        if stale is not None and self.exposure is not None:
            self.exposure = self.exposure.rebase(stale.snapshot, loaded.snapshot, loaded.config)
        else:
            self.exposure = None
        return loaded

    def _verify(self, planned: Planned, config: AssetsConfig) -> None:
        assert planned.exposure is not None
        expected = Exposure.of(planned.snapshot, config)
        if not planned.exposure.same(expected):
            raise AssertionError("incremental exposure differs from the exposure from scratch")

    def _report(self, planned: Planned, entries: list[Entry]) -> None:
        if self.telemetry is not None:
            self.telemetry.batch(planned, entries)
        s = self.stats
        s["batches"] += 1
        s["decided"] += len(planned.decisions) + planned.over_quota
        s["events"] += len(planned.plan.applied)
        s["dead"] += planned.dead
        s["refused_events"] += planned.refused
        s["over_quota"] += planned.over_quota
        self._flooded = planned.over_quota * 2 > len(planned.decisions)
        s["left_pending"] += planned.left_pending
        for event_id, note in planned.notes:
            self.log.warning("event applied with a note", event_id=event_id, note=note)
        s["unknown_fill"] += len(planned.escalations)
        for event_id, why in planned.escalations:
            self.log.error("unknown_fill: applied, trading halted", event_id=event_id, why=why)
        msg_ids = {e.msg_id: e for e in entries}
        s[Status.REJECTED.value] += planned.over_quota  # one log line per batch for those
        if planned.over_quota:
            self.log.warning("intents past their agent's quota rejected", count=planned.over_quota)
        full = planned.plan.decided[: len(planned.decisions)]
        for d, entry in zip(planned.decisions, full, strict=True):
            s[d.status.value] += 1
            if self.settings.log_decisions:
                self.log.info(
                    "decision",
                    intent_id=d.intent_id,
                    agent_id=d.agent_id,
                    symbol=d.symbol,
                    side=d.side.value if d.side else None,
                    status=d.status.value,
                    requested=str(d.requested_quantity),
                    approved=str(d.approved_quantity),
                    reasons=[r.code.value for r in d.reasons],
                    stream=self.keys.intents,
                    msg_id=entry.msg_id.decode(),
                    deliveries=msg_ids[entry.msg_id].deliveries if entry.msg_id in msg_ids else 1,
                )

    # -- live config from the phases stream ----------------------------------------------

    def apply_phase_events(self, entries: list[Entry]) -> None:
        """``phase_activated`` enables the phase's classes and assets, live, idempotently.

        Each entry in its own guard: one that cannot be read (over the delivery cap,
        oversize, not a JSON object of the right shape, anything raised) is
        dead-lettered and acked with the rest; other types are acked and ignored.
        """
        base = self.store.base
        enable: dict[Any, Any] = {}
        dead: list[str] = []
        for e in entries:
            try:
                found = self._phase_activation(e)
            except Exception as exc:
                error = describe(exc) if isinstance(exc, MessageError) else repr(exc)[:1000]
                self.log.warning("unreadable phase event", msg_id=e.msg_id.decode(), error=error)
                dead.append(dead_letter(e, error, self.settings.consumer, self.clock()).payload)
                continue
            if found is None:
                continue
            name, assets = found
            phase = base.phases.get(name)
            assets = [a for a in assets if a in base.assets]
            if phase is not None:
                assets += [a for a in phase.assets if a not in assets]
            classes = {base.assets[a].asset_class for a in assets}
            enable |= {k.P_ASSET_ENABLED + a: "1" for a in assets}
            enable |= {k.P_CLASS_ENABLED + c.value: "1" for c in classes}
            self.log.info("phase activated; enabling", phase=name, assets=assets)
        pipe = self.redis.pipeline(transaction=True)
        if enable:
            pipe.hset(self.keys.control, mapping=enable)
            pipe.hincrby(self.keys.state, k.F_VERSION, 1)
        for payload in dead:
            pipe.xadd(self.keys.deadletter, {k.DATA: payload})
        pipe.xack(self.keys.phases, k.GROUP_GATE, *[e.msg_id for e in entries])
        pipe.execute()
        self.stats["dead"] += len(dead)
        self._stale, self.loaded = self.loaded, None

    def _phase_activation(self, e: Entry) -> tuple[str, list[str]] | None:
        """(phase, assets) of a ``phase_activated`` entry, None for another type;
        MessageError when the entry cannot be used."""
        if e.deliveries > self.settings.max_deliveries:
            raise MessageError(f"delivered {e.deliveries} times without being handled")
        if e.oversize:
            raise MessageError(f"entry is {e.oversize} bytes, over the {MAX_ENTRY_BYTES} limit")
        if e.raw is None:
            raise MessageError("entry has no 'data' field")
        data = parse_json(e.raw)  # bounded: size and depth checked before parsing
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise MessageError("phase event must be a JSON object with a string 'type'")
        if data["type"] != "phase_activated":
            return None
        phase, assets = data.get("phase"), data.get("assets", [])
        if not isinstance(phase, str) or not isinstance(assets, list):
            raise MessageError("phase_activated needs a string 'phase' and a list 'assets'")
        return phase, [a for a in assets if isinstance(a, str)]

    # -- housekeeping --------------------------------------------------------------------

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
                got = self.reader.reclaim(
                    stream,
                    k.GROUP_GATE,
                    self.settings.consumer,
                    min_idle_ms=self.settings.min_idle_ms,
                    count=self.settings.batch,
                    cursor=cursor,
                )
                for msg_id in got.deleted:
                    self._lost(stream, msg_id)
                if got.entries:
                    total += len(got.entries)
                    self.stats["reclaimed"] += len(got.entries)
                    self.log.info("reclaimed idle entries", stream=stream, count=len(got.entries))
                    self.process(got.entries)
                cursor = got.cursor
                if cursor in (b"0-0", "0-0"):
                    break
        return total

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

    def trim(self) -> None:
        """Inputs are kept ``intents_keep_s``, outputs ``retention_s``; never unacked ones."""
        s = self.settings
        for stream in (self.keys.intents, self.keys.events):
            trim_consumed(self.redis, stream, s.intents_keep_s)
        for stream in (self.keys.decisions, self.keys.orders, self.keys.deadletter):
            trim_consumed(self.redis, stream, s.retention_s)
