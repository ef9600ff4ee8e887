"""What telemetry reads of the workers it observes: small protocols, not the workers.

The gate worker (:mod:`consumers.gate_worker.worker`) and the stream-to-PostgreSQL
consumers (:mod:`consumers.db.stream_to_pg`) sit above ``ops``: they import telemetry
to be instrumented. Telemetry names only what it reads of them, here, so that nothing
in ``ops`` imports a layer above it. mypy checks that the workers satisfy these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from redis import Redis

from consumers.bus.keys import Keys
from consumers.state.store import Store
from schemas.messages import Decision


class NamedConsumer(Protocol):
    """A worker's settings, as far as telemetry cares: its consumer name."""

    @property
    def consumer(self) -> str: ...


class StageClock(Protocol):
    """Seconds spent in each stage of a gate's loop (consumers/gate_worker/stages.py)."""

    seconds: dict[str, float]


class ObservedGate(Protocol):
    """A gate worker: its connection, keys, loop counters, settings, state store and
    stage clock."""

    telemetry: Any  # set by ``serve_gate``; the worker calls its hooks

    @property
    def redis(self) -> Redis: ...
    @property
    def keys(self) -> Keys: ...
    @property
    def stats(self) -> dict[str, int]: ...
    @property
    def settings(self) -> NamedConsumer: ...
    @property
    def store(self) -> Store: ...
    @property
    def stages(self) -> StageClock: ...


class ObservedConsumer(Protocol):
    """A stream-to-PostgreSQL consumer (the audit writer, the phase monitor)."""

    telemetry: Any  # set by ``serve_consumer``
    stream: str
    group: str

    @property
    def redis(self) -> Redis: ...
    @property
    def stats(self) -> dict[str, int]: ...
    @property
    def settings(self) -> NamedConsumer: ...


class ObservedHost(Protocol):
    """A process serving several portfolios: its role, each portfolio's telemetry."""

    telemetry: Any  # set by ``serve_host``; the host calls ``beat`` once a round
    role: str

    def telemetries(self) -> Sequence[Any]: ...


class DecidedMessage(Protocol):
    """One decided intent of a batch: the stream id it arrived with."""

    @property
    def msg_id(self) -> bytes: ...


class CommittedPlan(Protocol):
    @property
    def decided(self) -> Sequence[DecidedMessage]: ...


class CommittedBatch(Protocol):
    """A batch the gate committed: what was decided, and how many past an agent's quota."""

    @property
    def plan(self) -> CommittedPlan: ...
    @property
    def decisions(self) -> Sequence[Decision]: ...
    @property
    def over_quota(self) -> int: ...
