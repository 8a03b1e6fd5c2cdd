"""History deals (TradeDeal rows): fills, closes and balance operations."""

from __future__ import annotations

from typing import Annotated

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from schemas._checks import TicketedModel


class DealsModel(TicketedModel):
    type: pl.Int32 = pa.Field(ge=0, le=18)
    entry: pl.Int32 = pa.Field(isin=[0, 1, 2, 3])
    reason: pl.Int32 = pa.Field(ge=0, le=9)
    magic: pl.Int64 = pa.Field(ge=0)
    position_id: pl.Int64 = pa.Field(ge=0)
    volume: pl.Float64 = pa.Field(ge=0)
    price: pl.Float64 = pa.Field(ge=0)
    profit: pl.Float64
    time: Annotated[pl.Datetime, "ms", "UTC"] = pa.Field(nullable=False)

    @pa.dataframe_check
    def trades_have_symbol_and_price(cls, data: PolarsData) -> pl.LazyFrame:
        """Buy/sell deals need a symbol and a positive price; balance deals have neither."""
        is_trade = pl.col("type").is_in([0, 1])
        return data.lazyframe.select(
            ~is_trade | ((pl.col("symbol").str.len_chars() > 0) & (pl.col("price") > 0) & (pl.col("volume") > 0))
        )
