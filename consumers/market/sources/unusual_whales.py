"""Unusual Whales: unusual options activity, sweeps and blocks (``unusual_whales``).
Plain httpx: there is no official Python client; one GET route.

``GET https://api.unusualwhales.com/api/option-trades/flow-alerts?ticker_symbol=A,B``
with ``Authorization: Bearer`` (documented at
https://api.unusualwhales.com/docs#/operations/PublicApi.OptionTradeController.flow_alerts):
``{"data": [{"id", "ticker", "type" (call|put), "strike", "expiry", "created_at",
"total_premium", "total_size", "underlying_price", "open_interest", "has_sweep",
"has_floor", "has_multileg", "total_ask_side_prem", "total_bid_side_prem", ...}]}``,
numbers as strings. Each alert is stored as one ``options_flow`` row (``unusual``):
``trade_type`` sweep when it has a sweep, else block for a floor trade, else split for
several trades, else single; the side and sentiment follow the premium paid at the ask
(buyers: a call bullish, a put bearish) or at the bid (sellers, the reverse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

from consumers.market.sources.base import (
    Asset,
    Kind,
    MalformedResponse,
    NotConfigured,
    OptionPrint,
    Source,
    decimal,
    field_of,
    list_of,
)
from consumers.market.sources.gateway import Gateway

URL = "https://api.unusualwhales.com/api/option-trades/flow-alerts"
ENV_KEY = "UNUSUAL_WHALES_API_KEY"


def _time(value: object, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise MalformedResponse(f"{what} is {value!r}, expected an ISO-8601 time") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _side(ask: object, bid: object) -> tuple[str, int]:
    a = decimal(ask, "total_ask_side_prem", positive=False) if ask is not None else None
    b = decimal(bid, "total_bid_side_prem", positive=False) if bid is not None else None
    if a is None or b is None or a == b:
        return "unknown", 0
    return ("buy", 1) if a > b else ("sell", -1)


class UnusualWhales(Source):
    name = "unusual_whales"
    serves = frozenset({Kind.OPTIONS})
    classes = frozenset({"stocks", "meme_stocks", "leveraged_etfs"})

    def __init__(self, gateway: Gateway, env: Mapping[str, str]) -> None:
        self.gateway = gateway
        self.key = env.get(ENV_KEY, "").strip()

    def problem(self) -> str | None:
        return None if self.key else f"{ENV_KEY} is not set"

    def options_flow(self, assets: Sequence[Asset]) -> list[OptionPrint]:
        if not self.key:
            raise NotConfigured(f"{self.name}: {ENV_KEY} is not set")
        wanted = {a.symbol for a in assets}
        body = self.gateway.json(
            self.name, URL, params={"ticker_symbol": ",".join(sorted(wanted)), "limit": "200"},
            headers={"Authorization": f"Bearer {self.key}", "Accept": "application/json"},
        )  # fmt: skip
        out: list[OptionPrint] = []
        for i, a in enumerate(list_of(field_of(body, "data", self.name), f"{self.name} data")):
            w = f"{self.name} data[{i}]"
            symbol = field_of(a, "ticker", w)
            if symbol not in wanted:
                continue
            kind = field_of(a, "type", w)
            if kind not in ("call", "put"):
                raise MalformedResponse(f"{w}.type is {kind!r}, expected call or put")
            try:
                expiry = date.fromisoformat(str(field_of(a, "expiry", w)))
            except ValueError:
                raise MalformedResponse(f"{w}.expiry is not a date") from None
            size = decimal(field_of(a, "total_size", w), f"{w}.total_size")
            side, sign = _side(a.get("total_ask_side_prem"), a.get("total_bid_side_prem"))
            bullish = (sign > 0) == (kind == "call")
            trades = int(decimal(a.get("trade_count") or 1, f"{w}.trade_count"))
            trade_type = ("sweep" if a.get("has_sweep") else "block" if a.get("has_floor")
                          else "split" if trades > 1 else "single")  # fmt: skip
            oi = a.get("open_interest")
            out.append(OptionPrint(
                time=_time(field_of(a, "created_at", w), f"{w}.created_at"), symbol=symbol,
                trade_id=str(field_of(a, "id", w)), option_type=kind,
                strike=decimal(field_of(a, "strike", w), f"{w}.strike"), expiry=expiry,
                contracts=int(size), premium=decimal(field_of(a, "total_premium", w),
                                                     f"{w}.total_premium", positive=False),
                trade_type=trade_type, side=side,
                underlying_price=(decimal(a["underlying_price"], f"{w}.underlying_price")
                                  if a.get("underlying_price") is not None else None),
                open_interest=int(decimal(oi, f"{w}.open_interest", positive=False))
                if oi is not None else None,
                sentiment="neutral" if sign == 0 else ("bullish" if bullish else "bearish"),
            ))  # fmt: skip
        return out
