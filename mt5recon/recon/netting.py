"""Netting accounts hold one averaged position per symbol: compare net signed volume and
volume-weighted price per login and instrument against the bot's open trades."""

from __future__ import annotations

import polars as pl

from mt5recon.recon import divergences as dv
from mt5recon.recon import matching

_SIGN = pl.when(pl.col("dir") == 0).then(1.0).otherwise(-1.0)
_EPS_LOTS = 1e-9


def net_expected(expected: pl.DataFrame) -> pl.DataFrame:
    return (
        expected.with_columns((_SIGN * pl.col("volume")).alias("signed"))
        .group_by("login", "norm_symbol")
        .agg(
            pl.col("signed").sum().alias("net_expected"),
            ((pl.col("price") * pl.col("volume")).sum() / pl.col("volume").sum()).alias("vwap_expected"),
            pl.col("trade_id").sort().alias("trade_ids"),
            pl.col("trade_id").sort().str.join(",").alias("trade_id"),
            pl.col("magic").drop_nulls().first().alias("magic"),
            pl.col("fetched_at").first(),
            pl.col("opened_at").max().alias("last_opened_at"),
            *[
                pl.col(c).first()
                for c in ("pip", "contract_size", "currency_profit", "slippage_pips", "volume_pct", "grace_secs")
            ],
        )
        .filter(pl.col("net_expected").abs() > _EPS_LOTS)
    )


def net_positions(positions: pl.DataFrame) -> pl.DataFrame:
    return (
        positions.with_columns((_SIGN * pl.col("volume")).alias("signed"))
        .group_by("login", "norm_symbol")
        .agg(
            pl.col("signed").sum().alias("net_broker"),
            ((pl.col("price_open") * pl.col("volume")).sum() / pl.col("volume").sum()).alias("price_broker"),
            pl.col("ticket").min(),
            pl.col("identifier").min(),
            pl.col("symbol").first().alias("symbol_pos"),
            pl.col("time").max().alias("time"),
            pl.col("magic").first().alias("magic_pos"),
            pl.col("reason").first().alias("reason"),
            pl.col("currency").first(),
            pl.col("fetched_at").first().alias("fetched_at_pos"),
            *[
                pl.col(c).first().alias(f"{c}_pos")
                for c in ("pip", "contract_size", "currency_profit", "slippage_pips", "volume_pct", "grace_secs")
            ],
        )
    )


def reconcile_netting(
    expected: pl.DataFrame, positions: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Returns (matches, divergences of matched symbols, symbol rows present on one side only)."""
    joined = net_expected(expected).join(
        net_positions(positions), on=["login", "norm_symbol"], how="full", coalesce=True
    )
    both = joined.filter(pl.col("net_expected").is_not_null() & pl.col("net_broker").is_not_null())
    matches = both.explode("trade_ids").select(
        "login",
        pl.col("trade_ids").alias("trade_id"),
        "ticket",
        "identifier",
        pl.col("symbol_pos").alias("symbol"),
        pl.lit("netting").alias("stage"),
        ((pl.col("price_broker") - pl.col("vwap_expected")).abs() / pl.col("pip")).alias("price_diff_pips"),
        (pl.col("net_broker") / pl.col("net_expected")).alias("volume_ratio"),
    )
    same_side = (pl.col("net_broker") * pl.col("net_expected")) > 0
    frame = both.with_columns(
        ((pl.col("net_broker") - pl.col("net_expected")) / pl.col("net_expected").abs() * 100).alias("volume_pct_diff"),
        pl.col("symbol_pos").alias("symbol"),
        pl.lit("netting").alias("stage"),
    )
    divergences = dv.rows(
        frame.filter(pl.col("volume_pct_diff").abs() > pl.col("volume_pct")),
        kind=dv.VOLUME_MISMATCH,
        identity=pl.concat_str([pl.lit("sym"), pl.col("norm_symbol")]),
        expected=pl.col("net_expected"),
        actual=pl.col("net_broker"),
        cause=pl.when(~same_side)
        .then(pl.lit("opposite_side"))
        .when(pl.col("net_broker").abs() < pl.col("net_expected").abs())
        .then(pl.lit("partial_fill"))
        .otherwise(pl.lit("over_fill")),
    )
    one_sided = joined.filter(pl.col("net_expected").is_null() | pl.col("net_broker").is_null())
    return matches, divergences, one_sided


def entry_slippage(expected: pl.DataFrame, deals: pl.DataFrame, accounts: pl.DataFrame) -> pl.DataFrame:
    """Per-trade slippage on netting accounts, from the entry deal that carries the bot's tag.

    The netted position's price is an average that MT5 keeps through reductions, so it says
    nothing about one trade's fill; the trade's own entry deal does.
    """
    entries = deals.filter(pl.col("type").is_in([0, 1]) & pl.col("entry").is_in([0, 2])).select(
        "login",
        "magic",
        "comment",
        pl.col("price").alias("price_open"),
        pl.col("volume").alias("volume_deal"),
        pl.col("position_id").alias("identifier"),
        pl.col("symbol").alias("symbol_deal"),
        "time_msc",
    )
    tagged = (
        expected.filter(pl.col("magic").is_not_null())
        .join(entries, on=["login", "magic"], how="inner")
        .filter(matching.carries_tag(pl.col("comment"), pl.col("trade_id")))
        .sort("time_msc")
        .group_by("login", "trade_id", maintain_order=True)
        .first()
        .join(accounts.select("login", "currency"), on="login", how="left")
    )
    frame = tagged.with_columns(
        ((pl.col("price_open") - pl.col("price")) * _SIGN / pl.col("pip")).alias("slip_pips"),
        pl.col("symbol_deal").alias("symbol"),
        pl.lit("netting").alias("stage"),
        pl.col("volume_deal").alias("volume_pos"),
    )
    return dv.rows(
        frame.filter(pl.col("slip_pips").abs() > pl.col("slippage_pips")),
        kind=dv.SLIPPAGE,
        identity=pl.col("trade_id"),
        expected=pl.col("price"),
        actual=pl.col("price_open"),
        size_pips=pl.col("slip_pips"),
        size_money=dv.money(pl.col("slip_pips")),
        cause=pl.when(pl.col("slip_pips") > 0).then(pl.lit("adverse")).otherwise(pl.lit("favourable")),
    )


def one_sided_divergences(one_sided: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split symbols held on one side only into (missing: bot only, unknown: broker only), past grace."""
    missing = one_sided.filter(pl.col("net_broker").is_null()).filter(
        (pl.col("fetched_at") - pl.col("last_opened_at")).dt.total_milliseconds() / 1000.0 > pl.col("grace_secs")
    )
    unknown = (
        one_sided.filter(pl.col("net_expected").is_null())
        .with_columns(pl.col("fetched_at_pos").alias("fetched_at"), pl.col("symbol_pos").alias("symbol"))
        .filter((pl.col("fetched_at") - pl.col("time")).dt.total_milliseconds() / 1000.0 > pl.col("grace_secs_pos"))
    )
    unknown_rows = dv.rows(
        unknown,
        kind=dv.UNKNOWN_POSITION,
        identity=pl.concat_str([pl.lit("sym"), pl.col("norm_symbol")]),
        actual=pl.col("net_broker"),
        cause=pl.when((pl.col("magic_pos") == 0) | pl.col("reason").is_in([0, 1, 2]))
        .then(pl.lit("manual"))
        .otherwise(pl.lit("other_ea")),
    )
    return missing, unknown_rows
