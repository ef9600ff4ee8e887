"""What a batch writes back: the state hash fields to set and delete for what it touched,
encoded with :mod:`consumers.state.codec`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from consumers.bus import keys as k
from consumers.state.codec import (
    approval_field,
    encode_account,
    encode_approvals,
    encode_position,
    encode_quote,
    encode_rate,
    encode_reservation,
)
from gate.duplicates import Recent
from gate.portfolio import (
    Snapshot,
)


def changes(
    new: Snapshot,
    *,
    account: bool,
    positions: Iterable[str] = (),
    reservations: Iterable[str] = (),
    rates: Iterable[str] = (),
    marks: Iterable[str] = (),
    approvals: Iterable[tuple[str, str]] = (),
) -> tuple[dict[str, str], list[str]]:
    """State hash fields to set and delete for what a batch touched, as found in ``new``.

    A touched position, reservation, agent rate or (agent, symbol) approval memory
    absent from ``new`` is deleted.
    """
    hset: dict[str, str] = {}
    hdel: list[str] = []
    if account:
        hset[k.F_ACCOUNT] = encode_account(new.account)
    for symbol in positions:
        pos = new.positions.get(symbol)
        if pos is None:
            hdel.append(k.P_POSITION + symbol)
        else:
            hset[k.P_POSITION + symbol] = encode_position(pos)
    for intent_id in reservations:
        res = new.reservations.get(intent_id)
        if res is None:
            hdel.append(k.P_RESERVATION + intent_id)
        else:
            hset[k.P_RESERVATION + intent_id] = encode_reservation(res)
    for agent in rates:  # an agent no longer counted (its minute is over): deleted
        rc = new.rates.get(agent)
        if rc is None:
            hdel.append(k.P_RATE + agent)
        else:
            hset[k.P_RATE + agent] = encode_rate(rc)
    for symbol in marks:
        q = new.marks.get(symbol)
        if q is not None:
            hset[k.P_MARK + symbol] = encode_quote(q)
    for key in approvals:  # forgotten past the duplicate window: deleted
        entries = new.approvals.get(key)
        if entries is None:
            hdel.append(approval_field(key))
        else:
            hset[approval_field(key)] = encode_approvals(entries)
    return hset, hdel


def approvals_touched(before: Snapshot, after: Snapshot) -> set[tuple[str, str]]:
    """The (agent, symbol) approval memories that differ: added, changed or forgotten.

    When ``after``'s memory was made from ``before``'s by one batch's decisions, it
    knows the keys it touched (``gate.duplicates.Recent``): those, without walking the
    memory. Otherwise every key is compared.
    """
    old, new = before.approvals, after.approvals
    if isinstance(new, Recent) and new.touched is not None and new.source is old:
        return set(new.touched)
    return differing(old, new)


def differing(
    old: Mapping[tuple[str, str], object], new: Mapping[tuple[str, str], object]
) -> set[tuple[str, str]]:
    """The keys whose values differ between two approval memories, by comparing all."""
    if not old and not new:
        return set()
    return {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
