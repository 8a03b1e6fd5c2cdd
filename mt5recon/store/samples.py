"""Synthetic store frames of any size, typed exactly as STORE_TABLES declares.

For tests and benchmarks of the store (and of anything that writes to it): deterministic,
vectorized (a million rows in well under a second), with some nulls in every column but
`cycle_id` so a round trip proves nulls survive.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from mt5recon.store.tables import CYCLE_ID, STATE_KEYS, STORE_TABLES

EPOCH = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
_CYCLE_ID_COLUMN = next(iter(CYCLE_ID))

# rows of a typical 10-second cycle of a 10-account fleet
TYPICAL_ROWS: dict[str, int] = {
    "cycles": 10,
    "account_snapshots": 10,
    "terminal_health": 10,
    "position_changes": 30,
    "current_positions": 30,
    "expected_trade_changes": 5,
    "current_expected_trades": 5,
    "breaks": 12,
    "break_events": 3,
    "quarantine": 2,
    "guard_alerts": 1,
    "drawdown_state": 10,
    "market_state": 4,
    "protect_pending": 0,
    "protective_actions": 0,
    "positions_at_risk": 1,
}


def _column(name: str, dtype: pl.DataType, position: int) -> pl.Expr:
    """A deterministic column derived from the row index; every 7th row (shifted per column) is null."""
    i = pl.int_range(pl.len(), dtype=pl.Int64)
    salt = position * 7919
    if isinstance(dtype, pl.Datetime):
        value: pl.Expr = pl.lit(EPOCH) + pl.duration(milliseconds=i * 1013 + salt)
    elif dtype == pl.String:
        value = pl.format("{}-{}'ü", pl.lit(name), (i + salt) % 997)
    elif dtype == pl.Boolean:
        value = (i + position) % 2 == 0
    elif dtype.is_integer():
        value = (i * 31 + salt) % 100_000
    elif dtype.is_float():
        value = ((i * 17 + salt) % 10_000) / 7.0
    elif dtype == pl.Date:
        value = (pl.lit(EPOCH) + pl.duration(days=(i + salt) % 3650)).dt.date()
    elif isinstance(dtype, pl.List):
        value = pl.concat_list([((i * 13 + salt) % 1_000) / 10.0, ((i * 7 + salt) % 1_000) / 10.0])
    else:
        raise TypeError(f"no sample values for dtype {dtype}")
    nullable = pl.when((i + position) % 7 == 0).then(None).otherwise(value)
    return nullable.cast(dtype).alias(name)


def _key(name: str, dtype: pl.DataType) -> pl.Expr:
    """A state table's key: unique and never null (the same keys every cycle, as real breaks recur)."""
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    if dtype.is_integer():
        return (index + 1).cast(dtype).alias(name)
    return pl.format("{}-{}", pl.lit(name), index).alias(name)


def sample_frame(table: str, rows: int, cycle_id: str) -> pl.DataFrame:
    """`rows` synthetic rows for `table`, all carrying `cycle_id`."""
    schema = STORE_TABLES[table]
    key = STATE_KEYS.get(table)
    exprs = [
        pl.lit(cycle_id, dtype=dtype).alias(name)
        if name == _CYCLE_ID_COLUMN
        else _key(name, dtype)
        if name == key
        else _column(name, dtype, position)
        for position, (name, dtype) in enumerate(schema.items())
    ]
    return pl.select(pl.repeat(0, rows).alias("_row")).select(exprs)


def sample_cycle(cycle_id: str, rows: dict[str, int] | None = None) -> dict[str, pl.DataFrame]:
    """One cycle's frames for every store table (TYPICAL_ROWS unless told otherwise)."""
    sizes = TYPICAL_ROWS if rows is None else rows
    return {table: sample_frame(table, n, cycle_id) for table, n in sizes.items()}
