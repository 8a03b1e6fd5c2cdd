"""Per-trade entry slippage on netting accounts, read from the trade's own entry deal.

The netted position's price is an average that MT5 keeps through reductions, so it says nothing
about one trade's fill; the entry deal that carries the bot's tag does.
"""

from __future__ import annotations

import polars as pl

from mt5recon.recon import divergences as dv
from mt5recon.recon import tags

_SIGN = pl.when(pl.col("dir") == 0).then(1.0).otherwise(-1.0)
ENTRY_DEAL_STAGE = "entry_deal"  # evidence comes from deals: no verdict when the deals call failed
_TRADE_TYPES = [0, 1]  # DEAL_TYPE_BUY, DEAL_TYPE_SELL
_ENTRIES = [0, 2]  # DEAL_ENTRY_IN, DEAL_ENTRY_INOUT (a reversal opens the new side)


def tagged_entries(expected: pl.DataFrame, deals: pl.DataFrame, accounts: pl.DataFrame) -> pl.DataFrame:
    """Each expected trade with the first entry deal whose comment carries its tag (if any)."""
    entries = deals.filter(pl.col("type").is_in(_TRADE_TYPES) & pl.col("entry").is_in(_ENTRIES)).select(
        "login",
        "magic",
        "comment",
        "ticket",
        pl.col("price").alias("price_open"),
        pl.col("volume").alias("volume_deal"),
        pl.col("position_id").alias("identifier"),
        pl.col("symbol").alias("symbol_deal"),
        "time_msc",
    )
    trades = expected.filter(pl.col("magic").is_not_null())
    pairs = tags.tag_pairs(trades, entries, "ticket")
    return (
        trades.join(pairs, on=["login", "trade_id"], how="inner")
        .join(entries.drop("magic"), on=["login", "ticket"], how="inner")
        .sort("time_msc", "ticket")
        .group_by("login", "trade_id", maintain_order=True)
        .first()
        .drop("ticket")
        .join(accounts.select("login", "currency"), on="login", how="left")
    )


def entry_slippage(tagged: pl.DataFrame) -> pl.DataFrame:
    """Slippage beyond the symbol's threshold, signed (> 0 adverse), in pips and account money."""
    frame = tagged.with_columns(
        ((pl.col("price_open") - pl.col("price")) * _SIGN / pl.col("pip")).alias("slip_pips"),
        pl.col("symbol_deal").alias("symbol"),
        pl.lit(ENTRY_DEAL_STAGE).alias("stage"),
        pl.col("volume_deal").alias("volume_pos"),
    )
    return dv.slippage_rows(frame, identity=pl.col("trade_id"), expected=pl.col("price"), actual=pl.col("price_open"))
