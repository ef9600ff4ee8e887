"""``riskgate prices load FILE.csv``: price bars into ``price_data``, all or nothing.

The CSV has a header row; column names are case-insensitive, in any order:

========== ======== ==================================================================
column     required meaning
========== ======== ==================================================================
symbol     yes      a configured symbol (``BTC/USDT``, ``NVDA``, ...)
time       yes      bar open time: ISO-8601 (``2026-01-05T00:00:00Z``; no offset = UTC)
                    or a date (``2026-01-05``, midnight UTC)
close      yes      closing price, > 0
open       no       > 0
high       no       > 0, at least open, close and low
low        no       > 0, at most open, close and high
volume     no       >= 0
interval   no       ``1m 5m 15m 30m 1h 4h 1d`` (default ``--interval``, else ``1d``)
source     no       where the bar came from (default ``--source``)
========== ======== ==================================================================

Every row is checked before anything is written; problems are reported as
``FILE:LINE: problem`` and nothing is loaded. A bar already stored (same symbol,
interval and time) is replaced by the file's. The load is one transaction.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from consumers.db.connection import Connection, ensure_partitions
from schemas.config import AssetsConfig

REQUIRED = ("symbol", "time", "close")
OPTIONAL = ("open", "high", "low", "volume", "interval", "source")
INTERVALS = ("1m", "5m", "15m", "30m", "1h", "4h", "1d")
MAX_REPORTED = 50


class PriceFileError(ValueError):
    """The file cannot be loaded; the message lists each problem with its line."""


@dataclass(frozen=True, slots=True)
class Bar:
    time: datetime
    symbol: str
    asset_class: str
    interval: str
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    close: Decimal
    volume: Decimal | None
    source: str | None


def _time(text: str) -> datetime:
    value = text.strip()
    if len(value) == 10:
        d = date.fromisoformat(value)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    t = datetime.fromisoformat(value)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _number(name: str, text: str, *, positive: bool) -> Decimal:
    if not text.strip():
        raise ValueError(f"{name} is missing")
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{name} {text!r} is not a finite number")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {text.strip()}")
    return value


def _optional(row: dict[str, str], name: str, *, positive: bool = True) -> Decimal | None:
    text = row.get(name, "").strip()
    return _number(name, text, positive=positive) if text else None


def _bar(row: dict[str, str], config: AssetsConfig, interval: str, source: str | None) -> Bar:
    symbol = row["symbol"].strip()
    asset = config.assets.get(symbol)
    if asset is None:
        raise ValueError(f"symbol {symbol!r} is not configured")
    try:
        at = _time(row["time"])
    except ValueError:
        raise ValueError(f"time {row['time']!r} is not an ISO-8601 time or date") from None
    bar = Bar(
        time=at,
        symbol=symbol,
        asset_class=asset.asset_class.value,
        interval=row.get("interval", "").strip() or interval,
        open=_optional(row, "open"),
        high=_optional(row, "high"),
        low=_optional(row, "low"),
        close=_number("close", row["close"], positive=True),
        volume=_optional(row, "volume", positive=False),
        source=row.get("source", "").strip() or source,
    )
    if bar.interval not in INTERVALS:
        raise ValueError(f"interval {bar.interval!r} is not one of {', '.join(INTERVALS)}")
    others = [p for p in (bar.open, bar.close, bar.low) if p is not None]
    if bar.high is not None and any(bar.high < p for p in others):
        raise ValueError(f"high {bar.high} is below open, close or low")
    if bar.low is not None and any(bar.low > p for p in (bar.open, bar.close) if p is not None):
        raise ValueError(f"low {bar.low} is above open or close")
    return bar


def _rows(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise PriceFileError(f"{path}: empty file (expected a header row)")
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in names]
    unknown = [c for c in names if c not in REQUIRED + OPTIONAL]
    dupes = sorted({c for c in names if names.count(c) > 1})
    if missing or unknown or dupes:
        parts = [f"missing column(s) {', '.join(missing)}"] if missing else []
        parts += [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
        parts += [f"repeated column(s) {', '.join(dupes)}"] if dupes else []
        raise PriceFileError(f"{path}:1: header: {'; '.join(parts)}")
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            yield reader.line_num, {"__error__": f"{len(cells)} fields, header has {len(names)}"}
            continue
        yield reader.line_num, dict(zip(names, cells, strict=True))


def read_bars(
    path: Path, config: AssetsConfig, *, interval: str = "1d", source: str | None = None
) -> list[Bar]:
    """Every bar of the file, or PriceFileError listing every bad line."""
    bars: list[Bar] = []
    problems: list[str] = []
    seen: dict[tuple[str, str, datetime], int] = {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            for line, row in _rows(path, f):
                try:
                    if "__error__" in row:
                        raise ValueError(row["__error__"])
                    bar = _bar(row, config, interval, source)
                except ValueError as exc:
                    problems.append(f"{path}:{line}: {exc}")
                    continue
                key = (bar.symbol, bar.interval, bar.time)
                if key in seen:
                    problems.append(f"{path}:{line}: same bar as line {seen[key]}")
                    continue
                seen[key] = line
                bars.append(bar)
    except OSError as exc:
        raise PriceFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PriceFileError(f"{path}: not a UTF-8 CSV file: {exc}") from exc
    if problems:
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        tail = [f"... and {more} more problem(s)"] if more else []
        raise PriceFileError("\n".join([*shown, *tail, "nothing was loaded"]))
    if not bars:
        raise PriceFileError(f"{path}: no bars (only a header)")
    return bars


COLUMNS = "time, symbol, asset_class, interval, open, high, low, close, volume, source"


def load_bars(conn: Connection, bars: list[Bar]) -> tuple[int, int]:
    """Upsert the bars in one transaction; returns (inserted, replaced)."""
    ensure_partitions(conn, "price_data", [b.time for b in bars])
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE price_load (LIKE price_data INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        with cur.copy(f"COPY price_load ({COLUMNS}) FROM STDIN") as copy:
            for b in bars:
                copy.write_row(
                    (b.time, b.symbol, b.asset_class, b.interval, b.open, b.high, b.low,
                     b.close, b.volume, b.source)
                )  # fmt: skip
        cur.execute(
            "SELECT count(*) FROM price_data p JOIN price_load l USING (symbol, interval, time)"
        )
        row = cur.fetchone()
        replaced = int(row[0]) if row else 0
        cur.execute(
            f"INSERT INTO price_data ({COLUMNS}) SELECT {COLUMNS} FROM price_load "
            "ON CONFLICT (symbol, interval, time) DO UPDATE SET open = excluded.open, "
            "high = excluded.high, low = excluded.low, close = excluded.close, "
            "volume = excluded.volume, source = excluded.source, loaded_at = now()"
        )
        total = cur.rowcount
    return total - replaced, replaced
