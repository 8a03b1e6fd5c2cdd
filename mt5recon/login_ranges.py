"""Ranges of logins, for work done one range at a time to bound its working set.

Reconciliation and histories join everything on `login`, so a range's rows give exactly that
range's part of the whole result."""

from __future__ import annotations

import polars as pl


def login_ranges(frame: pl.DataFrame, per_range: int) -> list[tuple[int, int]]:
    """Inclusive (first, last) login of consecutive ranges of `per_range` distinct logins of
    `frame`, in login order."""
    if per_range < 1:
        raise ValueError(f"per_range must be at least 1, got {per_range}")
    logins = frame["login"].drop_nulls().unique().sort().to_list()
    return [
        (logins[start], logins[min(start + per_range, len(logins)) - 1]) for start in range(0, len(logins), per_range)
    ]


def in_range(frame: pl.DataFrame, first: int, last: int) -> pl.DataFrame:
    """The rows of `frame` whose login is in [first, last]."""
    return frame.filter(pl.col("login").is_between(first, last))
