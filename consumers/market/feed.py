"""``riskgate feed``: market data in, on a schedule, through the routed sources.

Jobs (each on its own period; all of them on the first turn):

* ``marks`` (``--marks-every``, 30 s): the latest price of every configured symbol,
  published as ``mark`` events dated when the provider observed them (quotes older
  than ``max_mark_age_seconds`` are not published: they would be refused as stale
  anyway, and a fresh-looking old price is exactly what the gate must never see).
* ``bars`` (``--bars-every``, 1 h): daily bars into ``price_data`` (``--history-days``
  on the first run, the last 3 days after), then each symbol's regime from
  ``price_data`` (:mod:`consumers.market.regime`), published as the gate's regime flag
  with its ``as_of`` (only when it changed).
* ``calendar`` (``--calendar-every``, 6 h): earnings dates (with failover) and the
  macro and energy calendars into ``economic_calendar``; then each blackout-ruled
  symbol's earnings flag set to its next date on record (only when it changed).
* ``extras`` (``--extras-every``, 15 min): sentiment, unusual options flow and leading
  indicators into their tables, for the symbols whose sources serve them.

After every turn the usage goes to ``data_source_registry`` and the coverage to
``feed_coverage``. A job that fails (PostgreSQL or Redis down) is logged and retried
next turn; its data simply does not arrive, and the gate's staleness rules take over.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from redis import Redis

from consumers.bus import keys as k
from consumers.bus.keys import Keys
from consumers.db.connection import Connection
from consumers.market import feed_store as store
from consumers.market import source_registry
from consumers.market.prices import load_bars
from consumers.market.regime import classify
from consumers.market.router import Coverage, Router
from consumers.market.sources.base import Asset, Kind, Quote
from consumers.sdk.client import GateClient
from consumers.state.codec import encode_regime
from consumers.state.control import set_control
from schemas.config import AssetsConfig

JOBS = ("marks", "bars", "calendar", "extras")
REGIME_BARS = 60  # daily bars the regime is computed from (ADX needs 29)


@dataclass(frozen=True, slots=True)
class FeedSettings:
    marks_every: float = 30.0
    bars_every: float = 3600.0
    calendar_every: float = 6 * 3600.0
    extras_every: float = 900.0
    history_days: int = 90
    calendar_days: int = 90
    symbols: tuple[str, ...] = ()  # default: every configured symbol

    def every(self, job: str) -> float:
        return float(getattr(self, f"{job}_every"))


@dataclass
class FeedStats:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    last_run: dict[str, float] = field(default_factory=dict)  # job -> monotonic time


class Feed:
    def __init__(
        self,
        conn: Callable[[], Connection],
        redis: Redis,
        keys: Keys,
        config: AssetsConfig,
        router: Router,
        *,
        settings: FeedSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.conn = conn
        self.redis = redis
        self.keys = keys
        self.config = config
        self.router = router
        self.settings = settings
        self.clock = clock
        self.client = GateClient(redis=redis, portfolio=keys.portfolio, prefix=keys.prefix)
        names = settings.symbols or tuple(sorted(config.assets))
        self.assets = [
            Asset(s, config.assets[s].asset_class.value, config.assets[s]) for s in names
        ]
        self.classes = {a.symbol: a.asset_class for a in self.assets}
        self.stats = FeedStats()
        self.coverage: list[Coverage] = []
        self.bars_loaded = False
        self.log = structlog.get_logger("riskgate.feed").bind(portfolio=keys.portfolio)

    # -- the loop ------------------------------------------------------------------------

    def due(self, now_mono: float) -> list[str]:
        last = self.stats.last_run
        return [j for j in JOBS if j not in last or now_mono - last[j] >= self.settings.every(j)]

    def turn(self, jobs: list[str] | None = None) -> dict[str, Any]:
        """Run the due jobs (or ``jobs``), then write usage and coverage; what to log."""
        fields: dict[str, Any] = {}
        for job in jobs if jobs is not None else self.due(time.monotonic()):
            self.stats.last_run[job] = time.monotonic()
            try:
                fields[job] = getattr(self, job)()
            except Exception as exc:  # logged; the job runs again next period
                self.stats.counts["job_errors"] += 1
                self.log.exception("feed job failed", job=job, error=repr(exc))
                fields[job] = {"error": repr(exc)}
        self.flush()
        return fields

    def flush(self) -> None:
        now = self.clock()
        states = {n: (h.state, h.reason) for n, h in self.router.health.items()}
        with self.conn() as conn:
            source_registry.flush(conn, self.router.usage.take(), states, now)
            store.store_coverage(conn, self.coverage, now)
        self.coverage = []

    # -- jobs ----------------------------------------------------------------------------

    def marks(self) -> dict[str, Any]:
        now = self.clock()
        routed = self.router.fetch(Kind.LATEST, self.assets, lambda s, g: s.latest(g), _symbol)
        oldest = now - timedelta(seconds=self.config.risk_management.max_mark_age_seconds)
        by_time: dict[datetime, dict[str, Decimal]] = defaultdict(dict)
        served = {c.symbol: c for c in routed.coverage}
        for source, q in routed.items:
            if q.at < oldest:
                why = f"{source}: newest quote is from {q.at.isoformat()}, older than the mark age"
                served[q.symbol] = Coverage(q.symbol, Kind.LATEST, source, False, why)
                self.log.warning("stale quote not published", symbol=q.symbol, source=source,
                                 at=q.at.isoformat())  # fmt: skip
                continue
            by_time[min(q.at, now)][q.symbol] = q.price
        for at, prices in sorted(by_time.items()):
            self.client.mark(prices, at=at)
        self.coverage += served.values()
        published = sum(len(p) for p in by_time.values())
        self.stats.counts["marks"] += published
        return {
            "published": published,
            "unserved": sorted(s for s, c in served.items() if not c.ok),
        }

    def bars(self) -> dict[str, Any]:
        today = self.clock().date()
        days = self.settings.history_days if not self.bars_loaded else 3
        start = today - timedelta(days=days)
        routed = self.router.fetch(
            Kind.BARS, self.assets, lambda s, g: s.bars(g, start, today), lambda b: b.symbol
        )
        self.coverage += routed.coverage
        bars = routed.values()
        with self.conn() as conn:
            inserted, _replaced = load_bars(conn, bars) if bars else (0, 0)
        self.bars_loaded = self.bars_loaded or bool(bars)
        self.stats.counts["bars"] += len(bars)
        return {"bars": len(bars), "inserted": inserted, "regimes": self.regimes()}

    def regimes(self) -> dict[str, str]:
        now = self.clock()
        with self.conn() as conn:
            candles = store.daily_candles(
                conn, [a.symbol for a in self.assets], now - timedelta(days=REGIME_BARS)
            )
        calls = {s: c for s, series in candles.items() if (c := classify(series, now))}
        fields = {k.P_REGIME + s: encode_regime(c.regime, c.as_of) for s, c in calls.items()}
        self._set_changed(fields)  # a new as_of too: it keeps the flag from expiring
        return {s: f"{c.regime} (ADX {c.adx:.1f})" for s, c in sorted(calls.items())}

    def calendar(self) -> dict[str, Any]:
        today = self.clock().date()
        end = today + timedelta(days=self.settings.calendar_days)
        ruled = [a for a in self.assets if a.config.special_rules.earnings_blackout_days is not None
                 and self.router.wants(Kind.EARNINGS, a)]  # fmt: skip
        earnings = self.router.fetch(
            Kind.EARNINGS, ruled, lambda s, g: s.earnings(g, today, end), None
        )
        others = self.router.fan_out(
            Kind.CALENDAR, self.assets, lambda s, g: s.calendar(g, today, end)
        )
        self.coverage += earnings.coverage + others.coverage
        answered = [(c.source, c.symbol) for c in earnings.coverage if c.ok and c.source]
        with self.conn() as conn:
            n = store.store_calendar(conn, earnings.items, answered=answered, today=today)
            n += store.store_calendar(conn, others.items)
            upcoming = store.next_earnings(conn, [a.symbol for a in ruled], today)
        self._set_changed({k.P_EARNINGS + s: d.isoformat() for s, d in upcoming.items()})
        self.stats.counts["events"] += n
        return {"events": n, "earnings": {s: d.isoformat() for s, d in sorted(upcoming.items())}}

    def extras(self) -> dict[str, int]:
        routed = {
            kind: self.router.fan_out(kind, self.assets, call)
            for kind, call in (
                (Kind.SENTIMENT, lambda s, g: s.sentiment(g)),
                (Kind.OPTIONS, lambda s, g: s.options_flow(g)),
                (Kind.INDICATORS, lambda s, g: s.indicators(g)),
            )
        }
        for r in routed.values():
            self.coverage += r.coverage
        with self.conn() as conn:
            return {
                "sentiment": store.store_sentiment(
                    conn, routed[Kind.SENTIMENT].items, self.classes
                ),
                "options_flow": store.store_options(conn, routed[Kind.OPTIONS].items, self.classes),
                "indicators": store.store_indicators(
                    conn, routed[Kind.INDICATORS].items, self.classes
                ),
            }

    def _set_changed(self, fields: dict[str, str]) -> None:
        """Write the control fields that differ (one version bump for all of them)."""
        if not fields:
            return
        names = sorted(fields)
        current = self.redis.hmget(self.keys.control, names)
        changed = {
            n: fields[n] for n, old in zip(names, current, strict=True)
            if (old.decode() if isinstance(old, bytes) else old) != fields[n]
        }  # fmt: skip
        if changed:
            set_control(self.redis, self.keys, changed)


def _symbol(q: Quote) -> str:
    return q.symbol
