"""The demo's report explains itself: its sections, charts and numbers, read back from
the HTML and its inline SVG (no browser needed; a headless Chromium screenshot is taken
too when one is installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import pytest

from consumers.demo.report import render
from consumers.demo.view import Progress, Sample
from tests.builders import base_config

SUMMARY: dict[str, Any] = {
    "portfolio": "demo-test", "seed": 7, "ticks": 3, "seconds": 3.2, "decided": 10,
    "decisions": {"approved": 6, "resized": 1, "rejected": 3},
    "by_class": {"crypto": {"approved": 4, "resized": 1, "rejected": 1},
                 "stocks": {"approved": 2, "resized": 0, "rejected": 2}},
    "by_kind": {"sized": {"approved": 6, "resized": 0, "rejected": 1},
                "oversized": {"approved": 0, "resized": 1, "rejected": 0},
                "fat_finger": {"approved": 0, "resized": 0, "rejected": 2}},
    "reasons": {"max_position": 2, "price_collar": 2, "earnings_blackout": 1},
    "examples": {"max_position": "NVDA position would be 12% of equity, limit 10%",
                 "price_collar": "price 10 is 90% below the mark 100",
                 "earnings_blackout": "AMD reports earnings on 2026-12-04"},
    "mix": {"sized": 7, "oversized": 1, "fat_finger": 2}, "fills": 6, "cancels": 1,
    "equity": "100123.4567", "equity_text": "100,123.46 USD", "peak_equity": "100200",
    "drawdown": "0.0008", "max_heat": 0.05, "heat_limit": "0.25", "intents_sent": 10,
    "intents_to_decide": 10, "traded": {"BTC/USDT": 5}, "dead_letters": 0,
    "audit_rows": 10, "audit_rejects": 0, "active_phases": ["phase_0_crypto"],
    "class_caps": {"crypto": "0.40", "stocks": "0.40"}, "correlation_limit": "0.60",
    "consistent": True, "problem": "",
}  # fmt: skip
SAMPLES = [
    Sample(t, float(t), 100000.0 + t, 0.01 * t, 0.25, 0.0, 0.0,
           {"crypto": 0.1 * t, "stocks": 0.05}, 0.2, [3.0, 5.0 + t])
    for t in range(3)
]  # fmt: skip


class Page(HTMLParser):
    """Sections, charts, and the data attributes of bars and lines."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.charts: list[str] = []
        self.elements: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.sections.append(a["id"])
        if tag == "svg" and "data-chart" in a:
            self.charts.append(a["data-chart"])
        if any(k.startswith("data-") for k in a):
            self.elements.append({"tag": tag, **a})


def _page() -> Page:
    page = Page()
    page.feed(render(SUMMARY, SAMPLES))
    return page


def test_report_when_rendered_then_every_section_and_chart_is_there() -> None:
    """At a glance, status by class and kind, reasons, exposure, risk, latency, agents,
    summary; a chart for each class's exposure, correlated exposure, heat, equity,
    drawdown and latency."""
    page = _page()
    assert page.sections == ["numbers", "status", "reasons", "exposure", "risk", "latency",
                             "agents", "summary"]  # fmt: skip
    assert set(page.charts) == {
        "status_by_class", "status_by_kind", "reasons", "class:crypto", "class:stocks",
        "correlated", "heat", "equity", "drawdown", "latency",
    }  # fmt: skip


def test_report_when_rendered_then_reason_bars_count_decisions_with_an_example_each() -> None:
    """One bar and one table row per reason, with the decisions counted and the example
    message; the chart says it counts decisions."""
    page = _page()
    bars = {e["data-label"]: int(e["data-value"]) for e in page.elements if "data-label" in e}
    assert bars == SUMMARY["reasons"]
    rows = [e["data-reason"] for e in page.elements if "data-reason" in e]
    assert rows == ["max_position", "price_collar", "earnings_blackout"]
    html = render(SUMMARY, SAMPLES)
    assert "decisions per reason" in html and "counts once under each" in html
    for message in SUMMARY["examples"].values():
        assert message in html


def test_report_when_rendered_then_status_bars_hold_the_counts_by_class() -> None:
    """The stacked bars carry each class's decisions by status."""
    parts = [e for e in _page().elements if e.get("data-row")]
    got: dict[str, dict[str, int]] = {}
    for e in parts:
        got.setdefault(e["data-row"], {})[e["data-key"]] = int(e["data-value"])
    assert got["crypto"] == {"approved": 4, "resized": 1, "rejected": 1}
    assert got["stocks"] == {"approved": 2, "rejected": 2}
    assert got["all"] == {"approved": 6, "resized": 1, "rejected": 3}
    assert got["fat_finger"] == {"rejected": 2}


def test_report_when_rendered_then_lines_end_at_the_last_sample_and_caps_are_drawn() -> None:
    """Each line's last value is the last sample's; the class caps and the heat cap are
    dashed lines at their limits; money shows to the cent."""
    lines = {e["data-series"]: float(e["data-last"]) for e in _page().elements
             if "data-series" in e}  # fmt: skip
    assert lines["crypto share"] == pytest.approx(0.2)
    assert lines["cap 40%"] == pytest.approx(0.4)
    assert lines["portfolio heat"] == pytest.approx(0.02)
    assert lines["cap"] == pytest.approx(0.25)
    assert lines["slowest"] == pytest.approx(7.0)
    assert "100,123.46 USD" in render(SUMMARY, SAMPLES)


def test_progress_when_a_decision_has_two_reasons_then_it_counts_once_under_each() -> None:
    """Per-reason counts are decisions: a reason given twice in one decision counts once."""
    progress = Progress(cast(Any, None), cast(Any, None), base_config())
    d = {"intent_id": "a-1", "agent_id": "a", "symbol": "NVDA", "side": "buy",
         "status": "rejected", "requested_quantity": "5", "approved_quantity": "0",
         "reasons": [{"code": "max_position", "message": "m1"},
                     {"code": "asset_class_limit", "message": "m2"},
                     {"code": "max_position", "message": "m3"}]}  # fmt: skip
    progress._count(d, 0, None, {})
    progress._count({**d, "intent_id": "a-2", "reasons": []}, 0, None, {})
    assert progress.reasons == Counter({"max_position": 1, "asset_class_limit": 1})
    assert progress.examples == {"max_position": "m1", "asset_class_limit": "m2"}
    assert progress.by_class == {"stocks": Counter({"rejected": 2})}
    assert json.loads(json.dumps(progress.records[0].projection()))["reasons"][0] == [
        "max_position", "m1"
    ]  # fmt: skip


def test_projection_when_a_message_quotes_a_time_then_the_time_is_masked() -> None:
    """What a seed reproduces leaves out the clock's readings quoted in messages: the
    times and the ages."""
    progress = Progress(cast(Any, None), cast(Any, None), base_config())
    msg = "approved 7.993603s ago (2026-12-02T15:47:31.771631+00:00); refused"
    reasons = [{"code": "duplicate_order", "message": msg}]
    progress._count({"intent_id": "x", "symbol": "BTC/USDT", "status": "rejected",
                     "reasons": reasons}, 0, None, {})  # fmt: skip
    assert progress.records[0].projection()["reasons"] == [
        ["duplicate_order", "approved <age> ago (<time>); refused"]
    ]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium installed")
def test_report_when_chromium_is_installed_then_it_renders_a_screenshot(tmp_path: Path) -> None:
    """Optional: a headless Chromium draws the page (its content is tested above)."""
    page, shot = tmp_path / "index.html", tmp_path / "report.png"
    page.write_text(render(SUMMARY, SAMPLES))
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,2000", page.as_uri()],
        check=False, capture_output=True, timeout=60,
    )  # fmt: skip
    assert shot.stat().st_size > 10_000
