"""The CLI's conventions (issue 15, items 2, 3 and 5), on the real CLI against the real
Redis: every bad argument, URL or value is one line naming it and the form expected,
with a suggestion where one exists, and exit 2; global options go before or after the
command; summaries are one line; money reads to its precision; no stray log line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from redis import Redis

from consumers.cli.main import build_parser, main
from tests.builders import ROOT
from tests.harness import Harness
from tests.integration.conftest import Workers


def run(argv: list[str]) -> int:
    """``riskgate ARGV`` in this process: its exit status (argparse's SystemExit too)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def base_of(url: str) -> str:
    parts = urlsplit(url)
    return f"redis://{parts.netloc}"


BAD = [  # (case, arguments after the command, what the one line must say)
    ("http URL", ["status", "--redis-url", "http://127.0.0.1:6379"],
     ["--redis-url http://127.0.0.1:6379: not a Redis URL",
      "did you mean redis://127.0.0.1:6379/0?", "expected redis://[:PASSWORD@]HOST[:PORT][/DB]"]),
    ("database 99", ["status", "--redis-url", "{base}/99"],
     ["the server has no database 99", "/0 to /15"]),
    ("database by name", ["status", "--redis-url", "{base}/abc"],
     ["database 'abc' is not a number"]),
    ("port out of range", ["status", "--redis-url", "redis://127.0.0.1:99999/0"],
     ["port '99999' is not a number from 1 to 65535"]),
    ("PostgreSQL http URL", ["migrate", "--database-url", "http://x/y"],
     ["--database-url http://x/y: scheme http:// is not a PostgreSQL one",
      "expected postgresql://"]),
    ("earnings date as a word", ["flag", "earnings", "NVDA", "tomorrow"],
     ["'tomorrow' is not a date", "expected the form YYYY-MM-DD"]),
    ("regime typo", ["flag", "regime", "TQQQ", "trendy"],
     ["'trendy' is not a regime", "did you mean trending?"]),
    ("flag symbol case", ["flag", "earnings", "nvda", "2026-12-01"],
     ["symbol 'nvda' is not configured; did you mean NVDA?"]),
    ("enable symbol case", ["enable", "nvda"],
     ["'nvda' is not a configured symbol", "did you mean NVDA?"]),
    ("enable nothing like it", ["enable", "zzzz"], ["classes: crypto", "phases: phase_0_crypto"]),
    ("negative timeout", ["submit", "BTC/USDT", "buy", "0.01", "--price", "100000", "--wait",
                          "--timeout", "-1"],
     ["argument --timeout: '-1' must be >= 0 seconds"]),
    ("timeout as a word",
     ["submit", "BTC/USDT", "buy", "0.01", "--price", "1", "--timeout", "soon"],
     ["'soon' is not a number of seconds"]),
    ("price as a word", ["submit", "BTC/USDT", "buy", "0.01", "--price", "abc"],
     ["argument --price: 'abc' is not a number (expected a decimal such as 100000 or 0.01)"]),
    ("side typo", ["submit", "BTC/USDT", "bye", "0.01", "--price", "1"],
     ["'bye' is not one of buy, sell; did you mean 'buy'?"]),
    ("symbol case", ["submit", "btc/usdt", "buy", "0.01", "--price", "1"],
     ["symbol 'btc/usdt' is not configured; did you mean BTC/USDT?"]),
    ("mark symbol case", ["mark", "eth/usdt=3900"], ["did you mean ETH/USDT?"]),
    ("mark without =", ["mark", "ETH/USDT"], ["expected SYMBOL=PRICE"]),
    ("command typo", ["stauts"], ["'stauts' is not one of", "did you mean 'status'?"]),
    ("unknown option", ["status", "--bogus"],
     ["riskgate status: unrecognized arguments: --bogus", "riskgate status --help"]),
    ("option typo", ["status", "--portfolo", "x"],
     ["unrecognized arguments: --portfolo x; did you mean --portfolo -> --portfolio?"]),
    ("metrics port", ["gate", "--metrics-port", "99999"],
     ["'99999' must be a whole number from 0 to 65535"]),
    ("negative period", ["correlations", "--every", "-5"], ["'-5' must be > 0 seconds"]),
    ("no workers", ["demo", "--workers", "0"], ["'0' must be a whole number from 1 to 64"]),
    ("batch of none", ["audit", "--batch", "0"], ["'0' must be a whole number from 1 to"]),
    ("missing --price", ["submit", "BTC/USDT", "buy", "1"],
     ["the following arguments are required: --price"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "argv", "says"), BAD, ids=[c for c, _, _ in BAD])
def test_cli_when_an_argument_is_bad_then_one_line_naming_it_and_exit_2(
    case: str,
    argv: list[str],
    says: list[str],
    redis_url: str,
    portfolio: str,
    redis: Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each bad argument, URL or value of issue 15: exit 2, one line on stderr naming the
    problem and the form expected (and a suggestion), nothing on stdout, nothing written."""
    argv = [a.replace("{base}", base_of(redis_url)) for a in argv]
    if argv[0] not in ("stauts", "migrate"):
        argv += ["--portfolio", portfolio]
    assert run(argv) == 2, case
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("riskgate"), err
    for text in says:
        assert text in err, err
    assert not redis.keys(f"riskgate:{{{portfolio}}}:*")  # refused before anything was sent


@pytest.mark.parametrize(
    "argv",
    [["status", "--redis-url", "http://127.0.0.1:6379"], ["status", "--redis-url", "{base}/99"]],
    ids=["http", "db-99"],
)
def test_console_script_when_redis_url_is_bad_then_exit_2_without_traceback(
    argv: list[str], redis_url: str
) -> None:
    """As a process (the issue saw tracebacks and exit 1): one line, exit 2."""
    argv = [a.replace("{base}", base_of(redis_url)) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-m", "consumers.cli", *argv],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


# --- global options before or after the command ----------------------------------------------


@pytest.mark.parametrize(
    ("argv", "config", "data_dir"),
    [
        (["demo", "--data-dir", "X"], None, "X"),
        (["--data-dir", "Y", "demo", "--quick"], None, "Y"),
        (["--config", "A.yaml", "demo", "--data-dir", "X"], "A.yaml", "X"),
        (["phase", "status", "--config", "C.yaml"], "C.yaml", None),
        (["status", "--embedded", "--data-dir", "Z"], None, "Z"),
    ],
)
def test_parser_when_global_option_after_the_command_then_taken(
    argv: list[str], config: str | None, data_dir: str | None
) -> None:
    """`riskgate demo --data-dir X` is `riskgate --data-dir X demo`; one given before the
    command is not undone by the command's own (absent) copy."""
    args = build_parser().parse_args(argv)
    assert (args.config, args.data_dir) == (config, data_dir)


def test_servers_when_data_dir_after_the_command_then_that_directory_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end: `riskgate servers --data-dir D --json` reports D."""
    monkeypatch.setenv("RISKGATE_DATA_DIR", str(tmp_path / "not-this"))
    assert run(["servers", "--data-dir", str(tmp_path / "d"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data_dir"] == str(tmp_path / "d")


# --- output: one line by default, money to its precision, no stray log line ---------------


def test_submit_wait_when_decided_then_one_line_and_json_on_request(
    redis_url: str, portfolio: str, workers: Workers
) -> None:
    """`submit --wait` prints the decision in one line (status, quantity to the lot,
    prices to the cent, reasons); `--json` the whole Decision."""
    workers.start()
    env = {**os.environ, "REDIS_URL": redis_url, "RISKGATE_PORTFOLIO": portfolio}
    cli = [sys.executable, "-m", "consumers.cli"]
    for argv in (["deposit", "100000", "--reference", "d1"], ["mark", "BTC/USDT=100000"]):
        subprocess.run([*cli, *argv], env=env, cwd=ROOT, check=True, capture_output=True)
    asked = [*cli, "submit", "BTC/USDT", "buy", "3", "--price", "100000", "--wait"]
    out = subprocess.run(
        asked, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    (line,) = out.stdout.splitlines()
    assert out.returncode == 0, out.stderr
    assert ": resized buy 0.20000 of 3.00000 BTC/USDT @ 100,000.00 stop 94,000.00 - " in line
    assert "max_order_quantity: " in line and "max_position: " in line
    out = subprocess.run(
        [*asked, "--json", "--intent-id", "j1", "--agent", "other"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    decision = json.loads(out.stdout)
    assert decision["intent_id"] == "j1" and decision["checks"]["equity"] == "100000"


def test_status_when_money_has_many_decimals_then_cents_and_lots(
    redis: Redis, portfolio: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Equity in the account currency to 2 decimals (not 7), quantities to the lot;
    `--json` keeps every exact value."""
    h = Harness(redis, portfolio)
    h.fund("100000.1234567")
    iid = h.intent(quantity="0.1")
    h.pump()
    h.client.fill(iid, "BTC/USDT", "buy", "0.1", "100000", fill_id="f1")
    h.pump()
    capsys.readouterr()
    assert run(["status", "--portfolio", portfolio]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith(f"portfolio {portfolio}: equity 100,000.12 USD, 1 positions")
    assert "1234567" not in out
    assert re.search(r"\n  BTC/USDT +0\.10000 @ 100,000\.00  mark 100,000\.00\n", out), out
    assert run(["status", "--portfolio", portfolio, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cash"] == "90000.1234567"


def test_halt_when_on_a_terminal_then_one_line_and_no_log_record_after_it(
    redis_url: str, portfolio: str
) -> None:
    """`riskgate halt` on a terminal prints what it did, once: no structlog line trails
    it (on a pipe the record goes to stderr as JSON, for whatever collects logs)."""
    env = {k: v for k, v in os.environ.items() if k != "RISKGATE_LOG_LEVEL"}
    env |= {"REDIS_URL": redis_url, "RISKGATE_OPERATOR": "ann"}
    argv = [sys.executable, "-m", "consumers.cli", "halt", "--portfolio", portfolio]
    primary, secondary = os.openpty()
    proc = subprocess.Popen(argv, stdin=secondary, stdout=secondary, stderr=secondary, env=env,
                            cwd=ROOT)  # fmt: skip
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert proc.wait(timeout=60) == 0
    line = f"{portfolio}: trading halted by ann; reduce-only intents still pass; version 1"
    assert seen.decode().splitlines() == [line]
    piped = subprocess.run([*argv, "--reason", "drill"], env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=60, check=True)  # fmt: skip
    again = f"{portfolio}: trading halted by ann (drill); reduce-only intents still pass; version 2"
    assert piped.stdout.splitlines() == [again]
    record = json.loads(piped.stderr.splitlines()[-1])
    assert (record["event"], record["operator"], record["reason"]) == ("halted", "ann", "drill")
