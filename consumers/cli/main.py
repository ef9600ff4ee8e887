"""``riskgate`` command line. Commands that need Redis or PostgreSQL import lazily."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from consumers.bus.redis_errors import explain, is_redis_error
from consumers.cli import (
    commands,
    db_commands,
    feed_commands,
    market_commands,
    ops_commands,
    phase_commands,
    security_commands,
)
from consumers.errors import UsageError
from consumers.servers import embedded
from gate.assets import AssetManager, default_config_path
from schemas.config import AssetsConfig, ConfigError, load_config

Handler = Callable[[argparse.Namespace], int]


def _manager(args: argparse.Namespace) -> AssetManager:
    return AssetManager(args.config)


def _money(asset_price: object, currency: str) -> str:
    return f"${asset_price}" if currency in ("USD", "USDT") else f"{asset_price} {currency}"


def cmd_assets(args: argparse.Namespace) -> int:
    """Print the asset manager summary, the enabled assets and each disabled phase."""
    m = _manager(args)
    print("=== Asset Manager Summary ===")
    for key, value in m.summary().items():
        print(f"{key}: {value}")
    print()
    print("=== Enabled Assets ===")
    for asset in m.get_enabled_assets():
        print(f"- {asset}")
    active = set(m.active_phases())
    for name, phase in m.config.phases.items():
        if name in active:
            continue
        print()
        print(f"=== {phase.title} (Disabled) ===")
        for symbol in phase.assets:
            a = m.config.assets[symbol]
            mark = "✓" if m.is_tradable(symbol) else "✗"
            price = _money(a.reference_price, a.trading.quote_currency)
            print(f"{mark} {symbol} ({a.name}) - {price}")
    return 0


def cmd_config_validate(args: argparse.Namespace) -> int:
    """Validate a config file; print what is wrong and exit 1, or a one-line summary."""
    path = Path(args.path) if args.path else default_config_path()
    cfg: AssetsConfig = load_config(path)  # ConfigError is reported by main()
    print(
        f"{path}: ok - {len(cfg.assets)} assets, {len(cfg.asset_classes)} classes, "
        f"{len(cfg.phases)} phases, {len(cfg.data_sources)} data sources; "
        f"config hash {cfg.config_hash}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskgate", description="Pre-trade risk gate on Redis Streams."
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="asset config file (default: $RISKGATE_CONFIG or the packaged one)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="embedded servers' directory when no URL is set (default: $RISKGATE_DATA_DIR "
        "or .riskgate)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("assets", help="summary of configured and enabled assets")
    p.set_defaults(handler=cmd_assets)

    p = sub.add_parser("config", help="configuration tools")
    config_sub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    v = config_sub.add_parser("validate", help="validate an asset config file")
    v.add_argument("path", nargs="?", help="file to check (default: the active config)")
    v.set_defaults(handler=cmd_config_validate)

    commands.register(sub)  # the commands that need Redis live with the consumers
    db_commands.register(sub)  # and those that need PostgreSQL
    phase_commands.register(sub)
    market_commands.register(sub)
    feed_commands.register(sub)
    security_commands.register(sub)
    ops_commands.register(sub)  # demo, servers, --metrics-port (after the workers exist)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    embedded.use_data_dir(args.data_dir)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"riskgate: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        return _report_failure(exc, getattr(args, "redis_url", None))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `riskgate assets | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _report_failure(exc: Exception, redis_url: str | None = None) -> int:
    """Known failures as one line and a non-zero exit; anything else propagates.

    Any Redis error (a cluster's too) is one line naming the server and the problem:
    exit 3 when Redis is unreachable or unavailable (down, loading, failing over, a
    slot nobody serves), 1 when it refused the command (permissions, wrong type)."""
    if isinstance(exc, UsageError):
        print(f"riskgate: {exc}", file=sys.stderr)
        return 2
    if is_redis_error(exc):
        line, status = explain(exc, redis_url or os.environ.get("REDIS_URL"))
        print(f"riskgate: {line}", file=sys.stderr)
        return status
    raise exc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
