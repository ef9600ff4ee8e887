"""``riskgate phase status`` and ``riskgate phase activate``: what each phase needs, and
the operator's manual activation (refused while requirements are unmet, unless forced
with a reason; who and why go into ``phase_activation_log``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from redis import Redis

from consumers.bus.keys import Keys
from consumers.db.connection import Connection
from consumers.phase.log import (
    Logged,
    complete_phases,
    live_config,
    log_activation,
    logged_phases,
    publish,
    snapshot,
)
from consumers.phase.metrics import current_metrics
from gate.performance import PhaseMetrics
from gate.phases import RequirementResult, evaluate_phase
from schemas.config import AssetsConfig


@dataclass(frozen=True, slots=True)
class PhaseStatus:
    name: str
    title: str
    activation: str
    state: str  # complete | ready | waiting
    results: tuple[RequirementResult, ...]
    logged: Logged | None

    @property
    def unmet(self) -> list[RequirementResult]:
        return [r for r in self.results if not r.met]


@dataclass(frozen=True, slots=True)
class Report:
    metrics: PhaseMetrics
    phases: tuple[PhaseStatus, ...]

    def phase(self, name: str) -> PhaseStatus:
        return next(s for s in self.phases if s.name == name)


def phase_report(
    conn: Connection, redis: Redis, keys: Keys, config: AssetsConfig, today: date
) -> Report:
    """Every phase with each requirement's current value and verdict."""
    with conn.transaction():
        metrics = current_metrics(conn, keys.portfolio, config, today)
        logged = logged_phases(conn, keys.portfolio)
    done = complete_phases(config, live_config(redis, keys, config), logged)
    out = []
    for name, phase in config.phases.items():
        results = tuple(evaluate_phase(config, name, metrics.values(), done))
        if name in done:
            state = "complete"
        elif all(r.met for r in results):
            state = "ready"
        else:
            state = "waiting"
        out.append(
            PhaseStatus(name, phase.title, phase.activation, state, results, logged.get(name))
        )
    return Report(metrics, tuple(out))


class ActivationRefused(Exception):
    """Requirements unmet and not forced; ``unmet`` says which."""

    def __init__(self, phase: str, unmet: list[RequirementResult]) -> None:
        self.phase = phase
        self.unmet = unmet
        listed = "; ".join(r.explain() for r in unmet)
        super().__init__(f"{phase}: requirements not met: {listed}")


@dataclass(frozen=True, slots=True)
class Activation:
    phase: str
    stream_ids: tuple[str, ...]  # events published by this call
    forced: bool
    already: bool  # it had been activated before (nothing new logged)
    unmet: tuple[RequirementResult, ...]


def activate(
    conn: Connection,
    redis: Redis,
    keys: Keys,
    config: AssetsConfig,
    phase: str,
    *,
    by: str,
    reason: str | None,
    force: bool,
    now: datetime,
) -> Activation:
    """Log and publish ``phase_activated`` for ``phase`` (a second call changes nothing)."""
    if phase not in config.phases:
        raise KeyError(f"unknown phase {phase!r}; phases: {', '.join(config.phases)}")
    report = phase_report(conn, redis, keys, config, now.date())
    status = report.phase(phase)
    logged = status.logged
    if logged is not None and logged.activated_at is not None:
        published = publish(conn, redis, keys, config, phase)  # finish a crashed publish
        return Activation(phase, tuple(published), logged.forced, True, ())
    unmet = status.unmet
    if unmet and not force:
        raise ActivationRefused(phase, unmet)
    if unmet and not (reason or "").strip():
        raise ValueError("--force needs --reason: say why the requirements are overridden")
    fresh = log_activation(
        conn, keys.portfolio, config, phase,
        decided_on=snapshot(report.metrics, status.results),
        at=now, by=by, reason=reason, forced=bool(unmet),
    )  # fmt: skip
    published = publish(conn, redis, keys, config, phase)
    return Activation(phase, tuple(published), bool(unmet) and fresh, not fresh, tuple(unmet))
