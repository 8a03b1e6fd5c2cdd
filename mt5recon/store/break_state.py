"""Read the break state the lifecycle needs before it advances one cycle."""

from __future__ import annotations

import duckdb
import polars as pl

from mt5recon.store.sqltext import identifier
from mt5recon.store.tables import BREAKS

STATE_SCHEMA = pl.Schema({k: v for k, v in BREAKS.items() if k != "cycle_id"})
_ACTIVE = ("pending", "open")


def empty_state() -> pl.DataFrame:
    return pl.DataFrame(schema=STATE_SCHEMA)


def read_break_state(con: duckdb.DuckDBPyConnection, logins: list[int], break_ids: list[str]) -> pl.DataFrame:
    """Every pending/open break of `logins`, plus any break (resolved too) whose id is in `break_ids`,
    so a break that comes back is reopened rather than started afresh. Parameters are bound as
    registered frames, never spliced into the SQL text."""
    keys_logins = pl.DataFrame({"login": logins}, schema={"login": pl.Int64})
    keys_ids = pl.DataFrame({"break_id": break_ids}, schema={"break_id": pl.String})
    con.register("_mt5recon_state_logins", keys_logins)
    con.register("_mt5recon_state_ids", keys_ids)
    try:
        columns = ", ".join(identifier(c) for c in STATE_SCHEMA)
        frame = con.execute(
            f"SELECT {columns} FROM breaks "  # noqa: S608 - column names from our registry
            "WHERE (status IN (?, ?) AND login IN (SELECT login FROM _mt5recon_state_logins)) "
            "OR break_id IN (SELECT break_id FROM _mt5recon_state_ids)",
            list(_ACTIVE),
        ).pl()
    except duckdb.CatalogException:  # a store that has not committed its first cycle yet
        return empty_state()
    finally:
        con.unregister("_mt5recon_state_logins")
        con.unregister("_mt5recon_state_ids")
    return frame.cast(dict(STATE_SCHEMA))  # type: ignore[arg-type]
