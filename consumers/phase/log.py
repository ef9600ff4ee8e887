"""Phase events: logged in ``phase_activation_log``, then published on the phases stream.

One row per (portfolio, phase) holds both of a phase's events: ``phase_ready`` (every
requirement met, the numbers it was decided on) and ``phase_activated`` (with it,
for an automatic phase; later by an operator, with who and why, for a manual one).
The primary key is what makes "never the same phase twice" true.

PostgreSQL and Redis cannot commit together, so emission is two steps:

1. **log**: insert the row, or set its activation columns (a conditional update:
   only the first activation wins). Committed before anything reaches Redis.
2. **publish**: with the row locked (FOR UPDATE), for each event logged without a
   stream id: find it on the stream or XADD it, apply an activation to the live
   controls (``consumers.state.control.enable``), record the stream id.

A crash between the steps leaves a stream id missing; :func:`publish_unsent` (run by
the phase monitor at start and on every evaluation) publishes it. A crash after the
XADD but before the update is covered by looking for the event on the stream first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis import Redis

from consumers.bus.keys import DATA, Keys
from consumers.db.connection import Connection, jsonb, row_dicts
from consumers.state import control
from consumers.state.snapshot_codec import decode_control
from gate.money import show
from gate.performance import PhaseMetrics
from gate.phases import RequirementResult, active_phases
from schemas.config import AssetsConfig
from schemas.messages import PhaseEvent

READY = "phase_ready"
ACTIVATED = "phase_activated"
MONITOR = "phase-monitor"


@dataclass(frozen=True, slots=True)
class Logged:
    phase: str
    ready_at: datetime | None
    ready_stream_id: str | None
    activated_at: datetime | None
    activated_by: str | None
    reason: str | None
    forced: bool
    activated_stream_id: str | None
    logged_at: datetime


def snapshot(metrics: PhaseMetrics, results: Sequence[RequirementResult]) -> dict[str, Any]:
    """What a phase event was decided on: the metrics and each requirement's verdict."""
    return {
        "metrics": metrics.to_json(),
        "requirements": [
            {
                "name": r.name,
                "requirement": r.requirement,
                "value": show(r.value),
                "met": r.met,
                "note": r.note,
            }
            for r in results
        ],
        "requirements_met": all(r.met for r in results),
    }


def logged_phases(conn: Connection, portfolio: str) -> dict[str, Logged]:
    cur = conn.execute(
        "SELECT phase, ready_at, ready_stream_id, activated_at, activated_by, reason, forced, "
        "activated_stream_id, logged_at FROM phase_activation_log WHERE portfolio = %s",
        (portfolio,),
    )
    return {r["phase"]: Logged(**r) for r in row_dicts(cur)}


def live_config(redis: Redis, keys: Keys, config: AssetsConfig) -> AssetsConfig:
    """The file's config with the live enable/disable overrides from Redis applied."""
    _, assets, classes = decode_control(redis.hgetall(keys.control))
    known = {s: on for s, on in assets.items() if s in config.assets}
    return config.with_enabled(known, classes)


def complete_phases(
    config: AssetsConfig, live: AssetsConfig, logged: Mapping[str, Logged]
) -> set[str]:
    """Phases that count as complete: enabled in the file (the starting state), enabled
    live, or activated per the log (a later disable does not undo completion)."""
    done = set(active_phases(config)) | set(active_phases(live))
    return done | {p for p, row in logged.items() if row.activated_at is not None}


def _columns(config: AssetsConfig, phase: str) -> tuple[str, list[str], list[str]]:
    p = config.phases[phase]
    return p.activation, list(p.assets), [c.value for c in p.classes]


def log_ready(
    conn: Connection,
    portfolio: str,
    config: AssetsConfig,
    phase: str,
    *,
    decided_on: dict[str, Any],
    at: datetime,
) -> bool:
    """Log ``phase_ready`` (and, for an automatic phase, ``phase_activated`` with it).

    False when the phase has a row already: it was emitted before.
    """
    activation, assets, classes = _columns(config, phase)
    auto = activation == "automatic"
    row = conn.execute(
        "INSERT INTO phase_activation_log (portfolio, phase, activation, assets, classes, "
        "ready_at, ready_snapshot, activated_at, activated_by, activation_snapshot) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (portfolio, phase) DO NOTHING RETURNING phase",
        (
            portfolio, phase, activation, assets, classes, at, jsonb(decided_on),
            at if auto else None, MONITOR if auto else None, jsonb(decided_on) if auto else None,
        ),
    ).fetchone()  # fmt: skip
    return row is not None


def log_activation(
    conn: Connection,
    portfolio: str,
    config: AssetsConfig,
    phase: str,
    *,
    decided_on: dict[str, Any],
    at: datetime,
    by: str,
    reason: str | None,
    forced: bool,
) -> bool:
    """Log ``phase_activated`` by an operator; False if the phase was activated before."""
    activation, assets, classes = _columns(config, phase)
    row = conn.execute(
        "INSERT INTO phase_activation_log AS l (portfolio, phase, activation, assets, classes, "
        "activated_at, activated_by, reason, forced, activation_snapshot) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (portfolio, phase) DO UPDATE SET activated_at = excluded.activated_at, "
        "activated_by = excluded.activated_by, reason = excluded.reason, "
        "forced = excluded.forced, activation_snapshot = excluded.activation_snapshot "
        "WHERE l.activated_at IS NULL RETURNING phase",
        (portfolio, phase, activation, assets, classes, at, by, reason, forced, jsonb(decided_on)),
    ).fetchone()
    return row is not None


def _on_stream(redis: Redis, keys: Keys, event_type: str, phase: str) -> str | None:
    """The id of an event already on the phases stream for this phase and type."""
    for msg_id, fields in redis.xrevrange(keys.phases, count=10_000) or []:
        try:
            data = json.loads((fields or {}).get(DATA, b"{}"))
        except ValueError:
            continue
        if isinstance(data, dict) and (data.get("type"), data.get("phase")) == (event_type, phase):
            return msg_id.decode() if isinstance(msg_id, bytes) else str(msg_id)
    return None


def _xadd(redis: Redis, keys: Keys, event: PhaseEvent) -> str:
    found = _on_stream(redis, keys, event.type, event.phase)
    if found is not None:
        return found
    added = redis.xadd(keys.phases, {DATA: event.model_dump_json()})
    return added.decode() if isinstance(added, bytes) else str(added)


SELECT_FOR_PUBLISH = """
SELECT assets, ready_at, ready_snapshot, ready_stream_id, activated_at, activation_snapshot,
       activated_stream_id
  FROM phase_activation_log WHERE portfolio = %s AND phase = %s FOR UPDATE
"""


def publish(
    conn: Connection, redis: Redis, keys: Keys, config: AssetsConfig, phase: str
) -> list[str]:
    """Put the phase's logged, unpublished events on the stream (once each), in order
    (ready before activated); returns the stream ids of the events published now."""
    out = []
    with conn.transaction():
        row = conn.execute(SELECT_FOR_PUBLISH, (keys.portfolio, phase)).fetchone()
        if row is None:
            return []
        assets, ready_at, ready_snap, ready_id, act_at, act_snap, act_id = row
        if ready_at is not None and ready_id is None:
            event = PhaseEvent(
                type=READY,
                phase=phase,
                assets=tuple(assets),
                metrics=ready_snap["metrics"],
                at=ready_at,
            )
            ready_id = _xadd(redis, keys, event)
            out.append(ready_id)
        if act_at is not None and act_id is None:
            event = PhaseEvent(
                type=ACTIVATED,
                phase=phase,
                assets=tuple(assets),
                metrics=act_snap["metrics"],
                at=act_at,
            )
            act_id = _xadd(redis, keys, event)
            control.enable(redis, keys, config, [phase], True)  # holds before a gate reads it
            out.append(act_id)
        conn.execute(
            "UPDATE phase_activation_log SET ready_stream_id = %s, activated_stream_id = %s "
            "WHERE portfolio = %s AND phase = %s",
            (ready_id, act_id, keys.portfolio, phase),
        )
    return out


def publish_unsent(conn: Connection, redis: Redis, keys: Keys, config: AssetsConfig) -> list[str]:
    """Publish every logged event of the portfolio that has no stream id yet."""
    rows = conn.execute(
        "SELECT phase FROM phase_activation_log WHERE portfolio = %s AND "
        "((ready_at IS NOT NULL AND ready_stream_id IS NULL) OR "
        " (activated_at IS NOT NULL AND activated_stream_id IS NULL)) ORDER BY logged_at",
        (keys.portfolio,),
    ).fetchall()
    return [sid for (phase,) in rows for sid in publish(conn, redis, keys, config, phase)]
