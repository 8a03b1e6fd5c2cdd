"""Classify matched pairs and leftovers of hedging accounts into divergences."""

from __future__ import annotations

import polars as pl

from mt5recon.recon import divergences as dv

# the sign that makes a price difference adverse: buy (dir 0) pays more, sell (dir 1) receives less
_ADVERSE = pl.when(pl.col("dir") == 0).then(1.0).otherwise(-1.0)
_MANUAL_REASONS = [0, 1, 2]  # POSITION_REASON_CLIENT / MOBILE / WEB


def paired(expected: pl.DataFrame, positions: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """Expected and broker attributes side by side, one row per matched pair."""
    broker = positions.select(
        "login",
        "ticket",
        "identifier",
        pl.col("symbol").alias("symbol_pos"),
        "price_open",
        pl.col("volume").alias("volume_pos"),
        pl.col("sl").alias("sl_pos"),
        pl.col("tp").alias("tp_pos"),
        "currency",
    )
    return pairs.join(expected, on=["login", "trade_id"], how="inner").join(broker, on=["login", "ticket"], how="inner")


def matched_divergences(pairs: pl.DataFrame) -> pl.DataFrame:
    """Slippage, volume, SL and TP differences beyond the per-symbol thresholds."""
    slip = ((pl.col("price_open") - pl.col("price")) * _ADVERSE / pl.col("pip")).alias("slip_pips")
    volume_pct = ((pl.col("volume_pos") - pl.col("volume")) / pl.col("volume") * 100).alias("volume_pct_diff")
    frame = pairs.with_columns(slip, volume_pct, pl.col("symbol_pos").alias("symbol"))
    identity = pl.col("trade_id")
    out = [
        dv.slippage_rows(frame, identity=identity, expected=pl.col("price"), actual=pl.col("price_open")),
        dv.rows(
            frame.filter(dv.beyond(pl.col("volume_pct_diff"), pl.col("volume_pct"))),
            kind=dv.VOLUME_MISMATCH,
            identity=identity,
            expected=pl.col("volume"),
            actual=pl.col("volume_pos"),
            cause=pl.when(pl.col("volume_pct_diff") < 0).then(pl.lit("partial_fill")).otherwise(pl.lit("over_fill")),
        ),
    ]
    for level, kind, threshold in (("sl", dv.SL_MISMATCH, "sl_pips"), ("tp", dv.TP_MISMATCH, "tp_pips")):
        out.append(level_divergences(frame, level, kind, threshold, identity))
    return pl.concat(out, how="vertical")


def level_divergences(frame: pl.DataFrame, level: str, kind: str, threshold: str, identity: pl.Expr) -> pl.DataFrame:
    """SL/TP: 0.0 means not set; a set level missing at the broker is its own cause."""
    bot, broker = pl.col(level), pl.col(f"{level}_pos")
    diff_pips = ((broker - bot) / pl.col("pip")).alias("level_pips")
    cause = (
        pl.when((bot > 0) & (broker == 0))
        .then(pl.lit("missing_at_broker"))
        .when((bot == 0) & (broker > 0))
        .then(pl.lit("unexpected_at_broker"))
        .otherwise(pl.lit("drift"))
    )
    flagged = frame.with_columns(diff_pips).filter(
        ((bot > 0) & (broker == 0))
        | ((bot == 0) & (broker > 0))
        | ((bot > 0) & (broker > 0) & (dv.beyond(pl.col("level_pips"), pl.col(threshold))))
    )
    return dv.rows(
        flagged,
        kind=kind,
        identity=identity,
        expected=bot,
        actual=broker,
        size_pips=pl.when((bot > 0) & (broker > 0)).then(pl.col("level_pips")),
        cause=cause,
    )


def bot_magics(expected_all: pl.DataFrame) -> pl.DataFrame:
    """login, magic, bot_magic=True for every magic the bot has ever used on the account."""
    return (
        expected_all.filter(pl.col("magic").is_not_null())
        .select("login", "magic")
        .unique()
        .with_columns(pl.lit(True).alias("bot_magic"))
    )


def unknown_cause(magic: pl.Expr) -> pl.Expr:
    """Manual (magic 0 or a client/mobile/web reason), the bot's own magic, or another EA."""
    return (
        pl.when((magic == 0) | pl.col("reason").is_in(_MANUAL_REASONS))
        .then(pl.lit("manual"))
        .when(pl.col("bot_magic").fill_null(False))
        .then(pl.lit("bot_untracked"))
        .otherwise(pl.lit("other_ea"))
    )


def unknown_positions(positions: pl.DataFrame, magics: pl.DataFrame) -> pl.DataFrame:
    """Broker positions no bot trade explains, past the grace window: manual, another EA, or the bot's own."""
    frame = positions.join(magics, on=["login", "magic"], how="left").filter(
        (pl.col("fetched_at") - pl.col("time")).dt.total_milliseconds() / 1000.0 > pl.col("grace_secs")
    )
    return dv.rows(
        frame,
        kind=dv.UNKNOWN_POSITION,
        identity=pl.concat_str([pl.lit("pos"), pl.col("identifier").cast(pl.String)]),
        actual=pl.col("volume"),
        cause=unknown_cause(pl.col("magic")),
    )
