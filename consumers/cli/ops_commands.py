"""CLI commands for running riskgate anywhere: ``demo``, ``servers`` (the embedded Redis
and PostgreSQL) and the ``--metrics-port`` option of the long-running workers."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from consumers.cli.options import PORT, whole_arg
from consumers.demo.run import DemoOptions, run_demo
from consumers.errors import UsageError
from consumers.ops.telemetry import PORT_ENV
from consumers.servers import embedded

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

Handler = Callable[[argparse.Namespace], int]
WORKERS = ("gate", "audit", "phase-monitor", "feed")  # the commands that serve metrics


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
        return value

    return parse


def cmd_demo(args: argparse.Namespace) -> int:
    missing = [m for m in ("rich",) if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"riskgate demo needs {' and '.join(missing)}: pip install -e '.[demo]'")
    base = DemoOptions.quick() if args.quick else DemoOptions()
    opts = DemoOptions(
        duration=args.duration or base.duration,
        rate=int(args.rate or base.rate),
        seed=args.seed,
        workers=args.workers,
        report=Path(args.report) if args.report else None,
        portfolio=args.portfolio,
        config_path=args.config,
        metrics_port=args.metrics_port,
        live=False if args.plain else None,
    )
    return run_demo(opts)


def cmd_servers(args: argparse.Namespace) -> int:
    if args.action == "start":
        embedded.pin()
    if args.action == "stop":
        stopped = embedded.stop_all()
        for kind, was in stopped.items():
            print(f"{kind}: {'stopped' if was else 'not running'}")
        return 0
    info = embedded.status()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"data directory {info['data_dir']}")
    for kind in embedded.KINDS:
        s = info[kind]
        assert isinstance(s, dict)
        state = "running" if s["running"] else "stopped"
        users = ", ".join(s["users"]) or "none"
        print(f"  {kind:9} {state:8} users: {users}")
    if args.action == "start":
        print("pinned: they keep running until `riskgate servers stop`")
    return 0


def _with_metrics_port(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        if args.metrics_port is not None:
            os.environ[PORT_ENV] = str(args.metrics_port)  # read by the worker's run()
        return handler(args)

    return run


def register(sub: Sub) -> None:
    """``demo`` and ``servers``; ``--metrics-port`` on the worker commands (call last)."""
    for name in WORKERS:
        p = sub.choices[name]
        p.add_argument(
            "--metrics-port",
            type=PORT,
            default=None,
            help=f"serve /metrics and /healthz on this port (default: ${PORT_ENV} or 0: off)",
        )
        p.set_defaults(handler=_with_metrics_port(p.get_default("handler")))

    p = sub.add_parser("demo", help="run the whole system with simulated agents, then report")
    p.add_argument(
        "--duration",
        type=_positive(float),
        help="seconds of trading: one tick a second (default 60)",
    )
    p.add_argument(
        "--rate",
        type=_positive(int),
        help="the book's size: 2 x N traders, at most 900 (default 200)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=7,
        help="random seed: the same seed, the same decisions (default 7)",
    )
    p.add_argument("--workers", type=whole_arg(1, 64), default=2, help="gate workers (default 2)")
    p.add_argument("--report", metavar="DIR", help="report directory (default: in the data dir)")
    p.add_argument("--portfolio", help="portfolio name (default: demo-<time>, a fresh one)")
    p.add_argument(
        "--metrics-port", type=PORT, default=0, help="first of the workers' metrics ports (0: off)"
    )
    p.add_argument("--plain", action="store_true", help="progress lines, not a live table")
    p.add_argument("--quick", action="store_true", help="15 ticks, 200 traders (< 60 s in all)")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("servers", help="the embedded Redis and PostgreSQL of the data directory")
    p.add_argument(
        "action",
        nargs="?",
        default="status",
        choices=("status", "start", "stop"),
        help="status (default); start: start and keep running; stop: stop now",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_servers)
