"""Row-level checks shared by several models."""

from __future__ import annotations

import polars as pl
from pandera.api.polars.types import PolarsData


def first_of_key(data: PolarsData, *keys: str) -> pl.LazyFrame:
    """True for the first row of each key; later copies fail (a duplicate ticket is ambiguous)."""
    return data.lazyframe.select(pl.struct(*keys).is_first_distinct())
