"""What the cluster and Sentinel tests share: riskgate processes (``python -m
consumers.cli ...``), an agent and an executor that ride out failovers, waiting for a
portfolio to settle, and counting what a failover lost or doubled.

Counts, after a failover has settled (every intent on the new primary decided and
audited, every order handed out), for one portfolio:

- **lost decisions**: decisions the audit writer recorded (the world saw them) of which
  the new primary knows nothing: no decided marker, no decision entry;
- **doubled decisions**: intents the audit writer recorded with one decision while the
  new primary holds another (the intent was decided again after the failover);
- **orphaned orders**: orders handed to the executor whose reservation the new
  primary's state does not carry (working at a venue, counted by no limit);
- **lost orders**: reservations whose order never reached the executor;
- **doubled orders**: intents whose order the executor was handed more than once;
- (for the record) **lost intents**: intents the agent was told were published that
  the new primary never got (an agent resends those: it never saw a decision), and
  **republished orders**: intents with more than one entry on the new orders stream.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from redis import Redis

from consumers.bus.keys import DATA, GROUP_AUDIT, GROUP_GATE, Keys
from consumers.bus.runtime import REDIS_TRANSIENT
from consumers.sdk.client import GateClient
from consumers.state.store import Store
from tests.builders import ROOT, base_config
from tests.integration.pg import query

EXECUTOR_GROUP = "exec"


class Procs:
    """riskgate subprocesses with their logs in one directory."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.files: list[IO[bytes]] = []

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        self.files.append(log)
        full_env = {**os.environ, "RISKGATE_LOG_DECISIONS": "0", **env}
        proc = subprocess.Popen(
            [sys.executable, "-m", "consumers.cli", *args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=full_env,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def gate(self, name: str, url: str, portfolio: str | list[str], *args: str, **env: str) -> None:
        """A gate process serving one portfolio, or several (a list)."""
        self.start(
            name, "gate", *_each(portfolio), "--redis-url", url, "--consumer", name,
            "--block-ms", "50", "--min-idle-ms", "2000", "--reclaim-every", "0.5", *args, **env,
        )  # fmt: skip

    def audit(self, name: str, url: str, portfolio: str | list[str], database_url: str) -> None:
        """An audit writer for one portfolio, or several (a list)."""
        self.start(
            name, "audit", *_each(portfolio), "--redis-url", url,
            "--database-url", database_url, "--consumer", name, "--block-ms", "50",
            "--max-backoff", "0.5", "--no-migrate",
        )  # fmt: skip

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every process, wait; their exit statuses."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait(timeout=30)
        return codes

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        for f in self.files:
            f.close()

    def logs(self, chars: int = 3000) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )


def _each(portfolio: str | list[str]) -> list[str]:
    names = [portfolio] if isinstance(portfolio, str) else portfolio
    return [arg for name in names for arg in ("--portfolio", name)]


def cli(*args: str, url: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m consumers.cli ARGS --redis-url URL``, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "consumers.cli", *args, "--redis-url", url],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **env},
    )  # fmt: skip


def until(check: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except REDIS_TRANSIENT:
            pass  # a failover under way: ask again
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def small(i: int) -> Decimal:
    """A distinct small BTC quantity (equal ones from one agent: duplicate_order)."""
    return Decimal("0.001") + Decimal(i) / 100000


def publish(
    client: GateClient, ids: list[str], pause_s: float = 0.0, *, first: int = 0
) -> list[str]:
    """Submit one intent per id (ten agents: under their per-minute quota; quantities
    ``small(first + i)``: distinct), each retried under the same id while Redis is
    failing over; the ids Redis accepted."""
    sent = []
    for i, iid in enumerate(ids, start=first):
        while True:
            try:
                client.submit(
                    "BTC/USDT",
                    "buy",
                    small(i),
                    price="100000",
                    intent_id=iid,
                    agent_id=f"ag{i % 10}",
                )
                break
            except REDIS_TRANSIENT:
                time.sleep(0.05)  # a resend under the same id is a duplicate, never a 2nd
        sent.append(iid)
        if pause_s:
            time.sleep(pause_s)
    return sent


@dataclass
class Executor:
    """Takes orders through the SDK in a thread (it rides out failovers) and records
    the intent of each order it was handed."""

    client: GateClient
    handed: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> Executor:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            for d in self.client.orders(
                EXECUTOR_GROUP, "e1", start="0", block_ms=50, stop=self.stop.is_set
            ):
                if d.order is not None:
                    self.handed.append(d.order.intent_id)
                d.ack()
        except BaseException as exc:  # reported by join(): the SDK should not raise
            self.error = exc

    def join(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(30)
        assert self.error is None, repr(self.error)


def _group(redis: Redis, stream: str, group: str) -> dict[str, Any] | None:
    for g in redis.xinfo_groups(stream):
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name == group:
            return dict(g)
    return None


def drained(redis: Redis, stream: str, group: str) -> bool:
    g = _group(redis, stream, group)
    return g is not None and g["pending"] == 0 and g["lag"] == 0


def settled(redis: Redis, keys: Keys, *, audit: bool = True, executor: bool = True) -> bool:
    """Every intent decided and published (and every decision audited, every order
    taken by the executor)."""
    return (
        drained(redis, keys.intents, GROUP_GATE)
        and int(redis.xlen(keys.outbox)) == 0
        and (not audit or drained(redis, keys.decisions, GROUP_AUDIT))
        and (not executor or drained(redis, keys.orders, EXECUTOR_GROUP))
    )


def wait_settled(
    redis: Redis, keys: Keys, procs: Procs, timeout: float = 120, **which: bool
) -> None:
    """:func:`settled`, or an AssertionError with what is left and the processes' logs."""
    try:
        until(lambda: settled(redis, keys, **which), timeout, f"{keys.portfolio} settled")
    except AssertionError as exc:
        state = {}
        for stream in (keys.intents, keys.decisions, keys.orders):
            try:
                state[stream] = [
                    {k: g[k] for k in ("name", "pending", "lag")}
                    for g in redis.xinfo_groups(stream)
                ]
            except REDIS_TRANSIENT as err:
                state[stream] = [repr(err)]
        try:
            state["outbox"] = [int(redis.xlen(keys.outbox))]
        except REDIS_TRANSIENT as err:
            state["outbox"] = [repr(err)]
        raise AssertionError(f"{exc}: {state}\n{procs.logs()}") from None


@dataclass(frozen=True)
class Counts:
    intents: int
    decided: int
    lost_decisions: int
    doubled_decisions: int
    orphaned_orders: int
    lost_orders: int
    doubled_orders: int
    handed: int
    lost_intents: int
    republished_orders: int

    def line(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.__dict__.items())


def decisions_on(redis: Redis, keys: Keys) -> dict[str, list[str]]:
    """intent_id -> decided_at of each decision entry on the decisions stream."""
    out: dict[str, list[str]] = {}
    for _, fields in redis.xrange(keys.decisions):
        body = json.loads(fields[DATA])
        if "status" in body and "decided_at" in body:
            out.setdefault(body["intent_id"], []).append(body["decided_at"])
    return out


def count(
    redis: Redis, keys: Keys, database_url: str, sent: list[str], handed: list[str]
) -> Counts:
    """What the failover did to one portfolio (module doc), read from the new primary,
    the audit database and the executor's record."""
    audited: dict[str, datetime] = {
        iid: at
        for iid, at in query(
            database_url,
            "SELECT intent_id, decided_at FROM trading_decisions WHERE portfolio = %s",
            (keys.portfolio,),
        )
    }
    on_stream = decisions_on(redis, keys)
    client = GateClient(redis=redis, portfolio=keys.portfolio)
    effective = {iid: client.decision(iid) for iid in sent}
    decided = {iid: d for iid, d in effective.items() if d is not None}
    lost = [i for i in audited if i not in decided and i not in on_stream]
    doubled = {  # audited as one decision, effective as another; or two on the stream
        i for i, at in audited.items() if i in decided and decided[i].decided_at != at
    } | {i for i, times in on_stream.items() if len(set(times)) > 1}
    reserved = set(Store(redis, keys, base_config()).load().snapshot.reservations)
    seen = set(handed)
    intents_there = {json.loads(f[DATA])["intent_id"] for _, f in redis.xrange(keys.intents)}
    per_intent = Counter(json.loads(f[DATA]).get("intent_id") for _, f in redis.xrange(keys.orders))
    return Counts(
        intents=len(sent),
        decided=len(decided),
        lost_decisions=len(lost),
        doubled_decisions=len(doubled),
        orphaned_orders=len(seen - reserved),
        lost_orders=len(reserved - seen),
        doubled_orders=len(handed) - len(seen),
        handed=len(handed),
        lost_intents=len([i for i in sent if i not in intents_there and i not in decided]),
        republished_orders=sum(1 for n in per_intent.values() if n > 1),
    )
