"""Divergence rows: one schema for every kind, with a deterministic break id.

Sizes are signed where a sign means something: slippage > 0 is adverse (paid more on a buy,
received less on a sell), < 0 favourable. Money is in the symbol's profit currency when that is
the account currency, otherwise null (no silent FX guess).
"""

from __future__ import annotations

import polars as pl

from mt5recon import frames
from mt5recon.store import tables

SCHEMA = pl.Schema({k: v for k, v in tables.DIVERGENCES.items() if k != "cycle_id"})

SLIPPAGE = "slippage"
VOLUME_MISMATCH = "volume_mismatch"
SL_MISMATCH = "sl_mismatch"
TP_MISMATCH = "tp_mismatch"
UNKNOWN_POSITION = "unknown_position"
MISSING_POSITION = "missing_position"


def rows(
    frame: pl.DataFrame,
    *,
    kind: str,
    identity: pl.Expr,
    expected: pl.Expr | None = None,
    actual: pl.Expr | None = None,
    size_pips: pl.Expr | None = None,
    size_money: pl.Expr | None = None,
    cause: pl.Expr | None = None,
) -> pl.DataFrame:
    """Project `frame` (one row per divergence) onto the divergence schema."""
    none = pl.lit(None)

    def col(name: str) -> pl.Expr:
        return pl.col(name) if name in frame.columns else none

    return frame.select(
        pl.concat_str([pl.col("login").cast(pl.String), pl.lit(kind), identity], separator=":").alias("break_id"),
        pl.col("login").cast(pl.Int64),
        pl.lit(kind).alias("kind"),
        col("trade_id").cast(pl.String).alias("trade_id"),
        col("ticket").cast(pl.Int64).alias("ticket"),
        col("identifier").cast(pl.Int64).alias("identifier"),
        col("symbol").cast(pl.String).alias("symbol"),
        col("stage").cast(pl.String).alias("stage"),
        (expected if expected is not None else none).cast(pl.Float64).alias("expected"),
        (actual if actual is not None else none).cast(pl.Float64).alias("actual"),
        (size_pips if size_pips is not None else none).cast(pl.Float64).alias("size_pips"),
        (size_money if size_money is not None else none).cast(pl.Float64).alias("size_money"),
        (cause if cause is not None else none).cast(pl.String).alias("cause"),
        pl.col("fetched_at").cast(frames.UTC_US).alias("detected_at"),
    )


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def money(pips: pl.Expr) -> pl.Expr:
    """pips x pip x lots x contract size, when the profit currency is the account's."""
    value = pips * pl.col("pip") * pl.col("volume_pos") * pl.col("contract_size")
    return pl.when(pl.col("currency_profit") == pl.col("currency")).then(value).otherwise(None)
