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


def stale_accounts(
    accounts: pl.DataFrame,
    *,
    as_of: datetime | None,
    stale_after_secs: float,
    health: pl.DataFrame | None = None,
    stale_data_after_secs: float | None = None,
) -> pl.DataFrame:
    """login, fetched_at, age_secs, reason of accounts whose data cannot be taken as current:

    - `data_age_exceeded`: the snapshot is older than `stale_after_secs` at `as_of` (age: of the fetch);
    - `terminal_disconnected`: the terminal answered from its cache, cut off from its server;
    - `quotes_too_old`: its newest quote is older than `stale_data_after_secs` (age: of the quote).
    """
    time_type = accounts.schema["fetched_at"]
    schema = pl.Schema({"login": pl.Int64(), "fetched_at": time_type, "age_secs": pl.Float64(), "reason": pl.String()})
    parts = [pl.DataFrame(schema=schema)]
    if as_of is not None:
        age = (pl.lit(as_of).cast(time_type) - pl.col("fetched_at")).dt.total_milliseconds() / 1000.0
        parts.append(
            accounts.select(
                "login", "fetched_at", age.alias("age_secs"), pl.lit("data_age_exceeded").alias("reason")
            ).filter(pl.col("age_secs") > stale_after_secs)
        )
    if health is not None and health.height:
        data_too_old = (
            pl.col("data_age_secs") > stale_data_after_secs if stale_data_after_secs is not None else pl.lit(False)
        )
        reason = (
            pl.when(pl.col("connected").eq(False))
            .then(pl.lit("terminal_disconnected"))
            .when(data_too_old)
            .then(pl.lit("quotes_too_old"))
        )
        parts.append(
            health.join(accounts.select("login"), on="login", how="semi")
            .select("login", "fetched_at", pl.col("data_age_secs").alias("age_secs"), reason.alias("reason"))
            .filter(pl.col("reason").is_not_null())
        )
    # one row per account: the first reason found (a too-old fetch explains the rest)
    stacked = pl.concat([p.cast(schema) for p in parts], how="vertical")
    return stacked.unique("login", keep="first", maintain_order=True)


def snapshot_divergences(accounts: pl.DataFrame, stale: pl.DataFrame) -> pl.DataFrame:
    """One `snapshot_failed` row per account with a failed call (cause: the failed MT5 functions),
    one `snapshot_stale` row per other account whose data is not current (cause: the reason;
    actual: the age in seconds, when there is one)."""
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
                cause=pl.col("reason"),
            ),
        ],
        how="vertical",
    )
