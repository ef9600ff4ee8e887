"""Embedded servers shared by several processes started with one data directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from consumers.servers import embedded
from tests.builders import ROOT


def _riskgate(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumers.cli", "--data-dir", str(data), *args],
        check=False, cwd=ROOT, env=_no_urls(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _no_urls() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}


def test_processes_when_same_data_dir_then_share_servers_and_last_one_out_stops_them(
    tmp_path: Path,
) -> None:
    """A gate worker and a later `riskgate deposit` share one embedded Redis: the worker
    applies the deposit; when the worker exits the server stops; the data survives."""
    data = tmp_path / "data"
    log = (tmp_path / "gate.log").open("wb")
    gate = subprocess.Popen(
        [sys.executable, "-m", "consumers.cli", "--data-dir", str(data), "gate",
         "--portfolio", "p1", "--block-ms", "50"],
        cwd=ROOT, env=_no_urls(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not embedded.status(data)["redis"]["users"]:  # type: ignore[index]
            assert gate.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert (
            _riskgate(
                data, "deposit", "2500", "--reference", "d1", "--portfolio", "p1", "--embedded"
            ).returncode
            == 0
        )
        info = embedded.status(data)["redis"]
        assert isinstance(info, dict) and info["running"] and len(info["users"]) == 1
        while True:
            status = json.loads(_riskgate(data, "status", "--portfolio", "p1", "--json").stdout)
            if status["equity"] == "2500":
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        gate.send_signal(signal.SIGTERM)
        code = gate.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "gate.log").read_text()[-2000:]
    assert embedded.status(data)["redis"] == {
        "running": False, "url": embedded.redis_url_for(embedded.Layout(data)), "users": []
    }  # fmt: skip
    again = json.loads(_riskgate(data, "status", "--portfolio", "p1", "--json").stdout)
    assert again["streams"]["events"]["length"] == 1  # AOF: the deposit is still there


def test_servers_command_when_started_then_pinned_until_stopped(tmp_path: Path) -> None:
    """`riskgate servers start` keeps both running past its exit; `stop` stops them."""
    data = tmp_path / "data"
    try:
        started = _riskgate(data, "servers", "start")
        assert started.returncode == 0, started.stderr
        info = json.loads(_riskgate(data, "servers", "--json").stdout)
        assert info["redis"]["running"] and info["postgres"]["running"]
        migrated = _riskgate(data, "migrate")  # joins; leaves them running
        assert migrated.returncode == 0, migrated.stderr
        # says which server, and names the socket's database, not ".../postgres:5432/riskgate"
        assert migrated.stderr.splitlines() == [
            f"riskgate: using the embedded PostgreSQL in {data}/postgres (DATABASE_URL is not set)"
        ]
        assert (
            migrated.stdout.startswith("riskgate on socket /") and ":5432/" not in migrated.stdout
        )
        assert embedded.status(data)["postgres"]["running"]  # type: ignore[index]
    finally:
        stopped = _riskgate(data, "servers", "stop")
    assert stopped.stdout.split() == ["redis:", "stopped", "postgres:", "stopped"]
    assert not embedded.status(data)["postgres"]["running"]  # type: ignore[index]
