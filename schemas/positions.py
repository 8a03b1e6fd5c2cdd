"""Open positions (TradePosition rows)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas._checks import TicketedModel


class PositionsModel(TicketedModel):
    identifier: pl.Int64 = pa.Field(gt=0)
    type: pl.Int32 = pa.Field(isin=[0, 1])
    magic: pl.Int64 = pa.Field(ge=0)
    volume: pl.Float64 = pa.Field(gt=0)
    price_open: pl.Float64 = pa.Field(gt=0)
    # 0.0 means "not set", never a price of zero
    sl: pl.Float64 = pa.Field(ge=0)
    tp: pl.Float64 = pa.Field(ge=0)
    price_current: pl.Float64 = pa.Field(ge=0)
    symbol: pl.String = pa.Field(str_length={"min_value": 1})
