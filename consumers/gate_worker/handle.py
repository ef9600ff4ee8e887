"""One batch in the gate worker: plan it, commit it, and on a lost race or entries
already decided plan again from a fresh snapshot; then count and log what was done
(one canonical line per decision) and hand it to telemetry."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from consumers.bus.keys import Keys
from consumers.bus.streams import Entry
from consumers.gate_worker.batch import Planned, Planner
from consumers.gate_worker.commit import Committer, Outcome
from consumers.gate_worker.housekeeping import Housekeeping
from consumers.gate_worker.intake import sort_entries
from consumers.gate_worker.phases import PhaseEvents
from consumers.gate_worker.settings import GateSettings
from consumers.ops.telemetry import GateTelemetry
from consumers.state.store import Loaded, Store
from gate.exposure import Exposure
from schemas.config import AssetsConfig
from schemas.messages import Status


class BatchHandling(PhaseEvents, Housekeeping):
    """GateWorker's batch half (a mixin: the attributes are the worker's)."""

    keys: Keys
    settings: GateSettings
    store: Store
    committer: Committer
    planner: Planner
    loaded: Loaded | None
    exposure: Exposure | None
    _stale: Loaded | None
    _flooded: bool
    stats: Counter[str]
    log: Any
    clock: Callable[[], datetime]
    telemetry: GateTelemetry | None

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
