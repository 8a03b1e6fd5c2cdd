"""AccountInfo snapshot rows (one per login and fetch)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from schemas._checks import FrameModel, first_of_key


class AccountsModel(FrameModel):
    margin_mode: pl.Int32 = pa.Field(nullable=True, isin=[0, 1, 2])
    leverage: pl.Int64 = pa.Field(nullable=True, ge=0)
    balance: pl.Float64 = pa.Field(nullable=True)
    credit: pl.Float64 = pa.Field(nullable=True, ge=0)
    equity: pl.Float64 = pa.Field(nullable=True)
    margin: pl.Float64 = pa.Field(nullable=True, ge=0)
    margin_level: pl.Float64 = pa.Field(nullable=True, ge=0)
    account_ok: pl.Boolean
    positions_ok: pl.Boolean
    orders_ok: pl.Boolean
    deals_ok: pl.Boolean

    @pa.dataframe_check
    def one_row_per_login_and_fetch(cls, data: PolarsData) -> pl.LazyFrame:
        return first_of_key(data, "login", "fetched_at")

    @pa.dataframe_check
    def money_fields_set_when_fetched(cls, data: PolarsData) -> pl.LazyFrame:
        """A fetched account has finite money fields; a failed fetch carries nulls only."""
        money = ["balance", "equity", "margin_mode"]
        return data.lazyframe.select(
            ~pl.col("account_ok") | pl.all_horizontal([pl.col(c).is_not_null() for c in money])
        )
