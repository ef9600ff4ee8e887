"""The duplicate-order memory: each (agent, symbol)'s approved openings in the window.

``duplicate_order`` (gate.checks) refuses an opening that repeats one of these: same
agent, symbol, side and requested quantity, approved or resized within
``duplicate_order_window_seconds``. The memory lives in the snapshot (and the state
hash), so a repeat is caught across batches and worker restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from gate.enrich import Ask
from gate.portfolio import Approval

Memory = Mapping[tuple[str, str], tuple[Approval, ...]]

#: Approvals remembered per (agent, symbol). With the window at most a minute, the agents
#: with a memory are at most those counted in two rate minutes (max_agents_per_portfolio
#: each), so the memory holds at most 2 x agents cap x symbols x this many approvals.
DEPTH = 8


class Recent(dict[tuple[str, str], tuple[Approval, ...]]):
    """An approval memory that knows a time no entry is older than (``oldest``; None:
    unknown), so the next batch skips the scan for expired ones while none can be; and,
    when made from ``source`` by :func:`recent_approvals`, the keys whose entries differ
    from it (``touched``: expired, pruned or remembered since), so what a batch writes
    back costs what it changed, not the size of the memory."""

    __slots__ = ("oldest", "source", "touched")

    def __init__(
        self,
        entries: Memory | None = None,
        oldest: datetime | None = None,
        source: Memory | None = None,
    ) -> None:
        super().__init__(entries or {})
        self.oldest = oldest
        self.source = source
        self.touched: set[tuple[str, str]] | None = set() if source is not None else None


def recent_approvals(approvals: Memory, now: datetime, window: int) -> Recent:
    """``approvals`` without those older than ``window`` seconds (all of them at 0).

    Entries are oldest first, so most keys are decided by their first entry. An entry
    dated after ``now`` (the clock stepped back) is kept: it is within the window. A
    memory this function returned, and that :func:`remember_approval` added to since, is
    copied without a scan while its ``oldest`` is within the window.
    """
    if window <= 0:
        if isinstance(approvals, Recent):
            approvals.source = approvals.touched = None
        gone = Recent(source=approvals)
        gone.touched = set(approvals)
        return gone
    cutoff = now - timedelta(seconds=window)
    known = None
    if isinstance(approvals, Recent):
        known = approvals.oldest
        # its own batch's write-back is done: drop the link, so that a chain of memories,
        # each holding the one it was made from, is never kept alive (without the link,
        # approvals_touched compares every key: slower, never wrong)
        approvals.source = approvals.touched = None
    if known is not None and known >= cutoff:
        return Recent(approvals, known, approvals)
    kept = Recent(source=approvals)
    touched = kept.touched
    assert touched is not None
    oldest = None
    for key, entries in approvals.items():
        live = entries if entries[0][2] >= cutoff else tuple(e for e in entries if e[2] >= cutoff)
        if live is not entries:
            touched.add(key)
        if not live:
            continue
        kept[key] = live
        first = live[0][2]
        if oldest is None or first < oldest:
            oldest = first
    kept.oldest = oldest or now
    return kept


def previous_approval(approvals: Memory, intent: Ask) -> datetime | None:
    """When the same opening was approved (``approvals`` already pruned to the window)."""
    entries = approvals.get((intent.agent_id, intent.symbol))
    if entries is None:
        return None
    for side, quantity, at in entries:
        if side is intent.side and quantity == intent.quantity:
            return at
    return None


def remember_approval(approvals: Recent, intent: Ask, now: datetime) -> None:
    """Add an approved opening (its requested quantity) to ``approvals``, newest last,
    keeping at most DEPTH per (agent, symbol): the oldest goes first."""
    key = (intent.agent_id, intent.symbol)
    entries = approvals.get(key, ())
    kept = approvals[key] = (*entries, (intent.side, intent.quantity, now))[-DEPTH:]
    if approvals.touched is not None:
        approvals.touched.add(key)
    if approvals.oldest is not None and kept[0][2] < approvals.oldest:
        approvals.oldest = kept[0][2]  # the clock stepped back
