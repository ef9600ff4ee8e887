"""Ownership by lease with real gate processes on a real Redis: one owner reads, standbys
never do, a SIGKILLed owner is replaced, a SIGTERMed one hands over at once; every
intent decided exactly once throughout."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis import Redis

from consumers.bus.keys import DATA, GROUP_GATE
from consumers.bus.lease import Lease, LeaseLost, holder
from consumers.gate_worker.handle import YOUNG_GENERATION
from consumers.gate_worker.seat import Seat
from consumers.gate_worker.worker import GateSettings, GateWorker
from schemas.messages import Status, TradeIntent
from tests.builders import base_config
from tests.harness import Harness
from tests.integration.conftest import Workers

pytestmark = pytest.mark.slow


def _wait(
    predicate: Callable[[], Any], workers: Workers, timeout: float = 60, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}\n{workers.logs()}")


def _owner(h: Harness) -> str | None:
    found = holder(h.redis, h.keys)
    return found.owner if found is not None else None


def _only_the_gate_processes_read(h: Harness) -> None:
    """Forget the harness's in-process worker: it funded the portfolio, read nothing else."""
    for stream in (h.keys.intents, h.keys.events):
        h.redis.xgroup_delconsumer(stream, GROUP_GATE, "w1")


def publish_intents(h: Harness, n: int, tag: str) -> list[str]:
    """n small BTC intents, spread over 100 agents (under every quota), in pipelines."""
    ids, now = [], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for start in range(0, n, 1000):
        pipe = h.redis.pipeline(transaction=False)
        for i in range(start, min(n, start + 1000)):
            intent = TradeIntent.model_validate(
                {"intent_id": f"{tag}-{i}", "agent_id": f"a{i % 100}", "symbol": "BTC/USDT",
                 "side": "buy", "quantity": "0.0001", "price": "100000", "created_at": now}
            )  # fmt: skip
            pipe.xadd(h.keys.intents, {DATA: intent.model_dump_json(exclude_none=True)})
            ids.append(intent.intent_id)
        pipe.execute()
    return ids


def _decided(h: Harness) -> int:
    return int(h.redis.xlen(h.keys.decisions))


def _all_decided(h: Harness, ids: list[str], workers: Workers) -> None:
    _wait(lambda: _decided(h) >= len(ids) and h.pending() == 0, workers, 180, "all decided")


def _exactly_once(h: Harness, ids: list[str]) -> None:
    decisions = h.decisions()
    assert sorted(d.intent_id for d in decisions) == sorted(ids), "lost or doubled"
    approved = {d.intent_id for d in decisions if d.status is not Status.REJECTED}
    assert set(h.state().snapshot.reservations) == approved, "a reservation leaked"


def _readers(h: Harness) -> dict[str, int]:
    """Consumers of the gate group on intents, with the entries they hold."""
    rows = h.redis.xinfo_consumers(h.keys.intents, GROUP_GATE)
    return {r["name"].decode(): int(r["pending"]) for r in rows}


def _frozen_holding(h: Harness, workers: Workers, name: str) -> int:
    """Freeze ``name`` (SIGSTOP); the entries it holds then, or 0 (and it runs again)."""
    proc = workers.procs[name]
    proc.send_signal(signal.SIGSTOP)
    time.sleep(0.01)  # a reply in flight lands
    held = _readers(h).get(name, 0)
    if not held:
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.005)
    return held


@pytest.mark.parametrize("n", [2, 4])
def test_processes_when_n_serve_one_portfolio_then_one_owner_reads_and_each_intent_once(
    h: Harness, workers: Workers, n: int
) -> None:
    """n gate processes on one portfolio: one holds the lease and reads; the standbys
    never join the intents group (no deliveries); every intent is decided once."""
    _only_the_gate_processes_read(h)
    names = [workers.start(f"p{i}") for i in range(n)]
    owner = _wait(lambda: _owner(h), workers, what="an owner")
    _wait(lambda: workers.count_lines("gate started") == n, workers, what="every process")
    started = [
        line
        for log in workers.log_dir.glob("*.log")
        for line in log.read_text(errors="replace").splitlines()
        if "gate started" in line
    ]
    young = str(YOUNG_GENERATION)  # each process tuned its collector before serving
    assert len(started) == n and all(f"[{young}," in line for line in started), started
    ids = publish_intents(h, 2000, "n")
    _all_decided(h, ids, workers)
    _exactly_once(h, ids)
    assert set(_readers(h)) == {owner}, "a standby read the intents"
    events = {r["name"].decode() for r in h.redis.xinfo_consumers(h.keys.events, GROUP_GATE)}
    assert events <= {owner}
    assert _owner(h) == owner and workers.count_lines("lease acquired") == 1
    assert all(workers.procs[p].poll() is None for p in names)


def test_owner_sigkilled_when_mid_load_then_standby_takes_over_and_each_intent_once(
    h: Harness, workers: Workers
) -> None:
    """kill -9 of the owner while it holds a batch: a standby takes the lease over after
    its TTL, claims the dead owner's pending entries at once (not after --min-idle-ms,
    an hour here), and every intent is decided exactly once (0 lost, 0 doubled)."""
    _only_the_gate_processes_read(h)
    opts = ("--lease-ttl-ms", "1500", "--lease-renew-ms", "300", "--batch", "25",
            "--min-idle-ms", "3600000")  # fmt: skip
    workers.start("p1", *opts)
    assert _wait(lambda: _owner(h), workers, what="an owner") == "p1"
    workers.start("p2", *opts)
    workers.start("p3", *opts)
    _wait(lambda: workers.count_lines("gate started") == 3, workers, what="the standbys")
    ids = publish_intents(h, 6000, "k")
    _wait(lambda: _decided(h) >= 500, workers, what="the first decisions")
    held = _wait(lambda: _frozen_holding(h, workers, "p1"), workers, 30, "a batch in hand")
    assert workers.kill("p1", signal.SIGKILL) == -signal.SIGKILL
    assert _decided(h) < len(ids), "the load was over before the kill"
    _all_decided(h, ids, workers)
    _exactly_once(h, ids)
    new = _owner(h)
    assert new in ("p2", "p3"), f"owner after the kill: {new}"
    assert set(_readers(h)) == {"p1", new}  # the other standby never read
    assert held > 0 and workers.count_lines("took over pending entries") >= 1
    assert workers.count_lines("reclaimed idle entries") == 0  # not the idle path
    assert workers.count_lines("lease acquired") == 2


def test_owner_sigterm_when_loaded_then_lease_released_and_standby_takes_over_at_once(
    h: Harness, workers: Workers
) -> None:
    """A graceful shutdown finishes its batch and deletes its lease: the standby takes over
    at its next poll, long before the (one minute) TTL, and nothing is lost or doubled."""
    _only_the_gate_processes_read(h)
    opts = ("--lease-ttl-ms", "60000", "--lease-renew-ms", "250", "--batch", "25")
    workers.start("p1", *opts)
    assert _wait(lambda: _owner(h), workers, what="an owner") == "p1"
    workers.start("p2", *opts)
    _wait(lambda: workers.count_lines("gate started") == 2, workers, what="the standby")
    ids = publish_intents(h, 6000, "t")
    _wait(lambda: _decided(h) >= 500, workers, what="the first decisions")
    assert workers.kill("p1", signal.SIGTERM) == 0
    assert _owner(h) in (None, "p2"), "the lease outlived its owner"
    assert workers.count_lines("lease released") == 1
    _wait(lambda: _owner(h) == "p2", workers, 30, "the standby taking over")
    _all_decided(h, ids, workers)
    _exactly_once(h, ids)
    assert set(_readers(h)) == {"p1", "p2"}


def test_commit_when_owner_stalled_past_its_ttl_then_fenced_and_handed_over(
    redis: Redis, h: Harness
) -> None:
    """A real Redis: the stalled owner's commit is refused (nothing written), the entries
    it read are handed to the new owner marked idle, which decides them once."""

    def seat(name: str) -> Seat:
        lease = Lease(redis, h.keys, name, 3000)
        settings = GateSettings(consumer=name, block_ms=5, verify_exposure=True)
        return Seat(GateWorker(redis, h.keys, base_config(), settings, lease=lease), lease,
                    renew_ms=1000)  # fmt: skip

    old, new = seat("old"), seat("new")
    for _ in range(5):
        old.turn(0)
    iid = h.intent(quantity="0.01")
    redis.delete(h.keys.lease)  # the stall outlasted the TTL ...
    new.turn(0)  # ... a standby took over (its sweep found nothing yet)
    with pytest.raises(LeaseLost, match="commit fenced") as lost:
        old.worker.step()
    assert h.decisions() == [] and h.pending() == 1
    assert lost.value.holder is not None and json.loads(lost.value.holder)["owner"] == "new"
    old._lost(str(lost.value), lost.value.holder)
    (row,) = redis.xpending_range(h.keys.intents, GROUP_GATE, "-", "+", 10)
    assert row["consumer"] == b"new" and row["times_delivered"] == 1
    new.worker._next_reclaim = 0.0  # its next sweep
    for _ in range(8):
        new.turn(0)
    assert [d.intent_id for d in h.decisions()] == [iid] and h.pending() == 0
