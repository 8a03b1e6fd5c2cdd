"""Validate frames against their Pandera models and quarantine, never drop, what fails.

Every input row ends up either in the valid frame or in the quarantine frame with the
failed checks and its raw values: rows in = rows valid + rows quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
from pandera.errors import SchemaError, SchemaErrors

from mt5recon import frames
from mt5recon.validation_screen import is_clean
from schemas import MODELS

_ROW = "__row"
_WHY = "__why"  # internal; frames have their own `reason` column (MT5 deal/position reason)


@dataclass(frozen=True)
class Validated:
    valid: pl.DataFrame
    quarantined: pl.DataFrame
    # the input row number of each valid row, so a later check quarantines it under its own number
    valid_rows: pl.Series | None = None


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=frames.QUARANTINE)


def cast_expr(column: str, source: pl.DataType, target: pl.DataType) -> pl.Expr:
    """Cast one column to its declared dtype; text timestamps are parsed, naive ones taken as UTC."""
    expr = pl.col(column)
    if isinstance(target, pl.Datetime):
        if source == pl.String:
            expr = expr.str.to_datetime(strict=False, time_zone="UTC")
        elif isinstance(source, pl.Datetime) and source.time_zone is None:
            expr = expr.dt.replace_time_zone("UTC")
        elif isinstance(source, pl.Datetime):
            expr = expr.dt.convert_time_zone("UTC")
        elif source == pl.Date:
            expr = expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    elif source == pl.String and target == pl.Boolean:
        expr = expr.str.to_lowercase().replace_strict(
            {"true": True, "false": False, "1": True, "0": False}, default=None
        )
    return expr.cast(target, strict=False).alias(column)


def _conform(name: str, df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast to the frame's dtypes; a value that does not cast quarantines its row (returned as reasons)."""
    schema = frames.ALL_FRAMES[name]
    missing = [c for c in schema if c not in df.columns]
    if missing:
        reason = f"missing column(s): {', '.join(missing)}"
        return df.clear().select(_ROW), df.select(_ROW, pl.lit(reason).alias(_WHY))
    # a blank text cell (CSV) means "no value" for a typed column, not an unreadable one
    blanks = [
        pl.when(pl.col(c).str.strip_chars() == "").then(None).otherwise(pl.col(c)).alias(c)
        for c, dtype in schema.items()
        if df.schema[c] == pl.String and dtype != pl.String
    ]
    df = df.with_columns(blanks) if blanks else df
    cast = df.with_columns([cast_expr(c, df.schema[c], dtype) for c, dtype in schema.items()])
    bad = [
        pl.when(df[c].is_not_null() & cast[c].is_null()).then(
            pl.format(f"{c}: cannot read '{{}}' as {dtype}", pl.Series(c, df[c]).cast(pl.String, strict=False))
        )
        for c, dtype in schema.items()
        if df.schema[c] != dtype
    ]
    if not bad:
        return cast, df.clear().select(_ROW, pl.lit("").alias(_WHY))
    reasons = df.select(_ROW, pl.concat_str(bad, separator="; ", ignore_nulls=True).alias(_WHY))
    failed = reasons.filter(pl.col(_WHY).is_not_null() & (pl.col(_WHY) != ""))
    return cast.filter(~pl.col(_ROW).is_in(failed[_ROW].implode())), failed


def _pandera_failures(name: str, df: pl.DataFrame) -> pl.DataFrame:
    """Row index -> 'column: check (value)' reasons from a lazy (collect-all) validation; a
    frame the one-query screen proves clean has none, without Pandera's check-by-check run."""
    values = df.drop(_ROW)
    if is_clean(name, values):
        return pl.DataFrame(schema={_ROW: pl.Int64, _WHY: pl.String})
    try:
        MODELS[name].validate(values, lazy=True)
    except SchemaErrors as errors:
        cases: pl.DataFrame = errors.failure_cases
    except SchemaError as error:  # a non-lazy path still yields a failure-case frame
        cases = error.failure_cases if isinstance(error.failure_cases, pl.DataFrame) else pl.DataFrame()
    else:
        return pl.DataFrame(schema={_ROW: pl.Int64, _WHY: pl.String})
    row_check = pl.col("schema_context") == "DataFrameSchema"
    described = cases.with_columns(
        pl.when(row_check)
        .then(pl.col("check"))
        .otherwise(
            pl.format(
                "{}: {} ({})",
                pl.col("column"),
                pl.col("check"),
                pl.col("failure_case").cast(pl.String).fill_null("null").str.slice(0, 80),
            )
        )
        .alias(_WHY)
    )
    frame_wide = described.filter(pl.col("index").is_null())
    if frame_wide.height:
        reason = "; ".join(frame_wide[_WHY].unique(maintain_order=True).to_list())
        return df.select(pl.col(_ROW), pl.lit(reason).alias(_WHY))
    row_of_index = df.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("index"), pl.col(_ROW))
    return (
        described.with_columns(pl.col("index").cast(pl.Int64))
        .group_by("index", maintain_order=True)
        .agg(pl.col(_WHY).unique(maintain_order=True).str.join("; "))
        .join(row_of_index, on="index", how="inner")
        .select(_ROW, _WHY)
    )


def _quarantine_rows(name: str, raw: pl.DataFrame, reasons: pl.DataFrame, now: datetime) -> pl.DataFrame:
    if reasons.height == 0:
        return empty_quarantine()
    picked = raw.join(reasons.group_by(_ROW).agg(pl.col(_WHY).str.join("; ")), on=_ROW, how="inner")
    login = pl.col("login").cast(pl.Int64, strict=False) if "login" in raw.columns else pl.lit(None, pl.Int64)
    payload = [c for c in raw.columns if c not in (_ROW, _WHY)]
    return picked.select(
        pl.lit(name).alias("frame"),
        login.alias("login"),
        pl.col(_ROW).cast(pl.Int64).alias("row_index"),
        pl.col(_WHY).alias("reason"),
        pl.struct(payload).struct.json_encode().alias("raw"),
        pl.lit(now).cast(frames.UTC_US).alias("quarantined_at"),
    ).sort("row_index")


def validate_frame(name: str, df: pl.DataFrame, *, now: datetime) -> Validated:
    """Split a frame into rows fit to reconcile and quarantined rows with their reasons."""
    raw = df.with_row_index(_ROW).with_columns(pl.col(_ROW).cast(pl.Int64))
    conformed, cast_failures = _conform(name, raw)
    check_failures = _pandera_failures(name, conformed) if conformed.height else cast_failures.clear()
    reasons = pl.concat([cast_failures, check_failures], how="vertical")
    schema = frames.ALL_FRAMES[name]
    if conformed.height == 0:
        kept = pl.DataFrame(schema={_ROW: pl.Int64, **schema})
    elif check_failures.height == 0:  # the usual cycle: the valid frame shares the input's memory
        kept = conformed
    else:
        kept = conformed.filter(~pl.col(_ROW).is_in(check_failures[_ROW].implode()))
    return Validated(
        valid=kept.select(list(schema)),
        quarantined=_quarantine_rows(name, raw, reasons, now),
        valid_rows=kept[_ROW],
    )


def quarantine_unknown_symbols(
    name: str, validated: Validated, symbols: pl.DataFrame, *, column: str, now: datetime
) -> Validated:
    """Rows on a symbol the terminal has no spec for cannot be priced in pips: quarantine them."""
    known = symbols.select("login", pl.col("name").alias(column), pl.lit(True).alias("__known"))
    rows = validated.valid_rows
    numbered = (
        validated.valid.with_columns(rows.alias(_ROW))
        if rows is not None
        else validated.valid.with_row_index(_ROW).with_columns(pl.col(_ROW).cast(pl.Int64))
    )
    joined = numbered.join(known, on=["login", column], how="left")
    unknown = joined.filter(pl.col("__known").is_null()).drop("__known")
    if unknown.height == 0:
        return validated
    reasons = unknown.select(_ROW, pl.format("{}: unknown symbol ({})", pl.lit(column), pl.col(column)).alias(_WHY))
    extra = _quarantine_rows(name, unknown, reasons, now)
    kept = joined.filter(pl.col("__known").is_not_null()).drop("__known")
    return Validated(
        valid=kept.drop(_ROW),
        quarantined=pl.concat([validated.quarantined, extra], how="vertical"),
        valid_rows=kept[_ROW],
    )
