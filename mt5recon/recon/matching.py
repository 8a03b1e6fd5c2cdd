"""Hedging-account matching in stages: identity, then the bot's tag, then a wide fuzzy window.

Each stage only sees what earlier stages left, and every stage is one-to-one.
"""

from __future__ import annotations

import polars as pl

from mt5recon.recon import one_to_one, tags

PAIR_COLUMNS = ["login", "trade_id", "ticket", "stage", "score"]


def _unmatched(
    expected: pl.DataFrame, positions: pl.DataFrame, pairs: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    return (
        expected.join(pairs.select("login", "trade_id"), on=["login", "trade_id"], how="anti"),
        positions.join(pairs.select("login", "ticket"), on=["login", "ticket"], how="anti"),
    )


def by_identity(expected: pl.DataFrame, positions: pl.DataFrame) -> pl.DataFrame:
    """Position `identifier` never changes: the bot's recorded `position_id` is the strongest key."""
    candidates = (
        expected.select("login", "trade_id", "position_id")
        .filter(pl.col("position_id").is_not_null())
        .join(
            positions.select("login", "identifier", "ticket"),
            left_on=["login", "position_id"],
            right_on=["login", "identifier"],
            how="inner",
        )
    )
    scored = candidates.select(
        "login", "trade_id", "ticket", pl.lit("identity").alias("stage"), pl.lit(0.0).alias("score")
    )
    return one_to_one.assign(scored)


def by_tag(expected: pl.DataFrame, positions: pl.DataFrame) -> pl.DataFrame:
    """Same magic and the bot's trade id in the comment, tolerating truncation (~31 chars);
    the longest matching comment scores best."""
    trades = expected.filter(pl.col("magic").is_not_null() & pl.col("position_id").is_null())
    pairs = tags.tag_pairs(trades, positions, "ticket")
    scored = pairs.join(positions.select("login", "ticket", "comment"), on=["login", "ticket"], how="inner").select(
        "login",
        "trade_id",
        "ticket",
        pl.lit("tag").alias("stage"),
        (-pl.col("comment").str.strip_chars().str.len_chars().cast(pl.Float64)).alias("score"),
    )
    return one_to_one.assign(scored)


def by_fuzzy(expected: pl.DataFrame, positions: pl.DataFrame) -> pl.DataFrame:
    """Same account, instrument and side; nearest in price, volume and time within WIDE windows.

    A trade whose broker position_id the bot recorded is settled by identity alone (identifiers never
    change), and a bot trade never pairs with a position of another magic (manual trades have 0).
    """
    candidates = (
        expected.filter(pl.col("position_id").is_null())
        .join(
            positions.select(
                "login",
                "norm_symbol",
                "dir",
                "ticket",
                "price_open",
                pl.col("volume").alias("volume_pos"),
                "time",
                pl.col("magic").alias("magic_pos"),
            ),
            on=["login", "norm_symbol", "dir"],
            how="inner",
        )
        .filter(pl.col("magic").is_null() | (pl.col("magic") == pl.col("magic_pos")))
    ).with_columns(
        ((pl.col("price_open") - pl.col("price")).abs() / pl.col("pip")).alias("price_pips"),
        (pl.col("volume_pos") / pl.col("volume")).log().abs().alias("log_volume_ratio"),
        ((pl.col("time") - pl.col("opened_at")).dt.total_milliseconds().abs() / 1000.0).alias("time_secs"),
    )
    within = candidates.filter(
        (pl.col("price_pips") <= pl.col("match_window_pips"))
        & (pl.col("log_volume_ratio") <= pl.col("match_volume_ratio").log())
        & (pl.col("time_secs") <= pl.col("match_window_secs"))
    )
    scored = within.select(
        "login",
        "trade_id",
        "ticket",
        pl.lit("fuzzy").alias("stage"),
        (
            pl.col("price_pips") / pl.col("match_window_pips")
            + pl.col("log_volume_ratio") / pl.col("match_volume_ratio").log()
            + pl.col("time_secs") / pl.col("match_window_secs")
        ).alias("score"),
    )
    return one_to_one.assign(scored)


def match_hedging(expected: pl.DataFrame, positions: pl.DataFrame) -> pl.DataFrame:
    """All stages in order; returns login, trade_id, ticket, stage, score — each key at most once."""
    pairs: list[pl.DataFrame] = []
    for stage in (by_identity, by_tag, by_fuzzy):
        remaining_expected, remaining_positions = (
            _unmatched(expected, positions, pl.concat(pairs)) if pairs else (expected, positions)
        )
        if remaining_expected.height and remaining_positions.height:
            pairs.append(stage(remaining_expected, remaining_positions).select(PAIR_COLUMNS))
    if not pairs:
        return pl.DataFrame(
            schema={
                "login": pl.Int64,
                "trade_id": pl.String,
                "ticket": pl.Int64,
                "stage": pl.String,
                "score": pl.Float64,
            }
        )
    return pl.concat(pairs, how="vertical")
