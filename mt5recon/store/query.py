"""Read-only queries for analysts: one SELECT, bound parameters, a read-only attach."""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import polars as pl

from mt5recon.store.lake import StoreConfig, open_reader

_READ_ONLY_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def run_read_only(config: StoreConfig, query: str, params: Mapping[str, object] | None = None) -> pl.DataFrame:
    """Run exactly one SELECT against the store attached READ_ONLY; anything else is refused."""
    con = open_reader(config)
    try:
        statements = con.extract_statements(query)
        if len(statements) != 1 or statements[0].type not in _READ_ONLY_TYPES:
            raise ValueError("mt5recon sql runs exactly one SELECT statement")
        return con.execute(query, dict(params or {})).pl()
    finally:
        con.close()
