"""A bot's table is read a batch of rows at a time; the frame is the one a single read gives."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest

from mt5recon import sources
from mt5recon.fleet import ExpectedTradesSource

SOURCE = ExpectedTradesSource(kind="sqlite", path="bot.sqlite", table="expected_trades")


def _bot_table(home: Path, rows: list[tuple[object, ...]]) -> None:
    with sqlite3.connect(home / "bot.sqlite") as conn:
        conn.execute("CREATE TABLE expected_trades (trade_id TEXT, login INTEGER, price REAL, closed_at TEXT)")
        conn.executemany("INSERT INTO expected_trades VALUES (?, ?, ?, ?)", rows)


@pytest.mark.parametrize(
    ("description", "rows", "dtypes"),
    [
        (
            "typed rows over several batches",
            [(f"t{i}", 5001, 1.1 + i, None if i % 2 else "2026-11-20T08:00:00+00:00") for i in range(5)],
            [pl.String, pl.Int64, pl.Float64, pl.String],
        ),
        (
            "a column null in one batch and text in another",
            [("t0", 5001, 1.1, None), ("t1", 5001, 1.2, None), ("t2", 5001, 1.3, "2026-11-20T08:00:00+00:00")],
            [pl.String, pl.Int64, pl.Float64, pl.String],
        ),
        (
            "numbers in one batch, text in another: kept as text for validation to judge",
            [("t0", 5001, 1.1, None), ("t1", 5001, 1.2, None), ("t2", 5001, "1.3x", None)],
            [pl.String, pl.Int64, pl.String, pl.Null],
        ),
        ("an empty table", [], [pl.Null] * 4),
    ],
)
def test_batches_give_the_single_read_frame(
    description: str,
    rows: list[tuple[object, ...]],
    dtypes: list[pl.DataType],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bot_table(tmp_path, rows)
    whole = sources.read_expected_trades(SOURCE, tmp_path)
    monkeypatch.setattr(sources, "READ_BATCH_ROWS", 2)
    batched = sources.read_expected_trades(SOURCE, tmp_path)
    assert batched.height == len(rows), f"{description}: every row read"
    assert batched.dtypes == dtypes, description
    assert batched.cast(pl.String).equals(whole.cast(pl.String)), f"{description}: the same values in the same order"
