"""One batch in the gate worker: plan it, commit it, and on a lost race or entries
already decided plan again from a fresh snapshot; then count and log what was done
(one canonical line per decision) and hand it to telemetry."""

from __future__ import annotations

import gc
import random
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from consumers.bus.bounded_read import BoundedReader
from consumers.bus.keys import Keys
from consumers.bus.streams import Entry
from consumers.gate_worker.batch import Planned, Planner
from consumers.gate_worker.commit import Committer, Outcome
from consumers.gate_worker.housekeeping import Housekeeping
from consumers.gate_worker.intake import Intake, sort_entries
from consumers.gate_worker.phases import PhaseEvents
from consumers.gate_worker.settings import GateSettings
from consumers.gate_worker.stages import Stages
from consumers.ops.telemetry import GateTelemetry
from consumers.state.store import Loaded, Store
from gate.exposure import Exposure
from schemas.config import AssetsConfig
from schemas.messages import Status

FREEZE_AT = 10_000  # reservations and positions: a state this big is frozen once read whole
#: The collector's young generation in a gate process: collected every 10,000 net
#: allocations of containers, not Python's 700. A batch makes thousands of short-lived
#: ones (reports, limits, decisions); at 700 the collector ran a dozen times a batch and
#: walked the batch's live objects each time: 3-4 % of one worker's CPU path compiled,
#: 2.5 % pure (callgrind, ``python -m consumers.bench.pure`` ``worker_path``; 100,000
#: saved no more).
YOUNG_GENERATION = 10_000


def tune_collector() -> tuple[int, int, int]:
    """Set the young generation's threshold to :data:`YOUNG_GENERATION` (the older
    generations' unchanged) for this process; returns the thresholds it replaced."""
    before = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, before[1], before[2])
    return before


@contextmanager
def collector_tuned() -> Iterator[None]:
    """:func:`tune_collector` for the block only (a bench measuring a worker in its own
    process, as a gate process runs it)."""
    before = tune_collector()
    try:
        yield
    finally:
        gc.set_threshold(*before)


@dataclass(slots=True)
class _Batch:
    """A batch planned to commit on ``loaded``."""

    planned: Planned
    loaded: Loaded
    entries: list[Entry]
    intake: Intake


class BatchHandling(PhaseEvents, Housekeeping):
    """GateWorker's batch half (a mixin: the attributes are the worker's)."""

    keys: Keys
    settings: GateSettings
    store: Store
    committer: Committer
    reader: BoundedReader
    planner: Planner
    loaded: Loaded | None
    exposure: Exposure | None
    _stale: Loaded | None
    _flooded: bool
    stats: Counter[str]
    log: Any
    clock: Callable[[], datetime]
    telemetry: GateTelemetry | None
    stages: Stages
    _drain: bool
    _frozen_at: int  # the state's size when the heap was last frozen

    def _read(self, *, pending: bool, block_ms: int | None = None) -> list[Entry]:
        raise NotImplementedError  # the worker's

    def _read_command(self) -> tuple[Any, ...]:
        raise NotImplementedError  # the worker's

    def process(self, entries: list[Entry]) -> None:
        """Handle one batch; entries that reuse an intent id of an earlier entry of the
        batch with other content go in a batch of their own after it (a reuse then)."""
        rest = self._process_once(entries)
        while rest:
            rest = self._process_once(rest)

    def _intake(self, entries: list[Entry]) -> Intake:
        """Phase events applied; the rest sorted into intents and events."""
        phase_entries = [e for e in entries if e.stream == self.keys.phases]
        if phase_entries:
            self.apply_phase_events(phase_entries)
        intake = sort_entries(
            [e for e in entries if e.stream != self.keys.phases],
            self.keys.intents,
            self.settings.max_deliveries,
        )
        self.stats["oversize"] += intake.oversize
        return intake

    def _process_once(self, entries: list[Entry]) -> list[Entry]:
        with self.stages.time("parse"):
            intake = self._intake(entries)
        return self._until_committed(intake, entries)

    def _until_committed(
        self,
        intake: Intake,
        entries: list[Entry],
        tried: tuple[Loaded, Planned, Outcome] | None = None,
    ) -> list[Entry]:
        """Plan and commit ``intake`` until a commit takes it; on a lost race or entries
        already decided, plan again from a fresh snapshot. ``tried``: a first attempt
        already made (a pipelined commit that did not go through)."""
        done_intents: set[str] = set()
        done_events: set[str] = set()
        reused: dict[str, str] = {}
        conflicts = 0
        while True:
            if tried is not None:
                loaded, planned, outcome = tried
                tried = None
            else:
                loaded = self.loaded or self._reload()
                planned = self._plan(
                    intake,
                    loaded,
                    done_intents=done_intents,
                    done_events=done_events,
                    exposure=self.exposure,
                    reused=reused,
                )
                if planned.plan.empty():
                    return intake.later
                with self.stages.time("commit"):
                    outcome = self.committer.commit(planned.plan)
            if outcome.kind == "ok":
                self._committed(planned, loaded, outcome, entries)
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

    def _plan(
        self,
        intake: Intake,
        loaded: Loaded,
        *,
        exposure: Exposure | None,
        done_intents: Collection[str] = (),
        done_events: Collection[str] = (),
        reused: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> Planned:
        with self.stages.time("encode"):
            return self.planner.plan(
                intake,
                loaded,
                self.clock() if now is None else now,
                done_intents=done_intents,
                done_events=done_events,
                exposure=exposure,
                reused=reused,
            )

    def _committed(
        self, planned: Planned, loaded: Loaded, outcome: Outcome, entries: list[Entry]
    ) -> None:
        """A commit went through: the snapshot it wrote is ours; count and log it."""
        with self.stages.time("report"):
            self._unproven(outcome)
            self.loaded = Loaded(replace(planned.snapshot, version=outcome.version), loaded.config)
            self._settle_heap(self.loaded, grown=True)
            self.exposure = planned.exposure
            if self.settings.verify_exposure:
                self._verify(planned, loaded.config)
            self._report(planned, entries)
            if self.settings.durable:
                self.publish()
            self.stats["intent_id_reused"] += planned.reused

    # -- pipelined commits ---------------------------------------------------------------
    #
    # While Redis runs batch N's commit script the worker decides batch N+1 on top of the
    # snapshot N's commit will write: N+1's entries (and Redis's clock) are read before N
    # is sent (the entries by a read sent behind N-1's commit, which Redis ran while N was
    # planned; the first batch's the usual way), N+1 is planned while N runs, and N+1 is
    # sent once N's reply says it went
    # through, with the version N produced as its expected version. N+1 is therefore
    # never committed on a state other than the one it was decided on: if N conflicted,
    # met entries already decided, or failed, the plan of N+1 is dropped unsent, N is
    # finished the ordinary way (fresh snapshot, plan again) and N+1 after it. One
    # commit is in flight at a time, and none once the step returns; the version check
    # and the markers keep exactly-once as before.

    def pipelined(self, entries: list[Entry]) -> int:
        """Handle ``entries`` and up to ``settings.pipeline - 1`` batches more read
        after them, each decided while the one before is committed. Returns how many
        entries were handled in all."""
        if not self._pipelinable(entries):
            self.process(entries)
            return len(entries)
        with self.stages.time("parse"):
            intake = self._intake(entries)
        if intake.later:
            rest = self._until_committed(intake, entries)
            while rest:
                rest = self._process_once(rest)
            return len(entries)
        loaded = self.loaded or self._reload()
        current: _Batch | None = _Batch(
            self._plan(intake, loaded, exposure=self.exposure), loaded, entries, intake
        )
        handled = len(entries)
        rounds = 1
        # the entries read behind the last commit, for the next round (None: not read)
        prefetched: list[Entry] | None = None
        while current is not None and not current.planned.plan.empty():
            ahead: list[Entry] = []
            at: datetime | None = None
            if rounds < self.settings.pipeline:
                # the next entries (read behind the last commit, else now, before this
                # one is sent) and the clock to decide them by, asked now: behind this
                # commit TIME would wait for its script to end (Redis runs one command at
                # a time)
                with self.stages.time("read"):
                    if prefetched is None:
                        ahead = self._read(pending=False, block_ms=0)
                    else:
                        ahead, prefetched = prefetched, None
                    at = self.clock() if ahead else None
            if not ahead:
                with self.stages.time("commit"):
                    outcome = self.committer.commit(current.planned.plan)
                self._finish(current, outcome)
                break
            rounds += 1
            handled += len(ahead)
            # the round after this one reads its entries behind this commit: Redis reads
            # them while the worker decides ``ahead``
            following, outcome, prefetched = self._round(
                current, ahead, at, read_behind=rounds < self.settings.pipeline
            )
            if following is None:
                self.process(ahead)
                break
            assert self.loaded is not None
            following.planned.plan.expected_version = outcome.version
            following.loaded = self.loaded
            current = following
        if prefetched:  # read, so ours and pending: handled now, after what came before
            handled += len(prefetched)
            self.process(prefetched)
        return handled

    def _round(
        self, current: _Batch, ahead: list[Entry], at: datetime | None, *, read_behind: bool
    ) -> tuple[_Batch | None, Outcome, list[Entry] | None]:
        """Send ``current``'s commit, plan ``ahead`` on top of it, and wait for the
        reply: (``ahead`` planned to commit next, or None when it must go the ordinary
        way; the outcome; the entries read behind the commit when ``read_behind``)."""
        try:
            with self.stages.time("send"):
                behind = (self._read_command(),) if read_behind else ()
                inflight = self.committer.send(current.planned.plan, then=behind)
            following = self._plan_ahead(current, ahead, at)
            with self.stages.time("commit"):
                outcome = inflight.outcome()
            prefetched = self._read_behind(inflight.replies[0]) if behind else None
            if not self._finish(current, outcome):
                following = None
        except BaseException:
            self._drain = True  # what was read ahead is ours and pending: read again
            raise
        return following, outcome, prefetched

    def _read_behind(self, reply: Any) -> list[Entry] | None:
        """The entries a read sent behind a commit brought; None when it failed (the
        server lost the script: it read nothing, the next round reads the usual way)."""
        if isinstance(reply, Exception):
            self.log.info("read behind the commit failed; reading again", error=str(reply))
            return None
        with self.stages.time("read"):
            return self.reader.entries(reply)

    def _finish(self, batch: _Batch, outcome: Outcome) -> bool:
        """The commit of ``batch`` answered: True if it went through as planned; else the
        batch is committed the ordinary way (what was planned on top of it is void)."""
        if outcome.kind == "ok":
            self._committed(batch.planned, batch.loaded, outcome, batch.entries)
            return True
        self.stats["pipeline_replans"] += 1
        self._until_committed(batch.intake, batch.entries, (batch.loaded, batch.planned, outcome))
        return False

    def _plan_ahead(self, sent: _Batch, ahead: list[Entry], at: datetime | None) -> _Batch | None:
        """Plan ``ahead`` on the snapshot ``sent`` will write; None: it goes the ordinary
        way once ``sent`` is done (phase events, reused ids in the batch, a planning error)."""
        if not self._pipelinable(ahead):
            return None
        try:
            with self.stages.time("parse"):
                intake = sort_entries(ahead, self.keys.intents, self.settings.max_deliveries)
            if intake.later:
                return None
            base = Loaded(sent.planned.snapshot, sent.loaded.config)
            planned = self._plan(intake, base, exposure=sent.planned.exposure, now=at)
        except Exception as exc:  # decided again the ordinary way, which reports it
            self.log.warning("planning ahead failed; deciding the batch again", error=repr(exc))
            return None
        self.stats["oversize"] += intake.oversize
        return _Batch(planned, base, ahead, intake)

    def _pipelinable(self, entries: list[Entry]) -> bool:
        """Phase events change the configuration between batches: not planned ahead."""
        return all(e.stream != self.keys.phases for e in entries)

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
        """A fresh snapshot; with the last one we had (a lost race), built from it and
        the change log, the exposure rebased by what changed (both cost what changed)."""
        stale, self._stale = self._stale, None
        if stale is None or self.exposure is None:
            self.exposure = None
            return self._load_whole()
        loaded, touched = self.store.load_since(stale.snapshot)
        self.stats["reloads_incremental" if touched is not None else "reloads_whole"] += 1
        if touched is None:
            self._settle_heap(loaded)
        self.exposure = self.exposure.rebase(
            stale.snapshot, loaded.snapshot, loaded.config, touched
        )
        return loaded

    def _load_whole(self) -> Loaded:
        loaded = self.store.load()
        self._settle_heap(loaded)
        return loaded

    def _settle_heap(self, loaded: Loaded, *, grown: bool = False) -> None:
        """A big state is long-lived: collected once and frozen (gc.freeze), so the
        collector stops walking it at every full collection (which grew with the state:
        100,000 reservations cost every batch several µs an intent). Done when a big
        state is read whole, and (``grown``) each time the state doubled since."""
        size = len(loaded.snapshot.reservations) + len(loaded.snapshot.positions)
        if size < FREEZE_AT or (grown and size < 2 * self._frozen_at):
            return
        gc.collect()
        gc.freeze()
        self._frozen_at = size
        self.stats["heap_frozen"] += 1

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
        s["expired_intents"] += planned.expired
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
            s[d.status._value_] += 1
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
