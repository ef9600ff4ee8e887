"""Serving telemetry: ``/metrics`` and ``/healthz`` over HTTP plus the sampling thread
(:class:`Exporter`), started for a worker when a metrics port is configured."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest

from consumers.bus.keys import Keys
from consumers.errors import UsageError
from consumers.ops.consumer_telemetry import ConsumerTelemetry
from consumers.ops.gate_telemetry import GateTelemetry
from consumers.ops.host_telemetry import HostTelemetry
from consumers.ops.worker_telemetry import (
    HOST_ENV,
    SAMPLE_ENV,
    WorkerTelemetry,
    _env_float,
    metrics_port,
)

if TYPE_CHECKING:  # what telemetry reads of the workers, not the workers (they sit above)
    from consumers.ops.observed import ObservedConsumer as StreamToPg
    from consumers.ops.observed import ObservedGate as GateWorker
    from consumers.ops.observed import ObservedHost

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Served = WorkerTelemetry | HostTelemetry  # what an Exporter serves


class Exporter:
    """``/metrics`` and ``/healthz`` on a port, plus the sampling thread; ``close()`` ends both."""

    def __init__(
        self,
        telemetry: Served,
        port: int,
        host: str = "127.0.0.1",
        sample_every_s: float = 5.0,
    ) -> None:
        self.telemetry = telemetry
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(telemetry)
        self.sample_every_s = sample_every_s
        self._stop = threading.Event()
        self.server = ThreadingHTTPServer((host, port), _handler(self.registry, telemetry.healthy))
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._threads = [
            threading.Thread(target=self.server.serve_forever, name="metrics-http", daemon=True),
            threading.Thread(target=self._sampling, name="metrics-sample", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _sampling(self) -> None:
        while True:
            self.telemetry.sample()
            if self._stop.wait(self.sample_every_s):
                return

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for t in self._threads:
            t.join(10)

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(
    registry: CollectorRegistry, healthy: Callable[[], bool]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE)
            elif path == "/healthz":
                ok = healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"stale\n", "text/plain")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # scrapes are not news

    return Handler


def _serve(telemetry: Served) -> Exporter | None:
    port = metrics_port()
    if port <= 0:
        return None
    host = os.environ.get(HOST_ENV, "127.0.0.1")
    try:
        exporter = Exporter(telemetry, port, host, _env_float(SAMPLE_ENV, 5.0))
    except OSError as exc:  # a port in use is a deployment mistake: stop, and say which
        raise UsageError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from exc
    telemetry.log.info("metrics served", port=exporter.port, paths=["/metrics", "/healthz"])
    return exporter


@contextlib.contextmanager
def serving(serve: Callable[[Any], Exporter | None], worker: Any) -> Iterator[None]:
    """Serve ``worker``'s metrics while the block runs (unless it came with telemetry)."""
    exporter = serve(worker) if getattr(worker, "telemetry", None) is None else None
    try:
        yield
    finally:
        if exporter is not None:
            exporter.close()


def serve_gate(worker: GateWorker) -> Exporter | None:
    """When a metrics port is configured: instrument the worker and serve; else None."""
    if metrics_port() <= 0:
        return None
    telemetry = GateTelemetry(worker)
    worker.telemetry = telemetry
    return _serve(telemetry)


def serve_consumer(consumer: StreamToPg) -> Exporter | None:
    """The same for the audit writer and the phase monitor."""
    if metrics_port() <= 0:
        return None
    keys: Keys = getattr(consumer, "keys", None) or Keys.from_env()
    telemetry = ConsumerTelemetry(consumer, keys)
    consumer.telemetry = telemetry
    return _serve(telemetry)


def serve_host(host: ObservedHost) -> Exporter | None:
    """A process serving several portfolios: each portfolio's telemetry under one port."""
    if metrics_port() <= 0:
        return None
    telemetry = HostTelemetry(host.telemetries, host.role)
    host.telemetry = telemetry
    return _serve(telemetry)
