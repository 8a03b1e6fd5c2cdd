"""Pending orders (TradeOrder rows)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from schemas._checks import TicketedModel


class OrdersModel(TicketedModel):
    type: pl.Int32 = pa.Field(isin=list(range(9)))
    state: pl.Int32 = pa.Field(ge=0, le=9)
    volume_initial: pl.Float64 = pa.Field(gt=0)
    volume_current: pl.Float64 = pa.Field(ge=0)
    price_open: pl.Float64 = pa.Field(ge=0)
    sl: pl.Float64 = pa.Field(ge=0)
    tp: pl.Float64 = pa.Field(ge=0)
    symbol: pl.String = pa.Field(str_length={"min_value": 1})

    @pa.dataframe_check
    def current_within_initial(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("volume_current") <= pl.col("volume_initial") + 1e-9)
