"""FRED (St. Louis Fed): the macro calendar and macro leading indicators (``fred_api``).
Plain httpx: ``fredapi`` returns pandas objects (a heavy dependency for two JSON calls).

* Calendar: ``GET /fred/releases/dates`` with ``include_release_dates_with_no_data=true``
  (scheduled dates; documented at https://fred.stlouisfed.org/docs/api/fred/releases_dates.html):
  ``release_dates[]`` of ``{release_id, release_name, date}``. Only the releases in
  :data:`RELEASES` become events (the ones that move the configured classes).
* Indicators: ``GET /fred/series/observations`` (documented at
  https://fred.stlouisfed.org/docs/api/fred/series_observations.html): ``observations[]``
  of ``{date, value}``, ``"."`` for a missing value; the series in :data:`SERIES`, for
  the assets whose ``leading_indicators`` name them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from consumers.market.sources.base import (
    Asset,
    CalendarEvent,
    Indicator,
    Kind,
    MalformedResponse,
    NotConfigured,
    Source,
    decimal,
    field_of,
    list_of,
)
from consumers.market.sources.gateway import Gateway

BASE = "https://api.stlouisfed.org/fred"
ENV_KEY = "FRED_API_KEY"
EVERYTHING = ("stocks", "leveraged_etfs", "forex", "commodities", "meme_stocks")
# release id -> (event name, impact, affected classes)
RELEASES: dict[int, tuple[str, str, tuple[str, ...]]] = {
    10: ("Consumer Price Index", "high", EVERYTHING),
    50: ("Employment Situation", "high", EVERYTHING),
    53: ("Gross Domestic Product", "high", EVERYTHING),
    101: ("FOMC Press Release", "high", EVERYTHING),
    46: ("Producer Price Index", "medium", ("stocks", "leveraged_etfs", "commodities")),
    9: ("Advance Monthly Sales for Retail and Food Services", "medium",
        ("stocks", "leveraged_etfs", "meme_stocks")),
}  # fmt: skip
# leading indicator name (as configured) -> FRED series id
SERIES = {
    "VIX level": "VIXCLS",
    "Fed policy": "DFF",
    "real yields": "DFII10",
    "US dollar index": "DTWEXBGS",
    "mortgage rates": "MORTGAGE30US",
}


class Fred(Source):
    name = "fred_api"
    serves = frozenset({Kind.CALENDAR, Kind.INDICATORS})

    def __init__(self, gateway: Gateway, env: Mapping[str, str]) -> None:
        self.gateway = gateway
        self.key = env.get(ENV_KEY, "").strip()

    def problem(self) -> str | None:
        return None if self.key else f"{ENV_KEY} is not set"

    def _get(self, path: str, *, missing_ok: bool = False, **params: str) -> object:
        if not self.key:
            raise NotConfigured(f"{self.name}: {ENV_KEY} is not set")
        return self.gateway.json(
            self.name, BASE + path, params={**params, "api_key": self.key, "file_type": "json"},
            missing_ok=missing_ok,
        )  # fmt: skip

    def calendar(self, assets: Sequence[Asset], start: date, end: date) -> list[CalendarEvent]:
        body = self._get(
            "/releases/dates", realtime_start=start.isoformat(), realtime_end=end.isoformat(),
            include_release_dates_with_no_data="true", order_by="release_date",
            sort_order="asc", limit="1000",
        )  # fmt: skip
        what = f"{self.name} releases/dates"
        out: list[CalendarEvent] = []
        for i, r in enumerate(list_of(field_of(body, "release_dates", what), what)):
            rw = f"{what} release_dates[{i}]"
            known = RELEASES.get(field_of(r, "release_id", rw))
            if known is None:
                continue
            try:
                d = date.fromisoformat(str(field_of(r, "date", rw)))
            except ValueError:
                raise MalformedResponse(f"{rw}.date is not a date") from None
            name, impact, classes = known
            out.append(CalendarEvent(
                event_time=datetime(d.year, d.month, d.day, tzinfo=UTC), country="US",
                event_name=name, impact=impact, kind="macro", affected_classes=classes,
                volatility_warning=impact == "high",
            ))  # fmt: skip
        return out

    def indicators(self, assets: Sequence[Asset]) -> list[Indicator]:
        wanted: dict[str, list[Asset]] = {}
        for a in assets:
            for name in a.config.leading_indicators:
                if name in SERIES:
                    wanted.setdefault(name, []).append(a)
        since = (self.gateway.clock() - timedelta(days=14)).date().isoformat()
        out: list[Indicator] = []
        for name, users in sorted(wanted.items()):
            series = SERIES[name]
            body = self._get("/series/observations", series_id=series, observation_start=since,
                             sort_order="desc", limit="5", missing_ok=True)  # fmt: skip
            if body is None:
                continue
            what = f"{self.name} {series}"
            for i, ob in enumerate(list_of(field_of(body, "observations", what), what)):
                ow = f"{what} observations[{i}]"
                raw = field_of(ob, "value", ow)
                if raw == ".":
                    continue  # FRED's missing value
                try:
                    d = date.fromisoformat(str(field_of(ob, "date", ow)))
                except ValueError:
                    raise MalformedResponse(f"{ow}.date is not a date") from None
                value = decimal(raw, f"{ow}.value", signed=True)
                at = datetime(d.year, d.month, d.day, tzinfo=UTC)
                out += [Indicator(at, a.symbol, name, value, metadata={"series": series})
                        for a in users]  # fmt: skip
                break  # the newest observation is enough
        return out
