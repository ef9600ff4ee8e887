"""``sim``: a seeded simulated market for every configured symbol (the demo, tests).

It serves every kind of data through the same path as the real providers (router,
``price_data``, marks, flags, the registry tables), so the demo exercises what
production runs. Never for live trading: its registry row says so.

* History: :data:`HISTORY_DAYS` daily bars ending yesterday, the last close at the
  asset's ``reference_price``. Every symbol trends (drift 1 % a day against 1 % noise:
  ADX well above 25) except those in ``sideways`` (default ``SOXL``: a 2 % swing every
  6 days, ADX well below 25), so the demo shows both regimes.
* Latest: a random walk (0.1 % a step) from the last close, one step per call, observed
  at the feed's clock; today's bar follows it.
* Earnings: every symbol with an earnings blackout reports in 30-69 days, except those in
  ``near_earnings`` (default ``AMD``), in 2 days: inside its 3-day blackout.
* Macro (FOMC in 5 days, CPI in 9), energy (the EIA reports' weekdays), sentiment,
  unusual options prints and one value per leading indicator, all seeded.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from consumers.market.prices import Bar
from consumers.market.sources.alpha_vantage import earnings_event
from consumers.market.sources.base import (
    Asset,
    CalendarEvent,
    Clock,
    Indicator,
    Kind,
    OptionPrint,
    Quote,
    Sentiment,
    Source,
)
from consumers.market.sources.eia import release_time

HISTORY_DAYS = 90
SIDEWAYS = frozenset({"SOXL"})
NEAR_EARNINGS = frozenset({"AMD"})
D = Decimal


def _grid(price: float) -> Decimal:
    return D(repr(price)).quantize(D("0.01") if price >= 100 else D("0.0001"), ROUND_HALF_EVEN)


class SimMarket(Source):
    name = "sim"
    serves = frozenset(Kind)

    def __init__(
        self,
        seed: int,
        clock: Clock,
        *,
        sideways: frozenset[str] = SIDEWAYS,
        near_earnings: frozenset[str] = NEAR_EARNINGS,
    ) -> None:
        self.seed = seed
        self.clock = clock
        self.sideways = sideways
        self.near_earnings = near_earnings
        self._history: dict[str, list[Bar]] = {}
        self._last: dict[str, float] = {}
        self._today: dict[str, tuple[date, float, float, float]] = {}  # day, open, high, low

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(map(str, (self.seed, *parts))))

    def _closes(self, asset: Asset, days: int) -> list[float]:
        rng, ref = self._rng("history", asset.symbol), float(asset.config.reference_price)
        if asset.symbol in self.sideways:
            return [ref * (1 + 0.02 * math.sin(2 * math.pi * i / 6) + rng.gauss(0, 0.002))
                    for i in range(days - 1, -1, -1)]  # fmt: skip
        closes, price = [ref], ref
        for _ in range(days - 1):
            price /= math.exp(0.01 + rng.gauss(0, 0.01))
            closes.append(price)
        return closes[::-1]

    def _bars(self, asset: Asset) -> list[Bar]:
        if asset.symbol not in self._history:
            today = self.clock().date()
            rng = self._rng("range", asset.symbol)
            closes = self._closes(asset, HISTORY_DAYS)
            bars, prev = [], closes[0] * 0.995
            for i, c in enumerate(closes):
                day = today - timedelta(days=HISTORY_DAYS - i)
                hi = max(prev, c) * (1 + abs(rng.gauss(0, 0.002)))
                lo = min(prev, c) * (1 - abs(rng.gauss(0, 0.002)))
                bars.append(self._bar(asset, day, (prev, hi, lo, c)))
                prev = c
            self._history[asset.symbol] = bars
            self._last[asset.symbol] = closes[-1]
        return self._history[asset.symbol]

    def _bar(self, asset: Asset, day: date, ohlc: tuple[float, float, float, float]) -> Bar:
        o_, h_, l_, c_ = (_grid(x) for x in ohlc)
        return Bar(datetime.combine(day, time(), UTC), asset.symbol, asset.asset_class, "1d",
                   o_, max(h_, o_, c_, l_), min(l_, o_, c_), c_, D(1000), self.name)  # fmt: skip

    def _step(self, asset: Asset) -> float:
        self._bars(asset)
        rng = self._rng("tick", asset.symbol, len(self._today), self._last[asset.symbol])
        drift = 0.0 if asset.symbol in self.sideways else 0.0001
        price = self._last[asset.symbol] * math.exp(drift + rng.gauss(0, 0.001))
        self._last[asset.symbol] = price
        today = self.clock().date()
        day, o, h, lo = self._today.get(asset.symbol, (today, price, price, price))
        if day != today:
            day, o, h, lo = today, price, price, price
        self._today[asset.symbol] = (day, o, max(h, price), min(lo, price))
        return price

    def bars(self, assets: Sequence[Asset], start: date, end: date) -> list[Bar]:
        out: list[Bar] = []
        for a in assets:
            out += [b for b in self._bars(a) if start <= b.time.date() <= end]
            if a.symbol in self._today:
                day, o, h, lo = self._today[a.symbol]
                if start <= day <= end:
                    out.append(self._bar(a, day, (o, h, lo, self._last[a.symbol])))
        return out

    def latest(self, assets: Sequence[Asset]) -> list[Quote]:
        now = self.clock()
        return [Quote(a.symbol, _grid(self._step(a)), now) for a in assets]

    def earnings(self, assets: Sequence[Asset], start: date, end: date) -> list[CalendarEvent]:
        today = self.clock().date()
        out = []
        for a in assets:
            if a.config.special_rules.earnings_blackout_days is None:
                continue
            ahead = (
                2 if a.symbol in self.near_earnings else 30 + self._rng("e", a.symbol).randrange(40)
            )
            day = today + timedelta(days=ahead)
            if start <= day <= end:
                out.append(earnings_event(a, day, "1.00"))
        return out

    def calendar(self, assets: Sequence[Asset], start: date, end: date) -> list[CalendarEvent]:
        today = self.clock().date()
        every = ("stocks", "leveraged_etfs", "forex", "commodities", "meme_stocks")
        events = [("FOMC Press Release", today + timedelta(days=5), "macro", every),
                  ("Consumer Price Index", today + timedelta(days=9), "macro", every),
                  ("EIA Weekly Natural Gas Storage Report",
                   today + timedelta(days=(3 - today.weekday()) % 7 or 7), "energy",
                   ("commodities",))]  # fmt: skip
        return [CalendarEvent(release_time(day), "US", name,
                              "high" if kind == "macro" else "medium", kind,
                              affected_classes=classes, volatility_warning=True)
                for name, day, kind, classes in events if start <= day <= end]  # fmt: skip

    def sentiment(self, assets: Sequence[Asset]) -> list[Sentiment]:
        now = self.clock()
        out = []
        for a in assets:
            rng = self._rng("s", a.symbol, now.isoformat())
            score = D(repr(round(rng.uniform(-1, 1), 4)))
            out.append(Sentiment(now, a.symbol, "reddit", rng.randrange(0, 400), score,
                                 (score + 1) / 2, {"simulated": True}))  # fmt: skip
        return out

    def options_flow(self, assets: Sequence[Asset]) -> list[OptionPrint]:
        now = self.clock()
        out = []
        for a in assets:
            rng = self._rng("o", a.symbol, now.isoformat())
            ref = a.config.reference_price
            for n in range(2):
                kind = rng.choice(("call", "put"))
                out.append(OptionPrint(
                    time=now, symbol=a.symbol, trade_id=f"sim-{now:%Y%m%d%H%M%S}-{n}",
                    option_type=kind,
                    strike=(ref * D(rng.choice(("0.9", "1", "1.1")))).quantize(D(1)),
                    expiry=now.date() + timedelta(days=rng.choice((7, 30, 60))),
                    contracts=rng.randrange(100, 5000), premium=D(rng.randrange(50_000, 2_000_000)),
                    trade_type=rng.choice(("sweep", "block")), side="buy", underlying_price=ref,
                    sentiment="bullish" if kind == "call" else "bearish",
                ))  # fmt: skip
        return out

    def indicators(self, assets: Sequence[Asset]) -> list[Indicator]:
        now = self.clock()
        return [Indicator(now, a.symbol, a.config.leading_indicators[0],
                          D(self._rng("i", a.symbol, now.isoformat()).randrange(1, 100)),
                          metadata={"simulated": True}) for a in assets]  # fmt: skip
