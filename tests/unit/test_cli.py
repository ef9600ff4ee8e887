"""The riskgate CLI's configuration commands, through main() and as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from consumers.cli.main import main
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
