"""What every CLI command that talks to Redis shares: ``--portfolio`` and
``--redis-url``, the config and keys it runs with, and argument parsing helpers."""

from __future__ import annotations

import argparse
import os
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from consumers.bus.keys import Keys
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
