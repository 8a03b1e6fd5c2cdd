"""Every check of a frame's Pandera model in one polars query: a clean frame skips the
check-by-check run.

Pandera collects each check on its own: about sixty queries per frame, ~0.2 s per cycle of the
seven frames before a row is looked at. Most cycles' frames are clean. The screen builds the same
checks with Pandera's own check functions (and its null-handling rules) into one query. Only a
frame the screen proves clean skips Pandera. Anything else (a failing row, or a model feature the
screen does not model) goes through Pandera, which names each failure as before. The screen can
only send a frame to Pandera; it never passes one Pandera would fail (property-tested).
"""

from __future__ import annotations

from functools import cache

import polars as pl
from pandera.api.checks import Check
from pandera.api.polars.container import DataFrameSchema
from pandera.api.polars.types import PolarsData
from pandera.backends.polars import builtin_checks
from pandera.backends.polars.checks import PolarsCheckBackend
from pandera.config import CONFIG
from pandera.constants import CHECK_OUTPUT_KEY

from schemas import MODELS


def _unsupported(schema: DataFrameSchema) -> bool:
    """Model features the screen does not replay: it leaves such a frame to Pandera."""
    frame_level = bool(schema.unique or schema.coerce or schema.strict or schema.add_missing_columns)
    frame_level = frame_level or bool(getattr(schema, "drop_invalid_rows", False) or getattr(schema, "parsers", None))
    columns = schema.columns.values()
    column_level = any(
        c.unique or c.coerce or c.regex or not c.required or c.dtype is None or getattr(c, "parsers", None)
        for c in columns
    )
    checks = [*schema.checks, *(check for c in columns for check in c.checks)]
    check_level = any(check.element_wise or getattr(check, "groupby", None) is not None for check in checks)
    return frame_level or column_level or check_level


@cache
def _schema(name: str) -> DataFrameSchema | None:
    """The model's schema, or None when the screen cannot stand in for it."""
    if CONFIG.use_narwhals_backend or builtin_checks.__name__ is None:  # the polars check functions are registered
        return None
    schema = MODELS[name].to_schema()
    return None if _unsupported(schema) else schema


def _check_output(check: Check, frame: pl.LazyFrame, key: str) -> pl.LazyFrame | None:
    """One check's boolean column as Pandera computes it (nulls pass only with ignore_na)."""
    # as Check.__call__ does: a built-in check's function is looked up again by name, since
    # the polars implementations register after the model's checks were made
    builtin = getattr(check._check_fn, "__name__", None)
    if builtin is not None and check.is_builtin_check(builtin):
        check._check_fn = check.get_builtin_check_fn(builtin)
    backend = PolarsCheckBackend(check)
    out = backend.apply(PolarsData(frame, key))
    if not isinstance(out, pl.LazyFrame):
        return None
    passed = pl.col(CHECK_OUTPUT_KEY)
    kept = passed | passed.is_null() if check.ignore_na else passed.fill_null(False)
    return out.select(kept)


def is_clean(name: str, frame: pl.DataFrame) -> bool:
    """True only when every row passes every check of frame `name`'s model (one query);
    False means "let Pandera decide", not "invalid"."""
    schema = _schema(name)
    if schema is None:
        return False
    lazy = frame.lazy()
    outputs: list[pl.LazyFrame] = []
    for column_name, column in schema.columns.items():
        if column_name not in frame.columns:
            return False
        dtype = frame.schema[column_name]
        if not column.dtype.check(dtype, PolarsData(lazy.select(column_name), column_name)):
            return False
        if not column.nullable:
            present = pl.col(column_name).is_not_null()
            outputs.append(lazy.select(present & pl.col(column_name).is_not_nan() if dtype.is_float() else present))
        for check in column.checks:
            output = _check_output(check, lazy, column_name)
            if output is None:
                return False
            outputs.append(output)
    for check in schema.checks:
        output = _check_output(check, lazy, "*")
        if output is None:
            return False
        outputs.append(output)
    if not outputs or frame.height == 0:
        return True
    named = [output.select(pl.first().alias(f"c{i}")) for i, output in enumerate(outputs)]
    verdict = pl.concat(named, how="horizontal").select(pl.all_horizontal(pl.all()).all()).collect()
    return bool(verdict.item())
