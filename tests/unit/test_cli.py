"""The riskgate CLI's configuration commands, through main() and as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from consumers.cli.main import build_parser, main
from tests.builders import CONFIG_PATH, ROOT


def test_assets_when_run_then_prints_the_source_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """`riskgate assets` prints the source document's summary block by block."""
    assert main(["assets"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "=== Asset Manager Summary ===\n"
        "total_assets: 22\n"
        "enabled_assets: 2\n"
        "enabled_classes: ['crypto']\n"
        "\n"
        "=== Enabled Assets ===\n"
        "- BTC/USDT (Bitcoin) - crypto\n"
        "- ETH/USDT (Ethereum) - crypto\n"
        "\n"
        "=== Phase 1 Stocks (Disabled) ===\n"
        "✗ NVDA (Nvidia Corporation) - $132\n"
        "✗ TSLA (Tesla Inc) - $400\n"
    )
    for title in (
        "Phase 2 Leveraged ETFs",
        "Phase 3 Forex Majors",
        "Phase 4 EM Forex",
        "Phase 5 Commodities",
        "Phase 6 Meme Stocks",
    ):
        assert f"=== {title} (Disabled) ===" in out
    assert out.count("✗ ") == 20


def test_config_validate_when_heat_negative_then_nonzero_exit_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`riskgate config validate` rejects max_portfolio_heat: -3 with file, line and key."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        CONFIG_PATH.read_text().replace("max_portfolio_heat: 0.25", "max_portfolio_heat: -3")
    )
    assert main(["config", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err
    assert "risk_management.max_portfolio_heat: Input should be greater than 0" in err


def test_config_validate_when_good_then_zero_exit_with_hash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A good file validates with a one-line summary."""
    assert main(["config", "validate", str(CONFIG_PATH)]) == 0
    assert "ok - 22 assets, 6 classes, 7 phases, 13 data sources" in capsys.readouterr().out


def test_riskgate_console_script_when_config_missing_then_exit_2() -> None:
    """The installed entry point reports a missing file and exits non-zero."""
    proc = subprocess.run(
        [sys.executable, "-m", "consumers.cli", "config", "validate", "/nonexistent.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 2
    assert "/nonexistent.yaml: cannot read" in proc.stderr


def test_portfolios_procfile_when_parsed_then_every_line_is_a_valid_command() -> None:
    """deploy/Procfile.portfolios (one process per role for every registered portfolio):
    each line parses with riskgate's own parser, serving the registry."""
    lines = (ROOT / "deploy" / "Procfile.portfolios").read_text().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["gate", "audit", "phase"]
    for line in lines:
        words = line.split(":", 1)[1].replace("$PORT", "5000").split()
        assert words[0] == "riskgate"
        args = build_parser().parse_args(words[1:])  # argparse: exits 2 on a bad flag
        assert args.all_portfolios and args.portfolio is None and args.metrics_port == 5000


def test_gate_when_portfolio_name_bad_then_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`riskgate gate --portfolio 'a b'` names the bad portfolio, exit 2, before connecting."""
    assert main(["gate", "--portfolio", "ok", "--portfolio", "a b",
                 "--redis-url", "redis://127.0.0.1:9/0"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err == "riskgate: --portfolio: portfolio name 'a b' must be 1-64 chars of A-Za-z0-9_.-\n"


def test_portfolios_when_add_without_names_then_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`riskgate portfolios add` with no NAME: one line, exit 2."""
    assert main(["portfolios", "add", "--redis-url", "redis://127.0.0.1:9/0"]) == 2
    assert capsys.readouterr().err == "riskgate: portfolios add needs at least one NAME\n"
