"""Metrics and health on fakeredis: counters match the decisions stream, every metric the
shipped dashboard and alert rules use is exported, health follows the loop's heartbeat."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import yaml
from prometheus_client import CollectorRegistry

from consumers.bus.keys import DATA
from consumers.db.audit import AuditWriter
from consumers.db.stream_to_pg import ConsumerSettings, PgLink
from consumers.ops.telemetry import (
    ConsumerTelemetry,
    Exporter,
    GateTelemetry,
    HostTelemetry,
    group_backlog,
)
from tests.builders import ROOT
from tests.harness import Harness

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "riskgate.json"
PROMQL_BUILTINS = {"up"}  # series Prometheus itself makes


@pytest.fixture
def h() -> Harness:
    harness = Harness(fakeredis.FakeRedis(), enable_all=True)
    harness.fund()
    return harness


def _samples(telemetry: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(telemetry)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:  # fmt: skip
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def _exported_names(h: Harness) -> set[str]:
    gate = GateTelemetry(h.worker)
    gate.owned = lambda: True  # a gate deciding by lease (riskgate gate)
    gate.sample()
    writer = AuditWriter(h.redis, PgLink("postgresql://unused/x", "t"), h.keys, h.config,
                         ConsumerSettings("c"))  # fmt: skip
    audit = ConsumerTelemetry(writer, h.keys)
    audit.sample()
    return {name for name, _ in _samples(gate)} | {name for name, _ in _samples(audit)}


def test_gate_metrics_when_decisions_committed_then_counters_match_decisions_stream(
    h: Harness,
) -> None:
    """Decisions by status and reason, and the latency count, equal the decisions stream."""
    telemetry = GateTelemetry(h.worker)
    h.worker.telemetry = telemetry
    for qty in ("0.01", "0.02", "50", "0.03"):
        h.intent("BTC/USDT", "buy", qty, price="100000")
    h.intent("NOPE/USDT", "buy", "1", price="1")
    h.raw_intent("{not json")
    h.pump()
    decisions = [json.loads(f[DATA]) for _, f in h.redis.xrange(h.keys.decisions)]
    by_status = Counter(d["status"] for d in decisions)
    by_reason = Counter(r["code"] for d in decisions for r in d["reasons"])
    samples = _samples(telemetry)
    for status in ("approved", "resized", "rejected"):
        assert _value(samples, "riskgate_decisions_total", status=status) == by_status[status]
    for reason, n in by_reason.items():
        assert _value(samples, "riskgate_decision_reasons_total", reason=reason) == n
    assert _value(samples, "riskgate_decision_latency_seconds_count") == len(decisions)
    assert _value(samples, "riskgate_dead_letters_total") == h.redis.xlen(h.keys.deadletter)
    # where the loop's time went: every stage that ran has its seconds, and they are the
    # worker's own clock
    for stage in ("read", "parse", "decide", "encode", "commit", "report"):
        seconds = _value(samples, "riskgate_gate_stage_seconds_total", stage=stage)
        assert seconds == h.worker.stages.seconds[stage] and seconds > 0, stage


def test_gate_sample_when_portfolio_funded_then_vitals_and_lag_exported(h: Harness) -> None:
    """The sampler reads equity, heat and its cap, halted, and the intents group's lag."""
    h.intent("BTC/USDT", "buy", "0.01", price="100000")
    telemetry = GateTelemetry(h.worker)
    telemetry.sample()
    samples = _samples(telemetry)
    assert _value(samples, "riskgate_equity") == 100000
    assert _value(samples, "riskgate_portfolio_heat_limit_ratio") == 0.25
    assert _value(samples, "riskgate_halted") == 0
    assert _value(samples, "riskgate_consumer_pending_entries", stream="intents") == 0
    # the intent was published, not yet read: one entry behind
    assert group_backlog(h.redis, h.keys.intents, "gate")["lag"] == 1
    assert _value(samples, "riskgate_consumer_lag_entries", stream="intents") == 1


def test_alert_rules_when_loaded_then_every_rule_is_complete_and_uses_exported_metrics(
    h: Harness,
) -> None:
    """alerts.yml: groups of rules with alert, expr, for, severity and summary; every metric
    an expression names is one the workers export."""
    doc = yaml.safe_load(ALERTS.read_text())
    exported = _exported_names(h) | PROMQL_BUILTINS
    alerts = set()
    for group in doc["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["labels"]["severity"] in ("page", "ticket", "info")
            assert rule["annotations"]["summary"]
            alerts.add(rule["alert"])
            assert _metric_names(rule["expr"]) <= exported, rule["alert"]
    for needed in ("ConsumerLagRising", "DeadLetters", "EmergencyStop", "DailyLossLimit",
                   "WorkerDown", "AuditWriterBehind"):  # fmt: skip
        assert f"Riskgate{needed}" in alerts


def test_dashboard_when_loaded_then_every_panel_queries_exported_metrics(h: Harness) -> None:
    """riskgate.json: a Grafana dashboard whose every target names exported metrics."""
    doc = json.loads(DASHBOARD.read_text())
    exported = _exported_names(h) | PROMQL_BUILTINS
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    assert doc["title"] and len(exprs) >= 10
    for expr in exprs:
        assert _metric_names(expr) <= exported, expr


def _metric_names(expr: str) -> set[str]:
    words = set(re.findall(r"\b(riskgate_[a-z_]+|up)\b", expr))
    return {w for w in words if not re.search(rf"\b{w}\s*=", expr)}  # not a label name


def test_healthz_when_heartbeat_fresh_then_200_and_when_stale_then_503(h: Harness) -> None:
    """/healthz follows the loop's last successful turn; /metrics answers too."""
    telemetry = GateTelemetry(h.worker, stale_after_s=30)
    with Exporter(telemetry, 0, sample_every_s=3600) as exporter:
        base = f"http://127.0.0.1:{exporter.port}"
        telemetry.beat()
        assert _get(base + "/healthz") == 200
        telemetry.heartbeat.last = time.monotonic() - 31  # no turn for longer than allowed
        assert _get(base + "/healthz") == 503
        telemetry.beat()
        assert _get(base + "/healthz") == 200
        assert _get(base + "/metrics") == 200
        assert _get(base + "/nothing") == 404


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_dashboard_and_rules_when_shipped_then_files_exist() -> None:
    """deploy/ ships the dashboard and the rules the docs point at."""
    assert ALERTS.is_file() and DASHBOARD.is_file()
    assert Path(ROOT / "docs" / "OPERATIONS.md").is_file()


def test_host_metrics_when_two_portfolios_then_each_family_once_with_both_labelled() -> None:
    """One process, two portfolios: one family per metric name, a sample per portfolio,
    the lease gauge saying which it owns; /healthz needs every portfolio's heartbeat."""
    redis = fakeredis.FakeRedis()
    one, two = Harness(redis, "one"), Harness(redis, "two")
    kids = [GateTelemetry(one.worker), GateTelemetry(two.worker)]
    kids[0].owned, kids[1].owned = (lambda: True), (lambda: False)
    host = HostTelemetry(lambda: kids, "gate", stale_after_s=30)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(host)
    families = list(registry.collect())
    names = [f.name for f in families]
    assert len(names) == len(set(names))
    owned = {s.labels["portfolio"]: s.value for f in families for s in f.samples
             if s.name == "riskgate_portfolio_owned"}  # fmt: skip
    assert owned == {"one": 1.0, "two": 0.0}
    assert host.healthy()
    kids[1].heartbeat.last -= 60  # a portfolio whose turns stopped
    assert not host.healthy()
