"""The Procfile under honcho: gate, audit, phase monitor and correlations run together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.client import GateClient
from schemas.messages import Status
from tests.builders import ROOT
from tests.integration.pg import scalar, temp_database
from tests.integration.redis_server import free_port


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temp_database("procfile", prepared=False) as url:  # the processes migrate it
        yield url


def test_procfile_when_all_processes_run_under_honcho_then_decisions_and_days_recorded(
    redis_url: str, portfolio: str, pg_url: str, tmp_path: Path
) -> None:
    """honcho start: the gate decides, the audit writer records the decision, the phase
    monitor records the day's close; SIGTERM stops them all."""
    procfile = (ROOT / "Procfile").read_text()
    for line in ("gate: riskgate gate", "audit: riskgate audit", "phase: riskgate phase-monitor"):
        assert f"{line} --metrics-port $PORT" in procfile.splitlines()  # honcho: 5000, 5100, ...
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": pg_url,
        "RISKGATE_PORTFOLIO": portfolio,
        "PORT": str(free_port()),  # honcho's base port: metrics on PORT, PORT+100, PORT+200
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }
    log = tmp_path / "honcho.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [os.path.join(bin_dir, "honcho"), "start"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            client = GateClient(redis_url, portfolio)
            client.deposit("100000")
            iid = client.submit("ETH/USDT", "buy", "0.1", price="3900")
            decision = client.wait_decision(iid, 60)
            assert decision is not None, log.read_text()
            assert decision.status is Status.APPROVED
            client.mark({"ETH/USDT": "3900"}, at=datetime.now(UTC))
            deadline = time.monotonic() + 60
            while not _recorded(pg_url, portfolio, iid):
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    text = log.read_text()
    assert code is not None  # honcho's own status reflects the shells it ran, not ours
    for name in ("audit.1", "phase.1"):
        assert any(name in line and "consumer stopped" in line for line in text.splitlines())
    assert "gate worker stopped" in text
    assert "correlations.1" in text and "Traceback" not in text


def _recorded(url: str, portfolio: str, intent_id: str) -> bool:
    try:
        decided = scalar(url, "SELECT count(*) FROM trading_decisions WHERE intent_id = %s",
                         (intent_id,))  # fmt: skip
        days = scalar(url, "SELECT count(*) FROM daily_equity WHERE portfolio = %s", (portfolio,))
    except Exception:  # schema not there yet: the processes are still starting
        return False
    return bool(decided == 1 and days == 1)
