"""The peer's side of `bench.datacompy_compare`: runs inside datacompy's own environment.

    uv run --isolated --no-project --with 'datacompy==1.1.0' python bench/datacompy_side.py \
        --folder DIR --repeats 3 --abs-tol '{"price": 5, ...}' --rel-tol '{"volume": 0.1, ...}'

Reads `broker.parquet` (df1) and `bot.parquet` (df2) from DIR: one row per matched pair, keyed by
(login, position_id), values in pips (price, sl, tp) and lots (volume). Times, with perf_counter and
after the frames are loaded, a `datacompy.PolarsCompare` plus the extraction of the mismatching keys of
every column (and of the keys found on one side only), `--repeats` times. Writes the keys of the last
run to `dc_<column>.parquet` in DIR and prints one JSON object on stdout.

`plain_compare` (the same tolerance test written directly in polars) is timed here too, and the parent
times the very same function under its own polars: a control for the two polars versions.
Only polars and the standard library are imported at module level, so the parent can import
`plain_compare` from its own environment, where datacompy is not installed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl

JOIN = ["login", "position_id"]
COLUMNS = ["price", "volume", "sl", "tp"]
DF1, DF2 = "broker", "bot"


def tolerance(tolerances: dict[str, float], column: str) -> float:
    """datacompy's own lookup: the column's value, else "default", else 0."""
    return tolerances.get(column, tolerances.get("default", 0.0))


def key_digest(keys: pl.DataFrame) -> str:
    """A polars-version-independent digest of a key set (polars' own hashes differ across versions)."""
    digest = hashlib.sha256()
    for login, position_id in sorted(keys.select(JOIN).iter_rows()):
        digest.update(f"{login},{position_id}\n".encode())
    return digest.hexdigest()[:16]


def plain_compare(
    df1: pl.DataFrame, df2: pl.DataFrame, abs_tol: dict[str, float], rel_tol: dict[str, float]
) -> dict[str, pl.DataFrame]:
    """Mismatching keys per column with np.isclose's test, |a - b| <= atol + rtol * |b|, in polars."""
    joined = df1.join(df2, on=JOIN, how="inner", suffix="_df2")
    out: dict[str, pl.DataFrame] = {}
    for column in COLUMNS:
        a, b = pl.col(column), pl.col(f"{column}_df2")
        close = (a - b).abs() <= tolerance(abs_tol, column) + tolerance(rel_tol, column) * b.abs()
        out[column] = joined.filter(~close).select(JOIN)
    return out


def datacompy_compare(
    df1: pl.DataFrame, df2: pl.DataFrame, abs_tol: dict[str, float], rel_tol: dict[str, float]
) -> dict[str, pl.DataFrame]:
    """What a datacompy user runs: the comparison, then the mismatching keys of every column."""
    datacompy = importlib.import_module("datacompy")  # imported by main before any timing
    compare = datacompy.PolarsCompare(
        df1, df2, join_columns=JOIN, abs_tol=abs_tol, rel_tol=rel_tol, df1_name=DF1, df2_name=DF2
    )
    rows: pl.DataFrame = compare.intersect_rows
    out = {column: rows.filter(~pl.col(f"{column}_match")).select(JOIN) for column in COLUMNS}
    out[f"{DF1}_only"] = compare.df1_unq_rows.select(JOIN)
    out[f"{DF2}_only"] = compare.df2_unq_rows.select(JOIN)
    return out


def timed(
    fn: Any, df1: pl.DataFrame, df2: pl.DataFrame, repeats: int, abs_tol: dict[str, float], rel_tol: dict[str, float]
) -> tuple[list[float], dict[str, pl.DataFrame]]:
    times: list[float] = []
    result: dict[str, pl.DataFrame] = {}
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn(df1, df2, abs_tol, rel_tol)
        times.append(time.perf_counter() - started)
    return times, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="datacompy's side of bench.datacompy_compare")
    parser.add_argument("--folder", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--abs-tol", required=True, help="JSON: column -> absolute tolerance, with 'default'")
    parser.add_argument("--rel-tol", required=True, help="JSON: column -> relative tolerance, with 'default'")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    abs_tol: dict[str, float] = json.loads(args.abs_tol)
    rel_tol: dict[str, float] = json.loads(args.rel_tol)
    datacompy = importlib.import_module("datacompy")  # its import (pandas, numpy) is not timed
    numpy = importlib.import_module("numpy")
    df1 = pl.read_parquet(folder / f"{DF1}.parquet")
    df2 = pl.read_parquet(folder / f"{DF2}.parquet")

    dc_times, dc_keys = timed(datacompy_compare, df1, df2, args.repeats, abs_tol, rel_tol)
    plain_times, plain_keys = timed(plain_compare, df1, df2, args.repeats, abs_tol, rel_tol)
    for name, keys in dc_keys.items():
        keys.write_parquet(folder / f"dc_{name}.parquet")
    print(
        json.dumps(
            {
                "datacompy": datacompy.__version__,
                "polars": pl.__version__,
                "numpy": numpy.__version__,
                "python": platform.python_version(),
                "threads": pl.thread_pool_size(),
                "rows": [df1.height, df2.height],
                "datacompy_secs": dc_times,
                "datacompy_median": statistics.median(dc_times),
                "plain_secs": plain_times,
                "plain_median": statistics.median(plain_times),
                "counts": {name: keys.height for name, keys in dc_keys.items()},
                "digests": {name: key_digest(keys) for name, keys in dc_keys.items()},
                "plain_equals_datacompy": {
                    column: key_digest(plain_keys[column]) == key_digest(dc_keys[column]) for column in COLUMNS
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
