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


class Recent(dict[tuple[str, str], tuple[Approval, ...]]):
    """An approval memory that knows a time no entry is older than (``oldest``; None:
    unknown), so the next batch skips the scan for expired ones while none can be."""

    __slots__ = ("oldest",)

    def __init__(self, entries: Memory | None = None, oldest: datetime | None = None) -> None:
        super().__init__(entries or {})
        self.oldest = oldest


def recent_approvals(approvals: Memory, now: datetime, window: int) -> Recent:
    """``approvals`` without those older than ``window`` seconds (all of them at 0).

    Entries are oldest first, so most keys are decided by their first entry. An entry
    dated after ``now`` (the clock stepped back) is kept: it is within the window. A
    memory this function returned, and that :func:`remember_approval` added to since, is
    copied without a scan while its ``oldest`` is within the window.
    """
    if window <= 0:
        return Recent()
    cutoff = now - timedelta(seconds=window)
    known = approvals.oldest if isinstance(approvals, Recent) else None
    if known is not None and known >= cutoff:
        return Recent(approvals, known)
    kept = Recent()
    oldest = None
    for key, entries in approvals.items():
        live = entries if entries[0][2] >= cutoff else tuple(e for e in entries if e[2] >= cutoff)
        if not live:
            continue
        kept[key] = live
        first = live[0][2]
        if oldest is None or first < oldest:
            oldest = first
    kept.oldest = oldest or now
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


def remember_approval(approvals: Recent, intent: TradeIntent, now: datetime) -> None:
    """Add an approved opening (its requested quantity) to ``approvals``, newest last,
    keeping at most DEPTH per (agent, symbol): the oldest goes first."""
    key = (intent.agent_id, intent.symbol)
    entries = approvals.get(key, ())
    kept = approvals[key] = (*entries, (intent.side, intent.quantity, now))[-DEPTH:]
    if approvals.oldest is not None and kept[0][2] < approvals.oldest:
        approvals.oldest = kept[0][2]  # the clock stepped back
