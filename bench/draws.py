"""Seeded, vectorized random draws for the synthetic generators: every draw is a hash of a row
key, so a seed always gives the same data, with no per-row Python and no numpy."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl


def uniform(key: str | pl.Expr, seed: int, stream: int) -> pl.Expr:
    """A uniform draw in [0, 1) per row, a pure function of (row key, seed, stream)."""
    column = pl.col(key) if isinstance(key, str) else key
    hashed = column.hash(seed=(seed * 1_000_003 + stream * 7_919) % (1 << 62))
    return (hashed % (1 << 53)).cast(pl.Float64) / float(1 << 53)


def pick(draw: pl.Expr, shares: list[float]) -> pl.Expr:
    """Index of the bucket `draw` falls in, buckets sized by `shares` (which sum to 1)."""
    expr: pl.Expr = pl.lit(len(shares) - 1)
    bound = 1.0 - shares[-1]
    for i in range(len(shares) - 2, -1, -1):
        expr = pl.when(draw >= bound).then(expr).otherwise(pl.lit(i))
        bound -= shares[i]
    return expr.cast(pl.Int32)


def round_to_digits(price: pl.Expr, digits: Iterable[int]) -> pl.Expr:
    """Round to each row's instrument digits (column `digits`), the way quotes arrive."""
    out: pl.Expr = price
    for d in sorted(set(digits)):
        out = pl.when(pl.col("digits") == d).then(price.round(d)).otherwise(out)
    return out
