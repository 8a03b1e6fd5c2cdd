"""Read what the bot expects from where the bot already writes it.

Rows come back as the source holds them; validation casts and quarantines. Table names are
checked identifiers and values are never spliced into SQL.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import polars as pl

from mt5recon import frames
from mt5recon.fleet import ExpectedTradesSource, resolve_reference

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _select_sql(source: ExpectedTradesSource) -> str:
    if source.query:
        return source.query
    if not _IDENTIFIER.match(source.table):
        raise ValueError(f"expected_trades.table {source.table!r} is not a plain [schema.]table name")
    return "SELECT * FROM " + ".".join(f'"{part}"' for part in source.table.split("."))


def _path(source: ExpectedTradesSource, home: Path) -> Path:
    if not source.path:
        raise ValueError(f"expected_trades source {source.kind!r} needs a path")
    path = Path(source.path).expanduser()
    return path if path.is_absolute() else home / path


def read_sqlite(source: ExpectedTradesSource, home: Path) -> pl.DataFrame:
    path = _path(source, home)
    if not path.exists():
        return frames.empty("expected_trades")  # the bot has not written anything yet
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0) as conn:
        return pl.read_database(_select_sql(source), conn, infer_schema_length=None)


def read_postgres(source: ExpectedTradesSource, home: Path) -> pl.DataFrame:
    import psycopg

    if not source.dsn:
        raise ValueError("expected_trades source 'postgres' needs a dsn")
    dsn = resolve_reference(source.dsn) if source.dsn.startswith(("env:", "secret:")) else source.dsn
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return pl.read_database(_select_sql(source), conn, infer_schema_length=None)


def read_files(source: ExpectedTradesSource, home: Path) -> pl.DataFrame:
    path = _path(source, home)
    if source.kind == "parquet":
        return pl.read_parquet(path)
    return pl.read_csv(path, infer_schema=False)  # text in, validation casts and quarantines


READERS: dict[str, Callable[[ExpectedTradesSource, Path], pl.DataFrame]] = {
    "sqlite": read_sqlite,
    "postgres": read_postgres,
    "parquet": read_files,
    "csv": read_files,
}


def read_expected_trades(source: ExpectedTradesSource, home: Path) -> pl.DataFrame:
    """The bot's expected trades as stored; the `sim` kind is served by the simulator itself."""
    reader = READERS.get(source.kind)
    if reader is None:
        raise ValueError(f"expected_trades kind {source.kind!r} is read by its connector, not from a source")
    return reader(source, home)
