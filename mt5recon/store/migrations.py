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
from mt5recon.store.tables import BOT_EXPECTED_TRADES, GUARD_TABLES, STORE_TABLES

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
    if isinstance(dtype, pl.List):
        return f"{duckdb_type(dtype.inner)}[]"  # type: ignore[arg-type]
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


def _v3(catalog: str) -> list[str]:
    """Positions and expected trades as change histories plus their current state (instead of a
    full copy every cycle), the bot's own expected-trades table, and the analysts' daily views.

    A store from version 2 keeps its `positions` and `matches` tables (never dropped); nothing
    writes to them any more.
    """
    new = ("position_changes", "current_positions", "expected_trade_changes", "current_expected_trades")
    statements = [create_table_sql(catalog, name, STORE_TABLES[name]) for name in new]
    statements.append(create_table_sql(catalog, BOT_TABLE, BOT_EXPECTED_TRADES))
    statements += [
        f"CREATE OR REPLACE VIEW {identifier(catalog)}.{identifier(name)} AS {sql}" for name, sql in VIEWS.items()
    ]
    return statements


BOT_TABLE = "expected_trades"
# the questions asked every day; plain SQL over the tables above (names unqualified: they resolve
# in the lake whatever alias an analyst attaches it under)
VIEWS: dict[str, str] = {
    "open_breaks": ("SELECT *, epoch(now() - first_seen_at) AS open_secs FROM breaks WHERE status = 'open'"),
    "breaks_by_kind_age": (
        "SELECT kind, cause, count(*) AS breaks, "
        "count(*) FILTER (WHERE now() - first_seen_at < INTERVAL 1 HOUR) AS under_1h, "
        "count(*) FILTER (WHERE now() - first_seen_at >= INTERVAL 1 HOUR "
        "AND now() - first_seen_at < INTERVAL 1 DAY) AS from_1h_to_1d, "
        "count(*) FILTER (WHERE now() - first_seen_at >= INTERVAL 1 DAY) AS over_1d, "
        "max(epoch(now() - first_seen_at)) AS oldest_secs, sum(worst_size_money) AS worst_money "
        "FROM breaks WHERE status = 'open' GROUP BY kind, cause"
    ),
    "slippage_cost": (
        "SELECT login, symbol, date_trunc('hour', first_seen_at) AS hour, count(*) AS slipped_trades, "
        "sum(size_money) AS cost_money, sum(size_money) FILTER (WHERE size_pips > 0) AS adverse_money, "
        "sum(size_money) FILTER (WHERE size_pips < 0) AS favourable_money, avg(size_pips) AS avg_pips "
        "FROM breaks WHERE kind = 'slippage' GROUP BY login, symbol, date_trunc('hour', first_seen_at)"
    ),
    "stale_accounts": (
        "SELECT login, max(finished_at) AS last_cycle_at, "
        "max(finished_at) FILTER (WHERE status = 'ok') AS last_ok_at, "
        "epoch(now() - max(finished_at) FILTER (WHERE status = 'ok')) AS data_age_secs "
        "FROM cycles GROUP BY login "
        "HAVING max(finished_at) FILTER (WHERE status = 'ok') IS NULL "
        "OR now() - max(finished_at) FILTER (WHERE status = 'ok') > INTERVAL 60 SECONDS"
    ),
    "latest_equity": (
        # one hash aggregate over the snapshots (a window over months of them took seconds)
        "SELECT login, fetched_at, currency, balance, credit, equity, margin, margin_level, peak_equity, "
        "CASE WHEN peak_equity > 0 THEN 100 * (peak_equity - equity) / peak_equity END AS drawdown_pct "
        "FROM (SELECT login, max(fetched_at) AS fetched_at, arg_max(currency, fetched_at) AS currency, "
        "arg_max(balance, fetched_at) AS balance, arg_max(credit, fetched_at) AS credit, "
        "arg_max(equity, fetched_at) AS equity, arg_max(margin, fetched_at) AS margin, "
        "arg_max(margin_level, fetched_at) AS margin_level, max(equity) AS peak_equity "
        "FROM account_snapshots WHERE account_ok GROUP BY login)"
    ),
}


def _v4(catalog: str) -> list[str]:
    """Terminal health per cycle (connected, latency, data age, error type, breaker state), and
    each position's distance from its matched bot trade."""
    lake = identifier(catalog)
    statements = [create_table_sql(catalog, "terminal_health", STORE_TABLES["terminal_health"])]
    for table in ("position_changes", "current_positions"):
        for column in ("match_price_pips", "match_volume_ratio"):
            statements.append(
                f"ALTER TABLE {lake}.{identifier(table)} ADD COLUMN IF NOT EXISTS {identifier(column)} DOUBLE"
            )
    return statements


def _v5(catalog: str) -> list[str]:
    """Risk guards: alerts, drawdown and market state, the protective close's pending
    announcements and audit trail, and the positions at risk per cycle."""
    return [create_table_sql(catalog, name, STORE_TABLES[name]) for name in GUARD_TABLES]


@dataclass(frozen=True)
class Migration:
    """One schema step: its number, what it does, and its DDL for a given lake alias."""

    version: int
    description: str
    statements: Callable[[str], list[str]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "store tables, cycle ledger, schema version", _v1),
    Migration(2, "breaks and break events (divergences kept, no longer written)", _v2),
    Migration(3, "position and expected-trade change histories, bot table, daily views", _v3),
    Migration(4, "terminal health per cycle", _v4),
    Migration(5, "risk guards: alerts, state, protective actions, positions at risk", _v5),
)

LATEST = MIGRATIONS[-1].version
