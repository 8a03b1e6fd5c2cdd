"""Netting accounts hold one averaged position per symbol: compare net signed volume,
volume-weighted price and SL/TP per login and instrument against the bot's open trades."""

from __future__ import annotations

import polars as pl

from mt5recon.recon import classify
from mt5recon.recon import divergences as dv
from mt5recon.recon.inputs import SPEC_COLUMNS
from mt5recon.tolerances import TOLERANCE_COLUMNS

_SIGN = pl.when(pl.col("dir") == 0).then(1.0).otherwise(-1.0)
_EPS_LOTS = 1e-9
NETTING_STAGE = "netting"
_SYMBOL_IDENTITY = pl.concat_str([pl.lit("sym"), pl.col("norm_symbol")])


def _secs_since(start: str) -> pl.Expr:
    return (pl.col("fetched_at") - pl.col(start)).dt.total_milliseconds() / 1000.0


def _one_level(level: str) -> pl.Expr:
    """The bot's level for the symbol when all its open trades agree on it, else null (no single level)."""
    values = pl.col(level).fill_null(0.0)
    return pl.when(values.n_unique() == 1).then(values.first()).alias(level)


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
            _one_level("sl"),
            _one_level("tp"),
            *[pl.col(c).first() for c in (*SPEC_COLUMNS, *TOLERANCE_COLUMNS)],
        )
        .filter(pl.col("net_expected").abs() > _EPS_LOTS)
    )


def net_positions(positions: pl.DataFrame) -> pl.DataFrame:
    return (
        positions.with_columns((_SIGN * pl.col("volume")).alias("signed"))
        .sort("ticket")
        .group_by("login", "norm_symbol")
        .agg(
            pl.col("signed").sum().alias("net_broker"),
            ((pl.col("price_open") * pl.col("volume")).sum() / pl.col("volume").sum()).alias("price_broker"),
            pl.col("ticket").first(),
            pl.col("identifier").first(),
            pl.col("symbol").first().alias("symbol_pos"),
            pl.col("time").max().alias("time"),
            pl.col("magic").first().alias("magic_pos"),
            pl.col("reason").first().alias("reason"),
            pl.col("sl").first().alias("sl_pos"),
            pl.col("tp").first().alias("tp_pos"),
            pl.col("currency").first(),
            pl.col("fetched_at").first().alias("fetched_at_pos"),
            *[pl.col(c).first().alias(f"{c}_pos") for c in (*SPEC_COLUMNS, *TOLERANCE_COLUMNS)],
        )
    )


def _with_last_action(joined: pl.DataFrame, recently_closed: pl.DataFrame) -> pl.DataFrame:
    """The bot's last action on the symbol (an open or a close): no verdict inside its grace window."""
    closed = recently_closed.group_by("login", "norm_symbol").agg(pl.col("closed_at").max().alias("last_closed_at"))
    return joined.join(closed, on=["login", "norm_symbol"], how="left").with_columns(
        pl.max_horizontal("last_opened_at", "last_closed_at").alias("last_action_at")
    )


def _past_grace(fetched_at: str, grace: str) -> pl.Expr:
    since = (pl.col(fetched_at) - pl.col("last_action_at")).dt.total_milliseconds() / 1000.0
    return pl.col("last_action_at").is_null() | (since > pl.col(grace))


def reconcile_netting(
    expected: pl.DataFrame, positions: pl.DataFrame, recently_closed: pl.DataFrame, trades_with_entry_deal: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Returns (matches, divergences of symbols held on both sides, symbols held on one side only)."""
    joined = _with_last_action(
        net_expected(expected).join(net_positions(positions), on=["login", "norm_symbol"], how="full", coalesce=True),
        recently_closed,
    )
    both = joined.filter(pl.col("net_expected").is_not_null() & pl.col("net_broker").is_not_null())
    matches = both.explode("trade_ids").select(
        "login",
        pl.col("trade_ids").alias("trade_id"),
        "ticket",
        "identifier",
        pl.col("symbol_pos").alias("symbol"),
        pl.lit(NETTING_STAGE).alias("stage"),
        ((pl.col("price_broker") - pl.col("vwap_expected")).abs() / pl.col("pip")).alias("price_diff_pips"),
        (pl.col("net_broker") / pl.col("net_expected")).alias("volume_ratio"),
    )
    frame = both.with_columns(
        ((pl.col("net_broker") - pl.col("net_expected")) / pl.col("net_expected").abs() * 100).alias("volume_pct_diff"),
        pl.col("symbol_pos").alias("symbol"),
        pl.lit(NETTING_STAGE).alias("stage"),
    )
    found = [
        _volume(frame.filter(_past_grace("fetched_at", "grace_secs"))),
        _average_price(frame, trades_with_entry_deal),
        classify.level_divergences(
            frame.filter(pl.col("sl").is_not_null()), "sl", dv.SL_MISMATCH, "sl_pips", _SYMBOL_IDENTITY
        ),
        classify.level_divergences(
            frame.filter(pl.col("tp").is_not_null()), "tp", dv.TP_MISMATCH, "tp_pips", _SYMBOL_IDENTITY
        ),
    ]
    one_sided = joined.filter(pl.col("net_expected").is_null() | pl.col("net_broker").is_null())
    return matches, pl.concat(found, how="vertical"), one_sided


def _volume(frame: pl.DataFrame) -> pl.DataFrame:
    same_side = (pl.col("net_broker") * pl.col("net_expected")) > 0
    return dv.rows(
        frame.filter(dv.beyond(pl.col("volume_pct_diff"), pl.col("volume_pct"))),
        kind=dv.VOLUME_MISMATCH,
        identity=_SYMBOL_IDENTITY,
        expected=pl.col("net_expected"),
        actual=pl.col("net_broker"),
        cause=pl.when(~same_side)
        .then(pl.lit("opposite_side"))
        .when(pl.col("net_broker").abs() < pl.col("net_expected").abs())
        .then(pl.lit("partial_fill"))
        .otherwise(pl.lit("over_fill")),
    )


def _average_price(frame: pl.DataFrame, trades_with_entry_deal: pl.DataFrame) -> pl.DataFrame:
    """Fallback when no trade on the symbol has a tagged entry deal: the broker's average price
    against the bot's volume-weighted price, same side only (an average across sides means nothing)."""
    measured = trades_with_entry_deal.select("login", "norm_symbol").unique()
    slip = (
        (pl.col("price_broker") - pl.col("vwap_expected"))
        * pl.when(pl.col("net_expected") > 0).then(1.0).otherwise(-1.0)
        / pl.col("pip")
    ).alias("slip_pips")
    candidates = (
        frame.join(measured, on=["login", "norm_symbol"], how="anti")
        .filter((pl.col("net_broker") * pl.col("net_expected")) > 0)
        .with_columns(slip, pl.col("net_broker").abs().alias("volume_pos"))
    )
    return dv.slippage_rows(
        candidates, identity=_SYMBOL_IDENTITY, expected=pl.col("vwap_expected"), actual=pl.col("price_broker")
    )


def one_sided_divergences(one_sided: pl.DataFrame, bot_magics: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split symbols held on one side only into (missing: bot only, unknown: broker only), past grace."""
    missing = one_sided.filter(pl.col("net_broker").is_null()).filter(_past_grace("fetched_at", "grace_secs"))
    unknown = (
        one_sided.filter(pl.col("net_expected").is_null())
        .with_columns(pl.col("fetched_at_pos").alias("fetched_at"), pl.col("symbol_pos").alias("symbol"))
        .filter((_secs_since("time") > pl.col("grace_secs_pos")) & _past_grace("fetched_at", "grace_secs_pos"))
        .join(bot_magics, left_on=["login", "magic_pos"], right_on=["login", "magic"], how="left")
    )
    unknown_rows = dv.rows(
        unknown,
        kind=dv.UNKNOWN_POSITION,
        identity=_SYMBOL_IDENTITY,
        actual=pl.col("net_broker"),
        cause=classify.unknown_cause(pl.col("magic_pos")),
    )
    return missing, unknown_rows
