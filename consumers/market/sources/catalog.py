"""Which registry source has which adapter, and building them (see the package doc)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from consumers.market.sources.alpha_vantage import AlphaVantage
from consumers.market.sources.base import Kind, NotConfigured, Source
from consumers.market.sources.eia import Eia
from consumers.market.sources.fred import Fred
from consumers.market.sources.gateway import Gateway
from consumers.market.sources.oanda import Oanda
from consumers.market.sources.polygon import Polygon
from consumers.market.sources.reddit import Reddit
from consumers.market.sources.unusual_whales import UnusualWhales

HTTP_ADAPTERS: dict[str, type[Any]] = {
    "polygon_io": Polygon,
    "alpha_vantage": AlphaVantage,
    "oanda_api": Oanda,
    "fred_api": Fred,
    "eia_api": Eia,
    "reddit_api": Reddit,
    "unusual_whales": UnusualWhales,
}
SERVES: dict[str, frozenset[Kind]] = {
    "ccxt_binance": frozenset({Kind.BARS, Kind.LATEST}),
    **{name: cls.serves for name, cls in HTTP_ADAPTERS.items()},
}


class Unavailable(Source):
    """An adapter that cannot be loaded (its optional library is missing)."""

    def __init__(self, name: str, serves: frozenset[Kind], reason: str) -> None:
        self.name, self.serves, self.reason = name, serves, reason

    def problem(self) -> str | None:
        return self.reason

    def bars(self, *a: Any) -> Any:
        raise NotConfigured(f"{self.name}: {self.reason}")

    def latest(self, *a: Any) -> Any:
        raise NotConfigured(f"{self.name}: {self.reason}")


def build(
    gateway: Gateway, env: Mapping[str, str], names: Any, **binance: Any
) -> dict[str, Source]:
    """An adapter for each registry name that has one (others are left out)."""
    out: dict[str, Source] = {}
    for name in names:
        if name in HTTP_ADAPTERS:
            out[name] = HTTP_ADAPTERS[name](gateway, env)
        elif name == "ccxt_binance":
            try:
                from consumers.market.sources.ccxt_binance import (  # noqa: PLC0415
                    CcxtBinance,  # the optional extra: loaded only when configured
                )
            except ImportError as exc:  # requests/ccxt: the optional extra
                out[name] = Unavailable(name, SERVES[name], f"{exc.name} is not installed "
                                        "(pip install 'riskgate[feeds]')")  # fmt: skip
            else:
                out[name] = CcxtBinance(gateway, env, **binance)
    return out
