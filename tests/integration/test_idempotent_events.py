"""Idempotent events on a real Redis (issue 10, part 4).

The SDK derives each event's id from what it reports (docs/PROTOCOL.md, "Event ids"),
so a retried ``fill()`` or ``deposit()`` is applied once; an event re-sent after its
applied marker expired is refused as too old instead of applied a second time. Each
scenario also runs the way it ran before (a random id per call, no staleness refusal)
and counts the double application that this prevents.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from redis import Redis

from consumers.bus.keys import DATA
from consumers.cli.main import main
from consumers.db.stream_to_pg import ConsumerSettings, PgLink
from consumers.gate_worker.worker import GateSettings, GateWorker
from consumers.phase.monitor import PhaseMonitor
from gate.ledger import event_window
from schemas.config import AssetsConfig
from tests.builders import base_config
from tests.harness import Harness, wipe
from tests.integration.pg import query, scalar, temp_database

D = Decimal
SHORT_TTL_S = 4  # applied markers live 4 s: the event window is 2 s (margin: half the TTL)


def now_on(redis: Redis) -> datetime:
    seconds, micros = redis.time()
    return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))


def funded(redis: Redis, portfolio: str) -> Harness:
    h = Harness(redis, portfolio)
    h.fund("1000000")
    return h


def btc(h: Harness) -> Decimal:
    pos = h.state().snapshot.positions.get("BTC/USDT")
    return pos.quantity if pos is not None else D(0)


def last_event(h: Harness) -> dict[str, Any]:
    (_, fields), = h.redis.xrevrange(h.keys.events, count=1)  # fmt: skip
    return dict(json.loads(fields[DATA]))


def resend(h: Harness, payload: dict[str, Any]) -> None:
    h.raw(h.keys.events, {DATA: json.dumps(payload)})


def tight_skew(skew: int = 1, intent_age: int = 3) -> AssetsConfig:
    """The test config with ``max_clock_skew_seconds`` 1 and ``max_intent_age_seconds``
    3, so a 4 s dedupe TTL is valid (it must cover an intent's age plus the skew)."""
    data = base_config().model_dump(mode="json")
    data["risk_management"]["max_clock_skew_seconds"] = skew
    data["risk_management"]["max_intent_age_seconds"] = intent_age
    return AssetsConfig.model_validate(data)


def short_ttl(redis: Redis, portfolio: str) -> Harness:
    """A funded portfolio whose gate keeps applied markers only ``SHORT_TTL_S``."""
    h = Harness(redis, portfolio)
    h.config = tight_skew()
    settings = GateSettings(
        consumer="w1", block_ms=5, verify_exposure=True, event_marker_ttl_s=SHORT_TTL_S
    )
    h.worker = GateWorker(redis, h.keys, h.config, settings)
    h.worker.setup()
    h.fund("1000000")
    return h


def wait_expired(redis: Redis, key: str, timeout: float = 3 * SHORT_TTL_S) -> None:
    deadline = time.monotonic() + timeout
    while redis.exists(key):
        assert time.monotonic() < deadline, f"{key} did not expire"
        time.sleep(0.1)


# -- retried publishes ----------------------------------------------------------------------


def test_fill_when_retried_with_the_same_fill_id_then_position_counted_once(
    redis: Redis, portfolio: str
) -> None:
    """Two fill() calls for one execution: 0.1 BTC, one applied marker, not halted. With
    a random id per call (the SDK before) the same two reports made 0.2 BTC."""
    h = funded(redis, portfolio)
    iid = h.intent(quantity="0.1")
    h.pump()
    ids = [
        h.client.fill(iid, "BTC/USDT", "buy", "0.1", "100000", fill_id="binance-88123")
        for _ in range(2)
    ]
    h.pump()
    assert ids == [f"fill:{iid}:binance-88123"] * 2
    assert btc(h) == D("0.1")
    snap = h.state().snapshot
    assert iid not in snap.reservations and snap.account.halted_by is None
    assert h.redis.exists(h.keys.applied(ids[0])) == 1 and h.dead() == []

    before = funded(redis, f"{portfolio}-before")
    try:
        old = before.intent(quantity="0.1")
        before.pump()
        for n in range(2):  # what fill() published before: a fresh random id each call
            before.client.fill(old, "BTC/USDT", "buy", "0.1", "100000", event_id=f"fill-{n}")
        before.pump()
        assert btc(before) == D("0.2")
        assert before.state().snapshot.account.halted_by is not None  # the extra 0.1
    finally:
        wipe(redis, before.portfolio)


def test_deposit_when_retried_with_the_same_reference_then_cash_counted_once(
    redis: Redis, portfolio: str
) -> None:
    """deposit(reference=...) twice: the cash rises by the amount once (random ids: twice)."""
    h = funded(redis, portfolio)
    cash = h.state().snapshot.account.cash
    ids = [h.client.deposit("2500", reference="TX-2026-0001") for _ in range(2)]
    h.pump()
    assert ids == ["deposit:TX-2026-0001"] * 2
    assert h.state().snapshot.account.cash == cash + D(2500)
    for n in range(2):  # as before: one random id per call
        h.client.deposit("2500", event_id=f"deposit-{n}")
    h.pump()
    assert h.state().snapshot.account.cash == cash + D(7500)


# -- re-sent after the marker expired -------------------------------------------------------


def test_fill_when_resent_after_its_marker_expired_then_refused_and_state_unchanged(
    redis: Redis, portfolio: str
) -> None:
    """The applied marker lives 4 s; the same fill re-sent after it expired is dated more
    than the 2 s window before its stream id: a "refused:" dead letter, 0.1 BTC, no halt.
    Without the refusal (the gate before) the re-send was applied again: 0.2 BTC, halted."""
    h = short_ttl(redis, portfolio)
    iid = h.intent(quantity="0.1")
    h.pump()
    event_id = h.client.fill(iid, "BTC/USDT", "buy", "0.1", "100000", fill_id="e1")
    payload = last_event(h)
    h.pump()
    assert btc(h) == D("0.1") and h.redis.ttl(h.keys.applied(event_id)) > 0
    wait_expired(redis, h.keys.applied(event_id))

    resend(h, payload)
    h.pump()
    (dead,) = h.dead()
    assert dead["error"].startswith(f"refused: fill {event_id} is dated {payload['at']}")
    assert "before its stream id" in dead["error"]
    assert "events more than 2s old" in dead["error"]
    assert h.worker.stats["refused_events"] == 1 and h.pending(h.keys.events) == 0
    assert btc(h) == D("0.1") and h.state().snapshot.account.halted_by is None

    h.worker.planner.event_window = None  # the gate before: no staleness refusal
    resend(h, payload)
    h.pump()
    assert len(h.dead()) == 1
    assert btc(h) == D("0.2") and h.state().snapshot.account.halted_by is not None


def test_deposit_when_resent_after_its_marker_expired_then_refused_cash_unchanged(
    redis: Redis, portfolio: str
) -> None:
    """The same for money: a deposit re-sent after its marker expired is not paid in twice."""
    h = short_ttl(redis, portfolio)
    event_id = h.client.deposit("2500", reference="TX-1")
    payload = last_event(h)
    h.pump()
    cash = h.state().snapshot.account.cash
    wait_expired(redis, h.keys.applied(event_id))
    resend(h, payload)
    h.pump()
    assert [d["error"].split(" is dated")[0] for d in h.dead()] == ["refused: deposit deposit:TX-1"]
    assert h.state().snapshot.account.cash == cash


def test_event_when_resent_within_its_window_then_duplicate_acked_silently(
    redis: Redis, portfolio: str
) -> None:
    """While the marker lives a re-send is a duplicate: acked, no dead letter, once."""
    h = short_ttl(redis, portfolio)
    cash = h.state().snapshot.account.cash
    h.client.deposit("100", reference="TX-2")
    payload = last_event(h)
    h.pump()
    resend(h, payload)
    h.pump()
    assert h.dead() == [] and h.state().snapshot.account.cash == cash + D(100)
    assert h.pending(h.keys.events) == 0


def test_event_when_the_gate_reads_it_after_the_window_then_refused_by_redis_time(
    redis: Redis, portfolio: str
) -> None:
    """An entry the gate reads later than the window after it arrived (a gate stopped
    that long: its marker may be gone) is refused against Redis's clock, dated by its
    ``at`` or, without one, by its stream id."""
    h = funded(redis, portfolio)
    window = event_window(GateSettings("x").event_marker_ttl_s, 5)
    later = now_on(redis) + window + timedelta(minutes=1)
    h.worker = GateWorker(
        redis, h.keys, h.config, GateSettings(consumer="w2", block_ms=5), clock=lambda: later
    )
    h.client.fill("x1", "BTC/USDT", "buy", "0.1", "100000", fill_id="e1")
    resend(h, {"type": "deposit", "event_id": "no-at", "amount": "10"})  # no ``at``
    h.pump()
    errors = [d["error"] for d in h.dead()]
    assert [e.split(" is ")[0] for e in errors] == [
        "refused: fill fill:x1:e1",
        "refused: deposit no-at",
    ]
    assert all("before the gate's clock (Redis TIME)" in e for e in errors)
    assert " is received " in errors[1]
    assert btc(h) == D(0) and h.worker.stats["refused_events"] == 2


def test_gate_when_dedupe_ttl_leaves_no_window_then_start_up_fails_naming_it(
    redis: Redis, portfolio: str
) -> None:
    """A TTL no larger than twice the clock skew (5 s) cannot refuse in time: ValueError
    (the settings check, before anything runs; here the intent age floor is met)."""
    settings = GateSettings(consumer="w1", block_ms=5, event_marker_ttl_s=10)
    with pytest.raises(ValueError, match="a dedupe TTL of 10s leaves no safe window"):
        GateWorker(redis, Harness(redis, portfolio).keys, tight_skew(5, 2), settings)


# -- the phase monitor refuses the same -----------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temp_database("idem") as url:
        yield url


@pytest.mark.pg
def test_monitor_when_event_too_old_then_refused_like_the_gate_and_not_counted(
    redis: Redis, portfolio: str, pg_url: str
) -> None:
    """A fill dated 8 days back (the window is 7 days less an hour): the gate dead-letters
    it, the phase monitor records a "refused:" reject and no trade; a fresh fill counts."""
    h = funded(redis, portfolio)
    old = now_on(redis) - timedelta(days=8)
    h.client.fill("x1", "BTC/USDT", "buy", "0.1", "100000", fill_id="old", at=old)
    h.client.fill("x1", "BTC/USDT", "buy", "0.1", "100000", fill_id="new")
    h.pump()
    (gate_error,) = [d["error"] for d in h.dead()]
    assert gate_error.startswith("refused: fill fill:x1:old is dated")
    assert btc(h) == D("0.1")

    m = PhaseMonitor(
        h.redis, PgLink(pg_url, "test-idem"), h.keys, h.config,
        ConsumerSettings("pm1", block_ms=5, batch=50),
    )  # fmt: skip
    m.setup()
    while m.step():
        pass
    m.pg.reset()
    trades = query(pg_url, "SELECT event_id FROM trades WHERE portfolio = %s", (portfolio,))
    assert trades == [("fill:x1:new",)]
    rejects = query(pg_url, "SELECT error FROM consumer_rejects WHERE portfolio = %s", (portfolio,))
    assert rejects == [(gate_error,)]  # the same refusal, word for word
    assert (
        scalar(
            pg_url,
            "SELECT count(*) FROM applied_events WHERE portfolio = %s AND event_id = 'fill:x1:old'",
            (portfolio,),
        )
        == 0
    )


# -- the CLI --------------------------------------------------------------------------------


def cli(redis: Redis, portfolio: str, *args: str) -> int:
    kw = redis.connection_pool.connection_kwargs
    url = f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}"
    return main([args[0], "--portfolio", portfolio, "--redis-url", url, *args[1:]])


def test_cli_deposit_when_no_reference_then_exit_2_one_line_nothing_published(
    redis: Redis, portfolio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`riskgate deposit 100` names --reference, in one line; an unusable one is named too."""
    assert cli(redis, portfolio, "deposit", "100") == 2
    err = capsys.readouterr().err
    assert err.startswith("riskgate: deposit needs --reference REF") and err.count("\n") == 1
    assert cli(redis, portfolio, "deposit", "100", "--reference", "two words") == 2
    assert capsys.readouterr().err.startswith("riskgate: --reference: reference must be")
    assert redis.xlen(f"riskgate:{{{portfolio}}}:events") == 0


def test_cli_deposit_when_sent_twice_with_one_reference_then_deposited_once(
    redis: Redis, portfolio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both runs print deposit:TX-9; the gate pays in 100 once."""
    h = funded(redis, portfolio)
    cash = h.state().snapshot.account.cash
    capsys.readouterr()
    for _ in range(2):
        assert cli(redis, portfolio, "deposit", "100", "--reference", "TX-9") == 0
    assert capsys.readouterr().out.splitlines() == ["deposit:TX-9"] * 2
    h.pump()
    assert h.state().snapshot.account.cash == cash + D(100)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "riskgate: fill needs --fill-id ID"),
        (("--fill-id", "a:b"), "riskgate: --fill-id: fill_id must be 1-128 characters"),
    ],
)
def test_cli_fill_when_fill_id_missing_or_invalid_then_exit_2_nothing_published(
    redis: Redis,
    portfolio: str,
    extra: tuple[str, ...],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`riskgate fill` needs the venue's execution id (or --event-id)."""
    args = ("fill", "i1", "BTC/USDT", "buy", "0.1", "100000", *extra)
    assert cli(redis, portfolio, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert redis.xlen(f"riskgate:{{{portfolio}}}:events") == 0


def test_cli_fill_when_sent_twice_with_one_fill_id_then_applied_once(
    redis: Redis, portfolio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two manual reports of one execution: one 0.1 BTC position."""
    h = funded(redis, portfolio)
    iid = h.intent(quantity="0.1")
    h.pump()
    capsys.readouterr()
    for _ in range(2):
        args = ("fill", iid, "BTC/USDT", "buy", "0.1", "100000", "--fill-id", "manual-1")
        assert cli(redis, portfolio, *args) == 0
    assert capsys.readouterr().out.splitlines() == [f"fill:{iid}:manual-1"] * 2
    h.pump()
    assert btc(h) == D("0.1") and h.state().snapshot.account.halted_by is None
