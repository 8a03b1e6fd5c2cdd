"""What several models share: the base models and row-level checks."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData


def first_of_key(data: PolarsData, *keys: str) -> pl.LazyFrame:
    """True for the first row of each key; later copies fail (a duplicate ticket is ambiguous)."""
    return data.lazyframe.select(pl.struct(*keys).is_first_distinct())


class FrameModel(pa.DataFrameModel):
    """Base of every frame model: every row belongs to an account; columns beyond the declared
    ones pass through (the MT5 tuples carry more fields than the checks need)."""

    login: pl.Int64 = pa.Field(gt=0)

    class Config:
        strict = False


class TicketedModel(FrameModel):
    """Positions, orders and deals: one row per ticket in an account's fetch."""

    ticket: pl.Int64 = pa.Field(gt=0)

    @pa.dataframe_check
    def unique_ticket_per_login(cls, data: PolarsData) -> pl.LazyFrame:
        return first_of_key(data, "login", "fetched_at", "ticket")
