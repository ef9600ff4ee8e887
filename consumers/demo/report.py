"""The demo's report: PNG plots (matplotlib, Agg backend) and one self-contained HTML page
with the plots embedded, plus ``summary.json`` (what the summary printed, as data)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from consumers.demo.view import Sample, summary_text


def write_report(directory: Path, summary: dict[str, Any], samples: list[Sample]) -> Path:
    """Writes equity.png, heat.png, reasons.png, index.html, summary.json; returns the page."""
    import matplotlib  # noqa: PLC0415 - the demo extra, loaded only to draw

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    t = [s.t for s in samples]
    pngs: list[tuple[str, str]] = []

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(t, [s.equity for s in samples], color="tab:blue")
    ax.set(title="Equity", xlabel="seconds", ylabel=summary.get("currency", "USD"))
    ax.grid(alpha=0.3)
    pngs.append(("equity.png", "Equity curve (marks from the seeded random walk)"))
    _save(fig, directory / "equity.png", plt)

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(t, [s.heat for s in samples], color="tab:orange", label="portfolio heat")
    ax.plot(t, [s.heat_limit for s in samples], color="tab:red", linestyle="--", label="cap")
    ax.set(title="Portfolio heat (risk to stop / equity)", xlabel="seconds", ylabel="fraction")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    pngs.append(("heat.png", "Portfolio heat over time against its cap"))
    _save(fig, directory / "heat.png", plt)

    reasons = sorted(summary["reasons"].items(), key=lambda kv: kv[1])
    statuses = summary["decisions"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), width_ratios=(1, 2.4))
    left.bar(list(statuses), list(statuses.values()), color=["tab:green", "gold", "tab:red"])
    left.set(title="Decisions by status")
    right.barh([r for r, _ in reasons] or ["(none)"], [n for _, n in reasons] or [0])
    right.set(title="Reasons on decisions")
    fig.tight_layout()
    pngs.append(("reasons.png", "Decisions by status and by reason"))
    _save(fig, directory / "reasons.png", plt)

    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    page = directory / "index.html"
    page.write_text(_html(summary, directory, pngs))
    return page


def _save(fig: Any, path: Path, plt: Any) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _html(summary: dict[str, Any], directory: Path, pngs: list[tuple[str, str]]) -> str:
    figures = "\n".join(
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,'
        f'{base64.b64encode((directory / name).read_bytes()).decode()}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, caption in pngs
    )
    title = f"riskgate demo - {summary['portfolio']}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}
pre{{background:#f4f4f4;padding:1rem}}img{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1>
<pre>{html.escape(summary_text({**summary, "report": ""}))}</pre>
{figures}
</body></html>
"""
