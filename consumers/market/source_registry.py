"""The feed and ``data_source_registry``: limits read from it, usage written back.

The registry is synced from the config (``riskgate sync-config``, and at the start of
every PostgreSQL process): ``rate_limit_requests`` per ``rate_limit_per_seconds`` and
``monthly_cost_usd`` govern each source. The feed adds its usage after every cycle
with increments (several feed processes may share the registry): requests, errors,
rate-limit refusals, the last request, success and error, and its view of the
source's state. The month's counters restart on the first write of a new UTC month.
Estimated month-to-date cost: ``monthly_cost_usd`` x (days elapsed / days in the
month) once the source made a request this month (a subscription accrues daily;
the free tiers cost 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from consumers.db.connection import Connection
from consumers.market.sources.gateway import Usage
from consumers.market.sources.limiter import Limit

MONTH = "date_trunc('month', %(now)s AT TIME ZONE 'UTC')::date"
FLUSH = f"""
UPDATE data_source_registry SET
    requests_total = requests_total + %(requests)s,
    requests_this_month = CASE WHEN month_started_on = {MONTH}
                               THEN requests_this_month + %(requests)s ELSE %(requests)s END,
    errors_total = errors_total + %(errors)s,
    errors_this_month = CASE WHEN month_started_on = {MONTH}
                             THEN errors_this_month + %(errors)s ELSE %(errors)s END,
    rate_limited_total = rate_limited_total + %(limited)s,
    month_started_on = {MONTH},
    last_request_at = greatest(last_request_at, %(last_request_at)s),
    last_success_at = greatest(last_success_at, %(last_success_at)s),
    last_error_at = CASE WHEN %(last_error_at)s::timestamptz IS NOT NULL
                          AND (last_error_at IS NULL OR last_error_at < %(last_error_at)s)
                         THEN %(last_error_at)s ELSE last_error_at END,
    last_error = CASE WHEN %(last_error_at)s::timestamptz IS NOT NULL
                       AND (last_error_at IS NULL OR last_error_at < %(last_error_at)s)
                      THEN %(last_error)s ELSE last_error END
WHERE name = %(name)s
"""
COST = f"""
UPDATE data_source_registry SET cost_to_date_usd = CASE
    WHEN month_started_on = {MONTH} AND requests_this_month > 0
    THEN round(monthly_cost_usd * extract(day FROM %(now)s AT TIME ZONE 'UTC')
               / extract(day FROM ({MONTH} + interval '1 month' - interval '1 day')), 2)
    ELSE 0 END
WHERE name = %(name)s
"""
STATE = """
UPDATE data_source_registry SET feed_state = %s, feed_reason = %s, feed_state_at = %s
WHERE name = %s
"""


def load_limits(conn: Connection) -> dict[str, Limit]:
    rows = conn.execute(
        "SELECT name, rate_limit_requests, rate_limit_per_seconds FROM data_source_registry"
    ).fetchall()
    return {name: Limit(int(n), int(per)) for name, n, per in rows}


def flush(
    conn: Connection,
    usage: Mapping[str, Usage],
    states: Mapping[str, tuple[str, str | None]],
    now: datetime,
) -> None:
    """Add ``usage`` to the registry, recompute the month's cost, record ``states``."""
    with conn.transaction(), conn.cursor() as cur:
        for name, u in sorted(usage.items()):
            cur.execute(FLUSH, {
                "name": name, "now": now, "requests": u.requests, "errors": u.errors,
                "limited": u.limited, "last_request_at": u.last_request_at,
                "last_success_at": u.last_success_at, "last_error_at": u.last_error_at,
                "last_error": u.last_error,
            })  # fmt: skip
            cur.execute(COST, {"name": name, "now": now})
        for name, (state, reason) in sorted(states.items()):
            cur.execute(STATE, (state, reason, now, name))
