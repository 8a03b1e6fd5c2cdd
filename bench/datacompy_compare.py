"""Exact-key divergence check side by side with datacompy's Polars comparison, on the same pairs.

    python -m bench.datacompy_compare [--pairs 10000,100000,1000000] [--repeats 3] [--seed 1] [--no-datacompy]

For each size, built once and untimed: a hedging-only synthetic fleet (`bench.synthetic_fleet`), its
working frames (`mt5recon.recon.inputs.working_frames`, default `Tolerances`), cut to the first N
positions the bot recorded the identifier of, with extra seeded differences at the broker (slips of
exactly the threshold, over fills, fills of exactly +-10 %, SL/TP moved by exactly the threshold or
removed), and the pairs from `matching.by_identity`.

- Ours (timed in this process, median of `--repeats`): `classify.paired` + `classify.matched_divergences`,
  what `engine._hedging` runs right after matching: joins the pairs to both sides, computes the sizes in
  pips / %, and builds the divergence rows (break ids, causes, money).
- datacompy (timed inside its own environment, median of `--repeats`): `PolarsCompare(broker, bot)` on
  the same pairs written to Parquet, keyed by (login, position_id), prices in pips (each symbol's pip
  size), volumes in lots, with the equivalent per-column tolerances, plus the extraction of every
  column's mismatching keys. datacompy 1.1.0 needs polars < 1.45 and this project pins polars 2.1, so it
  runs as its authors intend, in an isolated environment (`uv run --isolated --no-project --with
  datacompy==1.1.0`); its start-up and the Parquet reads are not timed.
- Control: `bench.datacompy_side.plain_compare`, the same tolerance test written directly in polars,
  timed on both sides: the same code on the two polars versions.

Agreement per column: our divergence keys of the kind against datacompy's mismatching keys. Ours flags
|size| rounded to 1e-6 of the unit strictly above the threshold; datacompy keeps |a - b| <= atol + rtol *
|bot| (np.isclose). They differ only for pairs exactly at the threshold, where float noise (5.0000000000009
pips) makes datacompy flag what we do not: such pairs are counted exactly and every disagreement is
checked against them.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from bench.datacompy_side import COLUMNS, JOIN, key_digest, plain_compare
from bench.draws import round_to_digits, uniform
from bench.recon_engine import load_average, machine_lines
from bench.synthetic_fleet import DIGITS, instruments, synthetic_fleet
from mt5recon.recon import classify, matching
from mt5recon.recon import divergences as dv
from mt5recon.recon.inputs import ReconInputs, working_frames
from mt5recon.tolerances import Tolerances

REPO = Path(__file__).resolve().parent.parent
SIDE = Path(__file__).resolve().with_name("datacompy_side.py")
DATACOMPY = "datacompy==1.1.0"
PER_ACCOUNT = 100
PAIRS_PER_ACCOUNT = 70  # a hedging account of 100 slots has ~75 identity-matched open positions
KIND = {"price": dv.SLIPPAGE, "volume": dv.VOLUME_MISMATCH, "sl": dv.SL_MISMATCH, "tp": dv.TP_MISMATCH}
THRESHOLD = {"price": "slippage_pips", "volume": "volume_pct", "sl": "sl_pips", "tp": "tp_pips"}
# extra broker-side differences on top of the synthetic fleet's (3 % slip 3-20 pips, 2 % partial fills,
# 2 % SL/TP drift 11-30 pips): shares of pairs
EXACT_SLIP_SHARE = 0.01
OVER_FILL_SHARE = 0.01
EXACT_FILL_SHARE = 0.005
EXACT_LEVEL_SHARE = 0.005
REMOVED_LEVEL_SHARE = 0.003


# ---------------------------------------------------------------- building the pairs (untimed)


@dataclass(frozen=True)
class Pairs:
    expected: pl.DataFrame  # working expected trades, one per pair
    positions: pl.DataFrame  # working positions, one per pair
    pairs: pl.DataFrame  # matching.by_identity's output
    accounts: int
    build_secs: float


def inject(expected: pl.DataFrame, positions: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Seeded broker-side differences, many of them exactly at a threshold (each row's own tolerance)."""
    bot = expected.select(
        "login",
        pl.col("position_id").alias("identifier"),
        pl.col("price").alias("bot_price"),
        pl.col("volume").alias("bot_volume"),
        pl.col("sl").alias("bot_sl"),
        pl.col("tp").alias("bot_tp"),
    )
    digits = instruments().select(pl.col("instrument").alias("norm_symbol"), "digits")
    frame = positions.join(bot, on=["login", "identifier"], how="left").join(digits, on="norm_symbol", how="left")

    def u(stream: int) -> pl.Expr:
        return uniform("identifier", seed, 100 + stream)

    sign = pl.when(u(1) < 0.5).then(1.0).otherwise(-1.0)
    adverse = pl.when(pl.col("dir") == 0).then(1.0).otherwise(-1.0)
    pip = pl.col("pip")

    def level(name: str, stream: int) -> pl.Expr:
        bot_level = pl.col(f"bot_{name}")
        moved = round_to_digits(bot_level + sign * pl.col(f"{name}_pips") * pip, DIGITS)
        return (
            pl.when((bot_level > 0) & (u(stream) < EXACT_LEVEL_SHARE))
            .then(moved)
            .when((bot_level > 0) & (u(stream) < EXACT_LEVEL_SHARE + REMOVED_LEVEL_SHARE))
            .then(pl.lit(0.0))
            .otherwise(pl.col(name))
            .alias(name)
        )

    exact_fill = (pl.col("bot_volume") * (1 + sign * pl.col("volume_pct") / 100)).round(2)
    return frame.with_columns(
        pl.when(u(2) < EXACT_SLIP_SHARE)
        .then(round_to_digits(pl.col("bot_price") + sign * adverse * pl.col("slippage_pips") * pip, DIGITS))
        .otherwise(pl.col("price_open"))
        .alias("price_open"),
        pl.when(u(3) < OVER_FILL_SHARE)
        .then((pl.col("bot_volume") * (1.05 + u(4) * 0.6)).round(2))
        .when(u(3) < OVER_FILL_SHARE + EXACT_FILL_SHARE)
        .then(pl.max_horizontal(pl.lit(0.01), exact_fill))
        .otherwise(pl.col("volume"))
        .alias("volume"),
        level("sl", 5),
        level("tp", 6),
    ).select(positions.columns)


def build(n_pairs: int, seed: int, tolerances: Tolerances) -> Pairs:
    started = time.perf_counter()
    accounts = math.ceil(n_pairs / PAIRS_PER_ACCOUNT)
    with warnings.catch_warnings():  # symbols columns the generator leaves null are not read here
        warnings.filterwarnings("ignore", message="synthetic_fleet: symbols columns left null")
        fleet = synthetic_fleet(accounts, PER_ACCOUNT, seed=seed, netting_share=0.0)
    work = working_frames(
        ReconInputs(fleet["accounts"], fleet["positions"], fleet["deals"], fleet["symbols"], fleet["expected_trades"]),
        tolerances=tolerances,
    )
    del fleet
    recorded = work.expected.filter(pl.col("position_id").is_not_null()).select(
        "login", pl.col("position_id").alias("identifier")
    )
    keys = (
        work.positions.select("login", "identifier")
        .join(recorded, on=["login", "identifier"], how="semi")
        .sort("login", "identifier")
        .head(n_pairs)
    )
    if keys.height < n_pairs:
        raise RuntimeError(f"the fleet has {keys.height:,} identity pairs, fewer than {n_pairs:,}")
    positions = work.positions.join(keys, on=["login", "identifier"], how="semi")
    expected = work.expected.join(keys.rename({"identifier": "position_id"}), on=["login", "position_id"], how="semi")
    positions = inject(expected, positions, seed)
    pairs = matching.by_identity(expected, positions)
    if pairs.height != n_pairs:
        raise RuntimeError(f"by_identity gave {pairs.height:,} pairs, expected {n_pairs:,}")
    return Pairs(expected, positions, pairs, accounts, time.perf_counter() - started)


def pair_frames(built: Pairs) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Broker (df1) and bot (df2) keyed by (login, position_id): prices in pips, volumes in lots."""
    pip = pl.col("pip")
    broker = built.positions.select(
        "login",
        pl.col("identifier").alias("position_id"),
        (pl.col("price_open") / pip).alias("price"),
        "volume",
        (pl.col("sl") / pip).alias("sl"),
        (pl.col("tp") / pip).alias("tp"),
    )
    bot = built.expected.select(
        "login",
        "position_id",
        (pl.col("price") / pip).alias("price"),
        "volume",
        (pl.col("sl") / pip).alias("sl"),
        (pl.col("tp") / pip).alias("tp"),
    )
    return broker.sort(JOIN), bot.sort(JOIN)


def datacompy_tolerances(tolerances: Tolerances) -> tuple[dict[str, float], dict[str, float]]:
    """abs_tol / rel_tol per column: pips for price, SL and TP; volume relative to the bot's (df2)."""
    if tolerances.symbols:
        raise ValueError("per-symbol overrides have no per-column equivalent in datacompy: one compare per group")
    t = tolerances.default
    abs_tol = {"default": 0.0, "price": t.slippage_pips, "volume": 0.0, "sl": t.sl_pips, "tp": t.tp_pips}
    rel_tol = {"default": 0.0, "volume": t.volume_pct / 100}
    return abs_tol, rel_tol


# ---------------------------------------------------------------- the two sides


def run_ours(built: Pairs, repeats: int) -> tuple[list[float], pl.DataFrame, pl.DataFrame]:
    times: list[float] = []
    side_by_side = found = pl.DataFrame()
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        side_by_side = classify.paired(built.expected, built.positions, built.pairs)
        found = classify.matched_divergences(side_by_side)
        times.append(time.perf_counter() - started)
    return times, side_by_side, found


def our_keys(found: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return {
        column: found.filter(pl.col("kind") == kind).select("login", pl.col("identifier").alias("position_id"))
        for column, kind in KIND.items()
    }


def at_threshold(side_by_side: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Pairs whose size, as we compute and round it, is exactly the row's threshold."""
    pip = pl.col("pip")
    both_set = {name: (pl.col(name) > 0) & (pl.col(f"{name}_pos") > 0) for name in ("sl", "tp")}
    size = {
        "price": ((pl.col("price_open") - pl.col("price")) / pip, pl.lit(True)),
        "volume": ((pl.col("volume_pos") - pl.col("volume")) / pl.col("volume") * 100, pl.lit(True)),
        "sl": ((pl.col("sl_pos") - pl.col("sl")) / pip, both_set["sl"]),
        "tp": ((pl.col("tp_pos") - pl.col("tp")) / pip, both_set["tp"]),
    }
    return {
        column: side_by_side.filter(
            condition & (expr.abs().round(dv.SIZE_DECIMALS) == pl.col(THRESHOLD[column]))
        ).select("login", pl.col("identifier").alias("position_id"))
        for column, (expr, condition) in size.items()
    }


def find_uv() -> str:
    local = REPO / ".tools" / "bin" / "uv"
    if local.exists():
        return str(local)
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv not found (neither .tools/bin/uv nor uv on PATH): run ./dev once")
    return found


def peer_command(*args: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return [find_uv(), "run", "--quiet", "--isolated", "--no-project", "--with", DATACOMPY, "python", *args], env


def run_in_peer(args: list[str], cwd: str) -> tuple[str, float]:
    command, env = peer_command(*args)
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"datacompy side failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1], wall


def peer_versions(cwd: str) -> dict[str, str]:
    probe = (
        "import json, platform, datacompy, numpy, polars; print(json.dumps({'datacompy': datacompy.__version__, "
        "'polars': polars.__version__, 'numpy': numpy.__version__, 'python': platform.python_version()}))"
    )
    line, _ = run_in_peer(["-c", probe], cwd)
    versions: dict[str, str] = json.loads(line)
    return versions


def run_peer(folder: str, repeats: int, abs_tol: dict[str, float], rel_tol: dict[str, float]) -> dict[str, Any]:
    args = [str(SIDE), "--folder", folder, "--repeats", str(repeats)]
    line, wall = run_in_peer([*args, "--abs-tol", json.dumps(abs_tol), "--rel-tol", json.dumps(rel_tol)], folder)
    out: dict[str, Any] = json.loads(line)
    out["wall_secs"] = wall
    out["keys"] = {column: pl.read_parquet(Path(folder) / f"dc_{column}.parquet") for column in COLUMNS}
    return out


# ---------------------------------------------------------------- report


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in [header, *rows]
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def secs(values: list[float]) -> str:
    return f"{statistics.median(values):.4f}  (" + ", ".join(f"{v:.4f}" for v in values) + ")"


def agreement_rows(
    ours: dict[str, pl.DataFrame], theirs: dict[str, pl.DataFrame], boundary: dict[str, pl.DataFrame]
) -> tuple[list[list[str]], int]:
    rows: list[list[str]] = []
    unexplained_total = 0
    for column in COLUMNS:
        mine, peer, edge = ours[column], theirs[column], boundary[column]
        only_peer = peer.join(mine, on=JOIN, how="anti")
        only_ours = mine.join(peer, on=JOIN, how="anti")
        unexplained = pl.concat([only_peer, only_ours]).join(edge, on=JOIN, how="anti").height
        unexplained_total += unexplained
        rows.append(
            [
                f"{column} ({KIND[column]})",
                f"{mine.height:,}",
                f"{peer.height:,}",
                "yes" if only_peer.height == only_ours.height == 0 else "no",
                f"{edge.height:,}",
                f"{peer.join(edge, on=JOIN, how='semi').height:,}",
                f"{mine.join(edge, on=JOIN, how='semi').height:,}",
                f"{only_peer.height:,}",
                f"{only_ours.height:,}",
                "none" if unexplained == 0 else f"{unexplained:,} NOT AT THRESHOLD",
            ]
        )
    return rows, unexplained_total


def agreement_header(peer: str) -> list[str]:
    return [
        "column (our kind)",
        "ours",
        peer,
        "equal",
        "at threshold",
        f"{peer} flags at thr",
        "ours flags at thr",
        f"only {peer}",
        "only ours",
        "other differences",
    ]


BOUNDARY_NOTE = (
    "by design: ours flags round(|size|, 6) > threshold, np.isclose keeps |broker - bot| <= abs_tol + rel_tol * |bot|\n"
    "unrounded; exactly at the threshold, float noise above it (5.000000000001 pips) is a mismatch there and no\n"
    "divergence here, noise below it is neither: 'at threshold' counts those pairs (our size rounded == threshold)"
)


def print_agreement(
    peer: str, ours: dict[str, pl.DataFrame], theirs: dict[str, pl.DataFrame], boundary: dict[str, pl.DataFrame]
) -> None:
    rows, unexplained = agreement_rows(ours, theirs, boundary)
    print(f"\nagreement per column, ours vs {peer} (keys = login, position_id):")
    print(table(agreement_header(peer), rows))
    print(BOUNDARY_NOTE)
    print(
        "every disagreement is a pair exactly at the threshold"
        if unexplained == 0
        else f"WARNING: {unexplained:,} disagreements are NOT at a threshold"
    )


def run_size(n_pairs: int, args: argparse.Namespace, tolerances: Tolerances, work: str) -> None:
    built = build(n_pairs, args.seed, tolerances)
    folder = Path(work) / f"pairs-{n_pairs}"
    folder.mkdir()
    broker, bot = pair_frames(built)
    broker.write_parquet(folder / "broker.parquet")
    bot.write_parquet(folder / "bot.parquet")
    abs_tol, rel_tol = datacompy_tolerances(tolerances)

    print(f"\n== {n_pairs:,} pairs ==")
    print(
        f"built in {built.build_secs:.1f} s (untimed): {built.accounts:,} hedging accounts, first {n_pairs:,} "
        f"identity pairs, seed {args.seed}"
    )
    times, side_by_side, found = run_ours(built, args.repeats)
    ours = our_keys(found)
    boundary = at_threshold(side_by_side)
    plain_ours = [0.0] * args.repeats
    plain_keys: dict[str, pl.DataFrame] = {}
    for i in range(args.repeats):
        started = time.perf_counter()
        plain_keys = plain_compare(broker, bot, abs_tol, rel_tol)
        plain_ours[i] = time.perf_counter() - started

    rows = [["ours: classify.paired + matched_divergences", pl.__version__, secs(times), ""]]
    peer: dict[str, Any] | None = None
    if not args.no_datacompy:
        peer = run_peer(str(folder), args.repeats, abs_tol, rel_tol)
        ratio = peer["datacompy_median"] / statistics.median(times)
        rows.append(
            [
                "datacompy: PolarsCompare + mismatching keys per column",
                peer["polars"],
                secs(peer["datacompy_secs"]),
                f"{ratio:.2f}x ours",
            ]
        )
    rows.append(["control: plain_compare (same code), our env", pl.__version__, secs(plain_ours), ""])
    if peer is not None:
        version_ratio = peer["plain_median"] / statistics.median(plain_ours)
        rows.append(
            [
                "control: plain_compare (same code), datacompy's env",
                peer["polars"],
                secs(peer["plain_secs"]),
                f"{version_ratio:.2f}x our env",
            ]
        )
    print(table(["step", "polars", "median s  (runs)", "ratio"], rows))
    divergences = found.height
    print(f"our divergence rows: {divergences:,} ({divergences / n_pairs:.1%} of pairs)")
    if peer is None:
        print_agreement("plain", ours, plain_keys, boundary)  # np.isclose's test; datacompy skipped
        return
    ratio = peer["datacompy_median"] / statistics.median(times)
    print(
        f"RATIO datacompy / ours: {ratio:.2f} (medians); polars-version control (same plain code, "
        f"{peer['polars']} / {pl.__version__}): {peer['plain_median'] / statistics.median(plain_ours):.2f}; "
        f"datacompy / plain on its own polars: {peer['datacompy_median'] / peer['plain_median']:.2f}"
    )
    print(
        f"datacompy subprocess wall time {peer['wall_secs']:.1f} s (environment start-up, Parquet reads, "
        f"{args.repeats} + {args.repeats} runs; only the runs are timed above); "
        f"rows only on one side: {peer['counts']['broker_only']:,} / {peer['counts']['bot_only']:,}"
    )
    print_agreement("datacompy", ours, peer["keys"], boundary)
    handoff = all(key_digest(peer["keys"][c]) == peer["digests"][c] for c in COLUMNS)
    print(
        f"checks: keys read back match the digests datacompy printed: {handoff}; plain_compare gives "
        f"datacompy's key sets in its env: {all(peer['plain_equals_datacompy'].values())}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.datacompy_compare", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="10000,100000,1000000", help="comma-separated pair counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-datacompy", action="store_true", help="skip the peer (ours and the control only)")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.pairs.split(",") if s.strip()]
    tolerances = Tolerances()
    wall = time.perf_counter()
    work = tempfile.mkdtemp(prefix="mt5recon-datacompy-")
    try:
        print("mt5-recon exact-key divergences vs datacompy")
        print("\n".join(machine_lines()))
        threads = pl.thread_pool_size()
        print(f"ours:      polars {pl.__version__} ({threads} threads), python {platform.python_version()}")
        if args.no_datacompy:
            print("datacompy: skipped (--no-datacompy)")
        else:
            peer = peer_versions(work)
            print(
                f"datacompy: {peer['datacompy']} on polars {peer['polars']}, numpy {peer['numpy']}, python "
                f"{peer['python']}, in its own isolated uv environment ({DATACOMPY}: needs polars < 1.45)"
            )
            print(
                f"NOTE: the two sides run on DIFFERENT polars versions ({pl.__version__} vs {peer['polars']}); "
                "the control row times the same plain polars code on both"
            )
        print(
            "work timed: ours joins the pairs to both sides, computes sizes (pips, %) from raw prices and builds\n"
            "the divergence rows (break id, cause, money); datacompy gets frames already keyed and in pips (untimed\n"
            "prep), then runs its equality/duplicate checks, one full join, np.isclose and stats per column, and we\n"
            "take each column's mismatching keys"
        )
        abs_tol, rel_tol = datacompy_tolerances(tolerances)
        print(f"tolerances (default Tolerances): abs_tol {abs_tol}, rel_tol {rel_tol} (df1 = broker, df2 = bot)")
        for n_pairs in sizes:
            run_size(n_pairs, args, tolerances, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal wall time: {time.perf_counter() - wall:.0f} s; load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
