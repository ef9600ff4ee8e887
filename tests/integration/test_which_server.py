"""Never mislead an operator (issue 15, item 1): a command says when it uses an
embedded server and where, refuses operator writes there unless told ``--embedded``,
and ``status`` of a portfolio that never saw an event says so and exits 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis

from consumers.cli.main import main
from consumers.servers import embedded
from tests.builders import ROOT
from tests.harness import Harness


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_status_when_portfolio_never_saw_an_event_then_says_so_and_exits_1(
    redis_url: str, portfolio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No state, nothing on any stream: one line naming the portfolio and the server,
    exit 1 (not a page of zeros and exit 0); `--json` still prints the report."""
    assert run(["status", "--portfolio", portfolio]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"riskgate: portfolio {portfolio} has never seen an event on {redis_url} (REDIS_URL): "
        "no state, nothing on any stream (is this the server and portfolio you mean? "
        "REDIS_URL, --portfolio, RISKGATE_PREFIX)\n"
    )
    assert run(["status", "--portfolio", portfolio, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["empty"] is True


def test_status_when_portfolio_has_an_event_then_exit_0(
    redis: Redis, portfolio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One deposit applied: the report, exit 0, `empty` false."""
    Harness(redis, portfolio).fund(market=False)
    capsys.readouterr()
    assert run(["status", "--portfolio", portfolio, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["empty"] is False and err == ""


WRITES = [
    ["halt"],
    ["resume", "--reason", "r"],
    ["release", "some-intent", "--reason", "dead"],
    ["enable", "NVDA"],
    ["disable", "BTC/USDT"],
    ["flag", "earnings", "NVDA", "2026-12-01"],
    ["deposit", "100", "--reference", "r1"],
    ["fill", "i1", "BTC/USDT", "buy", "1", "100000", "--fill-id", "f1"],
    ["mark", "BTC/USDT=100000"],
    ["submit", "BTC/USDT", "buy", "0.01", "--price", "100000"],
    ["phase", "activate", "phase_1_stocks"],
    ["portfolios", "add", "p1"],
]


@pytest.fixture
def no_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No REDIS_URL or DATABASE_URL; a fresh data directory."""
    for name in ("REDIS_URL", "DATABASE_URL", "RISKGATE_EMBEDDED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RISKGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


@pytest.mark.parametrize("argv", WRITES, ids=[" ".join(w[:2]) for w in WRITES])
def test_operator_write_when_no_url_then_refused_before_any_server_starts(
    argv: list[str], no_urls: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A halt or a deposit meant for production must not land on an empty embedded
    server: one line saying which server and how to choose, exit 2, nothing started."""
    assert run(argv) == 2
    err = capsys.readouterr().err
    command = " ".join(argv[:2]) if argv[0] in ("phase", "portfolios") else argv[0]
    assert err == (
        f"riskgate: refusing to run `{command}` on the embedded Redis in ./data/redis: "
        "REDIS_URL is not set. Set REDIS_URL (or --redis-url) to the server you mean, or add "
        "--embedded to use the embedded one\n"
    )
    assert not (no_urls / "redis").exists()
    assert embedded.status(no_urls)["redis"] == {
        "running": False, "url": embedded.redis_url_for(embedded.Layout(no_urls)), "users": []
    }  # fmt: skip


def _riskgate(data: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "consumers.cli", *args, "--data-dir", str(data)],
        env=base | env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_embedded_when_used_then_every_command_says_so_and_writes_need_opting_in(
    tmp_path: Path,
) -> None:
    """Without REDIS_URL: `status` names the embedded server and the empty portfolio
    (exit 1); `halt --embedded` and RISKGATE_EMBEDDED=1 opt in; each says where it is."""
    data = tmp_path / "data"
    banner = f"riskgate: using the embedded Redis in {data}/redis (REDIS_URL is not set)"
    first = _riskgate(data, "status", "--portfolio", "p")
    assert first.returncode == 1, first.stderr
    assert first.stderr.splitlines() == [
        banner,
        f"riskgate: portfolio p has never seen an event on the embedded Redis in {data}/redis: "
        "no state, nothing on any stream (is this the server and portfolio you mean? "
        "REDIS_URL, --portfolio, RISKGATE_PREFIX)",
    ]
    halted = _riskgate(data, "halt", "--portfolio", "p", "--embedded")
    assert halted.returncode == 0 and halted.stderr.splitlines()[0] == banner, halted.stderr
    opted = _riskgate(data, "deposit", "5", "--reference", "r", "--portfolio", "p",
                      RISKGATE_EMBEDDED="1")  # fmt: skip
    assert opted.returncode == 0 and opted.stderr.splitlines()[0] == banner, opted.stderr
    seen = _riskgate(data, "status", "--portfolio", "p", "--json")
    assert seen.returncode == 0 and seen.stderr.splitlines() == [banner]
    assert json.loads(seen.stdout)["halted"] is True
