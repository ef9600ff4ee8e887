"""``riskgate demo``: the whole system on one machine, with simulated agents and an executor.

1. Servers: ``REDIS_URL``/``DATABASE_URL`` when set, else the embedded ones of the data
   directory (:mod:`consumers.servers.embedded`), started or joined.
2. PostgreSQL migrated and the registries synced; a fresh portfolio (``demo-<time>``)
   with the first three phases enabled and 100,000 deposited.
3. The process tree (:mod:`consumers.demo.procs`): ``--workers`` gate workers, the audit
   writer and the phase monitor, each ``python -m consumers.cli ...``. In this process,
   the market feed on its simulated source, seeded by ``--seed`` (one turn of every
   job: marks, bars and the regimes from them, earnings dates, extras; then the
   correlations of those bars, each through the path production takes).
4. ``--duration`` ticks of at least ``TICK_S`` each, every step waiting for the last
   (so a seed gives the same decisions): the feed steps the marks; the agents
   (:mod:`consumers.demo.agents`) see the portfolio and send in one ``MULTI``; the gate
   decides; the executor fills the approved orders in stream order; the gate applies
   the fills; the agents learn from the decisions. Progress shown live
   (:mod:`consumers.demo.view`).
5. Drain: every intent decided, every event applied, every decision audited; the tree
   stopped (SIGTERM); the summary printed and checked (decisions == intents the gate
   had to decide == rows in ``trading_decisions``); the report written
   (:mod:`consumers.demo.report`). Exit 0 when consistent, 1 otherwise.

Ctrl-C (or SIGTERM) ends the run early and still drains, stops and reports; a second
one kills the tree at once.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from redis import Redis

from consumers.bus.keys import DATA, GROUP_AUDIT, GROUP_GATE, GROUP_PHASE, Keys
from consumers.bus.runtime import Shutdown, configure_logging, connect, redis_url
from consumers.db import connection as db
from consumers.db.services import prepare
from consumers.demo.agents import Agents, Executor, Market, setup_portfolio
from consumers.demo.checks import audit_rows, caught_up
from consumers.demo.procs import Supervisor
from consumers.demo.report import write_report
from consumers.demo.view import Progress, live_display, live_table, plain_line, summary_text
from consumers.market import correlations
from consumers.market.feed import Feed, FeedSettings
from consumers.market.feed_service import build as build_feed
from consumers.sdk.client import GateClient
from consumers.servers import embedded
from gate.assets import AssetManager
from gate.money import money_text

log = structlog.get_logger("riskgate.demo")
STATUSES = ("approved", "resized", "rejected")
TICK_S = 1.0  # a tick lasts at least this long (the flooder and the quota rely on it)
DRAIN_TIMEOUT_S = 90.0
SETTLE_TIMEOUT_S = 60.0
MAX_AGENTS = 900  # under the gate's 1,000 agents a minute (too_many_agents)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration: float = 60.0
    rate: int = 200
    seed: int = 7
    workers: int = 2
    phases: int = 3
    equity: Decimal = Decimal(100_000)
    report: Path | None = None
    portfolio: str | None = None
    config_path: str | None = None
    metrics_port: int = 0
    live: bool | None = None  # None: a live table when stdout is a terminal

    @classmethod
    def quick(cls, **overrides: Any) -> DemoOptions:
        return cls(**{"duration": 15.0, "rate": 100, **overrides})


def say(text: str) -> None:
    print(text, flush=True)


class Demo:
    def __init__(self, opts: DemoOptions) -> None:
        self.opts = opts
        self.rng = random.Random(opts.seed)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.keys = Keys.from_env(opts.portfolio or f"demo-{stamp}-{uuid.uuid4().hex[:4]}")
        self.manager = AssetManager(opts.config_path)
        self.config = self.manager.config
        self.shutdown = Shutdown(on_force=self._force)
        self.sup: Supervisor | None = None
        self.problems: list[str] = []

    def _force(self) -> None:
        if self.sup is not None:
            self.sup.kill_all()

    # -- the run -------------------------------------------------------------------------

    def run(self) -> int:
        configure_logging(level="WARNING")
        self.shutdown.install()
        rurl, durl = self._servers()
        redis = connect(rurl)
        try:
            return self._run(redis, durl)
        finally:
            if self.sup is not None:
                self.sup.stop()
            redis.close()

    def _servers(self) -> tuple[str, str]:
        rurl, durl = redis_url(None), db.database_url(None)
        where = embedded.data_dir()
        say(
            "servers: "
            + ("Redis from REDIS_URL" if _set("REDIS_URL") else f"embedded Redis in {where}")
            + ", "
            + ("PostgreSQL from DATABASE_URL" if _set("DATABASE_URL") else "embedded PostgreSQL")
        )
        applied = prepare(durl, self.config)
        say(f"database: {db.describe_url(durl)} migrated ({len(applied)} applied now), synced")
        return rurl, durl

    def _run(self, redis: Redis, durl: str) -> int:
        opts, keys = self.opts, self.keys
        report_dir = opts.report or embedded.data_dir() / "reports" / keys.portfolio
        client = GateClient(redis=redis, portfolio=keys.portfolio, prefix=keys.prefix)
        phases = list(self.config.phases)[: opts.phases]
        symbols = setup_portfolio(client, self.config, phases, opts.equity)
        disabled = [s for s in self.config.assets if s not in symbols]
        say(f"portfolio {keys.portfolio}: {len(symbols)} assets enabled ({', '.join(phases)})")
        self.sup = self._start_tree(report_dir / "logs")
        self._wait(redis, [(keys.events, GROUP_GATE)], 60.0, "workers to start")
        market = Market(symbols)
        progress = Progress(redis, keys, self.config)
        feed = self._market_data(redis, durl, progress, market)
        agents = Agents(
            self.manager, market, disabled=disabled, rng=self.rng,
            agents=min(MAX_AGENTS, max(10, 2 * opts.rate)),
        )  # fmt: skip
        executor = Executor(
            GateClient(redis=redis, portfolio=keys.portfolio, prefix=keys.prefix), opts.seed
        )
        try:
            if feed is not None and not self.problems:
                self._loop(redis, client, feed, agents=agents, market=market,
                           executor=executor, progress=progress, durl=durl)  # fmt: skip
        finally:
            self._drain(redis)
        codes = self.sup.stop()
        self.sup = None
        for name, code in codes.items():
            if code != 0:
                self.problems.append(f"{name} exited with status {code}")
        progress.read_decisions()
        progress.audit_rows, progress.audit_rejects = audit_rows(durl, keys.portfolio)
        summary = self._summary(redis, progress, agents, executor)
        page = write_report(report_dir, {**summary, "report": str(report_dir)}, progress)
        summary["report"] = str(page)
        say(summary_text(summary))
        return 0 if summary["consistent"] else 1

    def _start_tree(self, log_dir: Path) -> Supervisor:
        opts = self.opts
        sup = Supervisor(self.keys, log_dir, opts.config_path)
        port = opts.metrics_port
        for i in range(opts.workers):
            sup.start(f"gate-{i + 1}", "gate", "--block-ms", "200",
                      metrics_port=port + i if port else 0)  # fmt: skip
        sup.start("audit", "audit", "--block-ms", "200",
                  metrics_port=port + opts.workers if port else 0)  # fmt: skip
        sup.start("phase", "phase-monitor", "--block-ms", "200", "--evaluate-every", "5",
                  metrics_port=port + opts.workers + 1 if port else 0)  # fmt: skip
        names = ", ".join(c.name for c in sup.children)
        say(f"started {names}; logs in {log_dir}")
        if port:
            say(
                f"metrics on 127.0.0.1 ports {port}..{port + opts.workers + 1} (/metrics, /healthz)"
            )
        return sup

    def _market_data(
        self, redis: Redis, durl: str, progress: Progress, market: Market
    ) -> Feed | None:
        """The feed (its ``sim`` source, seeded) in this process: one turn of every job
        (marks, daily bars and the regimes from them, earnings dates, extras), then the
        correlations of those bars, each through the path production uses. During the
        run the demo steps the marks itself, once a tick, so a seed gives the same prices."""
        keys = self.keys
        settings = FeedSettings(history_days=90)
        feed = build_feed(redis, durl, keys, self.config, settings, only=("sim",),
                          seed=self.opts.seed)  # fmt: skip
        feed.turn(None)
        with db.connect(durl, application_name="riskgate-demo") as conn:
            corr = correlations.run_once(
                conn, redis, keys, self.config, window_days=60, min_observations=30
            )
        self._settle(redis, keys.events, "the feed's marks to be applied")
        progress.poll()
        market.update(progress.status)
        if not market.ready():
            missing = sorted(set(market.symbols) - set(market.prices))
            self.problems.append(f"no mark from the feed for {missing}")
            return None
        say(
            f"market: {len(market.prices)} symbols marked by the feed (sim source, seed "
            f"{self.opts.seed}), {len(corr.pairs)} correlations of its daily bars"
        )
        return feed

    def _loop(
        self,
        redis: Redis,
        client: GateClient,
        feed: Feed,
        *,
        agents: Agents,
        market: Market,
        executor: Executor,
        progress: Progress,
        durl: str,
    ) -> None:
        """One tick a second (or slower, never faster): the feed steps the marks; the
        agents see the portfolio and send; the gate decides all of it; the executor
        fills the approved orders; the gate applies the fills. Each step waits for the
        last, so what the agents see, and so what they send, depends on the seed only."""
        opts, keys = self.opts, self.keys
        live = live_display(opts.live)
        title = f"riskgate demo - portfolio {keys.portfolio}"
        ticks = max(1, round(opts.duration / TICK_S))
        start = time.monotonic()
        orders_done = lambda: caught_up(redis, keys.orders, Executor.GROUP)  # noqa: E731
        with live as view:
            for tick in range(ticks):
                self._check()
                if self.problems or self.shutdown.requested:
                    return
                if tick:
                    feed.turn(["marks"])
                    self._settle(redis, keys.events, "marks to be applied")
                progress.poll(tick)
                market.update(progress.status)
                burst = agents.flood(tick, progress.status)
                if burst:  # alone, so one batch holds it: one reading of the gate's clock
                    self._publish(client, burst)
                    self._settle(redis, keys.intents, "the flood to be decided")
                self._publish(client, agents.tick(tick, progress.status))
                self._settle(redis, keys.intents, "the intents to be decided")
                for intent_id, qty, price in executor.drain(orders_done):
                    agents.filled(intent_id, qty, price)
                self._settle(redis, keys.events, "fills to be applied")
                seen = len(progress.records)
                progress.read_decisions(tick, agents.created)
                agents.learn([(r.intent_id, r.symbol, r.status, tuple(c for c, _ in r.reasons))
                              for r in progress.records[seen:]])  # fmt: skip
                agents.forget()  # every intent of the tick is decided and handled
                if tick % 2 == 0 or tick == ticks - 1:
                    progress.audit_rows, _ = audit_rows(durl, keys.portfolio)
                fills = executor.stats.fills
                if view is not None:
                    view.update(live_table(progress, agents.stats.total, fills,
                                           executor.stats.cancels, title))  # fmt: skip
                elif tick % 2 == 0 or tick == ticks - 1:
                    say(plain_line(progress, agents.stats.total, fills, self.config))
                self.shutdown.wait(max(0.0, start + (tick + 1) * TICK_S - time.monotonic()))

    def _publish(self, client: GateClient, payloads: list[bytes]) -> None:
        """One MULTI: the gate reads all of a tick's intents or none of them."""
        if not payloads:
            return
        pipe = client.redis.pipeline(transaction=True)
        for p in payloads:
            pipe.xadd(client.keys.intents, {DATA: p})
        pipe.execute()

    def _settle(self, redis: Redis, stream: str, what: str) -> None:
        self._wait(redis, [(stream, GROUP_GATE)], SETTLE_TIMEOUT_S, what)

    def _check(self) -> None:
        assert self.sup is not None
        for child in self.sup.exited():
            self.problems.append(
                f"{child.name} exited ({child.proc.returncode}):\n{self.sup.tail(child)}"
            )

    def _drain(self, redis: Redis) -> None:
        """Everything in flight handled: intents decided, events applied, decisions audited
        (each tick settles its orders; a run cut short may leave some to the gate)."""
        keys = self.keys
        say("draining: waiting for every intent, event and decision to be handled")
        if not self.problems:
            self._wait(
                redis,
                [(keys.intents, GROUP_GATE), (keys.events, GROUP_GATE),
                 (keys.events, GROUP_PHASE), (keys.decisions, GROUP_AUDIT)],
                DRAIN_TIMEOUT_S,
                "intents decided, events applied and decisions audited",
            )  # fmt: skip

    def _wait(self, redis: Redis, pairs: list[tuple[str, str]], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not all(caught_up(redis, s, g) for s, g in pairs):
            if self.sup is not None and self.sup.exited():
                self._check_tree()
                return
            if time.monotonic() > deadline:
                self.problems.append(f"timed out after {timeout:.0f}s waiting for {what}")
                return
            time.sleep(0.005)

    def _check_tree(self) -> None:
        assert self.sup is not None
        for child in self.sup.exited():
            self.problems.append(f"{child.name} exited:\n{self.sup.tail(child)}")

    def _summary(
        self, redis: Redis, p: Progress, agents: Agents, executor: Executor
    ) -> dict[str, Any]:
        s = p.status
        expected = len(agents.stats.intent_ids)
        problems = list(self.problems)
        if p.decided != expected:
            problems.append(f"{p.decided} decisions for {expected} intents to decide")
        if p.audit_rows + p.audit_rejects != p.decided:
            problems.append(
                f"{p.audit_rows} audit rows and {p.audit_rejects} refused for {p.decided} decisions"
            )
        max_heat = max((x.heat for x in p.samples), default=0.0)
        return {
            "portfolio": self.keys.portfolio,
            "seconds": round(p.elapsed, 1),
            "ticks": sum(x.tick >= 0 for x in p.samples),
            "seed": self.opts.seed,
            "rate": self.opts.rate,
            "intents_sent": agents.stats.total,
            "mix": dict(agents.stats.sent),
            "intents_to_decide": expected,
            "decided": p.decided,
            "decisions": {k: p.statuses.get(k, 0) for k in ("approved", "resized", "rejected")},
            "by_class": {
                c: {k: n.get(k, 0) for k in ("approved", "resized", "rejected")}
                for c, n in sorted(p.by_class.items())
            },
            "by_kind": _by_kind(p, agents),
            "reasons": dict(p.reasons),  # decisions carrying each reason
            "examples": dict(sorted(p.examples.items())),
            "traded": dict(p.traded),
            "dead_letters": int(redis.xlen(self.keys.deadletter)),
            "fills": executor.stats.fills,
            "cancels": executor.stats.cancels,
            "audit_rows": p.audit_rows,
            "audit_rejects": p.audit_rejects,
            "equity": s.get("equity"),
            "equity_text": money_text(
                Decimal(s.get("equity") or 0), self.config.risk_management.account_currency
            ),
            "peak_equity": s.get("peak_equity"),
            "drawdown": s.get("drawdown"),
            "max_heat": round(max_heat, 4),
            "heat_limit": s.get("heat_limit"),
            "class_caps": {
                c: str(min(self.config.risk_management.max_single_asset_class, k.max_allocation))
                for c, k in self.config.asset_classes.items()
            },
            "correlation_limit": str(self.config.risk_management.max_correlation_exposure),
            "active_phases": s.get("active_phases", []),
            "consistent": not problems,
            "problem": "; ".join(problems),
        }


def _by_kind(p: Progress, agents: Agents) -> dict[str, dict[str, int]]:
    """Decisions by what the agent meant (the kinds of :mod:`consumers.demo.agents`)."""
    out: dict[str, Counter[str]] = {}
    for r in p.records:
        kind = agents.kinds.get(r.intent_id, "malformed")
        out.setdefault(kind, Counter())[r.status] += 1
    return {k: {s: n.get(s, 0) for s in STATUSES} for k, n in sorted(out.items())}


def _set(name: str) -> bool:
    return bool(os.environ.get(name))


def run_demo(opts: DemoOptions) -> int:
    return Demo(opts).run()
