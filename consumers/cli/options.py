"""What every CLI command that talks to Redis shares: ``--portfolio`` and
``--redis-url``, the config and keys it runs with, and argument parsing helpers."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from consumers.bus.keys import DEFAULT_PORTFOLIO, DEFAULT_PREFIX, Keys
from consumers.bus.portfolios import check
from consumers.cli.parser import did_you_mean
from consumers.errors import UsageError
from gate.assets import AssetManager
from schemas.config import AssetClass, AssetsConfig

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


def writes(
    p: argparse.ArgumentParser, when: Callable[[argparse.Namespace], bool] | None = None
) -> None:
    """Mark an operator write (deposit, halt, submit, ...): refused on an embedded server
    unless ``--embedded`` (consumers/cli/which_server.py). ``when``: only for the
    arguments it says (``portfolios add`` writes, ``portfolios list`` reads)."""
    p.set_defaults(writes=when or True)


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
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number (expected a decimal such as 100000 or 0.01)"
        ) from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def seconds_arg(*, minimum: float = 0.0, inclusive: bool = True) -> Callable[[str], float]:
    """A number of seconds, at least ``minimum`` (above it when not ``inclusive``)."""
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a number of seconds (expected a number {bound}, e.g. 10)"
            ) from None
        if not (value >= minimum if inclusive else value > minimum) or math.isinf(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound} seconds")
        return value

    return parse


def whole_arg(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A whole number from ``minimum`` (to ``maximum``), for ``argparse``."""
    bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number (expected one {bound})"
            ) from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{text!r} must be a whole number {bound}")
        return value

    return parse


PORT = whole_arg(0, 65535)  # a TCP port; 0: off (metrics) or any free one


def date_arg(text: str) -> date:
    """YYYY-MM-DD (``argparse`` type)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (expected the form YYYY-MM-DD, e.g. 2026-12-01)"
        ) from None


def configured_symbol(config: AssetsConfig, symbol: str, what: str = "symbol") -> str:
    """``symbol`` if configured, else UsageError with the configured spelling nearest it."""
    if symbol in config.assets:
        return symbol
    raise UsageError(f"{what} {symbol!r} is not configured{_suggest(symbol, config.assets)}")


def control_target(config: AssetsConfig, target: str) -> str:
    """A symbol, asset class or phase name as ``enable``/``disable`` take it."""
    names = [*config.assets, *(c.value for c in AssetClass), *config.phases]
    if target in names:
        return target
    known = (
        _suggest(target, names)
        or f" (classes: {', '.join(c.value for c in AssetClass)}; phases: "
        f"{', '.join(config.phases)}; symbols: riskgate assets)"
    )
    raise UsageError(f"{target!r} is not a configured symbol, asset class or phase{known}")


def _suggest(word: str, names: Iterable[str]) -> str:
    guess = did_you_mean(word, names)
    return f"; did you mean {guess}?" if guess else ""
