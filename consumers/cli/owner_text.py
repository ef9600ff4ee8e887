"""How a portfolio's lease holder (the gate process deciding it) is shown: ``riskgate
status`` and ``riskgate portfolios list``."""

from __future__ import annotations

from typing import Any

from consumers.bus.lease import Holder


def owner_json(h: Holder | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {
        "owner": h.owner,
        "since": h.since.isoformat() if h.since else None,
        "expires_in_ms": h.expires_in_ms,
    }


def owner_text(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "gate owner: none (no gate process holds this portfolio's lease now)"
    since = f" since {owner['since']}" if owner["since"] else ""
    ttl = owner["expires_in_ms"]
    return f"gate owner: {owner['owner']}{since} (lease expires in {ttl} ms unless renewed)"
