"""Divergence rows: one schema for every kind, with a deterministic break id.

Sizes are signed where a sign means something: slippage > 0 is adverse (paid more on a buy,
received less on a sell), < 0 favourable. Money is in the ACCOUNT's currency: from the terminal's
own tick value (SymbolInfo.trade_tick_value is quoted in the deposit currency), else from the
contract size when the profit currency is the account's; otherwise null (no silent FX guess).
"""

from __future__ import annotations

import polars as pl

from mt5recon import frames
from mt5recon.store import tables

# one row per divergence found this cycle; the break lifecycle turns them into breaks and events
_COLUMNS = (
    "break_id",
    "login",
    "kind",
    "trade_id",
    "ticket",
    "identifier",
    "symbol",
    "stage",
    "expected",
    "actual",
    "size_pips",
    "size_money",
    "cause",
)
SCHEMA = pl.Schema({**{c: tables.BREAKS[c] for c in _COLUMNS}, "detected_at": frames.UTC_US})

SLIPPAGE = "slippage"
VOLUME_MISMATCH = "volume_mismatch"
SL_MISMATCH = "sl_mismatch"
TP_MISMATCH = "tp_mismatch"
UNKNOWN_POSITION = "unknown_position"
MISSING_POSITION = "missing_position"
SNAPSHOT_FAILED = "snapshot_failed"
SNAPSHOT_STALE = "snapshot_stale"
KINDS = (
    SLIPPAGE,
    VOLUME_MISMATCH,
    SL_MISMATCH,
    TP_MISMATCH,
    UNKNOWN_POSITION,
    MISSING_POSITION,
    SNAPSHOT_FAILED,
    SNAPSHOT_STALE,
)
# every cause each kind can carry (snapshot_failed: a comma-joined list of these MT5 functions)
CAUSES: dict[str, tuple[str, ...]] = {
    SLIPPAGE: ("adverse", "favourable"),
    VOLUME_MISMATCH: ("partial_fill", "over_fill", "opposite_side"),
    SL_MISMATCH: ("drift", "missing_at_broker", "unexpected_at_broker"),
    TP_MISMATCH: ("drift", "missing_at_broker", "unexpected_at_broker"),
    UNKNOWN_POSITION: ("manual", "other_ea", "bot_untracked"),
    MISSING_POSITION: (
        "closed_by_sl",
        "closed_by_tp",
        "stop_out",
        "closed_manually",
        "closed_by_bot",
        "closed_by_other_ea",
        "closed_other",
        "never_filled",
        "unknown",
        "unknown_deals_unavailable",
    ),
    SNAPSHOT_FAILED: ("account_info", "positions_get", "orders_get", "history_deals_get"),
    SNAPSHOT_STALE: ("data_age_exceeded", "terminal_disconnected", "quotes_too_old"),
}
# kinds that accuse (a position the broker or the bot should not have): confirmed before they open
CONFIRMED_KINDS = (UNKNOWN_POSITION, MISSING_POSITION)


def rows(
    frame: pl.DataFrame,
    *,
    kind: str,
    identity: pl.Expr,
    expected: pl.Expr | None = None,
    actual: pl.Expr | None = None,
    size_pips: pl.Expr | None = None,
    size_money: pl.Expr | None = None,
    cause: pl.Expr | None = None,
) -> pl.DataFrame:
    """Project `frame` (one row per divergence) onto the divergence schema."""
    none = pl.lit(None)

    def col(name: str) -> pl.Expr:
        return pl.col(name) if name in frame.columns else none

    return frame.select(
        pl.concat_str([pl.col("login").cast(pl.String), pl.lit(kind), identity], separator=":").alias("break_id"),
        pl.col("login").cast(pl.Int64),
        pl.lit(kind).alias("kind"),
        col("trade_id").cast(pl.String).alias("trade_id"),
        col("ticket").cast(pl.Int64).alias("ticket"),
        col("identifier").cast(pl.Int64).alias("identifier"),
        col("symbol").cast(pl.String).alias("symbol"),
        col("stage").cast(pl.String).alias("stage"),
        (expected if expected is not None else none).cast(pl.Float64).alias("expected"),
        (actual if actual is not None else none).cast(pl.Float64).alias("actual"),
        (size_pips if size_pips is not None else none).cast(pl.Float64).alias("size_pips"),
        (size_money if size_money is not None else none).cast(pl.Float64).alias("size_money"),
        (cause if cause is not None else none).cast(pl.String).alias("cause"),
        pl.col("fetched_at").cast(frames.UTC_US).alias("detected_at"),
    )


SIZE_DECIMALS = 6


def beyond(size: pl.Expr, threshold: pl.Expr) -> pl.Expr:
    """|size| strictly over the threshold, compared at 1e-6 of the unit: a difference of exactly the
    threshold (4.9999999999 pips after float subtraction) gets one verdict on every side and symbol."""
    return size.abs().round(SIZE_DECIMALS) > threshold


def slippage_cause(slip_pips: pl.Expr) -> pl.Expr:
    return pl.when(slip_pips > 0).then(pl.lit("adverse")).otherwise(pl.lit("favourable"))


def slippage_rows(frame: pl.DataFrame, *, identity: pl.Expr, expected: pl.Expr, actual: pl.Expr) -> pl.DataFrame:
    """Slippage divergences from a frame with a signed `slip_pips` (> 0 adverse), the symbol's
    `slippage_pips` threshold and the filled `volume_pos`; money in the account's currency."""
    slip = pl.col("slip_pips")
    return rows(
        frame.filter(beyond(slip, pl.col("slippage_pips"))),
        kind=SLIPPAGE,
        identity=identity,
        expected=expected,
        actual=actual,
        size_pips=slip,
        size_money=money(slip),
        cause=slippage_cause(slip),
    )


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def money_per_pip_lot() -> pl.Expr:
    """Account-currency value of one pip on one lot."""
    tick_value, tick_size = pl.col("tick_value"), pl.col("tick_size")
    return (
        pl.when((tick_value > 0) & (tick_size > 0))
        .then(pl.col("pip") / tick_size * tick_value)
        .when(pl.col("currency_profit") == pl.col("currency"))
        .then(pl.col("pip") * pl.col("contract_size"))
        .otherwise(None)
    )


def money(pips: pl.Expr, lots: pl.Expr | None = None) -> pl.Expr:
    """pips x lots in the account's currency (lots default to the broker's filled volume)."""
    return pips * money_per_pip_lot() * (lots if lots is not None else pl.col("volume_pos"))
