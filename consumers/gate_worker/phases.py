"""Live config from the phases stream: ``phase_activated`` enables the phase's classes
and assets; unreadable phase entries are dead-lettered, other types acked and ignored."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from redis import Redis

from consumers.bus import keys as k
from consumers.bus.keys import Keys
from consumers.bus.streams import Entry
from consumers.gate_worker.intake import dead_letter, describe
from consumers.gate_worker.settings import GateSettings
from consumers.state.changelog import note_bump
from consumers.state.store import Loaded, Store
from schemas.messages import MAX_ENTRY_BYTES, MessageError, parse_json


class PhaseEvents:
    """GateWorker's phases-stream half (a mixin: the attributes are the worker's)."""

    redis: Redis
    keys: Keys
    settings: GateSettings
    store: Store
    stats: Counter[str]
    log: Any
    clock: Callable[[], datetime]
    loaded: Loaded | None
    _stale: Loaded | None

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
            note_bump(pipe, self.keys)
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
