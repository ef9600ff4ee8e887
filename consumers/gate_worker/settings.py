"""Gate worker settings: what an operator may tune, and the check that refuses settings
the worker cannot run with (library users and the CLI get the same messages).

Retention (docs/OPERATIONS.md, "Retention"): Redis holds the working set, PostgreSQL the
history. Decided markers live ``marker_ttl_s`` (the dedupe window, tied to the intent age
limit: :func:`intent_window`), applied markers ``event_marker_ttl_s``; streams are
trimmed every ``trim_every_s`` once the groups that need them have acked
(``consumers/bus/retention.py``), decisions kept ``decisions_keep_s`` at least, and a
group nobody runs holds entries ``unconsumed_keep_s`` at most."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from consumers.bus.streams import MAX_BATCH_BYTES
from gate.ledger import event_window
from schemas.config import AssetsConfig

MAX_PIPELINE = 64  # batches one step may pipeline: the lease is renewed between steps


@dataclass(frozen=True, slots=True)
class GateSettings:
    consumer: str
    batch: int = 256
    block_ms: int = 1000
    min_idle_ms: int = 10_000
    reclaim_every_s: float = 2.0
    max_deliveries: int = 5
    marker_ttl_s: int = 900  # decided markers: the dedupe window (intent_window)
    event_marker_ttl_s: int = 10_800  # applied markers: events over 2 h old are refused
    retention_s: float = 7 * 86400  # dead letters (and at most deadletter_max of them)
    intents_keep_s: float = 0.0  # inputs kept after the gate (and phase) acked them
    decisions_keep_s: float = 60.0  # the floor: decisions readable with GateClient.decision
    unconsumed_keep_s: float = 3600.0  # what a group nobody runs may hold back, at most
    idle_group_s: float = 60.0  # a group whose consumers were all idle this long: nobody
    trim_every_s: float = 1.0
    trim_limit: int = 100_000  # entries one XTRIM may remove (per stream and turn)
    deadletter_max: int = 10_000
    log_decisions: bool = True
    verify_exposure: bool = False  # tests: check every batch's exposure from scratch
    max_batch_bytes: int = MAX_BATCH_BYTES  # what one read may bring in, all streams
    # backpressure (docs/PROTOCOL.md): intents past their agent's quota are rejected
    # before enrichment; while most of a batch is, the next read takes flood_read_factor
    # times as many entries, so a flood drains fast and other agents' intents with it
    agent_quota: bool = True
    # pipelined commits (handle.py): a step decides the next batch while Redis commits
    # this one, up to this many batches in a row (1: one batch a step, nothing overlapped)
    pipeline: int = 4
    flood_read_factor: int = 4
    # durable approvals (consumers/state/outbox.py): decisions and orders are published only
    # once this many replicas (and, with aof, the append-only files) hold the commit
    replicas: int = 0
    aof: bool = False
    wait_timeout_ms: int = 500
    # ownership by lease (consumers/bus/lease.py, seat.py): the owner renews every
    # lease_renew_ms, standbys poll as often; a dead owner's portfolio is taken over
    # within lease_ttl_ms + lease_renew_ms
    lease_ttl_ms: int = 3000
    lease_renew_ms: int = 1000
    # a process serving several portfolios (host.py, consumers/bus/rotation.py): the
    # longest sleep after rounds that found nothing, and how often --all-portfolios
    # re-reads the registry
    idle_ms: int = 20
    registry_every_s: float = 5.0

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
    "marker_ttl_s": "--dedupe-ttl, RISKGATE_DEDUPE_TTL_S",
    "event_marker_ttl_s": "--event-dedupe-ttl, RISKGATE_EVENT_DEDUPE_TTL_S",
    "retention_s": "RISKGATE_RETENTION_S",
    "intents_keep_s": "--inputs-keep, RISKGATE_INPUTS_KEEP_S",
    "decisions_keep_s": "--decisions-keep, RISKGATE_DECISIONS_KEEP_S",
    "unconsumed_keep_s": "--unconsumed-keep, RISKGATE_UNCONSUMED_KEEP_S",
    "idle_group_s": "--idle-group, RISKGATE_IDLE_GROUP_S",
    "trim_every_s": "--trim-every, RISKGATE_TRIM_EVERY_S",
    "trim_limit": "--trim-limit, RISKGATE_TRIM_LIMIT",
    "deadletter_max": "RISKGATE_DEADLETTER_MAX",
    "replicas": "--replicas, RISKGATE_REPLICAS",
    "wait_timeout_ms": "--wait-timeout-ms, RISKGATE_WAIT_TIMEOUT_MS",
    "lease_ttl_ms": "--lease-ttl-ms, RISKGATE_LEASE_TTL_MS",
    "lease_renew_ms": "--lease-renew-ms, RISKGATE_LEASE_RENEW_MS",
    "idle_ms": "--idle-ms, RISKGATE_IDLE_MS",
    "registry_every_s": "--registry-every, RISKGATE_REGISTRY_EVERY_S",
}
MAX_MARKER_TTL_S = 10**9  # ~31 years; SET EX takes at most 12 digits in the commit script
MAX_BLOCK_MS = 600_000  # a blocked read delays shutdown and the liveness beat this long
MAX_BATCH = 100_000
MAX_REPLICAS = 64
MAX_WAIT_MS = 60_000  # one wait blocks the worker this long at most
MIN_LEASE_TTL_MS = 200
MAX_LEASE_TTL_MS = 600_000
MAX_IDLE_MS = 10_000


#: how long a worker may take from reading Redis's clock to its commit reaching Redis
#: before the dedupe window could be outrun (at most this; less when the window is
#: barely above the intent age limit): :func:`intent_window`
COMMIT_MARGIN_S = 60
#: fewer entries per XTRIM than this could not keep up with bursts (issue 12: 10 x rate)
MIN_TRIM_LIMIT = 1000


def intent_window(marker_ttl_s: int, config: AssetsConfig) -> timedelta:
    """How old (by its ``created_at``, on Redis's clock) an intent may be and still get a
    decision: the dedupe window less the clock skew and a commit margin.

    Why no intent is decided twice (docs/PROTOCOL.md, "The dedupe window"): a decision is
    written only for an intent dated no more than the skew ahead and less than this old;
    its marker lives ``marker_ttl_s`` from the commit. A copy of that intent (same
    ``created_at``: a re-delivery or a re-send) arriving after the marker expired is at
    least ``marker_ttl_s - skew`` old at the commit, so older than this window (by the
    margin, which covers the time from reading the clock to the commit): it gets a dead
    letter, never a second decision, let alone a second approval. A copy arriving before
    is a duplicate (the digest ignores ``created_at``)."""
    rm = config.risk_management
    skew = rm.max_clock_skew_seconds
    room = marker_ttl_s - skew - rm.max_intent_age_seconds
    margin = max(0, min(COMMIT_MARGIN_S, room))
    return timedelta(seconds=marker_ttl_s - skew - margin)


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
    whole(
        "marker_ttl_s",
        age,
        MAX_MARKER_TTL_S,
        unit=" of seconds",
        why=f" (at least max_intent_age_seconds {rm.max_intent_age_seconds} + "
        f"max_clock_skew_seconds {rm.max_clock_skew_seconds}: an intent re-sent after its "
        "marker expired, still young enough to be decided, would be decided again)",
    )
    before = len(out)
    whole("event_marker_ttl_s", 1, MAX_MARKER_TTL_S, unit=" of seconds")
    if len(out) == before:
        try:  # events older than the window are refused; it needs a margin
            event_window(s.event_marker_ttl_s, rm.max_clock_skew_seconds)
        except ValueError as exc:
            out.append(f"{name('event_marker_ttl_s')}: {exc}")
    for field in ("retention_s", "trim_every_s", "unconsumed_keep_s", "idle_group_s"):
        seconds(field)
    for field in ("intents_keep_s", "decisions_keep_s"):
        value = getattr(s, field)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not (ok and math.isfinite(value) and value >= 0):
            out.append(f"{name(field)} is {value!r}: it must be 0 or more seconds")
    whole("trim_limit", MIN_TRIM_LIMIT, why=" (fewer could not keep up with a burst)")
    whole("deadletter_max", 1)
    whole("max_batch_bytes", 1)
    whole("flood_read_factor", 1, 1000)
    whole("pipeline", 1, MAX_PIPELINE, why=" (batches decided while the one before commits)")
    whole("replicas", 0, MAX_REPLICAS)
    whole("wait_timeout_ms", 1, MAX_WAIT_MS, why=" (0 would wait forever)")
    _serving_problems(s, whole, seconds, out)
    return out


def _serving_problems(
    s: GateSettings,
    whole: Callable[..., None],
    seconds: Callable[[str], None],
    out: list[str],
) -> None:
    """The lease and the rotation over portfolios (``settings_problems``' second half)."""
    before = len(out)
    whole("lease_ttl_ms", MIN_LEASE_TTL_MS, MAX_LEASE_TTL_MS)
    if len(out) == before:  # renewed at least twice a TTL: one late renewal keeps it
        whole(
            "lease_renew_ms",
            1,
            s.lease_ttl_ms // 2,
            why=f" (at most half of lease_ttl_ms {s.lease_ttl_ms}: the owner renews at least "
            "twice a TTL, so one late renewal does not lose the lease)",
        )
    whole("idle_ms", 1, MAX_IDLE_MS)
    seconds("registry_every_s")
