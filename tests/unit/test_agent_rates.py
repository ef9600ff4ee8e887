"""Per-agent state is bounded: past minutes' counts are dropped, agents per minute capped.

Pure: decide_batch on snapshots, and the codec's diff. NOW = 2026-11-24 12:00 UTC; the
default rate limit is 120 intents per agent per minute, the agent cap 1,000 a minute.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from consumers.bus import keys as k
from consumers.state.changes import changes
from gate.decide import decide_batch
from gate.portfolio import RateCount, Snapshot
from schemas.config import AssetsConfig
from schemas.messages import Status
from tests.builders import NOW, base_config, codes, intent, position, snapshot

WINDOW = int(NOW.timestamp()) // 60


def capped(n: int) -> AssetsConfig:
    cfg = base_config()
    rm = cfg.risk_management.model_copy(update={"max_agents_per_portfolio": n})
    return cfg.model_copy(update={"risk_management": rm})


def counted(agents: dict[str, RateCount]) -> Snapshot:
    return replace(snapshot(), rates=agents)


def test_decide_batch_when_a_minute_passed_then_past_counts_dropped() -> None:
    """Counts of earlier minutes leave the snapshot; this minute's and the new stay."""
    snap = counted({"old": RateCount(WINDOW - 1, 5), "now": RateCount(WINDOW, 2)})
    result = decide_batch([intent(agent_id="new")], snap, base_config(), NOW)
    assert result.snapshot.rates == {"now": RateCount(WINDOW, 2), "new": RateCount(WINDOW, 1)}


def test_decide_batch_when_agents_at_cap_then_new_agent_too_many_agents() -> None:
    """Cap 2, two agents counted this minute: a third is refused, a counted one is not."""
    snap = counted({"a": RateCount(WINDOW, 1), "b": RateCount(WINDOW, 1)})
    result = decide_batch([intent(agent_id="c"), intent(agent_id="a")], snap, capped(2), NOW)
    third, known = result.decisions
    assert (third.status, codes(third)) == (Status.REJECTED, ["too_many_agents"])
    assert (third.reasons[0].value, third.reasons[0].limit) == ("2", "2")
    assert known.status is Status.APPROVED
    assert set(result.snapshot.rates) == {"a", "b"}  # the refused agent is not counted


def test_decide_batch_when_past_agents_expire_then_new_agents_fit_again() -> None:
    """Cap 2: agents of the last minute do not count against this one."""
    snap = counted({"a": RateCount(WINDOW - 1, 1), "b": RateCount(WINDOW - 1, 1)})
    result = decide_batch(
        [intent(agent_id="c"), intent(agent_id="d"), intent(agent_id="e")], snap, capped(2), NOW
    )
    assert [d.status for d in result.decisions] == [
        Status.APPROVED,
        Status.APPROVED,
        Status.REJECTED,
    ]
    assert set(result.snapshot.rates) == {"c", "d"}
    assert result.decisions[0].checks["agents_this_minute"] == 0
    assert result.decisions[0].checks["agents_limit"] == 2


def test_decide_batch_when_agents_at_cap_then_reduce_only_still_passes() -> None:
    """An exit is always possible: a reduce-only intent of a new agent is not capped."""
    held = replace(
        snapshot("90000", [position("BTC/USDT", "0.1", "100000")]),
        rates={"a": RateCount(WINDOW, 1)},
    )
    exit_ = intent(agent_id="z", side="sell", quantity="0.1", reduce_only=True)
    (d,) = decide_batch([exit_], held, capped(1), NOW).decisions
    assert d.status is Status.APPROVED, codes(d)


def test_decide_batch_when_rate_limited_then_count_not_raised() -> None:
    """A rejected-for-rate intent leaves the agent's count at the limit (unchanged)."""
    snap = counted({"a": RateCount(WINDOW, 120)})
    result = decide_batch([intent(agent_id="a")], snap, base_config(), NOW)
    assert codes(result.decisions[0]) == ["rate_limited"]
    assert result.snapshot.rates["a"] == RateCount(WINDOW, 120)


def test_changes_when_agent_no_longer_counted_then_its_field_deleted() -> None:
    """A touched agent absent from the new snapshot is an HDEL; a present one an HSET."""
    new = counted({"now": RateCount(WINDOW, 3)})
    hset, hdel = changes(new, account=False, rates=["now", "old"])
    assert hset == {k.P_RATE + "now": f"{WINDOW}:3"}
    assert hdel == [k.P_RATE + "old"]


def test_decide_batch_when_clock_moves_a_minute_then_every_old_count_goes() -> None:
    """1,500 agents counted a minute ago: none of them survives the next minute's batch."""
    old = {f"agent-{i}": RateCount(WINDOW, 1) for i in range(1500)}
    later = NOW + timedelta(seconds=60)
    result = decide_batch(
        [intent(agent_id="x", created_at=later)], counted(old), base_config(), later
    )
    assert set(result.snapshot.rates) == {"x"}
