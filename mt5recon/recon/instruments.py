"""Instrument identity across broker symbol names, and pip sizes from symbol specs."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

_SEPARATED_SUFFIX = r"[._\-+!].*$"  # EURUSD.m, EURUSD_i, EURUSD-ECN
_LOWERCASE_SUFFIX = r"^([A-Z0-9]{3,})[a-z]+$"  # EURUSDm, EURUSDpro
_NAMED_SUFFIX = r"^([A-Z]{6})(PRO|ECN|RAW|MICRO|MINI|STD)$"  # EURUSDPRO


def normalized_symbol(column: pl.Expr, symbol_map: Mapping[str, str] | None = None) -> pl.Expr:
    """Map broker spellings (`#EURUSD`, `EURUSD.m`, `EURUSDpro`) to one instrument name.

    An explicit `symbol_map` entry (broker symbol -> instrument) wins over the default rules. The
    rules run once per distinct name (a fleet has a few dozen), not once per row.
    """
    names = column.unique(maintain_order=True).drop_nulls()
    return column.replace_strict(names, _normalized(names, symbol_map), default=None, return_dtype=pl.String)


def _normalized(column: pl.Expr, symbol_map: Mapping[str, str] | None) -> pl.Expr:
    cleaned = (
        column.str.strip_chars()
        .str.strip_chars_start("#.")
        .str.replace(_SEPARATED_SUFFIX, "")
        .str.replace(_LOWERCASE_SUFFIX, "$1")
        .str.to_uppercase()
        .str.replace(_NAMED_SUFFIX, "$1")
    )
    if symbol_map:
        return column.replace_strict(dict(symbol_map), default=cleaned, return_dtype=pl.String)
    return cleaned


def pip_size(digits: pl.Expr, point: pl.Expr) -> pl.Expr:
    """5- and 3-digit quotes carry a fractional pip: one pip is ten points there, one point elsewhere."""
    return pl.when(digits.is_in([3, 5])).then(point * 10).otherwise(point)
