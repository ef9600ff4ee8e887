"""``riskgate`` command line. Commands that need Redis or PostgreSQL import lazily."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from redis.exceptions import ResponseError

from consumers.bus.redis_errors import explain, is_redis_error
from consumers.bus.runtime import configure_logging
from consumers.bus.urls import database_out_of_range
from consumers.cli import (
    commands,
    compile_commands,
    contract_commands,
    db_commands,
    feed_commands,
    market_commands,
    ops_commands,
    phase_commands,
    security_commands,
    which_server,
)
from consumers.cli.parser import Parser, global_options, spread_global_options
from consumers.errors import UsageError
from consumers.servers import embedded
from gate.assets import AssetManager, default_config_path
from schemas.config import AssetsConfig, ConfigError, load_config

if TYPE_CHECKING:
    from consumers.cli.options import Sub

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
    parser = Parser(prog="riskgate", description="Pre-trade risk gate on Redis Streams.")
    global_options(parser)  # and after the command too: spread_global_options below
    # every command's parser is a Parser (one-line errors); typed as the modules take it
    sub = cast("Sub", parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))

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
    contract_commands.register(sub)
    compile_commands.register(sub)
    ops_commands.register(sub)  # demo, servers, --metrics-port (after the workers exist)
    spread_global_options(parser)  # last: every command, whoever registered it
    return parser


def _short_command_logging() -> None:
    """Logging for the process (workers configure their own when they start): JSON
    records on stderr when it is not a terminal (for whatever collects them); on a
    terminal, errors only, so an operator command's record of what it did does not
    trail the line it printed."""
    level = os.environ.get("RISKGATE_LOG_LEVEL") or ("ERROR" if sys.stderr.isatty() else "INFO")
    configure_logging(level=level)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    embedded.use_data_dir(args.data_dir)
    _short_command_logging()
    handler: Handler = args.handler
    try:
        which_server.prepare(args)
        return handler(args)
    except ConfigError as exc:
        print(f"riskgate: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `riskgate assets | head` (before Exception: it is one)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        return _report_failure(exc, args)
    except KeyboardInterrupt:
        return 130


def _report_failure(exc: Exception, args: argparse.Namespace) -> int:
    """Known failures as one line and a non-zero exit; anything else propagates.

    A URL naming a database the server does not have is a bad argument (exit 2). Any
    other Redis error (a cluster's too) is one line naming the server and the problem:
    exit 3 when Redis is unreachable or unavailable (down, loading, failing over, a
    slot nobody serves), 1 when it refused the command (permissions, wrong type)."""
    redis_url = getattr(args, "redis_url", None)
    if isinstance(exc, ResponseError) and str(exc).startswith("DB index is out of range"):
        exc = database_out_of_range(
            redis_url or os.environ.get("REDIS_URL", ""),
            "--redis-url" if redis_url else "REDIS_URL",
        )
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
