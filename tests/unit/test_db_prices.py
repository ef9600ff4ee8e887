"""consumers.market.prices: reading a price CSV; every bad line named, nothing half-read."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from consumers.market.prices import PriceFileError, read_bars
from tests.builders import base_config

D = Decimal


def csv_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text(text)
    return path


def test_read_bars_when_file_valid_then_exact_bars_in_utc(tmp_path: Path) -> None:
    """Dates are midnight UTC, offsets are converted, decimals stay exact, defaults apply."""
    path = csv_file(
        tmp_path,
        "Symbol,Time,Open,High,Low,Close,Volume\n"
        "BTC/USDT,2026-01-05,100000,101000.5,99000,100500.25,12.5\n"
        "NVDA,2026-01-05T16:00:00-05:00,,,,132.10,\n"
        "\n",
    )
    btc, nvda = read_bars(path, base_config(), source="test")
    assert btc.time == datetime(2026, 1, 5, tzinfo=UTC)
    assert (btc.close, btc.high, btc.volume, btc.interval) == (
        D("100500.25"),
        D("101000.5"),
        D("12.5"),
        "1d",
    )
    assert (btc.asset_class, btc.source) == ("crypto", "test")
    assert nvda.time == datetime(2026, 1, 5, 21, tzinfo=UTC)
    assert (nvda.open, nvda.volume, nvda.asset_class) == (None, None, "stocks")


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("DOGE/USDT,2026-01-05,,,,1,", "symbol 'DOGE/USDT' is not configured"),
        ("BTC/USDT,yesterday,,,,1,", "time 'yesterday' is not an ISO-8601 time or date"),
        ("BTC/USDT,2026-01-05,,,,abc,", "close 'abc' is not a number"),
        ("BTC/USDT,2026-01-05,,,,,", "close is missing"),
        ("BTC/USDT,2026-01-05,,,,0,", "close must be > 0"),
        ("BTC/USDT,2026-01-05,,,,NaN,", "close 'NaN' is not a finite number"),
        ("BTC/USDT,2026-01-05,,,,1,-5", "volume must be >= 0"),
        ("BTC/USDT,2026-01-05,10,9,8,11,", "high 9 is below open, close or low"),
        ("BTC/USDT,2026-01-05,10,12,11,10.5,", "low 11 is above open or close"),
        ("BTC/USDT,2026-01-05,1", "3 fields, header has 7"),
    ],
)
def test_read_bars_when_row_bad_then_error_names_line_and_problem(
    tmp_path: Path, row: str, problem: str
) -> None:
    """A bad row is reported as FILE:LINE: problem, and nothing is returned."""
    path = csv_file(
        tmp_path,
        "symbol,time,open,high,low,close,volume\nETH/USDT,2026-01-05,,,,3900,\n" + row + "\n",
    )
    with pytest.raises(PriceFileError) as err:
        read_bars(path, base_config())
    assert f"{path}:3: {problem}" in str(err.value)
    assert str(err.value).endswith("nothing was loaded")


def test_read_bars_when_many_bad_rows_then_each_listed(tmp_path: Path) -> None:
    """Every bad line is named at once, duplicates included, so one pass fixes the file."""
    path = csv_file(
        tmp_path,
        "symbol,time,close\nBTC/USDT,2026-01-05,1\nBTC/USDT,2026-01-05,2\nX,2026-01-06,1\n",
    )
    with pytest.raises(PriceFileError) as err:
        read_bars(path, base_config())
    lines = str(err.value).splitlines()
    assert lines[0] == f"{path}:3: same bar as line 2"
    assert lines[1] == f"{path}:4: symbol 'X' is not configured"


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("symbol,close", "missing column(s) time"),
        ("symbol,time,close,colour", "unknown column(s) colour"),
        ("symbol,time,close,close", "repeated column(s) close"),
    ],
)
def test_read_bars_when_header_bad_then_refused_on_line_one(
    tmp_path: Path, header: str, problem: str
) -> None:
    """The header is checked first: missing, unknown and repeated columns."""
    path = csv_file(tmp_path, header + "\n")
    with pytest.raises(
        PriceFileError, match=rf"bars\.csv:1: header: {problem.replace('(', '.').replace(')', '.')}"
    ):
        read_bars(path, base_config())


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "empty file"), ("symbol,time,close\n", "no bars"), (None, "cannot read")],
)
def test_read_bars_when_file_empty_or_missing_then_refused(
    tmp_path: Path, text: str | None, problem: str
) -> None:
    """An empty, header-only or unreadable file is an error, not zero bars loaded."""
    path = tmp_path / "bars.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(PriceFileError, match=problem):
        read_bars(path, base_config())
