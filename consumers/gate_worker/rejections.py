"""What a bad entry gets: its dead letter (the raw payload, truncated, and the error)
and, where an intent id can still be read, a ``rejected`` decision for the agent."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from consumers.bus.streams import Entry
from consumers.gate_worker.commit_plan import DeadEntry
from schemas.messages import Decision, Reason, ReasonCode, Side, Status, _bounded

RAW_KEEP = 4096  # bytes of a bad payload kept in its dead letter


def dead_letter(entry: Entry, error: str, worker: str, now: datetime) -> DeadEntry:
    if entry.oversize:
        raw, size = entry.head, entry.oversize
    else:
        raw = (
            entry.raw
            if entry.raw is not None
            else json.dumps(
                {
                    k.decode(errors="replace"): v.decode(errors="replace")
                    for k, v in entry.fields.items()
                }
            ).encode()
        )
        size = len(raw)
    payload = {
        "stream": entry.stream,
        "msg_id": entry.msg_id.decode(),
        "error": error,
        "raw": raw[:RAW_KEEP].decode("utf-8", errors="replace"),
        "raw_bytes": size,
        "truncated": size > RAW_KEEP,
        "deliveries": entry.deliveries,
        "worker": worker,
        "at": now.isoformat(),
    }
    source: Literal["i", "e"] = "i" if entry.stream.endswith(":intents") else "e"
    return DeadEntry(source, entry.msg_id, json.dumps(payload, separators=(",", ":")))


def _short(value: Any, limit: int = 128) -> str:
    """A salvaged text field, as text every JSON writer can encode (no lone surrogates)."""
    if not isinstance(value, str):
        return ""
    return value[:limit].encode("utf-8", "replace").decode("utf-8")


def rejection(
    intent_id: str,
    salvage: dict[str, Any],
    *,
    code: ReasonCode,
    message: str,
    now: datetime,
    config_hash: str,
    value: str | None = None,
    limit: str | None = None,
    checks: dict[str, Any] | None = None,
) -> Decision:
    """The rejected decision an agent gets for an intent that could not be decided."""
    side = salvage.get("side")
    return Decision.model_construct(
        intent_id=intent_id,
        agent_id=_short(salvage.get("agent_id")),
        symbol=_short(salvage.get("symbol"), 32),
        side=Side(side) if side in ("buy", "sell") else None,
        status=Status.REJECTED,
        requested_quantity=_decimal_or_zero(salvage.get("quantity")),
        approved_quantity=_decimal_or_zero(0),
        stop_price=None,
        take_profit=None,
        price=None,
        reduce_only=salvage.get("reduce_only") is True,
        reasons=(Reason(code=code, message=message[:1000], value=value, limit=limit),),
        checks=checks or {},
        decided_at=now,
        config_hash=config_hash,
    )


def _decimal_or_zero(value: Any) -> Decimal:
    """The requested quantity an invalid intent named, if it is a usable one, else 0
    (the reason's message says what was wrong with it)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return Decimal(0)
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    try:  # the wire's bounds (finite, < 1e15, <= 18 places): every reader can parse it
        bounded = _bounded(d)
    except ValueError:
        return Decimal(0)
    return bounded if bounded >= 0 else Decimal(0)
