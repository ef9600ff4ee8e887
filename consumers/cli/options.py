"""What every CLI command that talks to Redis shares: ``--portfolio`` and
``--redis-url``, the config and keys it runs with, and argument parsing helpers."""

from __future__ import annotations

import argparse
import os
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from consumers.bus.keys import DEFAULT_PORTFOLIO, DEFAULT_PREFIX, Keys
from consumers.bus.portfolios import check
from consumers.errors import UsageError
from gate.assets import AssetManager
from schemas.config import AssetsConfig

if TYPE_CHECKING:  # subscriptable for the type checker only
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def env_text(name: str, default: str) -> str:
    return os.environ.get(name) or default


def env_whole(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} is {value!r}: it must be a whole number") from None


def add_redis_options(p: argparse.ArgumentParser) -> None:
    """--portfolio and --redis-url, for every command that talks to Redis."""
    p.add_argument(
        "--portfolio",
        default=os.environ.get("RISKGATE_PORTFOLIO", "main"),
        help="portfolio name (default: $RISKGATE_PORTFOLIO or main)",
    )
    p.add_argument(
        "--redis-url",
        default=None,
        help="default: $REDIS_URL, else the data directory's embedded Redis",
    )


def add_serving_options(p: argparse.ArgumentParser) -> None:
    """--portfolio (repeatable), --all-portfolios, --registry-every, --idle-ms and
    --redis-url: which portfolios a long-running process serves."""
    p.add_argument(
        "--portfolio",
        action="append",
        default=None,
        metavar="NAME",
        help="a portfolio to serve; repeat for several (default: $RISKGATE_PORTFOLIO or "
        "main, unless --all-portfolios)",
    )
    p.add_argument(
        "--all-portfolios",
        action="store_true",
        default=os.environ.get("RISKGATE_ALL_PORTFOLIOS", "0") not in ("", "0"),
        help="serve every portfolio of the registry (<prefix>:portfolios; riskgate "
        "portfolios add), re-read every --registry-every seconds",
    )
    p.add_argument(
        "--registry-every",
        type=float,
        default=env_text("RISKGATE_REGISTRY_EVERY_S", "5"),
        help="seconds between re-reads of the registry (--all-portfolios)",
    )
    p.add_argument(
        "--idle-ms",
        type=int,
        default=env_text("RISKGATE_IDLE_MS", "20"),
        help="several portfolios: the longest sleep after rounds that found nothing",
    )
    p.add_argument(
        "--redis-url",
        default=None,
        help="default: $REDIS_URL, else the data directory's embedded Redis",
    )


def serving_set(args: argparse.Namespace) -> list[str]:
    """The portfolios named on the command line (or the default one), checked."""
    names = args.portfolio or (
        [] if args.all_portfolios else [os.environ.get("RISKGATE_PORTFOLIO", DEFAULT_PORTFOLIO)]
    )
    try:
        return check(names)
    except ValueError as exc:
        raise UsageError(f"--portfolio: {exc}") from None


def prefix() -> str:
    """The key prefix ($RISKGATE_PREFIX), checked."""
    try:
        return Keys(DEFAULT_PORTFOLIO, os.environ.get("RISKGATE_PREFIX", DEFAULT_PREFIX)).prefix
    except ValueError as exc:
        raise UsageError(f"RISKGATE_PREFIX: {exc}") from None


def config_of(args: argparse.Namespace) -> AssetsConfig:
    return AssetManager(args.config).config


def keys_of(args: argparse.Namespace) -> Keys:
    return Keys.from_env(args.portfolio)


def decimal_arg(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value
