"""Reading a decision, for the client and its asyncio twin: the decided marker names the
effective decision's stream id, whose entry is parsed into a
:class:`~schemas.messages.Decision` (every field documented there and in the README)."""

from __future__ import annotations

from typing import Any

from consumers.bus.keys import DATA
from consumers.sdk.payloads import InvalidField
from schemas.messages import Decision, parse_json


def decision_ref(marker: bytes | str | None) -> str | None:
    """The decision's stream id from a decided marker (``"<stream id> <digest> <version>"``,
    or a bare id from older gates); None when the intent is not decided yet."""
    if marker is None:
        return None
    text = marker.decode() if isinstance(marker, bytes) else str(marker)
    return text.split(" ", 1)[0]


def decision_of(rows: list[Any] | None) -> Decision | None:
    """The Decision of an XRANGE reply for its id; None when the entry was trimmed (the
    marker outlives the stream's retention)."""
    fields = rows[0][1] if rows else None
    if not fields:
        return None
    return Decision.model_validate(parse_json(fields[DATA]))


def check_timeout(timeout: float) -> float:
    """A wait's ``timeout`` in seconds: a finite number >= 0, else InvalidField."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidField("timeout", timeout, "expected a number of seconds")
    if not timeout >= 0 or timeout == float("inf"):
        raise InvalidField("timeout", timeout, "must be a finite number of seconds >= 0")
    return float(timeout)
