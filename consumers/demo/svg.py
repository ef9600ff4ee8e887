"""Inline SVG charts for the demo's report, drawn by hand (no plotting library): line
charts with limit lines, horizontal bars and stacked bars. Every chart is a ``<figure>``
with a title, labelled axes and a legend; values are written into ``<title>`` tooltips
and ``data-`` attributes so a test can read them back."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

STATUS_COLORS = {"approved": "#2e7d32", "resized": "#f9a825", "rejected": "#c62828"}
PALETTE = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e")
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    color: str
    dashed: bool = False


def _nice(top: float) -> float:
    """A round upper bound for an axis (1, 2, 2.5 or 5 times a power of ten)."""
    if top <= 0:
        return 1.0
    p = 10 ** len(str(int(top))) / 10 if top >= 1 else 1.0
    while p > top:
        p /= 10
    for m in (1, 2, 2.5, 5, 10):
        if m * p >= top:
            return m * p
    return 10 * p


def line_chart(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    width: int = 540,
    height: int = 230,
    y_min: float | None = 0.0,
    name: str = "",
    percent: bool = False,
) -> str:
    """Lines over a shared x axis (``percent``: values are fractions, the y axis shows
    percent with as many decimals as its step needs)."""
    pts = [p for s in series for p in s.points]
    left, right, top, bottom = 80, 16, 12, 40
    w, h = width - left - right, height - top - bottom
    if not pts:
        return f'<svg width="{width}" height="40" {FONT}><text x="8" y="24">no data</text></svg>'
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    lo = y_min if y_min is not None else min(p[1] for p in pts)
    hi_raw = max(p[1] for p in pts)
    hi = _nice(hi_raw - lo) + lo if y_min is not None else hi_raw
    if hi <= lo:
        hi = lo + 1
    x1 = x1 if x1 > x0 else x0 + 1

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return top + h - (y - lo) / (hi - lo) * h

    out = [
        f'<svg class="chart" data-chart="{escape(name)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} role="img">'
    ]
    axis = fmt
    if percent:
        places = max(0, math.ceil(-math.log10((hi - lo) / 5 * 100)))
        axis = lambda v: f"{v * 100:.{places}f}%"  # noqa: E731
        fmt = lambda v: f"{v * 100:.2f}%"  # noqa: E731
    for i in range(6):  # grid and y ticks
        v = lo + (hi - lo) * i / 5
        y = sy(v)
        out.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(axis(v))}</text>'
        )
    step = max(1, round((x1 - x0) / 6))
    for v in range(int(x0), int(x1) + 1, step):  # x ticks, whole numbers
        out.append(f'<text x="{sx(v):.1f}" y="{top + h + 16}" text-anchor="middle">{v}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + h}" stroke="#555"/>')
    out.append(f'<line x1="{left}" x2="{left + w}" y1="{top + h}" y2="{top + h}" stroke="#555"/>')
    out.append(
        f'<text x="{left + w / 2}" y="{height - 4}" text-anchor="middle">{escape(x_label)}</text>'
    )
    out.append(
        f'<text transform="translate(12 {top + h / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    for s in series:
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        last = s.points[-1][1] if s.points else 0.0
        out.append(
            f'<polyline data-series="{escape(s.label)}" data-last="{last:.6g}" '
            f'data-max="{max((p[1] for p in s.points), default=0):.6g}" fill="none" '
            f'stroke="{s.color}" stroke-width="2"{dash} points="{path}">'
            f"<title>{escape(s.label)}: last {escape(fmt(last))}</title></polyline>"
        )
    x = left + 8
    for s in series:  # legend, top left inside the plot
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(
            f'<line x1="{x}" x2="{x + 18}" y1="{top + 10}" y2="{top + 10}" '
            f'stroke="{s.color}" stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{x + 22}" y="{top + 14}">{escape(s.label)}</text>')
        x += 30 + 7 * len(s.label)
    out.append("</svg>")
    return "".join(out)


def hbars(
    rows: Sequence[tuple[str, int, str]], *, width: int = 620, unit: str = "", name: str = ""
) -> str:
    """One bar per row (label, value, color), largest first as given."""
    bar_h, gap, label_w = 20, 6, 190
    height = max(1, len(rows)) * (bar_h + gap) + 8
    most = max((v for _, v, _ in rows), default=0) or 1
    span = width - label_w - 70
    out = [
        f'<svg class="chart" data-chart="{escape(name)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} role="img">'
    ]
    for i, (label, value, color) in enumerate(rows):
        y = 4 + i * (bar_h + gap)
        bw = max(1.0, value / most * span)
        out.append(f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end">{escape(label)}</text>')
        out.append(
            f'<rect data-label="{escape(label)}" data-value="{value}" x="{label_w}" '
            f'y="{y}" width="{bw:.1f}" height="{bar_h}" fill="{color}">'
            f"<title>{escape(label)}: {value}{escape(unit)}</title></rect>"
        )
        out.append(f'<text x="{label_w + bw + 6:.1f}" y="{y + 14}">{value}</text>')
    out.append("</svg>")
    return "".join(out)


def stacked(
    rows: Sequence[tuple[str, dict[str, int]]],
    colors: dict[str, str],
    *,
    width: int = 900,
    name: str = "",
) -> str:
    """One 100 % bar per row, split by key (the counts and shares written in each part)."""
    bar_h, gap, label_w = 26, 8, 130
    height = max(1, len(rows)) * (bar_h + gap) + 30
    span = width - label_w - 60
    out = [
        f'<svg class="chart" data-chart="{escape(name)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} role="img">'
    ]
    for i, (label, parts) in enumerate(rows):
        y = 4 + i * (bar_h + gap)
        total = sum(parts.values())
        out.append(f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{escape(label)}</text>')
        x = float(label_w)
        for key, color in colors.items():
            n = parts.get(key, 0)
            if not n:
                continue
            bw = n / total * span
            out.append(
                f'<rect data-row="{escape(label)}" data-key="{key}" data-value="{n}" '
                f'x="{x:.1f}" y="{y}" width="{bw:.1f}" height="{bar_h}" fill="{color}">'
                f"<title>{escape(label)} {key}: {n} ({n / total:.0%})</title></rect>"
            )
            text = f"{n} ({n / total:.0%})"
            if bw >= 7 * len(text) + 8:  # the count where it fits (the tooltip always)
                out.append(f'<text x="{x + 4:.1f}" y="{y + 17}" fill="#fff">{text}</text>')
            x += bw
        out.append(f'<text x="{label_w + span + 6}" y="{y + 17}">{total}</text>')
    y = len(rows) * (bar_h + gap) + 14
    x = float(label_w)
    for key, color in colors.items():  # legend
        out.append(f'<rect x="{x:.0f}" y="{y}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{x + 16:.0f}" y="{y + 11}">{escape(key)}</text>')
        x += 30 + 7 * len(key)
    out.append("</svg>")
    return "".join(out)
