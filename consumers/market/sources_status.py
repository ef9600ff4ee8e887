"""``riskgate sources status``: every registry source (limits, usage, cost, state) and
every symbol's coverage, with what the gate does about a symbol nobody serves.

Read from ``data_source_registry`` and ``feed_coverage`` (what the feed wrote) and
from Redis (requests in the current rate-limit window; the portfolio's marks and
their age on Redis's clock), so it needs no provider and no credentials.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redis import Redis

from consumers.bus import keys as k
from consumers.bus.keys import Keys
from consumers.db.connection import Connection
from consumers.market.sources.catalog import SERVES
from consumers.market.sources.limiter import Limit, SharedLimiter
from consumers.state.control import redis_now
from schemas.config import AssetsConfig

SOURCES = """
SELECT name, status, monthly_cost_usd, rate_limit_requests, rate_limit_per_seconds,
       requests_total, requests_this_month, errors_total, errors_this_month,
       rate_limited_total, cost_to_date_usd, last_request_at, last_success_at,
       last_error_at, last_error, feed_state, feed_reason, feed_state_at, env_vars, in_config
  FROM data_source_registry ORDER BY in_config DESC, name
"""


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _marks(redis: Redis, keys: Keys) -> dict[str, datetime]:
    out = {}
    for f, v in redis.hgetall(keys.state).items():
        name = f.decode() if isinstance(f, bytes) else f
        if name.startswith(k.P_MARK):
            text = v.decode() if isinstance(v, bytes) else v
            _, _, at = text.partition("|")
            if at:
                out[name[len(k.P_MARK) :]] = datetime.fromisoformat(at)
    return out


def report(conn: Connection, redis: Redis, keys: Keys, config: AssetsConfig) -> dict[str, Any]:
    now = redis_now(redis)
    limiter = SharedLimiter(redis, keys.prefix)
    sources = []
    for row in conn.execute(SOURCES).fetchall():
        (name, status, cost, n, per, req_total, req_month, err_total, err_month, limited,
         mtd, last_req, last_ok, last_err_at, last_err, state, reason, state_at, env,
         in_config) = row  # fmt: skip
        adapter = name in SERVES or name == "sim"
        sources.append({
            "name": name, "status": status, "adapter": adapter,
            "serves": sorted(str(x) for x in SERVES.get(name, ())) if name != "sim" else ["all"],
            "state": state if adapter else "no_adapter", "reason": reason,
            "state_at": _iso(state_at), "env_vars": list(env), "in_config": in_config,
            "rate_limit": f"{n}/{per}s", "in_window": limiter.in_window(name, Limit(n, per)),
            "requests_total": req_total, "requests_this_month": req_month,
            "errors_total": err_total, "errors_this_month": err_month,
            "rate_limited_total": limited, "monthly_cost_usd": str(cost),
            "cost_to_date_usd": str(mtd), "last_request_at": _iso(last_req),
            "last_success_at": _iso(last_ok), "last_error_at": _iso(last_err_at),
            "last_error": last_err,
        })  # fmt: skip
    coverage: dict[str, dict[str, Any]] = {}
    for sym, kind, src, ok, last_ok, last_try, reason in conn.execute(
        "SELECT symbol, kind, source, ok, last_success_at, last_attempt_at, reason "
        "FROM feed_coverage ORDER BY symbol, kind"
    ).fetchall():
        coverage.setdefault(sym, {})[kind] = {
            "source": src, "ok": ok, "last_success_at": _iso(last_ok),
            "last_attempt_at": _iso(last_try), "reason": reason,
        }  # fmt: skip
    max_age = config.risk_management.max_mark_age_seconds
    marks = _marks(redis, keys)
    assets = {}
    for sym in sorted(config.assets):
        at = marks.get(sym)
        age = (now - at).total_seconds() if at else None
        stale = age is None or age > max_age
        latest = coverage.get(sym, {}).get("latest")
        why = None
        if stale:
            if latest is None:
                feed = "no price from the feed yet (is riskgate feed running?)"
            elif not latest["ok"]:
                feed = f"no source serves its price: {latest['reason']}"
            else:
                feed = (
                    f"{latest['source']} served a price at {latest['last_success_at']} but "
                    "the gate applied no newer mark (is a gate worker running?)"
                )
            seen = "no mark" if at is None else f"mark {age:.0f} s old (limit {max_age} s)"
            why = (f"{seen}; {feed}: openings rejected (no_market_price; stale_portfolio while "
                   "a position is held)")  # fmt: skip
        assets[sym] = {"mark_at": _iso(at), "mark_age_s": None if age is None else round(age, 1),
                       "stale": stale, "why": why, "coverage": coverage.get(sym, {})}  # fmt: skip
    return {"portfolio": keys.portfolio, "at": now.isoformat(), "max_mark_age_seconds": max_age,
            "sources": sources, "assets": assets}  # fmt: skip


def text(rep: dict[str, Any]) -> str:
    lines = [f"sources ({rep['at']})",
             f"  {'name':15} {'state':15} {'limit':10} {'window':>6} {'req/month':>9} "
             f"{'err/month':>9} {'cost MTD':>9}  last success / reason"]  # fmt: skip
    for s in rep["sources"]:
        state = s["state"] or "unused"
        tail = s["reason"] if state != "ok" and s["reason"] else (s["last_success_at"] or "-")
        lines.append(f"  {s['name']:15} {state:15} {s['rate_limit']:10} {s['in_window']:>6} "
                     f"{s['requests_this_month']:>9} {s['errors_this_month']:>9} "
                     f"{s['cost_to_date_usd']:>9}  {tail}")  # fmt: skip
    lines.append(f"assets (portfolio {rep['portfolio']}; marks older than "
                 f"{rep['max_mark_age_seconds']} s are stale)")  # fmt: skip
    for sym, a in rep["assets"].items():
        latest = a["coverage"].get("latest") or {}
        src = latest.get("source") or "-"
        if a["stale"]:
            lines.append(f"  {sym:11} STALE  {a['why']}")
        else:
            lines.append(f"  {sym:11} ok     mark {a['mark_age_s']} s old, price from {src}")
    return "\n".join(lines)
