"""Last quotes per symbol (Tick rows + symbol)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from schemas._checks import FrameModel


class TicksModel(FrameModel):
    symbol: pl.String = pa.Field(str_length={"min_value": 1})
    bid: pl.Float64 = pa.Field(gt=0)
    ask: pl.Float64 = pa.Field(gt=0)

    @pa.dataframe_check
    def not_crossed(cls, data: PolarsData) -> pl.LazyFrame:
        """A wide spread is news for the guards; an ask below the bid is a broken quote."""
        return data.lazyframe.select(pl.col("ask") >= pl.col("bid"))
