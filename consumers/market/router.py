"""Which source answers for which asset, and failover when one fails.

Failover kinds (``bars``, ``latest``, ``earnings``): each asset asks its configured
``data_sources`` in order, skipping those without an adapter for the kind, those not
configured (credentials missing) and those cooling down after a failure. A source
that fails (HTTP error, timeout, malformed body, rate limit) or leaves an asset out of
its answer hands the asset to the next source: the switch is logged
(``source failover``) and counted (``riskgate_feed_failovers_total``). An asset no
source could serve is reported with every source's reason, and gets no new data: its
mark ages and the gate's staleness rules reject openings in it (fail closed).

Fan-out kinds (``calendar``, ``sentiment``, ``options_flow``, ``indicators``): each
source serving the kind is asked once for the assets that list it: these sources
carry different data, so there is nothing to fail over to.

With ``only`` (``riskgate feed --source sim``) every asset uses just those sources.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog

from consumers.market.sources.base import (
    Asset,
    Clock,
    Kind,
    NotConfigured,
    RateLimited,
    Source,
    SourceError,
)
from consumers.market.sources.catalog import SERVES
from consumers.market.sources.gateway import UsageBook

T = TypeVar("T")
FAILOVER_KINDS = (Kind.BARS, Kind.LATEST, Kind.EARNINGS)
COOLDOWN_S = (30, 60, 120, 300, 600)  # after 1, 2, 3, ... consecutive failures


@dataclass(frozen=True, slots=True)
class Coverage:
    symbol: str
    kind: Kind
    source: str | None  # who served it (None: nobody)
    ok: bool
    reason: str | None  # why not, every source's reason


@dataclass
class Health:
    state: str = "ok"  # ok | failing | not_configured | rate_limited
    reason: str | None = None
    failures: int = 0
    until: datetime | None = None  # cooling down until


@dataclass
class Routed:
    items: list[tuple[str, Any]] = field(default_factory=list)  # (source, item)
    coverage: list[Coverage] = field(default_factory=list)

    def values(self) -> list[Any]:
        return [item for _, item in self.items]


class Router:
    def __init__(
        self,
        sources: Mapping[str, Source],
        usage: UsageBook,
        clock: Clock,
        *,
        only: Sequence[str] = (),
    ) -> None:
        self.sources = dict(sources)
        self.usage = usage
        self.clock = clock
        self.only = tuple(only)
        self.health: dict[str, Health] = defaultdict(Health)
        self.failovers: Counter[tuple[str, str, str]] = Counter()  # (kind, from, to)
        self.errors: Counter[str] = Counter()
        self.log = structlog.get_logger("riskgate.feed")
        for name, src in self.sources.items():
            why = src.problem()
            if why:
                self.health[name] = Health("not_configured", why)

    def listed(self, asset: Asset) -> tuple[str, ...]:
        return self.only or tuple(asset.config.data_sources)

    def chain(self, kind: Kind, asset: Asset) -> list[str]:
        return [n for n in self.listed(asset)
                if n in self.sources and kind in self.sources[n].serves
                and self.sources[n].covers(asset)]  # fmt: skip

    def wants(self, kind: Kind, asset: Asset) -> bool:
        """Does a source the asset lists serve ``kind``? (Asked in ``only`` mode too, so a
        simulated market fills what the real sources would, for the same assets.)"""
        return any(kind in SERVES.get(n, ()) for n in asset.config.data_sources)

    def _usable(self, name: str) -> str | None:
        """None when ``name`` may be asked now, else why not."""
        h = self.health[name]
        if h.state == "not_configured":
            return f"{name}: not configured ({h.reason})"
        if h.until is not None and h.until > self.clock():
            return f"{name}: cooling down after {h.reason}"
        return None

    def _failed(self, name: str, exc: Exception) -> str:
        h = self.health[name]
        reason = str(exc) if isinstance(exc, SourceError) else f"{name}: {exc!r}"
        if isinstance(exc, NotConfigured):
            self.health[name] = Health("not_configured", reason)
            return reason
        h.failures += 1
        h.state = "rate_limited" if isinstance(exc, RateLimited) else "failing"
        h.reason = reason
        h.until = self.clock() + timedelta(seconds=COOLDOWN_S[min(h.failures, 5) - 1])
        if not isinstance(exc, RateLimited):
            self.usage.error(name, reason, self.clock())
            self.errors[name] += 1
        self.log.warning(
            "source failed", source=name, error=reason, cooldown_until=h.until.isoformat()
        )
        return reason

    def _ok(self, name: str) -> None:
        self.health[name] = Health()
        self.usage.success(name, self.clock())

    def fetch(
        self,
        kind: Kind,
        assets: Sequence[Asset],
        call: Callable[[Source, list[Asset]], list[T]],
        symbol_of: Callable[[T], str] | None,
    ) -> Routed:
        """A failover kind: each asset from the first source able to serve it.
        ``symbol_of`` None: an answer without an asset still serves it (a calendar)."""
        out = Routed()
        chains = {a.symbol: self.chain(kind, a) for a in assets}
        at = dict.fromkeys(chains, 0)
        reasons: dict[str, list[str]] = defaultdict(list)
        pending = {a.symbol: a for a in assets}
        while pending:
            groups: dict[str, list[Asset]] = defaultdict(list)
            for sym, asset in list(pending.items()):
                while at[sym] < len(chains[sym]) and (why := self._usable(chains[sym][at[sym]])):
                    reasons[sym].append(why)
                    at[sym] += 1
                    skipped = chains[sym][at[sym] - 1]
                    if self.health[skipped].state != "not_configured":  # cooling down: a switch
                        self._switch(kind, asset, skipped, chains[sym], nxt=at[sym], why=why)
                if at[sym] >= len(chains[sym]):
                    del pending[sym]
                    why = "; ".join(reasons[sym]) or f"no configured source serves {kind}"
                    out.coverage.append(Coverage(sym, kind, None, False, why))
                else:
                    groups[chains[sym][at[sym]]].append(asset)
            for name, group in groups.items():
                try:
                    items = call(self.sources[name], group)
                except Exception as exc:  # every failure fails over; none approves anything
                    why, served = self._failed(name, exc), set()
                else:
                    self._ok(name)
                    out.items += [(name, i) for i in items]
                    served = ({symbol_of(i) for i in items} if symbol_of
                              else {a.symbol for a in group})  # fmt: skip
                    why = f"{name}: no {kind} in its answer"
                for asset in group:
                    if asset.symbol in served:
                        del pending[asset.symbol]
                        out.coverage.append(Coverage(asset.symbol, kind, name, True, None))
                        continue
                    reasons[asset.symbol].append(why)
                    at[asset.symbol] += 1
                    self._switch(
                        kind, asset, name, chains[asset.symbol], nxt=at[asset.symbol], why=why
                    )
        return out

    def _switch(
        self, kind: Kind, asset: Asset, name: str, chain: list[str], *, nxt: int, why: str
    ) -> None:
        to = chain[nxt] if nxt < len(chain) else "none"
        self.failovers[(str(kind), name, to)] += 1
        self.log.warning("source failover", kind=str(kind), symbol=asset.symbol,
                         failed=name, to=to, error=why)  # fmt: skip

    def fan_out(
        self, kind: Kind, assets: Sequence[Asset], call: Callable[[Source, list[Asset]], list[T]]
    ) -> Routed:
        out = Routed()
        users: dict[str, list[Asset]] = defaultdict(list)
        for a in assets:
            if self.wants(kind, a):
                for name in self.chain(kind, a):
                    users[name].append(a)
        for name, group in sorted(users.items()):
            why = self._usable(name)
            if why is None:
                try:
                    out.items += [(name, i) for i in call(self.sources[name], group)]
                except Exception as exc:
                    why = self._failed(name, exc)
                else:
                    self._ok(name)
            out.coverage += [Coverage(a.symbol, kind, name, why is None, why) for a in group]
        return out
