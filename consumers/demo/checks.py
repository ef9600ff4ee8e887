"""What the demo reads back to prove its run: a group caught up on its stream, the audit
rows in PostgreSQL."""

from __future__ import annotations

from typing import Any

from redis import Redis

from consumers.db import connection as db


def caught_up(redis: Redis, stream: str, group: str) -> bool:
    """The group has been delivered every entry and acked them all (any Redis >= 6.2)."""
    info: Any = redis.xinfo_stream(stream)
    last = info.get("last-generated-id")
    for g in redis.xinfo_groups(stream):
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name == group:
            return bool(g["last-delivered-id"] == last and g["pending"] == 0)
    return False


def audit_rows(url: str, portfolio: str) -> tuple[int, int]:
    """Rows in trading_decisions, and decisions the audit writer refused (consumer_rejects)."""
    with db.connect(url, application_name="riskgate-demo") as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM trading_decisions WHERE portfolio = %(p)s),"
            " (SELECT count(*) FROM consumer_rejects WHERE portfolio = %(p)s"
            "  AND consumer = 'audit')",
            {"p": portfolio},
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
