"""``riskgate demo``: the whole system on one machine, with simulated agents and an executor.

1. Servers: ``REDIS_URL``/``DATABASE_URL`` when set, else the embedded ones of the data
   directory (:mod:`consumers.servers.embedded`), started or joined.
2. PostgreSQL migrated and the registries synced; a fresh portfolio (``demo-<time>``)
   with the first three phases enabled and 100,000 deposited.
3. The process tree (:mod:`consumers.demo.procs`): ``--workers`` gate workers, the audit
   writer, the phase monitor and the market feed on its simulated source (``riskgate
   feed --source sim``: marks every second, bars, regimes and earnings dates from them,
   the path a production feed takes), each ``python -m consumers.cli ...``. Trading
   starts once every enabled symbol has a mark.
4. For ``--duration`` seconds: intents at ``--rate`` per second from the agents (priced
   at the latest marks), the executor filling approved orders
   (:mod:`consumers.demo.agents`), progress shown live (:mod:`consumers.demo.view`).
5. Drain: every intent decided, every order filled or cancelled, every event applied,
   every decision audited; the tree stopped (SIGTERM); the summary printed and checked
   (decisions == intents the gate had to decide == rows in ``trading_decisions``); the
   report written (:mod:`consumers.demo.report`). Exit 0 when consistent, 1 otherwise.

Ctrl-C (or SIGTERM) ends the run early and still drains, stops and reports; a second
one kills the tree at once.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from redis import Redis

from consumers.bus.keys import GROUP_AUDIT, GROUP_GATE, GROUP_PHASE, Keys
from consumers.bus.runtime import Shutdown, configure_logging, connect, redis_url
from consumers.db import connection as db
from consumers.db.services import prepare
from consumers.demo.agents import Agents, Executor, Market, setup_portfolio
from consumers.demo.checks import audit_rows, caught_up, held_positions
from consumers.demo.procs import Supervisor
from consumers.demo.report import write_report
from consumers.demo.view import Progress, live_display, live_table, plain_line, summary_text
from consumers.sdk.client import GateClient
from consumers.servers import embedded
from gate.assets import AssetManager

log = structlog.get_logger("riskgate.demo")
TICK_S = 0.1
DRAIN_TIMEOUT_S = 90.0


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
        self._wait_market(progress, market, 60.0)
        agents = Agents(
            client, self.manager, market, disabled=disabled, rng=self.rng,
            agents=max(10, opts.rate), equity=opts.equity,
        )  # fmt: skip
        executor = Executor(
            GateClient(redis=redis, portfolio=keys.portfolio, prefix=keys.prefix), self.rng
        )
        executor.start()
        try:
            self._loop(
                client, agents=agents, market=market, executor=executor, progress=progress,
                durl=durl,
            )  # fmt: skip
        finally:
            self._drain(redis, executor)
        codes = self.sup.stop()
        self.sup = None
        for name, code in codes.items():
            if code != 0:
                self.problems.append(f"{name} exited with status {code}")
        progress.poll()
        progress.audit_rows, progress.audit_rejects = audit_rows(durl, keys.portfolio)
        summary = self._summary(redis, progress, agents, executor)
        page = write_report(report_dir, {**summary, "report": str(report_dir)}, progress.samples)
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
        sup.start("feed", "feed", "--source", "sim", "--seed", str(opts.seed), "--no-migrate",
                  "--marks-every", "1", "--bars-every", "30", "--calendar-every", "60",
                  "--extras-every", "30", metrics_port=port + opts.workers + 2 if port else 0,
                  consumer=False)  # fmt: skip
        names = ", ".join(c.name for c in sup.children)
        say(f"started {names}; logs in {log_dir}")
        if port:
            say(
                f"metrics on 127.0.0.1 ports {port}..{port + opts.workers + 2} (/metrics, /healthz)"
            )
        return sup

    def _loop(
        self,
        client: GateClient,
        *,
        agents: Agents,
        market: Market,
        executor: Executor,
        progress: Progress,
        durl: str,
    ) -> None:
        opts = self.opts
        live = live_display(opts.live)
        title = f"riskgate demo - portfolio {self.keys.portfolio}"
        end = time.monotonic() + opts.duration
        owed, next_second, next_line = 0.0, 0.0, 0.0
        with live as view:
            while time.monotonic() < end and not self.shutdown.requested:
                self._check(executor)
                if self.problems:
                    return
                owed += opts.rate * TICK_S
                if int(owed):
                    agents.publish(int(owed))
                    owed -= int(owed)
                if time.monotonic() >= next_second:
                    next_second = time.monotonic() + 1.0
                    progress.poll()
                    market.update(progress.status)
                    progress.audit_rows, _ = audit_rows(durl, self.keys.portfolio)
                    agents.held = held_positions(progress.status)
                    fills, cancels = executor.stats.fills, executor.stats.cancels
                    if view is not None:
                        view.update(live_table(progress, agents.stats.total, fills, cancels, title))
                    elif time.monotonic() >= next_line:
                        next_line = time.monotonic() + 2.0
                        say(plain_line(progress, agents.stats.total, fills))
                self.shutdown.wait(TICK_S)

    def _wait_market(self, progress: Progress, market: Market, timeout: float) -> None:
        """Until the feed has marked every enabled symbol (its first turn)."""
        deadline = time.monotonic() + timeout
        while not self.problems and not self.shutdown.requested:
            progress.poll()
            market.update(progress.status)
            if market.ready():
                say(f"market: {len(market.prices)} symbols marked by the feed (sim source)")
                return
            if self.sup is not None and self.sup.exited():
                self._check_tree()
                return
            if time.monotonic() > deadline:
                missing = sorted(set(market.symbols) - set(market.prices))
                self.problems.append(f"no mark from the feed after {timeout:.0f}s for {missing}")
                return
            time.sleep(0.2)

    def _check(self, executor: Executor) -> None:
        assert self.sup is not None
        for child in self.sup.exited():
            self.problems.append(
                f"{child.name} exited ({child.proc.returncode}):\n{self.sup.tail(child)}"
            )
        if executor.error is not None:
            self.problems.append(f"executor failed: {executor.error!r}")

    def _drain(self, redis: Redis, executor: Executor) -> None:
        """Everything in flight handled: intents, orders, events, decisions."""
        keys = self.keys
        say("draining: waiting for every intent, order, event and decision to be handled")
        steps = [
            ([(keys.intents, GROUP_GATE)], "the gate to decide every intent"),
            ([(keys.orders, Executor.GROUP)], "the executor to handle every order"),
        ]
        for pairs, what in steps:
            if not self.problems:
                self._wait(redis, pairs, DRAIN_TIMEOUT_S, what)
        executor.stopping.set()
        executor.join(10)
        if not self.problems:
            self._wait(
                redis,
                [(keys.events, GROUP_GATE), (keys.events, GROUP_PHASE),
                 (keys.decisions, GROUP_AUDIT)],
                DRAIN_TIMEOUT_S,
                "events applied and decisions audited",
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
            time.sleep(0.1)

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
            "seed": self.opts.seed,
            "rate": self.opts.rate,
            "intents_sent": agents.stats.total,
            "mix": dict(agents.stats.sent),
            "intents_to_decide": expected,
            "decided": p.decided,
            "decisions": {k: p.statuses.get(k, 0) for k in ("approved", "resized", "rejected")},
            "reasons": dict(p.reasons),
            "traded": dict(p.traded),
            "dead_letters": int(redis.xlen(self.keys.deadletter)),
            "fills": executor.stats.fills,
            "cancels": executor.stats.cancels,
            "audit_rows": p.audit_rows,
            "audit_rejects": p.audit_rejects,
            "equity": s.get("equity"),
            "peak_equity": s.get("peak_equity"),
            "drawdown": s.get("drawdown"),
            "max_heat": round(max_heat, 4),
            "heat_limit": s.get("heat_limit"),
            "active_phases": s.get("active_phases", []),
            "consistent": not problems,
            "problem": "; ".join(problems),
        }


def _set(name: str) -> bool:
    return bool(os.environ.get(name))


def run_demo(opts: DemoOptions) -> int:
    return Demo(opts).run()
