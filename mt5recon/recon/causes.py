"""Why an expected position is not at the broker, read from the deals history."""

from __future__ import annotations

import polars as pl

from mt5recon.recon import tags

_EXIT_ENTRIES = [1, 3]  # DEAL_ENTRY_OUT, DEAL_ENTRY_OUT_BY
_ENTRY_IN = 0
_TRADE_TYPES = [0, 1]  # DEAL_TYPE_BUY, DEAL_TYPE_SELL


def reason_text(bot_magic: pl.Expr) -> pl.Expr:
    reason = pl.col("exit_reason")
    return (
        pl.when(reason == 4)
        .then(pl.lit("closed_by_sl"))
        .when(reason == 5)
        .then(pl.lit("closed_by_tp"))
        .when(reason == 6)
        .then(pl.lit("stop_out"))
        .when(reason.is_in([0, 1, 2]))
        .then(pl.lit("closed_manually"))
        .when((reason == 3) & (pl.col("exit_magic") == bot_magic))
        .then(pl.lit("closed_by_bot"))
        .when(reason == 3)
        .then(pl.lit("closed_by_other_ea"))
        .otherwise(pl.lit("closed_other"))
    )


def missing_causes(missing: pl.DataFrame, deals: pl.DataFrame, deals_ok: pl.DataFrame) -> pl.DataFrame:
    """Add `cause` (and the position identifier when the deals reveal it) to missing expected trades.

    The position is found by the bot's recorded position_id, else by the entry deal carrying the
    bot's tag; its latest exit deal says who closed it. No entry deal at all means never filled.
    """
    # only the accounts with a missing trade: every join below is within an account
    trades = deals.join(missing.select("login").unique(), on="login", how="semi").filter(
        pl.col("type").is_in(_TRADE_TYPES)
    )
    entries = trades.filter(pl.col("entry") == _ENTRY_IN)
    entry_rows = entries.select("login", "magic", "comment", "ticket", pl.col("position_id").alias("tag_position"))
    tagged = (
        tags.tag_pairs(missing, entry_rows, "ticket")
        .join(entry_rows.select("login", "ticket", "tag_position"), on=["login", "ticket"], how="inner")
        .group_by("login", "trade_id")
        .agg(pl.col("tag_position").min())
    )
    exits = (
        trades.filter(pl.col("entry").is_in(_EXIT_ENTRIES))
        .sort("time_msc")
        .group_by("login", "position_id")
        .agg(pl.col("reason").last().alias("exit_reason"), pl.col("magic").last().alias("exit_magic"))
    )
    with_position = missing.join(tagged, on=["login", "trade_id"], how="left").with_columns(
        pl.coalesce("position_id", "tag_position").alias("identifier")
    )
    has_entry = (
        entries.select("login", pl.col("position_id").alias("identifier"))
        .unique()
        .with_columns(pl.lit(True).alias("entry_seen"))
    )
    joined = (
        with_position.join(exits, left_on=["login", "identifier"], right_on=["login", "position_id"], how="left")
        .join(has_entry, on=["login", "identifier"], how="left")
        .join(deals_ok, on="login", how="left")
    )
    cause = (
        pl.when(~pl.col("deals_ok").fill_null(False))
        .then(pl.lit("unknown_deals_unavailable"))
        .when(pl.col("exit_reason").is_not_null())
        .then(reason_text(pl.col("magic")))
        .when(pl.col("identifier").is_null() & pl.col("entry_seen").is_null())
        .then(pl.lit("never_filled"))
        .otherwise(pl.lit("unknown"))
    )
    return joined.with_columns(cause.alias("cause"))
