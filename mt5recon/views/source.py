"""The store as the views read it: read-only, and a clear answer when there is nothing yet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from mt5recon.store.lake import StoreConfig, open_reader
from mt5recon.views import NoCycles


@contextmanager
def reader(config: StoreConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a store that has committed at least one cycle, else NoCycles
    (a reader must never be the one to create the lake)."""
    if not config.exists():
        raise NoCycles()
    con = open_reader(config)
    try:
        if not has_cycles(con):
            raise NoCycles()
        yield con
    finally:
        con.close()


def has_cycles(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether any cycle row is stored (a store migrated but never written has empty tables)."""
    try:
        row = con.execute("SELECT EXISTS (SELECT 1 FROM cycles)").fetchone()
    except duckdb.CatalogException:
        return False
    return bool(row and row[0])
