"""What the demo shows while it runs: counts read from the streams, the portfolio from
``riskgate status``'s own function, rendered as a rich live table on a terminal and as
plain progress lines elsewhere (CI, tests, a pipe)."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from consumers.bus.keys import DATA, Keys
from consumers.state import control
from schemas.config import AssetsConfig


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # seconds since the start
    equity: float
    heat: float
    heat_limit: float
    drawdown: float
    daily_pnl: float


@dataclass
class Progress:
    """Decisions counted from the decisions stream itself, and the portfolio over time."""

    redis: Redis
    keys: Keys
    config: AssetsConfig
    started: float = field(default_factory=time.monotonic)
    last_id: bytes = b"0-0"
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    traded: Counter[str] = field(default_factory=Counter)  # approved or resized, by symbol
    decided: int = 0
    samples: list[Sample] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    audit_rows: int = 0
    audit_rejects: int = 0
    window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=20))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def read_decisions(self) -> None:
        while True:
            rows: Any = self.redis.xrange(self.keys.decisions, min=b"(" + self.last_id, count=5000)
            if not rows:
                return
            for _, fields in rows:
                d = json.loads(fields[DATA])
                self.statuses[d["status"]] += 1
                if d["status"] in ("approved", "resized"):
                    self.traded[d["symbol"]] += 1
                for r in d.get("reasons", []):
                    self.reasons[r["code"]] += 1
                self.decided += 1
            self.last_id = rows[-1][0]

    def poll(self) -> None:
        self.read_decisions()
        now = self.elapsed
        self.window.append((now, self.decided))
        self.status = control.status(self.redis, self.keys, self.config)
        s = self.status
        self.samples.append(
            Sample(
                now,
                float(s["equity"]),
                float(s["heat"] or 0),
                float(s["heat_limit"]),
                float(s["drawdown"] or 0),
                float(s["daily_pnl"]),
            )
        )

    def rate(self) -> float:
        """Decisions per second over the last few polls."""
        if len(self.window) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.window[0], self.window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def phases(self) -> str:
        active = self.status.get("active_phases", [])
        return f"{len(active)}/{len(self.config.phases)} active ({', '.join(active)})"


def plain_line(p: Progress, sent: int, fills: int) -> str:
    s = p.status
    return (
        f"demo t={p.elapsed:5.1f}s sent={sent} decided={p.decided} rate={p.rate():.0f}/s "
        f"approved={p.statuses['approved']} resized={p.statuses['resized']} "
        f"rejected={p.statuses['rejected']} fills={fills} audit={p.audit_rows} "
        f"equity={s.get('equity')} heat={s.get('heat')}/{s.get('heat_limit')} "
        f"drawdown={s.get('drawdown')} phases={len(s.get('active_phases', []))}"
    )


def live_table(p: Progress, sent: int, fills: int, cancels: int, title: str) -> Any:
    from rich.table import Table  # noqa: PLC0415 - the demo extra, loaded when shown

    s = p.status
    t = Table(title=title, show_header=False, expand=False, min_width=72)
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("elapsed", f"{p.elapsed:.1f} s")
    t.add_row("intents sent / decided", f"{sent} / {p.decided}  ({p.rate():.0f} decisions/s)")
    t.add_row("approved", f"[green]{p.statuses['approved']}[/green]")
    t.add_row("resized", f"[yellow]{p.statuses['resized']}[/yellow]")
    t.add_row("rejected", f"[red]{p.statuses['rejected']}[/red]")
    for code, n in p.reasons.most_common(8):
        t.add_row(f"  reason {code}", str(n))
    t.add_row("fills / cancels", f"{fills} / {cancels}")
    t.add_row("audited rows (PostgreSQL)", str(p.audit_rows))
    t.add_row("equity", f"{s.get('equity')}  (daily PnL {s.get('daily_pnl')})")
    t.add_row("portfolio heat", f"{s.get('heat')} of cap {s.get('heat_limit')}")
    shares = ", ".join(f"{c} {v}" for c, v in s.get("class_shares", {}).items()) or "-"
    t.add_row("class shares", shares)
    t.add_row("drawdown", str(s.get("drawdown")))
    t.add_row("phases", p.phases())
    return t


def summary_text(summary: dict[str, Any]) -> str:
    d = summary["decisions"]
    lines = [
        f"riskgate demo: portfolio {summary['portfolio']}, {summary['seconds']} s, "
        f"seed {summary['seed']}",
        f"  intents sent      {summary['intents_sent']} ({_mix(summary['mix'])})",
        f"  decisions         {summary['decided']}: approved {d['approved']}, "
        f"resized {d['resized']}, rejected {d['rejected']}",
    ]
    for code, n in sorted(summary["reasons"].items(), key=lambda kv: -kv[1]):
        lines.append(f"    {code:22} {n}")
    traded = summary.get("traded", {})
    lines.append("  traded by symbol  " + (", ".join(f"{s} {n}" for s, n in sorted(traded.items()))
                                          or "none"))  # fmt: skip
    lines += [
        f"  dead letters      {summary['dead_letters']}",
        f"  fills / cancels   {summary['fills']} / {summary['cancels']}",
        f"  audit rows        {summary['audit_rows']} in trading_decisions"
        + (f", {summary['audit_rejects']} refused" if summary["audit_rejects"] else ""),
        f"  equity            {summary['equity']} (peak {summary['peak_equity']}, "
        f"drawdown {summary['drawdown']})",
        f"  max heat          {summary['max_heat']} (cap {summary['heat_limit']})",
        f"  phases            {', '.join(summary['active_phases'])}",
        f"  consistent        {'yes' if summary['consistent'] else 'NO: ' + summary['problem']}",
    ]
    if summary.get("report"):
        lines.append(f"  report            {summary['report']}")
    return "\n".join(lines)


def _mix(mix: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(mix.items(), key=lambda kv: -kv[1]))


# --- the live display --------------------------------------------------------------------


class _NoLive:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def live_display(wanted: bool | None) -> Any:
    """A rich Live display on a terminal (or when asked), else nothing (plain lines)."""
    if wanted is False or (wanted is None and not sys.stdout.isatty()):
        return _NoLive()
    from rich.live import Live  # noqa: PLC0415 - the demo extra

    return Live(refresh_per_second=4, transient=False)
