"""`mt5recon breaks`: the breaks an operator asks about, filtered and sorted in SQL.

Every value a user types is a bound parameter; the SQL text is assembled only from the fixed
clauses below. A symbol matches the broker's name as recorded or the same instrument under another
broker's spelling (`EURUSD` finds `EURUSD.m` and `#EURUSD`), as the matching itself treats them.

A break's age is measured from when it was first seen to when it resolved, or to now while it
is still active. Its size is `size_money`, the one magnitude the breaks table records
in a single unit (the account's currency; set for slippage); a break without a money size sorts
after every break with one, never as if it were zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import duckdb
import polars as pl

from mt5recon.recon.divergences import KINDS
from mt5recon.recon.instruments import normalized_symbol
from mt5recon.store.tables import BREAKS

Sort = Literal["size", "age"]

COLUMNS = (
    "break_id",
    "login",
    "kind",
    "status",
    "cause",
    "symbol",
    "trade_id",
    "ticket",
    "expected",
    "actual",
    "size_pips",
    "size_money",
    "worst_size_money",
    "first_seen_at",
    "opened_at",
    "resolved_at",
    "age_secs",
)
_SELECT = (
    "SELECT break_id, login, kind, status, cause, symbol, trade_id, ticket, expected, actual, size_pips, "
    "size_money, worst_size_money, first_seen_at, opened_at, resolved_at, "
    "epoch(coalesce(resolved_at, $now) - first_seen_at) AS age_secs FROM breaks"
)
_ORDER: dict[Sort, str] = {
    "size": "abs(size_money) DESC NULLS LAST, age_secs DESC, break_id",
    "age": "age_secs DESC, break_id",
}


@dataclass(frozen=True)
class BreakFilters:
    """What `mt5recon breaks` was asked for; empty tuples and None mean "no filter"."""

    include_resolved: bool = False
    logins: tuple[int, ...] = ()
    kinds: tuple[str, ...] = ()
    symbol: str | None = None
    older_than_secs: float | None = None
    newer_than_secs: float | None = None
    sort: Sort = "age"
    limit: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown break kind(s) {unknown}; kinds are {', '.join(KINDS)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")

    def where(self, symbols: Sequence[str] = ()) -> tuple[str, dict[str, object]]:
        """The WHERE clause (fixed text) and its bound parameters; `symbols` are the broker names
        the symbol filter stands for (see symbol_names), the typed symbol itself when empty."""
        clauses: list[str] = []
        params: dict[str, object] = {}
        if not self.include_resolved:
            clauses.append("status = 'open'")
        if self.logins:
            clauses.append("list_contains($logins, login)")
            params["logins"] = list(self.logins)
        if self.kinds:
            clauses.append("list_contains($kinds, kind)")
            params["kinds"] = list(self.kinds)
        if self.symbol is not None:
            clauses.append("list_contains($symbols, symbol)")
            params["symbols"] = sorted({self.symbol, *symbols})
        if self.older_than_secs is not None:
            clauses.append("age_secs > $older_than")
            params["older_than"] = self.older_than_secs
        if self.newer_than_secs is not None:
            clauses.append("age_secs < $newer_than")
            params["newer_than"] = self.newer_than_secs
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def breaks_sql(filters: BreakFilters, symbols: Sequence[str] = ()) -> tuple[str, dict[str, object]]:
    """The whole query and its parameters (`$now` is added by the caller)."""
    where, params = filters.where(symbols)
    sql = "SELECT * FROM (" + _SELECT + ")" + where + " ORDER BY " + _ORDER[filters.sort]  # noqa: S608 - fixed clauses, values bound
    if filters.limit is not None:
        sql += " LIMIT $limit"
        params["limit"] = filters.limit
    return sql, params


# the table's own dtypes, plus the age computed at query time
_SCHEMA = pl.Schema({**{c: BREAKS[c] for c in COLUMNS if c != "age_secs"}, "age_secs": pl.Float64()})


def read_breaks(con: duckdb.DuckDBPyConnection, filters: BreakFilters, *, now: datetime) -> pl.DataFrame:
    """The breaks matching `filters`, sorted, with their age at `now`."""
    symbols = symbol_names(con, filters.symbol) if filters.symbol is not None else []
    sql, params = breaks_sql(filters, symbols)
    frame = con.execute(sql, {**params, "now": now}).pl()
    return frame.select(COLUMNS).cast(dict(_SCHEMA))  # type: ignore[arg-type]


def symbol_names(con: duckdb.DuckDBPyConnection, symbol: str) -> list[str]:
    """The symbols in the breaks table that are `symbol` or the same instrument."""
    names = con.execute("SELECT DISTINCT symbol FROM breaks WHERE symbol IS NOT NULL").pl()
    instrument = pl.DataFrame({"symbol": [symbol]}).select(normalized_symbol(pl.col("symbol"))).item()
    same = (pl.col("symbol") == symbol) | (normalized_symbol(pl.col("symbol")) == instrument)
    return sorted(names.filter(same)["symbol"].to_list())


def as_records(frame: pl.DataFrame) -> list[dict[str, object]]:
    """The rows as JSON-ready dicts (times: ISO 8601 UTC), keys in COLUMNS order."""
    return [
        {key: value.isoformat() if isinstance(value, datetime) else value for key, value in row.items()}
        for row in frame.iter_rows(named=True)
    ]
