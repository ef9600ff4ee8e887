"""Read a consistent snapshot of one portfolio (state, control, correlations) from Redis."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from redis import Redis

from consumers.bus.keys import Keys
from consumers.state.snapshot_codec import (
    DecodeCache,
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
