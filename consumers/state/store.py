"""Read a consistent snapshot of one portfolio (state, control, correlations) from Redis:
the whole of it (:meth:`Store.load`), or what changed since a snapshot held
(:meth:`Store.load_since`, from the state's change log: consumers/state/changelog.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from redis import Redis

from consumers.bus.keys import Keys
from consumers.state.changelog import SINCE_LUA
from consumers.state.codec import StateError
from consumers.state.snapshot_codec import (
    DecodeCache,
    apply_fields,
    decode_control,
    decode_correlations,
    decode_state,
)
from gate.portfolio import Snapshot
from schemas.config import AssetClass, AssetsConfig


@dataclass(frozen=True, slots=True)
class Loaded:
    snapshot: Snapshot
    config: AssetsConfig  # the file plus live enable/disable overrides


class Store:
    """Loads snapshots; caches the effective config until the overrides change."""

    def __init__(self, redis: Redis, keys: Keys, base: AssetsConfig) -> None:
        self.redis = redis
        self.keys = keys
        self.base = base
        self._overrides: tuple[dict[str, bool], dict[AssetClass, bool]] = ({}, {})
        self._effective = base
        self._decoded: DecodeCache = {}  # makes a reload cost what changed
        self._since = redis.register_script(SINCE_LUA)

    def effective(
        self, assets: Mapping[str, bool], classes: Mapping[AssetClass, bool]
    ) -> AssetsConfig:
        wanted = (dict(assets), dict(classes))
        if wanted != self._overrides:
            known = {s: on for s, on in assets.items() if s in self.base.assets}
            self._effective = self.base.with_enabled(known, classes)
            self._overrides = wanted
        return self._effective

    def load(self) -> Loaded:
        """State, control and correlations read in one MULTI: one consistent version."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.keys.state)
        pipe.hgetall(self.keys.control)
        pipe.get(self.keys.correlations)
        state, control, corr = pipe.execute()
        flags, assets, classes = decode_control(control)
        snapshot = replace(
            decode_state(state, self._decoded),
            flags=flags,
            correlations=decode_correlations(corr),
        )
        return Loaded(snapshot, self.effective(assets, classes))

    def load_since(self, held: Snapshot) -> tuple[Loaded, frozenset[str] | None]:
        """The snapshot now, built from ``held`` and the state fields changed since its
        version, with the reservation ids those touched; when the change log cannot
        account for every version since (trimmed, or a bump it never saw), the whole
        state (:meth:`load`) and None. One atomic call: one consistent version."""
        kk = self.keys
        reply = self._since(
            keys=[kk.state, kk.changes, kk.control, kk.correlations], args=[held.version]
        )
        raw_version, control, corr, names, values = reply
        if names is None:  # false: read everything
            return self.load(), None
        try:
            version = int(raw_version)
        except ValueError as exc:
            raise StateError(f"the state's version {raw_version!r} is unreadable") from exc
        fields = {_text(n): v for n, v in zip(names, values, strict=True)}
        snapshot, touched = apply_fields(held, version, fields, self._decoded)
        flags, assets, classes = decode_control(_pairs(control))
        snapshot = replace(snapshot, flags=flags, correlations=decode_correlations(corr))
        return Loaded(snapshot, self.effective(assets, classes)), touched


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: list[Any]) -> dict[Any, Any]:
    return dict(zip(flat[0::2], flat[1::2], strict=True))
