"""Accounts whose snapshot cannot be trusted this cycle: a failed call or data too old.

Such an account is reported (a `snapshot_failed` / `snapshot_stale` divergence) and is never
reconciled as flat: no missing or unknown verdict comes from it.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from mt5recon.recon import divergences as dv

# the *_ok flag of each snapshot call -> the MetaTrader5 function that failed
FAILED_CALLS = {
    "account_ok": "account_info",
    "positions_ok": "positions_get",
    "orders_ok": "orders_get",
    "deals_ok": "history_deals_get",
}
_IDENTITY = pl.lit("snapshot")


def _failed_calls() -> pl.Expr:
    names = [pl.when(~pl.col(flag).fill_null(False)).then(pl.lit(call)) for flag, call in FAILED_CALLS.items()]
    return pl.concat_str(names, separator=",", ignore_nulls=True)


def stale_accounts(accounts: pl.DataFrame, *, as_of: datetime | None, stale_after_secs: float) -> pl.DataFrame:
    """login, fetched_at, age_secs of accounts whose snapshot is older than `stale_after_secs` at `as_of`."""
    schema = pl.Schema({"login": pl.Int64(), "fetched_at": accounts.schema["fetched_at"], "age_secs": pl.Float64()})
    if as_of is None:
        return pl.DataFrame(schema=schema)
    age = (pl.lit(as_of).cast(accounts.schema["fetched_at"]) - pl.col("fetched_at")).dt.total_milliseconds() / 1000.0
    return (
        accounts.select("login", "fetched_at", age.alias("age_secs"))
        .filter(pl.col("age_secs") > stale_after_secs)
        .cast(dict(schema))  # type: ignore[arg-type]
    )


def snapshot_divergences(accounts: pl.DataFrame, stale: pl.DataFrame) -> pl.DataFrame:
    """One `snapshot_failed` row per account with a failed call (cause: the failed MT5 functions),
    one `snapshot_stale` row per fresh-call account whose data is too old (actual: age in seconds)."""
    failed = accounts.with_columns(_failed_calls().alias("failed_calls")).filter(pl.col("failed_calls") != "")
    stale_only = stale.join(failed.select("login"), on="login", how="anti")
    return pl.concat(
        [
            dv.rows(failed, kind=dv.SNAPSHOT_FAILED, identity=_IDENTITY, cause=pl.col("failed_calls")),
            dv.rows(
                stale_only,
                kind=dv.SNAPSHOT_STALE,
                identity=_IDENTITY,
                actual=pl.col("age_secs"),
                cause=pl.lit("data_age_exceeded"),
            ),
        ],
        how="vertical",
    )
