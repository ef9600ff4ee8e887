"""What the demo shows while it runs: counts read from the streams, the portfolio from
``riskgate status``'s own function, rendered as a rich live table on a terminal and as
plain progress lines elsewhere (CI, tests, a pipe)."""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from redis import Redis

from consumers.bus.keys import DATA, Keys
from consumers.state import control
from gate.money import money_text
from schemas.config import AssetsConfig

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?")


AGE = re.compile(r"\b\d+(\.\d+)?s ago\b")


def _unclocked(message: str) -> str:
    """A reason's message without the clock's readings: times and ages."""
    return AGE.sub("<age> ago", TIMESTAMP.sub("<time>", message))


@dataclass(slots=True)
class Sample:
    """The portfolio at the start of a tick, and what the tick's decisions showed."""

    tick: int
    t: float  # seconds since the start
    equity: float
    heat: float
    heat_limit: float
    drawdown: float
    daily_pnl: float
    class_shares: dict[str, float] = field(default_factory=dict)
    correlated: float | None = None  # the largest correlated exposure an approval left
    latency_ms: list[float] = field(default_factory=list)  # created_at to decided_at


@dataclass(frozen=True, slots=True)
class Record:
    """One decision as the report and the reproducibility check read it."""

    tick: int
    intent_id: str
    agent_id: str
    symbol: str
    asset_class: str
    side: str
    status: str
    requested: str
    approved: str
    reasons: tuple[tuple[str, str], ...]  # (code, message)

    def projection(self) -> dict[str, Any]:
        """What a seed reproduces: everything but the clock's readings (the times a
        message quotes read ``<time>``, the ages ``<age> ago``)."""
        return {
            "intent_id": self.intent_id, "agent_id": self.agent_id, "symbol": self.symbol,
            "side": self.side, "status": self.status, "requested_quantity": self.requested,
            "approved_quantity": self.approved,
            "reasons": [[c, _unclocked(m)] for c, m in self.reasons],
        }  # fmt: skip


@dataclass
class Progress:
    """Decisions read from the decisions stream itself, and the portfolio tick by tick."""

    redis: Redis
    keys: Keys
    config: AssetsConfig
    started: float = field(default_factory=time.monotonic)
    last_id: bytes = b"0-0"
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # decisions carrying each reason
    examples: dict[str, str] = field(default_factory=dict)  # the first message of each
    by_class: dict[str, Counter[str]] = field(default_factory=dict)  # class -> status -> n
    traded: Counter[str] = field(default_factory=Counter)  # approved or resized, by symbol
    decided: int = 0
    records: list[Record] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    audit_rows: int = 0
    audit_rejects: int = 0
    window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=5))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def read_decisions(self, tick: int = -1, created: Mapping[str, datetime] | None = None) -> None:
        sample = self.samples[-1] if self.samples and self.samples[-1].tick == tick else None
        while True:
            rows: Any = self.redis.xrange(self.keys.decisions, min=b"(" + self.last_id, count=5000)
            if not rows:
                return
            for _, fields in rows:
                self._count(json.loads(fields[DATA]), tick, sample, created or {})
            self.last_id = rows[-1][0]

    def _count(
        self, d: dict[str, Any], tick: int, sample: Sample | None, created: Mapping[str, Any]
    ) -> None:
        status, symbol = d["status"], d["symbol"]
        asset = self.config.assets.get(symbol)
        cls = asset.asset_class if asset is not None else "unknown"
        self.statuses[status] += 1
        self.by_class.setdefault(cls, Counter())[status] += 1
        if status in ("approved", "resized"):
            self.traded[symbol] += 1
        reasons = tuple((r["code"], r.get("message", "")) for r in d.get("reasons", []))
        for code in dict.fromkeys(c for c, _ in reasons):  # once per decision
            self.reasons[code] += 1
        for code, message in reasons:
            self.examples.setdefault(code, message)
        self.decided += 1
        self.records.append(Record(
            tick, d["intent_id"], d.get("agent_id", ""), symbol, cls, d.get("side", ""), status,
            str(d.get("requested_quantity", "")), str(d.get("approved_quantity", "")), reasons,
        ))  # fmt: skip
        if sample is None:
            return
        checks = d.get("checks") or {}
        corr = checks.get("correlated_exposure_after")
        if status != "rejected" and corr is not None:
            sample.correlated = max(sample.correlated or 0.0, float(corr))
        at = created.get(d["intent_id"])
        if at is not None and d.get("decided_at"):
            decided = datetime.fromisoformat(d["decided_at"])
            sample.latency_ms.append((decided - at).total_seconds() * 1000)

    def poll(self, tick: int = -1) -> None:
        self.read_decisions()
        now = self.elapsed
        self.window.append((now, self.decided))
        self.status = control.status(self.redis, self.keys, self.config)
        s = self.status
        self.samples.append(
            Sample(
                tick,
                now,
                float(s["equity"]),
                float(s["heat"] or 0),
                float(s["heat_limit"]),
                float(s["drawdown"] or 0),
                float(s["daily_pnl"]),
                {c: float(v or 0) for c, v in s.get("class_shares", {}).items()},
            )
        )

    def rate(self) -> float:
        """Decisions per second over the last few ticks."""
        if len(self.window) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.window[0], self.window[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def phases(self) -> str:
        active = self.status.get("active_phases", [])
        return f"{len(active)}/{len(self.config.phases)} active ({', '.join(active)})"


def _money(value: object, config: AssetsConfig) -> str:
    try:
        return money_text(Decimal(str(value)), config.risk_management.account_currency)
    except (InvalidOperation, TypeError):
        return str(value)


def _pct(value: object) -> str:
    try:
        return f"{Decimal(str(value)) * 100:.2f}%"
    except (InvalidOperation, TypeError):
        return str(value)


def plain_line(p: Progress, sent: int, fills: int, config: AssetsConfig) -> str:
    s = p.status
    return (
        f"demo t={p.elapsed:5.1f}s sent={sent} decided={p.decided} rate={p.rate():.0f}/s "
        f"approved={p.statuses['approved']} resized={p.statuses['resized']} "
        f"rejected={p.statuses['rejected']} fills={fills} audit={p.audit_rows} "
        f"equity={_money(s.get('equity'), config)} heat={_pct(s.get('heat'))}"
        f"/{_pct(s.get('heat_limit'))} drawdown={_pct(s.get('drawdown'))} "
        f"phases={len(s.get('active_phases', []))}"
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
        t.add_row(f"  decisions with {code}", str(n))
    t.add_row("fills / cancels", f"{fills} / {cancels}")
    t.add_row("audited rows (PostgreSQL)", str(p.audit_rows))
    cfg = p.config
    t.add_row(
        "equity", f"{_money(s.get('equity'), cfg)}  (daily PnL {_money(s.get('daily_pnl'), cfg)})"
    )
    t.add_row("portfolio heat", f"{_pct(s.get('heat'))} of cap {_pct(s.get('heat_limit'))}")
    shares = ", ".join(f"{c} {_pct(v)}" for c, v in s.get("class_shares", {}).items()) or "-"
    t.add_row("class shares", shares)
    t.add_row("drawdown", _pct(s.get("drawdown")))
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
    for cls, n in summary.get("by_class", {}).items():
        lines.append(f"    {cls:22} approved {n['approved']}, resized {n['resized']}, "
                     f"rejected {n['rejected']}")  # fmt: skip
    lines.append("  decisions by reason (a decision counts once under each of its reasons)")
    for code, n in sorted(summary["reasons"].items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"    {code:22} {n}")
    traded = summary.get("traded", {})
    lines.append("  traded by symbol  " + (", ".join(f"{s} {n}" for s, n in sorted(traded.items()))
                                          or "none"))  # fmt: skip
    lines += [
        f"  dead letters      {summary['dead_letters']}",
        f"  fills / cancels   {summary['fills']} / {summary['cancels']}",
        f"  audit rows        {summary['audit_rows']} in trading_decisions"
        + (f", {summary['audit_rejects']} refused" if summary["audit_rejects"] else ""),
        f"  equity            {_show(summary['equity'])} (peak {_show(summary['peak_equity'])}, "
        f"drawdown {_pct(summary['drawdown'])})",
        f"  max heat          {_pct(summary['max_heat'])} (cap {_pct(summary['heat_limit'])})",
        f"  phases            {', '.join(summary['active_phases'])}",
        f"  consistent        {'yes' if summary['consistent'] else 'NO: ' + summary['problem']}",
    ]
    if summary.get("report"):
        lines.append(f"  report            {summary['report']}")
    return "\n".join(lines)


def _show(value: object) -> str:
    try:
        return money_text(Decimal(str(value)))
    except (InvalidOperation, TypeError):
        return str(value)


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
