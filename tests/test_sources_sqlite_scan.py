"""A bot's SQLite table is scanned column by column only where that keeps every value as SQLite
holds it; everything else is read row by row, and validation gives the same verdict either way."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from mt5recon import sources
from mt5recon.fleet import ExpectedTradesSource
from mt5recon.store.lake import StoreConfig
from mt5recon.validation import validate_frame

SOURCE = ExpectedTradesSource(kind="sqlite", path="bot.sqlite", table="expected_trades")
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
TYPED = (
    "trade_id TEXT, login INTEGER, symbol TEXT, side TEXT, volume REAL, price REAL, sl REAL, tp REAL, "
    "magic INTEGER, position_id INTEGER, opened_at TEXT, closed_at TEXT"
)
GOOD = [
    ("t1", 5001, "EURUSD", "buy", 0.1, 1.0841, None, 1.09, 7, 101, "2026-11-21T10:00:00+00:00", None),
    ("t2", 5001, "XAUUSD", "sell", 1.0, 2650.5, 2660.0, None, None, None, "2026-11-21T10:01:00", None),
    ("t3", 5002, "US500", "buy", 2, 5900, None, None, 7, 102, "2026-11-21T09:00:00+00:00", "2026-11-21T09:30:00Z"),
]


def _bot_table(home: Path, ddl: str, rows: list[tuple[object, ...]]) -> Path:
    path = home / "bot.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE expected_trades ({ddl})")
        conn.executemany(f"INSERT INTO expected_trades VALUES ({', '.join('?' * 12)})", rows)
    conn.close()
    return path


def _verdict(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    validated = validate_frame("expected_trades", frame, now=NOW)
    reasons = validated.quarantined.select("row_index", "reason").rows()
    return validated.valid.sort("login", "trade_id"), sorted(reasons)


@pytest.mark.parametrize(
    ("description", "ddl", "rows", "scanned"),
    [
        ("a well-typed table is scanned", TYPED, GOOD, True),
        (
            "synonyms of the scanned types",
            TYPED.replace("TEXT", "VARCHAR(64)").replace("INTEGER", "BIGINT"),
            GOOD,
            True,
        ),
        ("an empty table", TYPED, [], True),
        ("text in an INTEGER column (SQLite allows it)", TYPED, [*GOOD, ("t4", "50x3", *GOOD[0][2:])], False),
        ("a fraction in the INTEGER magic column", TYPED, [(*GOOD[0][:8], 7.5, *GOOD[0][9:])], False),
        ("a price written as text in a REAL column", TYPED, [(*GOOD[0][:5], "1.08a", *GOOD[0][6:])], False),
        (
            "declared dates, which the scanner would parse",
            TYPED.replace("opened_at TEXT", "opened_at DATETIME"),
            GOOD,
            False,
        ),
        (
            "untyped columns, which the scanner reads as bytes",
            TYPED.replace(" TEXT", "").replace(" INTEGER", ""),
            GOOD,
            False,
        ),
    ],
)
def test_scan_or_rows_the_verdict_is_the_row_reads(
    description: str, ddl: str, rows: list[tuple[object, ...]], scanned: bool, tmp_path: Path, extension_dir: Path
) -> None:
    path = _bot_table(tmp_path, ddl, rows)
    store = StoreConfig.under(tmp_path, extension_dir=extension_dir)
    scan = sources.scan_sqlite_table(path, "expected_trades", extension_dir)
    assert (scan is not None) == scanned, description
    by_rows = sources.read_expected_trades(SOURCE, tmp_path)
    read = sources.read_expected_trades(SOURCE, tmp_path, store=store)
    assert read.height == by_rows.height == len(rows), f"{description}: every row read"
    valid, reasons = _verdict(read)
    expected_valid, expected_reasons = _verdict(by_rows)
    assert valid.equals(expected_valid), f"{description}: the same rows fit to reconcile"
    assert reasons == expected_reasons, f"{description}: the same rows quarantined, for the same reasons"
    quarantined = {row for row, _ in reasons}
    assert valid.height + len(quarantined) == len(rows), f"{description}: rows in = valid + quarantined"


def test_a_source_query_runs_on_sqlite_itself(tmp_path: Path, extension_dir: Path) -> None:
    _bot_table(tmp_path, TYPED, GOOD)
    source = ExpectedTradesSource(
        kind="sqlite", path="bot.sqlite", query="SELECT * FROM expected_trades WHERE closed_at IS NULL"
    )
    read = sources.read_expected_trades(
        source, tmp_path, store=StoreConfig.under(tmp_path, extension_dir=extension_dir)
    )
    assert sorted(read["trade_id"]) == ["t1", "t2"]


def test_a_table_in_an_attached_schema_is_read_row_by_row(tmp_path: Path, extension_dir: Path) -> None:
    path = _bot_table(tmp_path, TYPED, GOOD)
    assert sources.scan_sqlite_table(path, "main.expected_trades", extension_dir) is None
