"""EIA (US Energy Information Administration) API v2: the weekly energy reports
(``eia_api``). Plain httpx: there is no maintained client for v2, one GET route per
dataset (documented at https://www.eia.gov/opendata/documentation.php).

``GET /v2/{route}/data/?frequency=weekly&data[0]=value&facets[series][]=..&sort[0][column]
=period&sort[0][direction]=desc&length=2`` answers ``{"response": {"data": [{"period",
"series", "value", "units"}, ...]}}``. From the two newest weeks come

* the leading indicator the asset names (``EIA weekly storage report`` for natural gas,
  ``EIA crude inventories`` for crude oil), dated by the week it describes;
* calendar events: the report that published the newest week (``actual``, ``previous``)
  and the next one on the report's documented schedule (natural gas storage: Thursdays
  10:30 America/New_York, https://ir.eia.gov/ngs/methodology.html; petroleum status:
  Wednesdays 10:30). A federal holiday moves a report; the next date is then a day early,
  never late (a blackout built on it starts in time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

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

BASE = "https://api.eia.gov/v2"
ENV_KEY = "EIA_API_KEY"
NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True, slots=True)
class Report:
    indicator: str  # as in the assets' leading_indicators
    event_name: str
    route: str
    series: str
    weekday: int  # Monday 0
    lag_days: int  # from the week's period to its report


REPORTS = (
    Report("EIA weekly storage report", "EIA Weekly Natural Gas Storage Report",
           "natural-gas/stor/wkly", "NW2_EPG0_SWO_R48_BCF", 3, 6),
    Report("EIA crude inventories", "EIA Weekly Petroleum Status Report (crude stocks)",
           "petroleum/stoc/wstk", "WCESTUS1", 2, 5),
)  # fmt: skip


def release_time(day: date) -> datetime:
    return datetime.combine(day, time(10, 30), NEW_YORK).astimezone(UTC)


class Eia(Source):
    name = "eia_api"
    serves = frozenset({Kind.CALENDAR, Kind.INDICATORS})
    classes = frozenset({"commodities"})

    def __init__(self, gateway: Gateway, env: Mapping[str, str]) -> None:
        self.gateway = gateway
        self.key = env.get(ENV_KEY, "").strip()

    def problem(self) -> str | None:
        return None if self.key else f"{ENV_KEY} is not set"

    def _reports(self, assets: Sequence[Asset]) -> list[tuple[Report, list[Asset]]]:
        out = []
        for r in REPORTS:
            users = [a for a in assets if r.indicator in a.config.leading_indicators]
            if users:
                out.append((r, users))
        return out

    def _weeks(self, report: Report) -> list[tuple[date, object, str | None]]:
        if not self.key:
            raise NotConfigured(f"{self.name}: {ENV_KEY} is not set")
        params = {"api_key": self.key, "frequency": "weekly", "data[0]": "value",
                  "facets[series][]": report.series, "sort[0][column]": "period",
                  "sort[0][direction]": "desc", "offset": "0", "length": "2"}  # fmt: skip
        body = self.gateway.json(self.name, f"{BASE}/{report.route}/data/", params=params)
        what = f"{self.name} {report.series}"
        rows = list_of(field_of(field_of(body, "response", what), "data", what), what)
        out = []
        for i, row in enumerate(rows):
            rw = f"{what} data[{i}]"
            try:
                period = date.fromisoformat(str(field_of(row, "period", rw)))
            except ValueError:
                raise MalformedResponse(f"{rw}.period is not a date") from None
            out.append((period, field_of(row, "value", rw), row.get("units")))
        if not out:
            raise MalformedResponse(f"{what}: no data")
        return out

    def indicators(self, assets: Sequence[Asset]) -> list[Indicator]:
        out: list[Indicator] = []
        for report, users in self._reports(assets):
            period, value, units = self._weeks(report)[0]
            v = decimal(value, f"{self.name} {report.series} value", positive=False)
            at = datetime.combine(period, time(), UTC)
            out += [Indicator(at, a.symbol, report.indicator, v,
                              metadata={"series": report.series, "units": units})
                    for a in users]  # fmt: skip
        return out

    def calendar(self, assets: Sequence[Asset], start: date, end: date) -> list[CalendarEvent]:
        out: list[CalendarEvent] = []
        for report, _users in self._reports(assets):
            weeks = self._weeks(report)
            what = f"{self.name} {report.series}"
            values = [decimal(v, f"{what} value", positive=False) for _, v, _ in weeks]
            units = weeks[0][2]
            published = weeks[0][0] + timedelta(days=report.lag_days)
            today = self.gateway.clock().date()
            upcoming = today + timedelta(days=(report.weekday - today.weekday()) % 7)
            if release_time(upcoming) <= self.gateway.clock():
                upcoming += timedelta(days=7)
            for day, actual, previous in (
                (published, values[0], values[1] if len(values) > 1 else None),
                (upcoming, None, values[0]),
            ):
                if start <= day <= end and (day != published or actual is not None):
                    out.append(CalendarEvent(
                        event_time=release_time(day), country="US", event_name=report.event_name,
                        impact="medium", kind="energy", affected_classes=("commodities",),
                        actual=actual, previous=previous, unit=units, volatility_warning=True,
                    ))  # fmt: skip
        return out
