"""Implausible portfolio events on a real Redis, through the wire protocol.

Each event an executor or operator could send by mistake is asserted as the exact
dead letter (refused: nothing applied) or, for a fill the gate never approved, as
applied + halted + counted, cleared by an operator's resume.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from redis import Redis

from consumers.bus.keys import DATA
from consumers.cli.main import main
from schemas.messages import Status
from tests.builders import codes
from tests.harness import Harness

D = Decimal


def now_on(redis: Redis) -> datetime:
    seconds, micros = redis.time()
    return datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))


def funded(redis: Redis, portfolio: str) -> Harness:
    """1,000,000 deposited, the test market marked (BTC at 100,000)."""
    h = Harness(redis, portfolio)
    h.fund("1000000")
    return h


def event(h: Harness, payload: dict[str, object]) -> None:
    h.raw(h.keys.events, {DATA: json.dumps(payload)})


def refused_only(h: Harness) -> str:
    """The one dead letter's error; the event was not applied."""
    (dead,) = h.dead()
    assert h.worker.stats["refused_events"] == 1
    assert h.redis.exists(h.keys.applied(json.loads(dead["raw"])["event_id"])) == 0
    return str(dead["error"])


def test_withdrawal_when_larger_than_cash_then_refused(redis: Redis, portfolio: str) -> None:
    """5,000,000 out of 1,000,000: refused, cash unchanged."""
    h = funded(redis, portfolio)
    event(h, {"type": "deposit", "event_id": "w1", "amount": "-5000000"})
    h.pump()
    assert refused_only(h) == (
        "refused: withdrawal of 5000000 is larger than the cash 1000000; close positions first"
    )
    assert h.state().snapshot.account.cash == D(1000000)


def test_fill_when_symbol_unconfigured_and_dated_an_hour_ago_then_refused_openings_unaffected(
    redis: Redis, portfolio: str
) -> None:
    """The reported case: a $1 fill for an unknown symbol an hour ago is refused, so the
    next opening is decided normally (it used to be `stale_portfolio`)."""
    h = funded(redis, portfolio)
    hour_ago = (now_on(redis) - timedelta(hours=1)).isoformat()
    event(h, {"type": "fill", "event_id": "x1", "intent_id": "nobody", "symbol": "FOO/BAR",
              "side": "buy", "quantity": "1", "price": "1", "at": hour_ago})  # fmt: skip
    h.pump()
    assert refused_only(h) == (
        "refused: fill for FOO/BAR, a symbol that is not configured: nothing could mark, "
        "limit or value it (only a fill reducing a position left from an older config is "
        "accepted)"
    )
    assert "FOO/BAR" not in h.state().snapshot.positions
    iid = h.intent(quantity="0.1")
    h.pump()
    assert h.decision(iid).status is Status.APPROVED


def test_fill_when_dated_before_the_positions_last_fill_then_refused(
    redis: Redis, portfolio: str
) -> None:
    """Filled at t, then a fill dated t - 1 min for the same symbol: refused."""
    h = funded(redis, portfolio)
    iid = h.intent(quantity="0.2")
    h.pump()
    t = now_on(redis)
    h.client.fill(iid, "BTC/USDT", "buy", "0.1", "100000", at=t, event_id="f1")
    h.pump()
    h.client.fill(iid, "BTC/USDT", "buy", "0.1", "100000", at=t - timedelta(minutes=1),
                  event_id="f2")  # fmt: skip
    h.pump()
    error = refused_only(h)
    before = (t - timedelta(minutes=1)).isoformat()
    assert error == (
        f"refused: fill is dated {before}, 60s before the BTC/USDT position's last fill "
        f"({t.isoformat()}); max_clock_skew_seconds is 5"
    )
    snap = h.state().snapshot
    assert snap.positions["BTC/USDT"].quantity == D("0.1")
    assert snap.reservations[iid].quantity == D("0.1")


def test_fill_when_price_outside_the_fill_band_then_refused(redis: Redis, portfolio: str) -> None:
    """BTC marked at 100,000, an approved buy filled at 1,000,000 (a typo): refused."""
    h = funded(redis, portfolio)
    iid = h.intent(quantity="0.1")
    h.pump()
    marked = h.state().snapshot.marks["BTC/USDT"]
    h.client.fill(iid, "BTC/USDT", "buy", "0.1", "1000000", event_id="typo")
    h.pump()
    assert refused_only(h) == (
        f"refused: fill price 1000000 is 900.00% from the BTC/USDT mark 100000 "
        f"({marked.at.isoformat()}); the crypto fill_band is 15%"
    )
    snap = h.state().snapshot
    assert "BTC/USDT" not in snap.positions and iid in snap.reservations


def test_fill_when_1000_btc_for_an_unknown_intent_then_applied_halted_until_resume(
    redis: Redis, portfolio: str
) -> None:
    """The reported case: applied (it is a position now), counted as unknown_fill, and
    every opening rejected `trading_halted` (reduce-only passes) until `resume`."""
    h = funded(redis, portfolio)
    h.client.fill("nobody", "BTC/USDT", "buy", "1000", "100000", event_id="big")
    h.pump()
    snap = h.state().snapshot
    assert snap.positions["BTC/USDT"].quantity == D(1000)
    halt = snap.account.halted_by
    assert halt is not None and (halt.event_id, halt.reason) == (
        "big",
        "unknown_fill: fill for nobody (buy 1000 BTC/USDT at 100000): no known approval",
    )
    assert (h.worker.stats["unknown_fill"], h.worker.stats["refused_events"]) == (1, 0)
    assert h.dead() == []
    opening = h.intent("ETH/USDT", quantity="0.1", price="3900")
    # an exit inside the 40,000 max order value (a larger one is resized to it)
    closing = h.intent(side="sell", quantity="0.3", price="100000", reduce_only=True)
    h.pump()
    d = h.decision(opening)
    assert d.status is Status.REJECTED and codes(d)[0] == "trading_halted"
    assert d.reasons[0].message.startswith(
        f"trading is halted since {halt.at.isoformat()} by event big: unknown_fill: fill for nobody"
    )
    assert h.decision(closing).status is Status.APPROVED
    h.client.resume("alice", "reconciled with the exchange", reference="r1")
    h.pump()
    assert h.state().snapshot.account.halted_by is None
    again = h.intent("ETH/USDT", quantity="0.1", price="3900")
    h.pump()
    assert "trading_halted" not in codes(h.decision(again))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["i1", "BTC/USDT", "hold", "1", "100"],
            "invalid fill: side: Input should be 'buy' or 'sell'",
        ),
        (["i1", "BTC/USDT", "buy", "-1", "100"], "invalid fill: quantity: "),
        (["i 1", "BTC/USDT", "buy", "1", "100"], "invalid fill: intent_id: "),
        (["i1", "FOO/BAR", "buy", "1", "100"], "symbol: 'FOO/BAR' is not configured"),
        (["i1", "BTC/USDT", "buy", "1", "100", "--at", "yesterday"], "invalid fill: at: "),
    ],
)
def test_cli_fill_when_invalid_then_exit_2_naming_the_field(
    redis: Redis, portfolio: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`riskgate fill` validates with the gate's model; nothing is published."""
    url = redis.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"
    code = main(
        ["fill", "--portfolio", portfolio, "--redis-url", redis_url, "--fill-id", "x1", *args]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert redis.xlen(f"riskgate:{{{portfolio}}}:events") == 0


def test_cli_fill_when_valid_then_published_and_applied(
    redis: Redis, portfolio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A manual fill of an approved intent is an ordinary fill event."""
    h = funded(redis, portfolio)
    iid = h.intent(quantity="0.1")
    h.pump()
    url = redis.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"
    args = [iid, "BTC/USDT", "buy", "0.1", "100010", "--event-id", "manual-1"]
    assert main(["fill", "--portfolio", portfolio, "--redis-url", redis_url, *args]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "manual-1"
    h.pump()
    snap = h.state().snapshot
    assert snap.positions["BTC/USDT"].quantity == D("0.1") and iid not in snap.reservations
    assert snap.account.halted_by is None
