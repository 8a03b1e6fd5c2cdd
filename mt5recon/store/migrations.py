"""The store's schema, versioned: DuckDB DDL derived from STORE_TABLES, applied once per version.

Migrations only add (tables, columns); nothing here drops. Version 1 builds the tables from
the registry as it is when it first runs, so a later migration that adds a column must be
idempotent (`ADD COLUMN IF NOT EXISTS`): a fresh store already has it from version 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from mt5recon.store.sqltext import identifier
from mt5recon.store.tables import STORE_TABLES

LEDGER = "cycle_ledger"
SCHEMA_VERSION = "schema_version"

_SIMPLE_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "VARCHAR",
    pl.Boolean: "BOOLEAN",
    pl.Int8: "TINYINT",
    pl.Int16: "SMALLINT",
    pl.Int32: "INTEGER",
    pl.Int64: "BIGINT",
    pl.UInt8: "UTINYINT",
    pl.UInt16: "USMALLINT",
    pl.UInt32: "UINTEGER",
    pl.UInt64: "UBIGINT",
    pl.Float32: "FLOAT",
    pl.Float64: "DOUBLE",
    pl.Date: "DATE",
    pl.Duration: "INTERVAL",
}


def duckdb_type(dtype: pl.DataType) -> str:
    """The DuckDB column type for a polars dtype; every datetime is stored as TIMESTAMPTZ (UTC)."""
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ"
    sql = _SIMPLE_TYPES.get(type(dtype))
    if sql is None:
        raise TypeError(f"no DuckDB column type declared for polars dtype {dtype}")
    return sql


def create_table_sql(catalog: str, table: str, schema: pl.Schema) -> str:
    """CREATE TABLE IF NOT EXISTS for a registry table (names come from our own registry)."""
    columns = ", ".join(f"{identifier(c)} {duckdb_type(t)}" for c, t in schema.items())
    return f"CREATE TABLE IF NOT EXISTS {identifier(catalog)}.{identifier(table)} ({columns})"


def _v1(catalog: str) -> list[str]:
    """Every STORE_TABLES table, the cycle ledger and the version table."""
    lake = identifier(catalog)
    statements = [create_table_sql(catalog, name, schema) for name, schema in STORE_TABLES.items()]
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {lake}.{identifier(LEDGER)} "
        "(cycle_id VARCHAR NOT NULL, committed_at TIMESTAMPTZ NOT NULL, row_counts JSON NOT NULL)"
    )
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {lake}.{identifier(SCHEMA_VERSION)} "
        "(version INTEGER NOT NULL, description VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    return statements


def _v2(catalog: str) -> list[str]:
    """Breaks (current state) and break events (audit log) replace the per-cycle divergence rows.

    A store from version 1 keeps its `divergences` table and rows (never dropped); nothing writes
    to it any more.
    """
    return [create_table_sql(catalog, name, STORE_TABLES[name]) for name in ("breaks", "break_events")]


@dataclass(frozen=True)
class Migration:
    """One schema step: its number, what it does, and its DDL for a given lake alias."""

    version: int
    description: str
    statements: Callable[[str], list[str]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "store tables, cycle ledger, schema version", _v1),
    Migration(2, "breaks and break events (divergences kept, no longer written)", _v2),
)

LATEST = MIGRATIONS[-1].version
