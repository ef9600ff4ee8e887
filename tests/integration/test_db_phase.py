"""The phase monitor against real Redis and PostgreSQL: a 60-day track record unlocks
phase 1 exactly once, the gate then trades NVDA; a record one requirement short emits
nothing and ``phase status`` says which; manual activation refuses, or logs who/why."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from redis import Redis

from consumers.bus.keys import DATA
from consumers.cli.main import main
from consumers.db.stream_to_pg import ConsumerSettings, PgLink, Standby
from consumers.phase.log import log_ready, snapshot
from consumers.phase.metrics import current_metrics
from consumers.phase.monitor import PhaseMonitor
from consumers.sdk.client import GateClient
from consumers.state import control
from gate.performance import PhaseMetrics
from schemas.messages import PhaseEvent, Status, parse_json
from tests.builders import base_config, market_prices
from tests.harness import Harness
from tests.integration.pg import query, scalar, temp_database

pytestmark = pytest.mark.pg  # once per server: PostgreSQL, TimescaleDB

D = Decimal
TODAY = datetime.now(UTC).date()
START = TODAY - timedelta(days=61)
# the records are replayed on the events stream, dated up to 160 days back: a dedupe
# window covering them (the gate and the monitor refuse older events as too old)
HISTORY_TTL_S = 400 * 86400


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temp_database("phase") as url:
        yield url


@pytest.fixture
def h(redis: Redis, portfolio: str) -> Harness:
    # creates the gate's and the phase monitor's groups
    return Harness(redis, portfolio, event_marker_ttl_s=HISTORY_TTL_S)


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), UTC)


def track_record(
    h: Harness, *, winning: int, losing_every: int = 0, flat: int = 0, start: date = START
) -> None:
    """A deposit, then one BTC round trip a day (+20, or -10 every ``losing_every``th day),
    then ``flat`` days without trades; a mark closes every day."""
    c = h.client
    c.deposit("10000", event_id="dep-0")
    c.mark({"BTC/USDT": "100"}, at=at(start, 23), event_id="mark-0")
    for i in range(1, winning + flat + 1):
        day = start + timedelta(days=i)
        if i <= winning:
            loss = losing_every and i % losing_every == 0
            exit_px = "99" if loss else "102"
            c.fill(f"t{i}", "BTC/USDT", "buy", "10", "100", at=at(day, 1), event_id=f"b{i}")
            c.fill(f"t{i}", "BTC/USDT", "sell", "10", exit_px, at=at(day, 2), event_id=f"s{i}")
        c.mark({"BTC/USDT": "100"}, at=at(day, 23), event_id=f"mark-{i}")


def monitor(h: Harness, url: str, consumer: str = "pm1") -> PhaseMonitor:
    m = PhaseMonitor(
        h.redis,
        PgLink(url, "test-phase"),
        h.keys,
        h.config,
        ConsumerSettings(consumer, block_ms=5, batch=50),
        dedupe_ttl_s=HISTORY_TTL_S,
    )
    m.setup()
    return m


def run(m: PhaseMonitor) -> list[str]:
    """Apply every event, evaluate once; returns the stream ids published."""
    while m.drain_pending():
        pass
    while m.step():
        pass
    published = m.evaluate()
    m.pg.reset()
    return published


def phase_events(h: Harness) -> list[PhaseEvent]:
    return [
        PhaseEvent.model_validate(parse_json(f[DATA])) for _, f in h.redis.xrange(h.keys.phases)
    ]


def codes(decision: object) -> list[str]:
    return [r.code.value for r in decision.reasons]  # type: ignore[attr-defined]


def test_monitor_when_60_day_record_meets_phase_1_then_emitted_once_and_nvda_tradable(
    h: Harness, pg_url: str
) -> None:
    """Exactly one phase_ready and one phase_activated for phase_1_stocks, one log row with
    the metrics, and the gate stops rejecting NVDA as disabled."""
    track_record(h, winning=60, losing_every=5)
    nvda = h.intent("NVDA", quantity="1", price="132")
    h.pump()
    assert {"asset_disabled", "class_disabled"} & set(codes(h.decision(nvda)))

    published = run(monitor(h, pg_url))
    events = phase_events(h)
    assert [(e.type, e.phase) for e in events] == [
        ("phase_ready", "phase_1_stocks"),
        ("phase_activated", "phase_1_stocks"),
    ]
    assert len(published) == 2 and events[0].assets == ("NVDA", "TSLA", "AMD")
    metrics = events[1].metrics
    assert (metrics["crypto_profitable_days"], metrics["trades"], metrics["win_rate"]) == (
        36,  # net: 48 profitable days minus 12 losing ones
        60,
        "0.8",
    )
    assert (metrics["crypto_winning_days"], metrics["crypto_losing_days"]) == (48, 12)
    assert metrics["sharpe_days"] == 59  # the closes of the 59 days before today
    assert D(metrics["sharpe_ratio"]) > D("1.5") and D(metrics["max_drawdown"]) < D("0.15")
    log = query(pg_url, "SELECT phase, activated_by, forced, ready_stream_id IS NOT NULL, "
                "activated_stream_id IS NOT NULL, ready_snapshot -> 'requirements_met' "
                "FROM phase_activation_log WHERE portfolio = %s", (h.portfolio,))  # fmt: skip
    assert log == [("phase_1_stocks", "phase-monitor", False, True, True, True)]

    # evaluating again, or a restarted monitor, emits nothing more
    assert run(monitor(h, pg_url)) == [] and run(monitor(h, pg_url, "pm2")) == []
    assert len(phase_events(h)) == 2

    control.set_earnings(h.redis, h.keys, "NVDA", TODAY + timedelta(days=60))
    h.client.mark(market_prices())  # NVDA has a market price
    # the record's fills were never approved by the gate: each opening halted trading
    # (unknown_fill) until an operator resumes
    h.client.resume("test", "track record placed outside the gate", reference="r1")
    h.pump()  # the gate reads the phases stream: NVDA and stocks enabled live
    again = h.intent("NVDA", quantity="1", price="132")
    h.pump()
    decision = h.decision(again)
    assert not {"asset_disabled", "class_disabled"} & set(codes(decision))
    assert decision.status is Status.APPROVED, codes(decision)


def test_monitor_when_record_applied_then_trades_round_trips_and_days_match_the_gate(
    h: Harness, pg_url: str
) -> None:
    """Fills, round trips, daily equity and asset performance; the same realized PnL as the
    gate's ledger; a redelivered event changes nothing."""
    track_record(h, winning=10, losing_every=5)
    run(monitor(h, pg_url))
    h.client.fill("t1", "BTC/USDT", "buy", "10", "100", event_id="b1")  # a duplicate event
    run(monitor(h, pg_url))
    h.pump()
    assert scalar(pg_url, "SELECT count(*) FROM trades WHERE portfolio = %s", (h.portfolio,)) == 20
    trips = query(
        pg_url,
        "SELECT count(*), sum(realized_pnl), count(*) FILTER (WHERE realized_pnl > 0) "
        "FROM round_trips WHERE portfolio = %s",
        (h.portfolio,),
    )
    assert trips == [(10, D(8 * 20 - 2 * 10), 8)]
    assert trips[0][1] == h.state().snapshot.account.realized_pnl
    days = query(pg_url, "SELECT day, close_equity, net_deposits FROM daily_equity WHERE "
                 "portfolio = %s ORDER BY day", (h.portfolio,))  # fmt: skip
    assert len(days) == 11 and days[0] == (START, D(10000), D(10000))
    assert days[-1][1] == D(10140)
    perf = query(
        pg_url,
        "SELECT scope, name, trades, win_rate, profit_factor FROM asset_performance "
        "WHERE portfolio = %s ORDER BY scope",
        (h.portfolio,),
    )
    assert perf == [
        ("asset", "BTC/USDT", 10, D("0.8"), D(8)),
        ("class", "crypto", 10, D("0.8"), D(8)),
    ]


def test_monitor_when_mark_arrives_late_then_later_close_of_the_day_stands(
    h: Harness, pg_url: str
) -> None:
    """The at of a mark decides its day; an earlier mark processed later never replaces the
    day's close."""
    track_record(h, winning=2)
    last = START + timedelta(days=2)
    h.client.fill("late", "BTC/USDT", "buy", "10", "100", at=at(last, 22), event_id="late-b")
    h.client.mark({"BTC/USDT": "150"}, at=at(last, 12), event_id="late-mark")
    run(monitor(h, pg_url))
    row = query(pg_url, "SELECT close_equity, close_at, marks FROM daily_equity WHERE "
                "portfolio = %s AND day = %s", (h.portfolio, last))  # fmt: skip
    assert row == [(D(10040), at(last, 23), 2)]


def test_monitor_when_one_requirement_missed_then_nothing_emitted_and_status_says_which(
    h: Harness, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """40 profitable and 20 losing crypto days: 20 net (30 needed), everything else met: no
    event, no log row; phase status marks crypto_profitable_days NOT MET and only it."""
    track_record(h, winning=60, losing_every=3)
    assert run(monitor(h, pg_url)) == []
    assert phase_events(h) == []
    assert scalar(pg_url, "SELECT count(*) FROM phase_activation_log") == 0

    args = ["phase", "status", "--portfolio", h.portfolio, "--database-url", pg_url]
    capsys.readouterr()  # the monitor's log lines
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    phase1 = next(p for p in report["phases"] if p["phase"] == "phase_1_stocks")
    assert phase1["state"] == "waiting" and phase1["unmet"] == ["crypto_profitable_days"]
    assert report["metrics"]["crypto_profitable_days"] == 20
    assert (report["metrics"]["crypto_winning_days"], report["metrics"]["trades"]) == (40, 60)

    assert main(args) == 0
    text = capsys.readouterr().out
    block = text.split("phase_1_stocks", 1)[1].split("\n\n", 1)[0]
    lines = {line.split()[0]: line for line in block.splitlines()[1:]}
    assert lines["crypto_profitable_days"].rstrip().endswith("NOT MET")
    assert " 20 " in lines["crypto_profitable_days"]
    names = ("previous_phase", "sharpe_ratio", "max_drawdown", "win_rate", "sharpe_days", "trades")
    for name in (*names, "capital"):
        assert lines[name].rstrip().endswith(" met"), lines[name]


def test_phase_activate_when_unmet_then_refused_unless_forced_with_reason_and_logged(
    h: Harness, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Manual activation: refused (exit 1, naming the unmet requirement); --force needs
    --reason (exit 2); forced: logged with who and why, published, enabled live; once."""
    track_record(h, winning=60, losing_every=3)
    run(monitor(h, pg_url))
    base = ["phase", "activate", "phase_1_stocks", "--portfolio", h.portfolio,
            "--database-url", pg_url]  # fmt: skip
    capsys.readouterr()  # the monitor's log lines
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "refusing to activate phase_1_stocks" in err and "crypto_profitable_days: 20" in err
    assert main([*base, "--force"]) == 2
    assert "--force needs --reason" in capsys.readouterr().err
    assert phase_events(h) == []

    assert main([*base, "--force", "--reason", "desk review", "--by", "alice"]) == 0
    assert "activated by alice (forced; unmet: crypto_profitable_days)" in capsys.readouterr().out
    log = query(pg_url, "SELECT activated_by, reason, forced, ready_at IS NULL, "
                "activated_stream_id IS NOT NULL, activation_snapshot -> 'requirements_met' "
                "FROM phase_activation_log")  # fmt: skip
    assert log == [("alice", "desk review", True, True, True, False)]
    assert [(e.type, e.phase) for e in phase_events(h)] == [("phase_activated", "phase_1_stocks")]
    flags = h.redis.hgetall(h.keys.control)
    assert flags[b"asset:NVDA"] == b"1" and flags[b"class:stocks"] == b"1"

    assert main([*base, "--force", "--reason", "again", "--by", "bob"]) == 0
    assert "already activated" in capsys.readouterr().out
    assert len(phase_events(h)) == 1
    assert run(monitor(h, pg_url)) == []  # complete now: the monitor leaves it alone


def test_phase_activate_when_phase_unknown_then_exit_2(
    h: Harness, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown phase name is a usage error listing the phases."""
    args = ["phase", "activate", "phase_9", "--portfolio", h.portfolio, "--database-url", pg_url]
    assert main(args) == 2
    assert "unknown phase 'phase_9'" in capsys.readouterr().err


def test_monitor_when_logged_but_not_published_then_published_on_start_once(
    h: Harness, pg_url: str
) -> None:
    """A crash between the log row and the XADD: the next start publishes it; a crash after
    the XADD: the event already on the stream is recorded, not added again."""
    config = base_config()
    m = monitor(h, pg_url)
    conn = m.connection()
    metrics = PhaseMetrics(TODAY, 60, D(5000), 40, 40, D(2), 40, D("0.01"), D("0.6"), 40, 41)
    decided = snapshot(metrics, [])
    now = datetime.now(UTC)
    assert log_ready(conn, h.portfolio, config, "phase_1_stocks", decided_on=decided, at=now)
    assert not log_ready(conn, h.portfolio, config, "phase_1_stocks", decided_on=decided, at=now)
    ready = PhaseEvent(type="phase_ready", phase="phase_1_stocks", assets=("NVDA",),
                       metrics={}, at=now)  # fmt: skip
    h.redis.xadd(h.keys.phases, {DATA: ready.model_dump_json()})  # XADDed, then the crash
    m.pg.reset()

    published = run(monitor(h, pg_url, "pm-restarted"))
    assert len(published) == 2  # the ready found on the stream, the activation added
    assert [e.type for e in phase_events(h)] == ["phase_ready", "phase_activated"]
    ids = query(pg_url, "SELECT ready_stream_id, activated_stream_id FROM phase_activation_log")
    assert list(ids[0]) == published
    assert h.redis.hget(h.keys.control, "asset:TSLA") == b"1"


def test_monitor_when_another_holds_the_portfolio_lock_then_stands_by(
    h: Harness, pg_url: str
) -> None:
    """One writer per portfolio: a second monitor waits (Standby) until the first is gone."""
    first = monitor(h, pg_url, "pm-a")
    first.connection()
    second = monitor(h, pg_url, "pm-b")
    with pytest.raises(Standby):
        second.connection()
    first.pg.reset()  # the holder's session ends: its lock is released
    second.pg.reset()
    assert second.connection() is not None
    second.pg.reset()


def event(h: Harness, payload: dict[str, object]) -> None:
    """An event as an executor or operator writes it (fields the client cannot set)."""
    h.redis.xadd(h.keys.events, {DATA: json.dumps(payload)})


def phase_1_status(h: Harness, pg_url: str, capsys: pytest.CaptureFixture[str]) -> Any:
    capsys.readouterr()  # the monitor's log lines
    args = ["phase", "status", "--portfolio", h.portfolio, "--database-url", pg_url, "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    return report, next(p for p in report["phases"] if p["phase"] == "phase_1_stocks")


def test_monitor_when_sharpe_rests_on_three_returns_then_not_ready_and_status_says_why(
    h: Harness, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 60-day record that ended 100 days ago, then 3 marks in the window with rising
    equity: a Sharpe far above 1.5 from 3 returns. Nothing is emitted; the status names
    sharpe_days (3, needs >= 50) and the Sharpe that rests on it."""
    start = TODAY - timedelta(days=160)
    track_record(h, winning=60, losing_every=5, start=start)
    for n, px in ((3, "100.5"), (2, "101.5"), (1, "103")):  # 10 BTC held: +5, +10, +15
        day = TODAY - timedelta(days=n)
        if n == 3:
            h.client.fill("hold", "BTC/USDT", "buy", "10", "100", at=at(day, 1), event_id="hb")
        h.client.mark({"BTC/USDT": px}, at=at(day, 23), event_id=f"late-mark-{n}")
    assert run(monitor(h, pg_url)) == []
    assert phase_events(h) == []
    report, phase1 = phase_1_status(h, pg_url, capsys)
    metrics = report["metrics"]
    assert (metrics["sharpe_days"], metrics["trades"], metrics["crypto_profitable_days"]) == (
        3,
        60,
        39,  # 48 - 12, and the 3 recent days
    )
    assert D(metrics["sharpe_ratio"]) > D(10)
    assert phase1["state"] == "waiting" and phase1["unmet"] == ["sharpe_ratio", "sharpe_days"]
    reqs = {r["name"]: r for r in phase1["requirements"]}
    assert (reqs["sharpe_days"]["value"], reqs["sharpe_days"]["requirement"]) == ("3", ">= 50")
    assert scalar(pg_url, "SELECT count(*) FROM phase_activation_log") == 0

    capsys.readouterr()
    base = ["phase", "activate", "phase_1_stocks", "--portfolio", h.portfolio]
    assert main([*base, "--database-url", pg_url]) == 1
    assert "sharpe_days: 3" in capsys.readouterr().err


def test_monitor_when_fills_carry_fees_then_trips_days_and_win_rate_are_net(
    h: Harness, pg_url: str
) -> None:
    """10 BTC round trips of +20 gross with 12.5 of fee per fill: each trip -5 net, stored
    with its fees; the days lose 5 each, the win rate is 0, the net days -10."""
    h.client.deposit("10000", event_id="dep-0")
    h.client.mark({"BTC/USDT": "100"}, at=at(START, 23), event_id="mark-0")
    for i in range(1, 11):
        day = START + timedelta(days=i)
        for side, px, hour in (("buy", "100", 1), ("sell", "102", 2)):
            event(h, {"type": "fill", "event_id": f"{side}{i}", "intent_id": f"t{i}",
                      "symbol": "BTC/USDT", "side": side, "quantity": "10", "price": px,
                      "fee": "12.5", "at": at(day, hour).isoformat()})  # fmt: skip
        h.client.mark({"BTC/USDT": "100"}, at=at(day, 23), event_id=f"mark-{i}")
    m = monitor(h, pg_url)
    run(m)
    fills = query(pg_url, "SELECT side, fee, fee_account, realized_pnl FROM trades WHERE "
                  "portfolio = %s AND event_id IN ('buy1', 'sell1') ORDER BY side",
                  (h.portfolio,))  # fmt: skip
    assert fills == [
        ("buy", D("12.5"), D("12.5"), D("-12.5")),
        ("sell", D("12.5"), D("12.5"), D("7.5")),
    ]
    trips = query(pg_url, "SELECT count(*), sum(realized_pnl), sum(fees), "
                  "count(*) FILTER (WHERE realized_pnl > 0) FROM round_trips WHERE portfolio = %s",
                  (h.portfolio,))  # fmt: skip
    assert trips == [(10, D(-50), D(250), 0)]
    last = query(pg_url, "SELECT close_equity FROM daily_equity WHERE portfolio = %s "
                 "ORDER BY day DESC LIMIT 1", (h.portfolio,))  # fmt: skip
    assert last == [(D(9950),)]
    perf = query(pg_url, "SELECT win_rate, realized_pnl, gross_loss FROM asset_performance "
                 "WHERE portfolio = %s AND scope = 'asset'", (h.portfolio,))  # fmt: skip
    assert perf == [(D(0), D(-50), D(50))]
    with m.connection().transaction():
        metrics = current_metrics(m.connection(), h.portfolio, h.config, TODAY)
    m.pg.reset()
    assert (metrics.win_rate, metrics.crypto_profitable_days, metrics.profitable_days) == (
        D(0),
        -10,
        -10,
    )


def test_monitor_when_resume_and_signed_deposit_then_resume_ignored_and_deposit_counted(
    h: Harness, pg_url: str
) -> None:
    """A resume event is applied once (its id recorded) and changes nothing; a deposit with
    key_id and signature counts like any; the batch is not dead-lettered."""
    track_record(h, winning=3)
    m = monitor(h, pg_url)
    run(m)
    before = query(pg_url, "SELECT state FROM phase_monitor_state WHERE portfolio = %s",
                   (h.portfolio,))  # fmt: skip
    event(h, {"type": "resume", "event_id": "resume-1", "operator": "alice",
              "reason": "reviewed", "key_id": "ops-1", "signature": "ab" * 32})  # fmt: skip
    run(monitor(h, pg_url))
    after = query(pg_url, "SELECT state FROM phase_monitor_state WHERE portfolio = %s",
                  (h.portfolio,))  # fmt: skip
    assert after == before
    applied = query(pg_url, "SELECT type FROM applied_events WHERE portfolio = %s AND "
                    "event_id = 'resume-1'", (h.portfolio,))  # fmt: skip
    assert applied == [("resume",)]

    event(h, {"type": "deposit", "event_id": "dep-signed", "amount": "500", "key_id": "ops-1",
              "signature": "cd" * 32})  # fmt: skip
    run(monitor(h, pg_url))
    state = scalar(pg_url, "SELECT state ->> 'net_deposits' FROM phase_monitor_state "
                   "WHERE portfolio = %s", (h.portfolio,))  # fmt: skip
    assert D(state) == D(10500)
    assert h.redis.xlen(h.keys.deadletter) == 0
    assert h.redis.xpending(h.keys.events, "phase")["pending"] == 0


def test_monitor_when_operator_keys_set_and_deposit_forged_then_not_counted(
    h: Harness, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monitor refuses what the gate refuses: with RISKGATE_OPERATOR_KEYS, a deposit
    without a valid operator signature is no capital (a consumer reject), a signed one is."""
    monkeypatch.setenv("RISKGATE_OPERATOR_KEYS", "op1:" + base64.b64encode(b"s" * 32).decode())
    h.client = GateClient(redis=h.redis, portfolio=h.portfolio)  # holds the key now
    track_record(h, winning=3)  # its deposit is signed: the client holds the key
    event(h, {"type": "deposit", "event_id": "forged", "amount": "1000000"})
    run(monitor(h, pg_url))
    state = scalar(pg_url, "SELECT state ->> 'net_deposits' FROM phase_monitor_state "
                   "WHERE portfolio = %s", (h.portfolio,))  # fmt: skip
    assert D(state) == D(10000)
    rejects = query(pg_url, "SELECT error FROM consumer_rejects WHERE portfolio = %s",
                    (h.portfolio,))  # fmt: skip
    assert len(rejects) == 1 and "operator signature" in rejects[0][0]
