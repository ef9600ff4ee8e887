"""``riskgate gate`` (a gate process: one or many portfolios, each owned by lease) and
``riskgate bench`` (the benchmark)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from consumers.bench import memory
from consumers.bench.run import Bench, Plan, table, write_json
from consumers.bus.runtime import (
    Shutdown,
    configure_logging,
    connect,
    connect_when_ready,
    default_consumer_name,
    redis_url,
)
from consumers.cli.options import (
    add_serving_options,
    config_of,
    env_text,
    prefix,
    serving_set,
)
from consumers.cli.retention_options import add_retention_options, retention_settings
from consumers.errors import UsageError
from consumers.gate_worker.host import GateHost
from consumers.gate_worker.settings import GateSettings, SettingsError
from consumers.state.outbox import DurabilityError

if TYPE_CHECKING:
    from consumers.cli.options import Sub


def cmd_gate(args: argparse.Namespace) -> int:
    config = config_of(args)
    settings = GateSettings(
        consumer=args.consumer or default_consumer_name(),
        batch=args.batch,
        pipeline=args.pipeline,
        block_ms=args.block_ms,
        min_idle_ms=args.min_idle_ms,
        max_deliveries=args.max_deliveries,
        reclaim_every_s=args.reclaim_every,
        **retention_settings(args),  # dedupe windows and trimming
        log_decisions=os.environ.get("RISKGATE_LOG_DECISIONS", "1") != "0",
        replicas=args.replicas,
        aof=args.aof,
        wait_timeout_ms=args.wait_timeout_ms,
        lease_ttl_ms=args.lease_ttl_ms,
        lease_renew_ms=args.lease_renew_ms,
        idle_ms=args.idle_ms,
        registry_every_s=args.registry_every,
    )
    try:  # before connecting: bad settings are a one-line refusal, not a worker
        settings.validate(config)
    except SettingsError as exc:
        raise UsageError(f"gate settings: {exc}") from exc
    portfolios, key_prefix = serving_set(args), prefix()
    configure_logging()
    shutdown = Shutdown().install()
    redis = connect_when_ready(
        args.redis_url, shutdown, socket_timeout=args.block_ms / 1000 + 10
    )  # a cluster or Sentinel is asked what it is: retried while Redis does not answer
    if redis is None:
        return 0  # stopped before Redis answered
    host = GateHost(
        redis,
        config,
        settings,
        portfolios=portfolios,
        prefix=key_prefix,
        all_portfolios=args.all_portfolios,
    )
    try:
        host.run(shutdown)
    except DurabilityError as exc:  # --aof on a server that cannot confirm it
        raise UsageError(str(exc)) from exc
    finally:
        redis.close()
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    configure_logging(level="WARNING")
    if args.cluster:
        return _bench_cluster(args)
    url = redis_url(args.redis_url)
    if args.memory:
        return _bench_memory(args, url)
    bench = Bench(
        connect(url, socket_timeout=60),
        url,
        config_of(args),
        Plan.make(args.quick),
        say=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    result = bench.run()
    print(table(result))
    if args.json:
        write_json(result, Path(args.json))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _bench_memory(args: argparse.Namespace, url: str) -> int:
    """``riskgate bench --memory``: Redis memory per portfolio at a sustained rate."""
    if args.rate < 1 or args.duration <= 0:
        raise UsageError("--rate must be at least 1 and --duration positive (seconds)")
    plan = memory.MemoryPlan(args.rate, args.duration, min(60.0, args.duration / 4))
    # SIGTERM unwinds (SystemExit): the processes, keys and database made are removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    result = memory.measure(url, None, config_of(args), plan, say)
    print(memory.table(result))
    if args.json:
        write_json(result, Path(args.json))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _bench_cluster(args: argparse.Namespace) -> int:
    """``bench --cluster``: a local 3-shard cluster (or ``--cluster-url``), 1/2/4 processes
    over 1/8/64 portfolios, and the projection for bigger deployments."""
    from consumers.bench import cluster  # noqa: PLC0415 - only this mode needs it

    bench = cluster.ClusterBench(
        config_of(args),
        cluster.ClusterPlan.make(args.quick),
        say=lambda msg: print(msg, file=sys.stderr, flush=True),
        url=args.cluster_url,
    )
    result = bench.run()
    print(cluster.table(result))
    if args.json:
        cluster.write(result, Path(args.json))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def register(sub: Sub) -> None:
    p = sub.add_parser("gate", help="run a gate process (one or many portfolios)")
    add_serving_options(p)
    p.add_argument("--consumer", help="consumer name (default: host-pid)")
    # string defaults: argparse converts them, so a bad variable is reported like a flag
    p.add_argument("--batch", type=int, default=env_text("RISKGATE_BATCH", "256"))
    p.add_argument(
        "--pipeline",
        type=int,
        default=env_text("RISKGATE_PIPELINE", "4"),
        help="decide the next batch while Redis commits this one, up to this many batches "
        "in a row (1: one batch at a time)",
    )
    p.add_argument("--block-ms", type=int, default=env_text("RISKGATE_BLOCK_MS", "1000"))
    p.add_argument(
        "--min-idle-ms",
        type=int,
        default=env_text("RISKGATE_MIN_IDLE_MS", "10000"),
        help="reclaim entries pending this long on other consumers",
    )
    p.add_argument(
        "--reclaim-every",
        type=float,
        default=env_text("RISKGATE_RECLAIM_EVERY_S", "2"),
        help="seconds between XAUTOCLAIM sweeps",
    )
    p.add_argument(
        "--max-deliveries",
        type=int,
        default=env_text("RISKGATE_MAX_DELIVERIES", "5"),
        help="dead-letter an entry delivered more often than this",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=env_text("RISKGATE_REPLICAS", "0"),
        help="publish decisions and orders only once this many replicas hold the commit "
        "(WAIT); 0: at once (a failover can lose them: docs/OPERATIONS.md)",
    )
    p.add_argument(
        "--aof",
        action="store_true",
        default=os.environ.get("RISKGATE_AOF", "0") not in ("", "0"),
        help="also wait for the append-only files (WAITAOF, Redis 7.2 or later)",
    )
    p.add_argument(
        "--wait-timeout-ms",
        type=int,
        default=env_text("RISKGATE_WAIT_TIMEOUT_MS", "500"),
        help="how long one wait for replicas may take; short of them, orders stay held",
    )
    p.add_argument(
        "--lease-ttl-ms",
        type=int,
        default=env_text("RISKGATE_LEASE_TTL_MS", "3000"),
        help="a portfolio's lease lasts this long unless renewed: a dead owner's "
        "portfolio is taken over within this + --lease-renew-ms",
    )
    p.add_argument(
        "--lease-renew-ms",
        type=int,
        default=env_text("RISKGATE_LEASE_RENEW_MS", "1000"),
        help="the owner renews its lease, and standbys poll it, this often "
        "(at most half of --lease-ttl-ms)",
    )
    add_retention_options(p)
    p.set_defaults(handler=cmd_gate)

    p = sub.add_parser("bench", help="measure throughput, latency and scaling")
    p.add_argument("--redis-url", default=None)
    p.add_argument("--quick", action="store_true", help="the short run CI does (< 60 s)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument(
        "--memory",
        action="store_true",
        help="instead: Redis memory per portfolio at steady state (gate, audit writer, "
        "phase monitor and an executor on one portfolio; PostgreSQL at DATABASE_URL)",
    )
    p.add_argument("--rate", type=int, default=1000, help="--memory: intents per second")
    p.add_argument(
        "--duration", type=float, default=2700.0, help="--memory: seconds (3 dedupe windows)"
    )
    p.add_argument(
        "--cluster",
        action="store_true",
        help="throughput and Redis time per intent on a Redis Cluster (a local 3-shard one "
        "started from redis-server unless --cluster-url names one), with a sizing projection",
    )
    p.add_argument("--cluster-url", default=None, help="a node of an existing cluster")
    p.set_defaults(handler=cmd_bench)
