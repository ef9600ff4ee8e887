"""The gate worker against a real Redis: bad input, events, limits end to end, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from consumers.bus.keys import DATA, GROUP_GATE
from consumers.bus.streams import group_lag, trim_consumed
from consumers.sdk.client import GateClient
from consumers.state import control
from schemas.messages import Status
from tests.builders import ROOT, market_prices
from tests.harness import Harness
from tests.integration.conftest import Workers, honcho
from tests.unit.test_worker import BAD_INPUTS

D = Decimal


def _wait(predicate, timeout: float = 20.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def codes(decision) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.code.value for r in decision.reasons]


def test_worker_process_when_every_kind_of_bad_input_then_alive_and_next_intent_decided(
    h: Harness, workers: Workers
) -> None:
    """Each bad input is dead-lettered and acked; the process lives; a good intent follows."""
    name = workers.start()
    for _, fields, _ in BAD_INPUTS:
        h.raw(h.keys.intents, fields)
    good = h.client.submit("BTC/USDT", "buy", "0.01", price="100000")
    decision = h.client.wait_decision(good, timeout=20)
    assert decision is not None and decision.status is Status.APPROVED
    assert workers.procs[name].poll() is None
    _wait(lambda: len(h.dead()) == len(BAD_INPUTS), what="dead letters")
    readable = {rid for _, _, rid in BAD_INPUTS if rid}
    rejected = {d.intent_id for d in h.decisions() if d.status is Status.REJECTED}
    assert rejected == readable
    assert h.pending() == 0


def test_events_when_same_fill_sent_twice_then_position_moves_once(h: Harness) -> None:
    """Idempotent events on a real Redis: one event_id, one effect."""
    iid = h.intent(quantity="0.1")
    h.pump()
    for _ in range(3):
        h.client.fill(iid, "BTC/USDT", "buy", "0.1", "100000", event_id="fill-once")
        h.pump()
    snap = h.state().snapshot
    assert snap.positions["BTC/USDT"].quantity == D("0.1")
    assert snap.account.cash == D(90000)
    assert h.worker.stats["duplicates"] == 2


def _long_btc(h: Harness, qty: str = "1") -> None:
    """Hold a BTC position through a fill with no approval (executor fills are the truth:
    applied, and trading halted until an operator resumes, which the test does)."""
    h.client.fill("outside", "BTC/USDT", "buy", qty, "100000", fill_id="x1")
    h.pump()
    assert h.state().snapshot.account.halted_by is not None
    h.client.resume("test", "position opened outside the gate", reference="r1")
    h.pump()


def test_emergency_stop_when_drawdown_25pct_then_only_reduce_only_passes(h: Harness) -> None:
    """100k in BTC marked down 30 %: openings rejected, reduce-only approved."""
    _long_btc(h)
    h.mark({"BTC/USDT": "70000"})
    opening = h.intent("ETH/USDT", quantity="0.1", price="3900")
    # half of it: 35,000, inside the 40,000 max order value
    closing = h.intent("BTC/USDT", side="sell", quantity="0.5", price="70000", reduce_only=True)
    h.pump()
    assert codes(h.decision(opening)) == ["emergency_stop", "daily_loss_limit"]
    assert h.decision(closing).status is Status.APPROVED


def test_daily_loss_when_down_5pct_today_then_only_reduce_only_passes(h: Harness) -> None:
    """Down 6 % since the start of the UTC day: openings rejected, reduce-only approved."""
    _long_btc(h)
    h.mark({"BTC/USDT": "94000"})
    opening = h.intent("ETH/USDT", quantity="0.1", price="3900")
    closing = h.intent("BTC/USDT", side="sell", quantity="0.4", price="94000", reduce_only=True)
    h.pump()
    assert codes(h.decision(opening)) == ["daily_loss_limit"]
    assert h.decision(closing).status is Status.APPROVED


def test_halt_when_set_then_openings_rejected_until_resume(h: Harness) -> None:
    """The kill switch: openings rejected, reduce-only approved, resume restores."""
    _long_btc(h, "0.1")
    h.mark({"BTC/USDT": "100000"})
    control.halt(h.redis, h.keys)
    opening = h.intent("ETH/USDT", quantity="0.1", price="3900")
    closing = h.intent("BTC/USDT", side="sell", quantity="0.05", price="100000", reduce_only=True)
    h.pump()
    assert codes(h.decision(opening)) == ["trading_halted"]
    assert h.decision(closing).status is Status.APPROVED
    control.resume(h.redis, h.keys)
    again = h.intent("ETH/USDT", quantity="0.1", price="3900")
    h.pump()
    assert h.decision(again).status is Status.APPROVED


def test_enable_when_symbol_enabled_live_then_decided_under_new_config_hash(h: Harness) -> None:
    """`riskgate enable` semantics: no restart, a new config hash on the decision."""
    before = h.intent("XAG/USD", quantity="10", price="48")
    h.pump()
    control.enable(h.redis, h.keys, h.config, ["phase_5_commodities"], True)
    after = h.intent("XAG/USD", quantity="10", price="48")
    h.pump()
    assert codes(h.decision(before)) == ["asset_disabled", "class_disabled"]
    d = h.decision(after)
    assert d.status is Status.APPROVED
    assert d.config_hash != h.decision(before).config_hash


def test_sigterm_when_busy_then_batch_committed_and_exit_zero(h: Harness, workers: Workers) -> None:
    """SIGTERM mid-stream: exit 0; every entry decided once or still pending, never half."""
    payloads = [h.intent(quantity="0.0001", agent_id=f"a{i % 50}") for i in range(2000)]
    name = workers.start(None, "--batch", "20")
    _wait(lambda: h.redis.xlen(h.keys.decisions) > 100, what="first decisions")
    assert workers.kill(name, signal.SIGTERM) == 0
    decided = h.redis.xlen(h.keys.decisions)
    markers = sum(h.redis.exists(h.keys.decided(i)) for i in payloads)
    assert decided == markers
    info = h.redis.xinfo_groups(h.keys.intents)[0]
    assert decided + info["pending"] + group_lag(h.redis, h.keys.intents, info) == len(payloads)
    workers.start()
    _wait(lambda: h.redis.xlen(h.keys.decisions) == len(payloads), what="the rest")
    assert len({d.intent_id for d in h.decisions()}) == len(payloads)


def test_second_signal_when_shutting_down_then_exits_at_once(h: Harness, workers: Workers) -> None:
    """A second SIGTERM does not wait for the batch: the process exits now (143)."""
    name = workers.start("signalled", "--block-ms", "5000")  # not the harness's "w1"
    # signal handlers are installed before the loop's first read: wait for that read
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        joined = {c["name"].decode() for c in h.redis.xinfo_consumers(h.keys.intents, GROUP_GATE)}
        if name in joined:
            break
        time.sleep(0.05)
    proc = workers.procs[name]
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) in (0, 128 + signal.SIGTERM)


def test_connections_dropped_when_client_kill_then_worker_reconnects(
    h: Harness, workers: Workers
) -> None:
    """CLIENT KILL drops the worker's connection; it reconnects and keeps deciding."""
    name = workers.start()
    first = h.client.submit("BTC/USDT", "buy", "0.01", price="100000")
    assert h.client.wait_decision(first, 20) is not None
    h.redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    second = h.client.submit("BTC/USDT", "buy", "0.01", price="100000")
    assert h.client.wait_decision(second, 30) is not None
    assert workers.procs[name].poll() is None


def test_nogroup_when_group_destroyed_then_recreated_and_nothing_decided_twice(
    h: Harness, workers: Workers
) -> None:
    """The gate group vanishes: recreated from 0, old intents hit their markers."""
    workers.start()
    first = h.client.submit("BTC/USDT", "buy", "0.01", price="100000")
    assert h.client.wait_decision(first, 20) is not None
    h.redis.xgroup_destroy(h.keys.intents, GROUP_GATE)
    second = h.client.submit("BTC/USDT", "buy", "0.01", price="100000")
    assert h.client.wait_decision(second, 30) is not None
    assert [d.intent_id for d in h.decisions()] == [first, second]
    assert workers.count_lines("consumer group missing; recreating") >= 1


def test_trim_when_entry_pending_then_never_trimmed_past_it(h: Harness) -> None:
    """Intents are trimmed once acked, never from the oldest pending entry on."""
    for _ in range(5):
        h.intent(quantity="0.001")
    h.pump()
    stuck = h.intent(quantity="0.001")
    h.redis.xreadgroup(GROUP_GATE, "someone-else", {h.keys.intents: ">"}, count=1)
    after = h.intent(quantity="0.001")
    h.worker.settings = replace(h.worker.settings, intents_keep_s=0.0)
    h.pump()
    h.worker.trim()  # approximate: may keep more, never less

    def ids() -> list[str]:
        return [json.loads(f[DATA])["intent_id"] for _, f in h.redis.xrange(h.keys.intents)]

    assert stuck in ids() and after in ids()
    trim_consumed(h.redis, h.keys.intents, 0.0, exact=True)
    assert ids() == [stuck, after]


def test_readme_flow_when_gate_and_submit_wait_then_decision_printed(
    redis_url: str, portfolio: str, workers: Workers
) -> None:
    """`riskgate gate` + `riskgate deposit` + `riskgate submit --wait`, as in the README."""
    workers.start()
    env = {**os.environ, "REDIS_URL": redis_url, "RISKGATE_PORTFOLIO": portfolio}
    run = [sys.executable, "-m", "consumers.cli"]
    subprocess.run(
        [*run, "deposit", "100000", "--reference", "d1"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*run, "mark", "BTC/USDT=100000"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    out = subprocess.run(
        [*run, "submit", "BTC/USDT", "buy", "0.01", "--price", "100000", "--wait"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()  # one line by default; --json for the whole object
    assert ": approved buy 0.01000 BTC/USDT @ 100,000.00 stop 94,000.00" in line, line
    out = subprocess.run(
        [*run, "submit", "BTC/USDT", "buy", "0.02", "--price", "100000", "--wait", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    decision = json.loads(out.stdout)
    assert (decision["status"], decision["approved_quantity"]) == ("approved", "0.02")
    status = subprocess.run(
        [*run, "status", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(status.stdout)
    assert report["equity"] == "100000" and len(report["reservations"]) == 2
    assert report["streams"]["intents"]["groups"][0]["pending"] == 0


def test_procfile_when_run_under_honcho_then_gate_decides(
    redis_url: str, portfolio: str, tmp_path: Path
) -> None:
    """The Procfile's gate line runs under honcho and decides intents."""
    log = tmp_path / "honcho.log"
    env = {"REDIS_URL": redis_url, "RISKGATE_PORTFOLIO": portfolio}
    with honcho(log, env, "gate"):
        client = GateClient(redis_url, portfolio)
        client.deposit("100000", reference="d1")
        client.mark(market_prices())
        iid = client.submit("ETH/USDT", "buy", "0.1", price="3900")
        decision = client.wait_decision(iid, 30)
        assert decision is not None, log.read_text()
        assert decision.status is Status.APPROVED


def test_client_orders_when_approved_then_executor_reads_and_acks(h: Harness) -> None:
    """GateClient.orders(): an executor group sees approved orders, once, with ack."""
    stream = h.client.orders("exec", "e1", start="0", block_ms=50)
    a = h.intent(quantity="0.1")
    h.intent("DOGE/USDT")  # rejected: no order
    h.pump()
    delivery = next(stream)
    assert (delivery.order.intent_id, delivery.order.quantity) == (a, D("0.1"))
    delivery.ack()
    assert h.redis.xpending(h.keys.orders, "exec")["pending"] == 0
