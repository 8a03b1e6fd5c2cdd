"""The bot's beliefs as the expected-trades contract: a Polars frame, or rows in SQLite.

A real bot writes to its own database and the pipeline reads it from there, so the fleet
can upsert into a SQLite file exactly as such a bot would (ISO-8601 UTC text timestamps).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from mt5recon import frames

if TYPE_CHECKING:
    from mt5recon.terminal.simulator.bot import BotTrade

TABLE = "expected_trades"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    trade_id    TEXT    NOT NULL,
    login       INTEGER NOT NULL,
    symbol      TEXT    NOT NULL,
    side        TEXT    NOT NULL,
    volume      REAL    NOT NULL,
    price       REAL    NOT NULL,
    sl          REAL,
    tp          REAL,
    magic       INTEGER,
    position_id INTEGER,
    opened_at   TEXT    NOT NULL,
    closed_at   TEXT,
    PRIMARY KEY (login, trade_id)
)"""

_COLUMNS = list(frames.EXPECTED_TRADES.names())
# identifiers come from this module's own constants; values are bound
_ASSIGNMENTS = ", ".join(f"{col} = excluded.{col}" for col in _COLUMNS if col not in ("login", "trade_id"))
_PLACEHOLDERS = ", ".join("?" for _ in _COLUMNS)
_UPSERT = (
    f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)}) VALUES ({_PLACEHOLDERS}) "  # noqa: S608
    f"ON CONFLICT (login, trade_id) DO UPDATE SET {_ASSIGNMENTS}"
)


def expected_frame(trades: Iterable[BotTrade]) -> pl.DataFrame:
    cols: dict[str, list[object]] = {name: [] for name in _COLUMNS}
    for t in trades:
        cols["trade_id"].append(t.trade_id)
        cols["login"].append(t.login)
        cols["symbol"].append(t.symbol)
        cols["side"].append(t.side)
        cols["volume"].append(t.volume)
        cols["price"].append(t.price)
        cols["sl"].append(t.sl)
        cols["tp"].append(t.tp)
        cols["magic"].append(t.magic)
        cols["position_id"].append(t.position_id)
        cols["opened_at"].append(t.opened_ms * 1000)
        cols["closed_at"].append(None if t.closed_ms is None else t.closed_ms * 1000)
    data = {
        name: pl.Series(name, values, dtype=pl.Int64 if name in ("opened_at", "closed_at") else dtype)
        for (name, dtype), values in zip(frames.EXPECTED_TRADES.items(), cols.values(), strict=True)
    }
    return (
        pl.DataFrame(data)
        .with_columns(pl.col("opened_at", "closed_at").cast(frames.UTC_US))
        .select(frames.EXPECTED_TRADES.names())
    )


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="microseconds")


def write_sqlite(trades: Iterable[BotTrade], path: str | Path) -> int:
    """Upsert every trade (keyed by login + trade_id); returns the number of rows written."""
    rows = [
        (
            t.trade_id,
            t.login,
            t.symbol,
            t.side,
            t.volume,
            t.price,
            t.sl,
            t.tp,
            t.magic,
            t.position_id,
            _iso(t.opened_ms),
            _iso(t.closed_ms),
        )
        for t in trades
    ]
    con = sqlite3.connect(path)
    try:
        with con:
            con.execute(_CREATE)
            con.executemany(_UPSERT, rows)
    finally:
        con.close()
    return len(rows)
