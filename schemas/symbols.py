"""Symbol specifications matching needs (pip size, contract size, volume steps)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from schemas._checks import FrameModel, first_of_key


class SymbolsModel(FrameModel):
    name: pl.String = pa.Field(str_length={"min_value": 1})
    digits: pl.Int32 = pa.Field(ge=0, le=10)
    point: pl.Float64 = pa.Field(gt=0)
    trade_contract_size: pl.Float64 = pa.Field(gt=0)
    # optional: older recordings lack them, and money then falls back to same-currency symbols only
    trade_tick_value: pl.Float64 = pa.Field(ge=0, nullable=True)
    trade_tick_size: pl.Float64 = pa.Field(gt=0, nullable=True)
    volume_min: pl.Float64 = pa.Field(gt=0)
    volume_step: pl.Float64 = pa.Field(gt=0)

    @pa.dataframe_check
    def one_spec_per_symbol(cls, data: PolarsData) -> pl.LazyFrame:
        return first_of_key(data, "login", "fetched_at", "name")
