"""Strict one-to-one assignment of scored candidate pairs by mutual-best rounds.

`join_asof(nearest)` is not one-to-one (a trade can be claimed twice); here each round keeps
the pairs that are each other's best choice, removes them, and repeats. The pair with the
lowest score overall is always mutual-best, so every round makes progress. Ties are broken
by the documented order: score, then ticket, then trade_id (deterministic).
"""

from __future__ import annotations

import polars as pl

LEFT = "trade_id"
RIGHT = "ticket"


def assign(candidates: pl.DataFrame, score: str = "score") -> pl.DataFrame:
    """Return a subset of `candidates` (columns login, trade_id, ticket, score, ...) with no key used twice."""
    if candidates.height == 0:
        return candidates
    if candidates.select(["login", LEFT]).is_unique().all() and candidates.select(["login", RIGHT]).is_unique().all():
        return candidates.sort([score, RIGHT, LEFT])  # already one-to-one (the usual identity stage)
    chosen: list[pl.DataFrame] = []
    remaining = candidates.sort([score, RIGHT, LEFT])
    while remaining.height:
        best_for_left = remaining.group_by(["login", LEFT], maintain_order=True).first()
        best_for_right = remaining.group_by(["login", RIGHT], maintain_order=True).first()
        mutual = best_for_left.join(best_for_right.select("login", LEFT, RIGHT), on=["login", LEFT, RIGHT], how="semi")
        chosen.append(mutual)
        remaining = remaining.join(mutual.select("login", LEFT), on=["login", LEFT], how="anti").join(
            mutual.select("login", RIGHT), on=["login", RIGHT], how="anti"
        )
    if not chosen:
        return candidates.clear()
    return pl.concat(chosen, how="vertical").select(candidates.columns)
