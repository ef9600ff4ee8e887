"""The Procfile under honcho: gate, audit, phase monitor and correlations run together."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.sdk.client import GateClient
from schemas.messages import Status
from tests.builders import ROOT, market_prices
from tests.integration.conftest import honcho
from tests.integration.pg import scalar, temp_database

pytestmark = pytest.mark.pg  # once per server: PostgreSQL, TimescaleDB


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temp_database("procfile", prepared=False) as url:  # the processes migrate it
        yield url


def test_procfile_when_all_processes_run_under_honcho_then_decisions_and_days_recorded(
    redis_url: str, portfolio: str, pg_url: str, tmp_path: Path
) -> None:
    """honcho start: the gate decides, the audit writer records the decision, the phase
    monitor records the day's close; SIGTERM stops them all, each exiting 0 (rc=0)."""
    procfile = (ROOT / "Procfile").read_text()
    for line in (
        "gate: exec riskgate gate",
        "audit: exec riskgate audit",
        "phase: exec riskgate phase-monitor",
        "feed: exec riskgate feed",
    ):  # exec: honcho's SIGTERM reaches riskgate itself, not a shell around it
        assert f"{line} --metrics-port $PORT" in procfile.splitlines()  # honcho: 5000, 5100, ...
    env = {"REDIS_URL": redis_url, "DATABASE_URL": pg_url, "RISKGATE_PORTFOLIO": portfolio,
           "RISKGATE_FEED_SOURCE": "sim"}  # the simulated market: no network in a test  # fmt: skip
    log = tmp_path / "honcho.log"
    with honcho(log, env) as proc:
        client = GateClient(redis_url, portfolio)
        client.deposit("100000", reference="d1")
        client.mark(market_prices())
        iid = client.submit("ETH/USDT", "buy", "0.1", price="3900")
        decision = client.wait_decision(iid, 60)
        assert decision is not None, log.read_text()
        assert decision.status is Status.APPROVED
        client.mark({"ETH/USDT": "3900"}, at=datetime.now(UTC))
        deadline = time.monotonic() + 60
        while not _recorded(pg_url, portfolio, iid):
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.1)
    text = log.read_text()
    assert proc.returncode is not None  # honcho's own: 143 after the SIGTERM it was sent
    for name in ("audit.1", "phase.1"):
        assert any(name in line and "consumer stopped" in line for line in text.splitlines())
    assert "gate worker stopped" in text
    for name in ("gate.1", "audit.1", "phase.1", "correlations.1", "feed.1"):  # not rc=-15
        assert f"{name} stopped (rc=0)" in text, text[-4000:]
    assert "Traceback" not in text
    assert any("feed.1" in line and "database ready" in line for line in text.splitlines())


def _recorded(url: str, portfolio: str, intent_id: str) -> bool:
    try:
        decided = scalar(url, "SELECT count(*) FROM trading_decisions WHERE intent_id = %s",
                         (intent_id,))  # fmt: skip
        days = scalar(url, "SELECT count(*) FROM daily_equity WHERE portfolio = %s", (portfolio,))
    except Exception:  # schema not there yet: the processes are still starting
        return False
    return bool(decided == 1 and days == 1)
