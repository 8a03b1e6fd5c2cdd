"""Read what the bot expects from where the bot already writes it.

Rows come back as the source holds them; validation casts and quarantines. Table names are
checked identifiers and values are never spliced into SQL.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from mt5recon import frames
from mt5recon.fleet import ExpectedTradesSource, resolve_reference

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _select_sql(source: ExpectedTradesSource) -> str:
    if source.query:
        return source.query
    if not _IDENTIFIER.match(source.table):
        raise ValueError(f"expected_trades.table {source.table!r} is not a plain [schema.]table name")
    quoted = ".".join(f'"{part}"' for part in source.table.split("."))  # a checked, quoted identifier
    return "SELECT * FROM " + quoted  # noqa: S608


def _path(source: ExpectedTradesSource, home: Path) -> Path:
    if not source.path:
        raise ValueError(f"expected_trades source {source.kind!r} needs a path")
    path = Path(source.path).expanduser()
    return path if path.is_absolute() else home / path


def _rows_to_frame(cursor: Any) -> pl.DataFrame:
    """A DB-API cursor's result as a frame (values as the database holds them)."""
    columns = [d[0] for d in cursor.description]
    return pl.DataFrame(cursor.fetchall(), schema=columns, orient="row", infer_schema_length=None)


def read_sqlite(source: ExpectedTradesSource, home: Path) -> pl.DataFrame:
    path = _path(source, home)
    if not path.exists():
        return frames.empty("expected_trades")  # the bot has not written anything yet
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        return _rows_to_frame(conn.execute(_select_sql(source)))
    finally:
        conn.close()


def read_postgres(source: ExpectedTradesSource, home: Path) -> pl.DataFrame:
    import psycopg

    if not source.dsn:
        raise ValueError("expected_trades source 'postgres' needs a dsn")
    dsn = resolve_reference(source.dsn) if source.dsn.startswith(("env:", "secret:")) else source.dsn
    with psycopg.connect(dsn, connect_timeout=5) as conn, conn.cursor() as cursor:
        cursor.execute(_select_sql(source).encode())  # a checked identifier or the user's own query
        return _rows_to_frame(cursor)


def read_files(source: ExpectedTradesSource, home: Path) -> pl.DataFrame:
    path = _path(source, home)
    if source.kind == "parquet":
        return pl.read_parquet(path)
    return pl.read_csv(path, infer_schema=False)  # text in, validation casts and quarantines


def read_simulated_bot(source: ExpectedTradesSource, home: Path) -> pl.DataFrame:
    """The in-process simulated bot's own record (connector kind `sim`)."""
    from mt5recon.terminal.sim_host import in_process_fleet

    return in_process_fleet().expected_trades()


READERS: dict[str, Callable[[ExpectedTradesSource, Path], pl.DataFrame]] = {
    "sim": read_simulated_bot,
    "sqlite": read_sqlite,
    "postgres": read_postgres,
    "parquet": read_files,
    "csv": read_files,
}


def read_expected_trades(source: ExpectedTradesSource, home: Path) -> pl.DataFrame:
    """The bot's expected trades as its source holds them (validation casts and quarantines)."""
    return READERS[source.kind](source, home)
