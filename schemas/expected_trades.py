"""What the bot believes it holds: the expected-trades contract bot developers write to."""

from __future__ import annotations

from typing import Annotated

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from schemas._checks import FrameModel, first_of_key


class ExpectedTradesModel(FrameModel):
    trade_id: pl.String = pa.Field(str_length={"min_value": 1})
    symbol: pl.String = pa.Field(str_length={"min_value": 1})
    side: pl.String = pa.Field(isin=["buy", "sell"])
    volume: pl.Float64 = pa.Field(gt=0)
    price: pl.Float64 = pa.Field(gt=0)
    sl: pl.Float64 = pa.Field(nullable=True, ge=0)
    tp: pl.Float64 = pa.Field(nullable=True, ge=0)
    magic: pl.Int64 = pa.Field(nullable=True, ge=0)
    position_id: pl.Int64 = pa.Field(nullable=True, gt=0)
    opened_at: Annotated[pl.Datetime, "us", "UTC"] = pa.Field(nullable=False)
    closed_at: Annotated[pl.Datetime, "us", "UTC"] = pa.Field(nullable=True)

    @pa.dataframe_check
    def trade_id_unique_per_login(cls, data: PolarsData) -> pl.LazyFrame:
        return first_of_key(data, "login", "trade_id")

    @pa.dataframe_check
    def closes_after_opening(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("closed_at").is_null() | (pl.col("closed_at") >= pl.col("opened_at")))
