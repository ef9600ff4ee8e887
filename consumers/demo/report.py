"""The demo's report: one self-contained HTML page (``index.html``, charts as inline SVG
drawn by :mod:`consumers.demo.svg`), ``summary.json`` (what the summary printed, as
data) and ``decisions.jsonl`` (every decision as a seed reproduces it, in stream order:
compare two runs of one seed with ``diff``)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from statistics import median
from typing import Any

from consumers.demo.svg import PALETTE, STATUS_COLORS, Series, hbars, line_chart, stacked
from consumers.demo.view import Progress, Sample, summary_text

STATUSES = ("approved", "resized", "rejected")
TRADING = ("sized", "take_profit", "cut_loss", "close")
REJECT_RED, LIMIT_GREY = "#c62828", "#757575"


def write_report(directory: Path, summary: dict[str, Any], progress: Progress) -> Path:
    """Writes index.html, summary.json and decisions.jsonl; returns the page."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (directory / "decisions.jsonl").open("w") as f:
        for r in progress.records:
            f.write(json.dumps(r.projection(), separators=(",", ":")) + "\n")
    page = directory / "index.html"
    page.write_text(render(summary, [x for x in progress.samples if x.tick >= 0]))
    return page


def _pct(v: float) -> str:
    return f"{v * 100:.0f}%" if v >= 0.1 or v == 0 else f"{v * 100:.1f}%"


def _section(key: str, title: str, intro: str, body: str) -> str:
    return (
        f'<section id="{key}"><h2>{escape(title)}</h2><p class="intro">{intro}</p>{body}</section>'
    )


def render(summary: dict[str, Any], samples: list[Sample]) -> str:
    title = f"riskgate demo - {summary['portfolio']}"
    parts = [
        _numbers(summary),
        _status(summary),
        _reasons(summary),
        _exposure(summary, samples),
        _risk(summary, samples),
        _latency(samples),
        _mix(summary),
    ]
    text = escape(summary_text({**summary, "report": ""}))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:72rem;margin:1.5rem auto;padding:0 1rem;
color:#222}}
h1{{margin-bottom:.2rem}} h2{{margin-top:2rem;border-bottom:1px solid #ddd}}
.intro{{color:#555;max-width:60rem}}
.cards{{display:flex;flex-wrap:wrap;gap:.8rem}}
.card{{border:1px solid #ddd;border-radius:6px;padding:.6rem .9rem;min-width:9rem}}
.card b{{display:block;font-size:1.5rem}}
.grid{{display:flex;flex-wrap:wrap;gap:1rem}}
table{{border-collapse:collapse}} td,th{{border-bottom:1px solid #eee;padding:.25rem .6rem;
text-align:left;vertical-align:top}} td.n{{text-align:right}}
code{{background:#f4f4f4;padding:0 .2rem}} pre{{background:#f6f6f6;padding:1rem;
white-space:pre-wrap}} figure{{margin:0}} figcaption{{color:#555;font-size:.9rem}}
</style></head>
<body><h1>{escape(title)}</h1>
<p class="intro">Seed {summary["seed"]}, {summary["ticks"]} ticks ({summary["seconds"]} s).
Simulated agents sent trade intents through Redis; the gate workers approved, resized or
rejected each one against the portfolio's limits; an executor filled the approved orders;
every decision was audited in PostgreSQL. The same seed gives the same decisions
(<code>decisions.jsonl</code> next to this page).</p>
{"".join(parts)}
<section id="summary"><h2>The summary as printed</h2><pre>{text}</pre></section>
</body></html>
"""


def _numbers(s: dict[str, Any]) -> str:
    d, n = s["decisions"], max(1, s["decided"])
    cards = [
        ("decisions", f"{s['decided']}", "one per intent the gate had to decide"),
        ("approved", f"{d['approved'] / n:.0%}", f"{d['approved']} as asked"),
        ("resized", f"{d['resized'] / n:.0%}", f"{d['resized']} cut to fit a limit"),
        ("rejected", f"{d['rejected'] / n:.0%}", f"{d['rejected']} refused"),
        ("fills / cancels", f"{s['fills']} / {s['cancels']}", "by the executor"),
        ("equity", s["equity_text"], f"drawdown {_pct(float(s['drawdown'] or 0))}"),
        ("consistent", "yes" if s["consistent"] else "NO", "decisions = intents = audit rows"),
    ]
    body = "".join(
        f'<div class="card" data-card="{k}"><span>{escape(k)}</span><b>{escape(v)}'
        f"</b><small>{escape(sub)}</small></div>"
        for k, v, sub in cards
    )
    return _section(
        "numbers", "At a glance", "The run in seven numbers.", f'<div class="cards">{body}</div>'
    )


def _status(s: dict[str, Any]) -> str:
    rows = [("all", s["decisions"])] + [(c, n) for c, n in s["by_class"].items()]
    chart = stacked(rows, STATUS_COLORS, name="status_by_class")
    intro = (
        "Every decision by its status, for the whole run and for each asset class. "
        "Classes the demo did not enable appear only through the offender that tries "
        "them (all rejected); an enabled class is approved when its rules allow."
    )
    kinds = sorted(s["by_kind"].items(), key=lambda kv: (kv[0] not in TRADING, kv[0]))
    by_kind = stacked(kinds, STATUS_COLORS, name="status_by_kind")
    intro2 = (
        "The same decisions by what the agent meant: the traders' openings and exits "
        "first, then each deliberate offender, refused (or cut) for what it did; the "
        "one without a stop is approved, with the asset's stop rule setting one."
    )
    return _section("status", "Decisions by status and asset class", intro, chart) + (
        f"<h3>By what the agent meant</h3><p class='intro'>{intro2}</p>{by_kind}"
    )


def _reasons(s: dict[str, Any]) -> str:
    reasons = sorted(s["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
    chart = hbars([(c, n, REJECT_RED) for c, n in reasons], unit=" decisions", name="reasons")
    rows = "".join(
        f'<tr data-reason="{escape(c)}"><td><code>{escape(c)}</code></td><td class="n">{n}</td>'
        f"<td>{escape(s['examples'].get(c, ''))}</td></tr>"
        for c, n in reasons
    )
    table = (
        "<table><tr><th>reason</th><th>decisions</th><th>an example message</th></tr>"
        f"{rows}</table>"
    )
    intro = (
        "How many <b>decisions</b> carry each reason (a decision with two reasons counts "
        "once under each, so the bars add up to more than the decisions that have "
        "reasons), and the message of the first decision that gave it."
    )
    return _section("reasons", "Why: decisions per reason", intro, chart + table)


def _exposure(s: dict[str, Any], samples: list[Sample]) -> str:
    caps = {c: float(v) for c, v in s["class_caps"].items()}
    classes = sorted({c for x in samples for c in x.class_shares})
    figures = []
    for i, c in enumerate(classes):
        pts = [(x.tick, x.class_shares.get(c, 0.0)) for x in samples]
        series = [Series(f"{c} share", pts, PALETTE[i % len(PALETTE)])]
        if c in caps:
            series.append(
                Series(
                    f"cap {_pct(caps[c])}",
                    [(pts[0][0], caps[c]), (pts[-1][0], caps[c])],
                    LIMIT_GREY,
                    dashed=True,
                )
            )
        chart = line_chart(
            series,
            x_label="tick",
            y_label="of equity",
            percent=True,
            width=460,
            height=200,
            name=f"class:{c}",
        )
        figures.append(f"<figure>{chart}</figure>")
    corr = [(x.tick, x.correlated) for x in samples if x.correlated is not None]
    limit = float(s["correlation_limit"])
    corr_chart = line_chart(
        [
            Series("correlated exposure", corr, PALETTE[2]),
            Series(
                f"limit {_pct(limit)}",
                [(0, limit), (samples[-1].tick if samples else 1, limit)],
                LIMIT_GREY,
                dashed=True,
            ),
        ],
        x_label="tick",
        y_label="of equity",
        percent=True,
        name="correlated",
    )
    intro = (
        "Notional in each asset class as a share of equity, tick by tick, against the "
        "class's cap (the smaller of its own allocation and the 40 % single-class "
        "limit). Below: the largest correlated exposure an approval of the tick left "
        "(assets with |correlation| of 0.70 or more, from the feed's daily bars)."
    )
    return _section(
        "exposure",
        "Exposure by asset class against its cap",
        intro,
        f'<div class="grid">{"".join(figures)}</div><h3>Correlated exposure</h3>{corr_chart}',
    )


def _risk(s: dict[str, Any], samples: list[Sample]) -> str:
    heat = line_chart(
        [
            Series("portfolio heat", [(x.tick, x.heat) for x in samples], PALETTE[1]),
            Series("cap", [(x.tick, x.heat_limit) for x in samples], LIMIT_GREY, dashed=True),
        ],
        x_label="tick",
        y_label="risk to stop / equity",
        percent=True,
        name="heat",
    )
    equity = line_chart(
        [Series("equity", [(x.tick, x.equity) for x in samples], PALETTE[0])],
        x_label="tick",
        y_label="USD",
        fmt=lambda v: f"{v:,.0f}",
        y_min=None,
        name="equity",
    )
    dd = line_chart(
        [Series("drawdown", [(x.tick, x.drawdown) for x in samples], REJECT_RED)],
        x_label="tick",
        y_label="from peak",
        percent=True,
        name="drawdown",
    )
    intro = (
        "Portfolio heat (the risk to every stop, as a share of equity) against its cap; "
        "equity at the feed's marks; drawdown from the peak (the emergency stop is at "
        "25 %)."
    )
    return _section(
        "risk",
        "Heat, equity and drawdown over time",
        intro,
        f'<div class="grid"><figure>{heat}</figure><figure>{equity}</figure>'
        f"<figure>{dd}</figure></div>",
    )


def _latency(samples: list[Sample]) -> str:
    p50 = [(x.tick, median(x.latency_ms)) for x in samples if x.latency_ms]
    top = [(x.tick, max(x.latency_ms)) for x in samples if x.latency_ms]
    chart = line_chart(
        [Series("median", p50, PALETTE[0]), Series("slowest", top, PALETTE[1])],
        x_label="tick",
        y_label="ms",
        fmt=lambda v: f"{v:.0f}",
        name="latency",
    )
    intro = (
        "From an intent's <code>created_at</code> to its <code>decided_at</code> (the "
        "gate's clock), per tick: the median and the slowest decision. A tick's intents "
        "are sent at once, so the slowest waited for the rest of its tick's batch."
    )
    return _section("latency", "Decision latency over time", intro, chart)


def _mix(s: dict[str, Any]) -> str:
    what = {
        "sized": "traders' openings, sized to fit the room under every limit",
        "take_profit": "reduce-only sells at the trader's profit target",
        "cut_loss": "reduce-only sells at the trader's loss limit",
        "close": "reduce-only sells after the trader's holding period",
        "oversized": "offender: five times the full risk per trade (resized or rejected)",
        "no_stop": "offender: no stop (the asset's stop rule sets one)",
        "bad_stop": "offender: a buy's stop above its price (invalid_stop)",
        "wrong_side": "offender: a reduce-only sell of what is not held (reduce_only)",
        "fat_finger": "offender: a price ten times off the mark (price_collar)",
        "disabled": "offender: an asset of a phase not enabled",
        "flooder": "offender: one order re-sent in a runaway loop (duplicate_order, rate_limited)",
        "resent": "an intent sent again (decided once: no new decision)",
        "malformed": "unparseable entries (dead letters; rejected when the id is readable)",
    }
    rows = "".join(
        f'<tr data-kind="{escape(k)}"><td><code>{escape(k)}</code></td><td class="n">{n}</td>'
        f"<td>{escape(what.get(k, ''))}</td></tr>"
        for k, n in sorted(s["mix"].items(), key=lambda kv: -kv[1])
    )
    return _section(
        "agents",
        "What the agents sent",
        "Intents by what the agent meant.",
        f"<table><tr><th>kind</th><th>intents</th><th>what</th></tr>{rows}</table>",
    )
