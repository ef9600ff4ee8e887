"""Prometheus metrics and a health endpoint for the workers (gate, audit, phase monitor).

Each worker process serves ``/metrics`` (Prometheus text format) and ``/healthz`` on
``RISKGATE_METRICS_PORT`` (``--metrics-port``; 0, the default, serves nothing) at
``RISKGATE_METRICS_HOST`` (default 127.0.0.1). ``/healthz`` answers 200 while the
worker's loop has completed a turn against Redis within ``RISKGATE_HEALTH_STALE_S``
seconds (default 30; a turn blocks at most ``--block-ms``), 503 otherwise.

Cost on the hot path: counters the workers keep anyway (their ``stats``) are read at
scrape time; per committed batch the gate adds one call that counts reasons and files
each decision's latency into a bucket list (no lock, no label lookup). Gauges that need
Redis (lag, pending, portfolio heat, drawdown, daily PnL, halted) are sampled every
``RISKGATE_METRICS_SAMPLE_S`` seconds (default 5) by a thread of their own, so a scrape
never waits on Redis.

The modules: ``instruments`` (buckets, heartbeat, group backlog), ``worker_telemetry``
(what every worker exports), ``gate_telemetry``, ``consumer_telemetry`` (audit and
phase), ``host_telemetry`` (several portfolios in one process), ``exporter`` (HTTP
serving and sampling). This module is their public face.
"""

from __future__ import annotations

from consumers.ops.consumer_telemetry import ConsumerTelemetry
from consumers.ops.exporter import (
    CONTENT_TYPE,
    Exporter,
    serve_consumer,
    serve_gate,
    serve_host,
    serving,
)
from consumers.ops.gate_telemetry import BATCH_BUCKETS, LATENCY_BUCKETS, GateTelemetry
from consumers.ops.host_telemetry import HostTelemetry
from consumers.ops.instruments import Buckets, Heartbeat, group_backlog
from consumers.ops.worker_telemetry import (
    HOST_ENV,
    PORT_ENV,
    SAMPLE_ENV,
    STALE_ENV,
    WorkerTelemetry,
    metrics_port,
)

__all__ = [
    "BATCH_BUCKETS",
    "CONTENT_TYPE",
    "HOST_ENV",
    "LATENCY_BUCKETS",
    "PORT_ENV",
    "SAMPLE_ENV",
    "STALE_ENV",
    "Buckets",
    "ConsumerTelemetry",
    "Exporter",
    "GateTelemetry",
    "Heartbeat",
    "HostTelemetry",
    "WorkerTelemetry",
    "group_backlog",
    "metrics_port",
    "serve_consumer",
    "serve_gate",
    "serve_host",
    "serving",
]
