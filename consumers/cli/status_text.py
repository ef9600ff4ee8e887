"""How the phase commands print their reports (text for people, JSON for programs)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from consumers.phase.admin import PhaseStatus
from consumers.phase.admin import Report as PhaseReport
from consumers.phase.log import Logged
from gate.money import show


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _logged(row: Logged | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "ready_at": _iso(row.ready_at),
        "ready_stream_id": row.ready_stream_id,
        "activated_at": _iso(row.activated_at),
        "activated_by": row.activated_by,
        "forced": row.forced,
        "reason": row.reason,
        "activated_stream_id": row.activated_stream_id,
    }


def phase_json(portfolio: str, report: PhaseReport) -> dict[str, Any]:
    return {
        "portfolio": portfolio,
        "metrics": report.metrics.to_json(),
        "phases": [
            {
                "phase": s.name,
                "title": s.title,
                "activation": s.activation,
                "state": s.state,
                "requirements": [
                    {
                        "name": r.name,
                        "requirement": r.requirement,
                        "value": show(r.value),
                        "met": r.met,
                    }
                    for r in s.results
                ],
                "unmet": [r.name for r in s.unmet],
                "log": _logged(s.logged),
            }
            for s in report.phases
        ],
    }


def _history(s: PhaseStatus) -> str:
    row, parts = s.logged, []
    if row is not None and row.ready_at is not None:
        parts.append(f"ready {row.ready_at:%Y-%m-%d %H:%M}Z")
    if row is not None and row.activated_at is not None:
        forced = f", forced: {row.reason}" if row.forced else ""
        parts.append(f"activated {row.activated_at:%Y-%m-%d %H:%M}Z by {row.activated_by}{forced}")
    return f"  ({'; '.join(parts)})" if parts else ""


def print_phase_report(portfolio: str, report: PhaseReport, *, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(phase_json(portfolio, report), indent=2))
        return
    m = report.metrics.to_json()
    print(f"portfolio {portfolio}  as of {m['as_of']}  capital {m['capital']}")
    print(
        f"profitable days {m['profitable_days']}  crypto profitable days "
        f"{m['crypto_profitable_days']}  sharpe {m['sharpe_ratio']} ({m['sharpe_days']} of "
        f"{m['window_days']} days)  max drawdown {m['max_drawdown']}  win rate "
        f"{m['win_rate']}  round trips {m['trades']}"
    )
    for s in report.phases:
        print()
        print(f"{s.name}  {s.title}  {s.activation}  {s.state.upper()}{_history(s)}")
        for r in s.results:
            value = show(r.value) or "unknown"
            mark = "met" if r.met else "NOT MET"
            print(f"  {r.name:24} {r.requirement:32} {value:>14}  {mark}")
