"""Authenticated agents and bounded per-agent state, on a real Redis through the wire.

With RISKGATE_AGENT_KEYS set the gate only decides intents signed by a key of the agent
they name; every other intent is a decision ``unauthenticated``. Per-agent rate counts
live in the portfolio's state hash only for the current minute, and at most
``max_agents_per_portfolio`` (1,000) agents are counted a minute.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import Redis

from consumers.bus import keys as k
from consumers.cli.main import main
from consumers.sdk.client import GateClient
from schemas.messages import Status
from tests.builders import codes, market_prices
from tests.harness import Harness

MOMO = base64.b64encode(b"m" * 32).decode()
DESK = base64.b64encode(b"d" * 32).decode()
AGENT_KEYS = f"a1:momo:{MOMO},a2:desk:{DESK}"
LIMIT = 120  # max_intents_per_agent_per_minute
CAP = 1000  # max_agents_per_portfolio


class Clock:
    """The worker's clock, pinned (so a test never straddles a minute) and movable."""

    def __init__(self, redis: Redis) -> None:
        seconds = int(redis.time()[0])
        if seconds % 60 > 45:  # too near a minute's end: start in the next one
            time.sleep(61 - seconds % 60)
            seconds = int(redis.time()[0])
        # now on Redis's clock, never ahead of it (events dated ahead are refused), and
        # pinned: every intent of a step shares one rate window
        self.now = datetime.fromtimestamp(seconds, UTC)

    def __call__(self) -> datetime:
        return self.now


def harness(redis: Redis, portfolio: str) -> tuple[Harness, Clock]:
    h = Harness(redis, portfolio)
    clock = h.worker.clock = Clock(redis)
    h.client.deposit("100000", reference="d1")
    h.client.mark(market_prices(), at=clock.now)
    h.pump()
    return h, clock


def agent(h: Harness, key: str) -> GateClient:
    return GateClient(redis=h.redis, portfolio=h.portfolio, agent_key=key)


def rate_fields(h: Harness) -> list[str]:
    names = (n.decode() for n in h.redis.hkeys(h.keys.state))
    return sorted(n for n in names if n.startswith(k.P_RATE))


def submit(client: GateClient, clock: Clock, agent_id: str, **kw: Any) -> str:
    return client.submit(
        "ETH/USDT", "buy", "0.01", price="3900", agent_id=agent_id, created_at=clock.now, **kw
    )


def test_intents_when_200_agent_ids_rotate_on_one_key_then_at_most_the_limit_pass(
    redis: Redis, portfolio: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """momo's key signs 200 intents under 200 made-up agent ids and 200 as momo: the
    made-up ones are all unauthenticated, momo's past the 120th are rate_limited, and
    the state holds one rate field, momo's."""
    monkeypatch.setenv("RISKGATE_AGENT_KEYS", AGENT_KEYS)
    h, clock = harness(redis, portfolio)
    momo = agent(h, f"a1:{MOMO}")  # the two-part form: the SDK signs any agent id
    rotated = [submit(momo, clock, f"momo-{i}") for i in range(200)]
    own = [submit(momo, clock, "momo") for _ in range(200)]
    h.pump()
    for iid in rotated:
        d = h.decision(iid)
        assert (d.status, codes(d)) == (Status.REJECTED, ["unauthenticated"])
        assert "of agent 'momo', not of agent 'momo-" in d.reasons[0].message
    own_decisions = [h.decision(iid) for iid in own]
    limited = [d for d in own_decisions if "rate_limited" in codes(d)]
    counted = [d for d in own_decisions if "rate_limited" not in codes(d)]
    assert (len(counted), len(limited)) == (LIMIT, 200 - LIMIT)
    passed = [d for d in h.decisions() if d.status is not Status.REJECTED]
    assert 0 < len(passed) <= LIMIT
    assert rate_fields(h) == [k.P_RATE + "momo"]


def test_intent_when_unsigned_forged_altered_or_wrong_owner_then_unauthenticated(
    redis: Redis, portfolio: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unsigned, signed with an unknown key, forged, altered after signing, signed with
    desk's key for momo: each is rejected unauthenticated, saying why, with no order and
    no rate count; momo's own signed intent is approved."""
    monkeypatch.setenv("RISKGATE_AGENT_KEYS", AGENT_KEYS)
    h, clock = harness(redis, portfolio)
    body = {
        "agent_id": "momo",
        "symbol": "ETH/USDT",
        "side": "buy",
        "quantity": "0.01",
        "price": "3900",
        "created_at": clock.now.isoformat(),
    }
    good = agent(h, f"a1:momo:{MOMO}").agent.sign({**body, "intent_id": "altered"})
    cases = {
        "unsigned": ({**body, "intent_id": "unsigned"}, "intent is not signed"),
        "unknown": (
            {**body, "intent_id": "unknown", "key_id": "zz", "signature": "0" * 64},
            "unknown key id 'zz'",
        ),
        "forged": (
            {**body, "intent_id": "forged", "key_id": "a1", "signature": "0" * 64},
            "altered or forged",
        ),
        "altered": ({**good, "quantity": "1"}, "altered or forged"),
    }
    for data, _ in cases.values():
        h.raw_intent(json.dumps(data))
    wrong = submit(agent(h, f"a2:{DESK}"), clock, "momo", intent_id="wrong-owner")
    ok = submit(agent(h, f"a1:momo:{MOMO}"), clock, "momo", intent_id="genuine")
    h.pump()
    for name, (_, says) in cases.items():
        d = h.decision(name)
        assert (d.status, codes(d)) == (Status.REJECTED, ["unauthenticated"]), name
        assert says in d.reasons[0].message, (name, d.reasons[0].message)
    d = h.decision(wrong)
    assert codes(d) == ["unauthenticated"]
    assert "key 'a2' of agent 'desk', not of agent 'momo'" in d.reasons[0].message
    assert h.decision(ok).status is Status.APPROVED
    assert [o["intent_id"] for o in h.orders()] == ["genuine"]
    assert rate_fields(h) == [k.P_RATE + "momo"]
    assert h.dead() == []  # decisions, not dead letters


def test_cli_submit_when_agent_key_set_then_signed_as_the_keys_agent(
    redis: Redis, portfolio: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """`riskgate submit` with RISKGATE_AGENT_KEY (the three-part entry) signs the intent
    and names the key's agent; the gate approves it."""
    monkeypatch.setenv("RISKGATE_AGENT_KEYS", AGENT_KEYS)
    h, _ = harness(redis, portfolio)
    h.worker.clock = lambda: datetime.fromtimestamp(float(redis.time()[0]), UTC)
    monkeypatch.setenv("RISKGATE_AGENT_KEY", f"a1:momo:{MOMO}")
    monkeypatch.delenv("RISKGATE_AGENT", raising=False)
    argv = ["submit", "ETH/USDT", "buy", "0.01", "--price", "3900", "--portfolio", portfolio]
    assert main(argv) == 0
    iid = capsys.readouterr().out.strip().splitlines()[-1]  # after the log lines
    h.pump()
    d = h.decision(iid)
    assert (d.status, d.agent_id) == (Status.APPROVED, "momo")


def test_state_when_many_agents_across_minutes_then_rate_fields_bounded(
    redis: Redis, portfolio: str
) -> None:
    """1,200 agents in one minute: 1,000 counted (1,000 rate fields), 200 rejected
    too_many_agents; the next minute 300 agents: exactly 300 rate fields, the 1,000
    of the minute before deleted; the hash holds nothing else new."""
    h, clock = harness(redis, portfolio)
    baseline = h.redis.hlen(h.keys.state)

    def burst(n: int, tag: str) -> list[str]:
        ids = []
        with h.redis.pipeline(transaction=False) as pipe:
            for i in range(n):
                iid = f"{tag}-{i}"
                data = {
                    "intent_id": iid,
                    "agent_id": f"{tag}-agent-{i}",
                    "symbol": "ETH/USDT",
                    "side": "buy",
                    "quantity": "0.01",
                    "price": "1",  # far off the mark: rejected price_collar, still counted
                    "created_at": clock.now.isoformat(),
                }
                pipe.xadd(h.keys.intents, {k.DATA: json.dumps(data)})
                ids.append(iid)
            pipe.execute()
        h.pump()
        return ids

    first = burst(CAP + 200, "m1")
    refused = [iid for iid in first if "too_many_agents" in codes(h.decision(iid))]
    assert refused == first[CAP:]
    assert len(rate_fields(h)) == CAP
    assert h.redis.hlen(h.keys.state) == baseline + CAP

    clock.now += timedelta(seconds=60)
    burst(300, "m2")
    fields = rate_fields(h)
    assert len(fields) == 300 and all(f.startswith(k.P_RATE + "m2-") for f in fields)
    assert h.redis.hlen(h.keys.state) == baseline + 300
