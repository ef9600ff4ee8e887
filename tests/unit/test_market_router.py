"""Failover between sources: the asset's configured order, missing credentials skipped,
failures and partial answers handed on (logged, counted), nobody left -> a reason."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from consumers.market.router import Router
from consumers.market.sources.base import Asset, Kind, Quote, Source, SourceFailed
from consumers.market.sources.gateway import UsageBook
from tests.builders import base_config

NOW = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)


def asset(symbol: str) -> Asset:
    cfg = base_config().assets[symbol]
    return Asset(symbol, cfg.asset_class.value, cfg)


class Fake(Source):
    serves = frozenset({Kind.LATEST})

    def __init__(self, name: str, *, fail: bool = False, missing: str | None = None,
                 skip: Sequence[str] = ()) -> None:  # fmt: skip
        self.name, self.fail, self.missing, self.skip = name, fail, missing, set(skip)
        self.asked: list[list[str]] = []

    def problem(self) -> str | None:
        return self.missing

    def latest(self, assets: Sequence[Asset]) -> list[Quote]:
        self.asked.append([a.symbol for a in assets])
        if self.fail:
            raise SourceFailed(f"{self.name}: HTTP 503 error: down")
        return [Quote(a.symbol, Decimal(1), NOW) for a in assets if a.symbol not in self.skip]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def fetch(router: Router, *symbols: str):  # type: ignore[no-untyped-def]
    return router.fetch(Kind.LATEST, [asset(s) for s in symbols],
                        lambda s, g: s.latest(g), lambda q: q.symbol)  # fmt: skip


def test_fetch_when_first_source_fails_then_next_configured_serves_and_switch_counted() -> None:
    """Polygon down: NVDA's next source (Alpha Vantage) serves it; the switch is counted
    and the failure is in the usage book."""
    polygon, av = Fake("polygon_io", fail=True), Fake("alpha_vantage")
    usage = UsageBook()
    router = Router({"polygon_io": polygon, "alpha_vantage": av}, usage, Clock())
    routed = fetch(router, "NVDA", "TQQQ")
    assert sorted(q.symbol for q in routed.values()) == ["NVDA", "TQQQ"]
    assert {(c.symbol, c.source, c.ok) for c in routed.coverage} == {
        ("NVDA", "alpha_vantage", True), ("TQQQ", "alpha_vantage", True)}  # fmt: skip
    assert router.failovers[("latest", "polygon_io", "alpha_vantage")] == 2
    assert usage.take()["polygon_io"].errors == 1  # one failed call for both symbols
    assert router.health["polygon_io"].state == "failing"


def test_fetch_when_source_not_configured_then_skipped_without_an_error() -> None:
    """Missing credentials: never asked, not an error, and the reason is reported."""
    polygon, av = Fake("polygon_io", missing="POLYGON_API_KEY is not set"), Fake("alpha_vantage")
    usage = UsageBook()
    router = Router({"polygon_io": polygon, "alpha_vantage": av}, usage, Clock())
    routed = fetch(router, "NVDA")
    assert not polygon.asked and [c.source for c in routed.coverage] == ["alpha_vantage"]
    assert "polygon_io" not in usage.take() or usage.take()["polygon_io"].errors == 0


def test_fetch_when_answer_leaves_a_symbol_out_then_only_that_symbol_fails_over() -> None:
    """A partial answer: the missing symbol goes to the next source, the rest is kept."""
    polygon, av = Fake("polygon_io", skip=["TQQQ"]), Fake("alpha_vantage")
    router = Router({"polygon_io": polygon, "alpha_vantage": av}, UsageBook(), Clock())
    routed = fetch(router, "NVDA", "TQQQ")
    assert {c.symbol: c.source for c in routed.coverage} == {
        "NVDA": "polygon_io", "TQQQ": "alpha_vantage"}  # fmt: skip
    assert av.asked == [["TQQQ"]]


def test_fetch_when_every_source_down_then_no_data_and_every_reason_kept() -> None:
    """All down: nothing for the asset (its mark ages: the gate fails closed) and the
    coverage says why, source by source."""
    polygon = Fake("polygon_io", fail=True)
    av = Fake("alpha_vantage", missing="ALPHA_VANTAGE_KEY is not set")
    router = Router({"polygon_io": polygon, "alpha_vantage": av}, UsageBook(), Clock())
    routed = fetch(router, "NVDA")
    assert routed.values() == []
    (cov,) = routed.coverage
    assert not cov.ok and cov.source is None
    assert "polygon_io: HTTP 503" in (cov.reason or "")
    assert "alpha_vantage: not configured (ALPHA_VANTAGE_KEY is not set)" in (cov.reason or "")


def test_fetch_when_source_failed_recently_then_cooling_down_until_retry() -> None:
    """A failed source is not asked again for 30 s; after that it is, and a success
    clears its state."""
    clock = Clock()
    polygon, av = Fake("polygon_io", fail=True), Fake("alpha_vantage")
    router = Router({"polygon_io": polygon, "alpha_vantage": av}, UsageBook(), clock)
    fetch(router, "NVDA")
    fetch(router, "NVDA")
    assert len(polygon.asked) == 1
    clock.now += timedelta(seconds=31)
    polygon.fail = False
    routed = fetch(router, "NVDA")
    assert len(polygon.asked) == 2 and routed.coverage[0].source == "polygon_io"
    assert router.health["polygon_io"].state == "ok"


def test_fetch_when_only_sim_then_every_asset_uses_it() -> None:
    """``--source sim``: the configured order is replaced for every asset."""
    sim, polygon = Fake("sim"), Fake("polygon_io")
    router = Router({"sim": sim, "polygon_io": polygon}, UsageBook(), Clock(), only=["sim"])
    routed = fetch(router, "NVDA", "BTC/USDT")
    assert {c.source for c in routed.coverage} == {"sim"} and not polygon.asked


def test_fetch_when_adapter_raises_unexpectedly_then_treated_as_failure() -> None:
    """An unexpected exception inside an adapter fails over too; nothing is approved by
    accident (no data, a reason)."""

    class Broken(Fake):
        def latest(self, assets: Sequence[Asset]) -> list[Quote]:
            raise KeyError("surprise")

    router = Router({"polygon_io": Broken("polygon_io"), "alpha_vantage": Fake("alpha_vantage")},
                    UsageBook(), Clock())  # fmt: skip
    routed = fetch(router, "NVDA")
    assert routed.coverage[0].source == "alpha_vantage"
    assert "KeyError" in (router.health["polygon_io"].reason or "")


def test_feed_metrics_when_a_switch_happened_then_exported_with_labels() -> None:
    """The feed's /metrics: failovers by kind and sources, source errors, source states."""
    import fakeredis
    from prometheus_client import CollectorRegistry, generate_latest

    from consumers.bus.keys import Keys
    from consumers.market.feed_telemetry import FeedTelemetry

    router = Router({"polygon_io": Fake("polygon_io", fail=True),
                     "alpha_vantage": Fake("alpha_vantage")}, UsageBook(), Clock())  # fmt: skip
    fetch(router, "NVDA")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FeedTelemetry(fakeredis.FakeRedis(), Keys("m1"), router, {"marks": 3}))
    text = generate_latest(registry).decode()
    assert ('riskgate_feed_failovers_total{from_source="polygon_io",kind="latest",portfolio="m1",'
            'role="feed",to_source="alpha_vantage"} 1.0') in text  # fmt: skip
    assert (
        'riskgate_feed_source_errors_total{portfolio="m1",role="feed",source="polygon_io"} 1.0'
        in text
    )
    assert ('riskgate_feed_source_state{portfolio="m1",role="feed",source="polygon_io",'
            'state="failing"} 1.0') in text  # fmt: skip
    assert 'riskgate_feed_marks_published_total{portfolio="m1",role="feed"} 3.0' in text
