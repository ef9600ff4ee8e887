"""The duplicate-order memory: each (agent, symbol)'s approved openings in the window.

``duplicate_order`` (gate.checks) refuses an opening that repeats one of these: same
agent, symbol, side and requested quantity, approved or resized within
``duplicate_order_window_seconds``. The memory lives in the snapshot (and the state
hash), so a repeat is caught across batches and worker restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from gate.portfolio import Approval
from schemas.messages import TradeIntent

Memory = Mapping[tuple[str, str], tuple[Approval, ...]]

#: Approvals remembered per (agent, symbol). With the window at most a minute, the agents
#: with a memory are at most those counted in two rate minutes (max_agents_per_portfolio
#: each), so the memory holds at most 2 x agents cap x symbols x this many approvals.
DEPTH = 8


def recent_approvals(
    approvals: Memory, now: datetime, window: int
) -> dict[tuple[str, str], tuple[Approval, ...]]:
    """``approvals`` without those older than ``window`` seconds (all of them at 0).

    Entries are oldest first, so most keys are decided by their first entry. An entry
    dated after ``now`` (the clock stepped back) is kept: it is within the window.
    """
    if window <= 0:
        return {}
    oldest = now - timedelta(seconds=window)
    kept: dict[tuple[str, str], tuple[Approval, ...]] = {}
    for key, entries in approvals.items():
        if entries[0][2] >= oldest:
            kept[key] = entries
            continue
        live = tuple(e for e in entries if e[2] >= oldest)
        if live:
            kept[key] = live
    return kept


def previous_approval(approvals: Memory, intent: TradeIntent) -> datetime | None:
    """When the same opening was approved (``approvals`` already pruned to the window)."""
    entries = approvals.get((intent.agent_id, intent.symbol))
    if entries is None:
        return None
    for side, quantity, at in entries:
        if side is intent.side and quantity == intent.quantity:
            return at
    return None


def remember_approval(
    approvals: dict[tuple[str, str], tuple[Approval, ...]], intent: TradeIntent, now: datetime
) -> None:
    """Add an approved opening (its requested quantity) to ``approvals``, newest last,
    keeping at most DEPTH per (agent, symbol): the oldest goes first."""
    key = (intent.agent_id, intent.symbol)
    entries = approvals.get(key, ())
    approvals[key] = (*entries, (intent.side, intent.quantity, now))[-DEPTH:]
