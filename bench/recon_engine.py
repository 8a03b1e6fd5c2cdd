"""Benchmark the vectorized reconciliation engine on a synthetic fleet.

    python -m bench.recon_engine [--accounts 10000] [--positions 100] [--repeat 3]
                                 [--reference-positions 100000] [--profile]

Every measurement runs in a fresh `spawn` subprocess that loads the generated frames from Parquet,
so each engine call starts cold and its peak memory (`ru_maxrss`) is its own: the baseline is taken
after imports and loading, the peak after the call. The parent process never imports polars.

The row-by-row reference is `tests/reference_rules.py` (the original service's rules); only its
`reconcile_row_by_row` call is timed, not the conversion of frames to Python rows.

`--profile` wraps the engine's stage functions (working_frames, matching.match_hedging and its
stages, classify.*, causes.missing_causes, the netting functions, ...) with timers in place and makes
one `reconcile` call, so the breakdown follows the engine's own chaining even as it changes; each
function's exclusive time excludes the profiled functions it calls.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
FRAME_NAMES = ("accounts", "positions", "deals", "symbols", "expected_trades")
HEDGING_MODE = 2


# ---------------------------------------------------------------- machine and process helpers


def machine_lines() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    cores = {
        (block.get("physical id"), block.get("core id"))
        for block in (
            dict(line.split(":", 1) for line in chunk.splitlines() if ":" in line) for chunk in cpuinfo.split("\n\n")
        )
        if "processor\t" in block
    }
    meminfo: dict[str, float] = {}
    if Path("/proc/meminfo").exists():
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, value = line.split(":", 1)
            meminfo[key] = float(value.split()[0]) / 1024 / 1024  # kB -> GiB
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = ""
    cpu_max = Path("/sys/fs/cgroup/cpu.max")
    if cpu_max.exists():
        limit, period = cpu_max.read_text().split()[:2]
        quota = (
            ", cgroup CPU quota: none" if limit == "max" else f", cgroup CPU quota: {int(limit) / int(period):g} CPUs"
        )
    return [
        f"load:   {load_average()}",
        f"CPU:    {models[0] if models else platform.processor() or 'unknown'}",
        f"cores:  {len(models)} logical, {len(cores) or '?'} physical, {usable} usable by this process{quota}",
        f"memory: {meminfo.get('MemTotal', 0):.1f} GiB total, {meminfo.get('MemAvailable', 0):.1f} GiB available",
        f"python: {platform.python_version()} ({platform.machine()}, {platform.system()} {platform.release()})",
    ]


def load_average() -> str:
    """1/5/15-minute load averages: other work on the machine competes with the benchmark."""
    path = Path("/proc/loadavg")
    return " / ".join(path.read_text().split()[:3]) + " (1/5/15 min)" if path.exists() else "unknown"


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """Run fn(*args) in a new spawned interpreter (nothing inherited but the arguments)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _load(folder: str, hedging_only: bool = False) -> dict[str, Any]:
    import polars as pl

    frames = {name: pl.read_parquet(Path(folder) / f"{name}.parquet", memory_map=False) for name in FRAME_NAMES}
    if hedging_only:
        frames["accounts"] = frames["accounts"].filter(pl.col("margin_mode") == HEDGING_MODE)
        logins = frames["accounts"].select("login")
        for name in FRAME_NAMES[1:]:
            frames[name] = frames[name].join(logins, on="login", how="semi")
    return frames


def _engine_call(frames: dict[str, Any]) -> Callable[[], Any]:
    """One `reconcile` call as the pipeline makes it (the cycle time as `as_of` when the engine takes one),
    prepared (imports, tolerances) so that timing the returned call times the engine only."""
    import inspect

    from bench.synthetic_fleet import NOW
    from mt5recon.recon.engine import reconcile
    from mt5recon.tolerances import Tolerances

    extra = {"as_of": NOW} if "as_of" in inspect.signature(reconcile).parameters else {}
    kwargs = {**frames, "tolerances": Tolerances(), **extra}
    return lambda: reconcile(**kwargs)


# ---------------------------------------------------------------- child tasks (run via in_fresh_process)


def task_generate(folder: str, accounts: int, per_account: int, seed: int, netting_share: float) -> dict[str, Any]:
    import polars as pl

    from bench.synthetic_fleet import synthetic_fleet

    started = time.perf_counter()
    fleet = synthetic_fleet(accounts, per_account, seed=seed, netting_share=netting_share)
    generated = time.perf_counter() - started
    Path(folder).mkdir(parents=True, exist_ok=True)
    for name, frame in fleet.items():
        frame.write_parquet(Path(folder) / f"{name}.parquet", compression="uncompressed")
    hedging = fleet["accounts"].filter(pl.col("margin_mode") == HEDGING_MODE).select("login")
    stats: dict[str, Any] = {name: frame.height for name, frame in fleet.items()}
    stats.update(
        generate_secs=generated,
        hedging_accounts=hedging.height,
        hedging_positions=fleet["positions"].join(hedging, on="login", how="semi").height,
        hedging_expected_open=fleet["expected_trades"]
        .join(hedging, on="login", how="semi")
        .filter(pl.col("closed_at").is_null())
        .height,
        expected_open=fleet["expected_trades"].filter(pl.col("closed_at").is_null()).height,
        in_memory_mb=sum(frame.estimated_size("mb") for frame in fleet.values()),
        polars=pl.__version__,
        threads=pl.thread_pool_size(),
    )
    return stats


def task_engine(folder: str, hedging_only: bool, warm: bool = False) -> dict[str, Any]:
    """Time one cold reconcile call (and, if `warm`, a second one in the same process)."""
    import polars as pl

    frames = _load(folder, hedging_only)
    call = _engine_call(frames)
    gc.collect()
    baseline = _max_rss_mb()
    started = time.perf_counter()
    result = call()
    elapsed = time.perf_counter() - started
    peak = _max_rss_mb()
    out = {
        "secs": elapsed,
        "positions": frames["positions"].height,
        "expected": frames["expected_trades"].height,
        "matches": result.matches.height,
        "divergences": result.divergences.height,
        "by_stage": dict(result.matches.group_by("stage").len().sort("stage").iter_rows()),
        "by_kind": dict(result.divergences.group_by("kind").len().sort("kind").iter_rows()),
        "baseline_mb": baseline,
        "peak_mb": peak,
        "threads": pl.thread_pool_size(),
    }
    if warm:
        del result
        gc.collect()
        started = time.perf_counter()
        call()
        out["warm_secs"] = time.perf_counter() - started
    return out


def task_reference(folder: str, repeat: int, budget_secs: float) -> dict[str, Any]:
    sys.path.insert(0, str(TESTS))
    try:
        import reference_rules  # type: ignore[import-not-found]
    except ImportError as error:
        return {"missing": f"tests/reference_rules.py not importable: {error}"}
    frames = _load(folder, hedging_only=True)
    started = time.perf_counter()
    expected, positions, pips = reference_rules.rows_from_frames(
        accounts=frames["accounts"],
        positions=frames["positions"],
        symbols=frames["symbols"],
        expected_trades=frames["expected_trades"],
    )
    convert = time.perf_counter() - started
    times: list[float] = []
    result = None
    while len(times) < repeat:
        started = time.perf_counter()
        result = reference_rules.reconcile_row_by_row(expected, positions, pips)
        times.append(time.perf_counter() - started)
        if sum(times) / len(times) * (len(times) + 1) > budget_secs:
            break  # another run would exceed the time budget
    assert result is not None
    engine = _engine_call(frames)()
    engine_pairs = set(engine.matches.select("login", "trade_id", "ticket").iter_rows())
    reference_pairs = set(result.pairs)
    kinds: dict[str, int] = {}
    for divergence in result.divergences:
        kinds[divergence[1]] = kinds.get(divergence[1], 0) + 1
    return {
        "times": times,
        "convert_secs": convert,
        "expected_rows": len(expected),
        "position_rows": len(positions),
        "pairs": len(reference_pairs),
        "divergences": len(result.divergences),
        "by_kind": dict(sorted(kinds.items())),
        "engine_hedging_pairs": len(engine_pairs),
        "common_pairs": len(engine_pairs & reference_pairs),
    }


class _Timed:
    """Wrap module functions to record calls, inclusive and exclusive wall time and row counts."""

    def __init__(self) -> None:
        self.stack: list[float] = []
        self.records: dict[str, dict[str, float]] = {}
        self.order: list[str] = []

    @staticmethod
    def _rows(value: Any) -> int:
        import polars as pl

        if isinstance(value, pl.DataFrame):
            return value.height
        if isinstance(value, tuple | list):
            return sum(_Timed._rows(v) for v in value)
        if hasattr(value, "__dataclass_fields__"):
            return sum(_Timed._rows(getattr(value, f)) for f in value.__dataclass_fields__)
        return 0

    def wrap(self, module: Any, name: str, label: str) -> bool:
        fn = getattr(module, name, None)
        if fn is None or not callable(fn):
            return False
        record = self.records.setdefault(label, {"calls": 0, "incl": 0.0, "excl": 0.0, "rows_in": 0, "rows_out": 0})
        if label not in self.order:
            self.order.append(label)

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.stack.append(0.0)
            started = time.perf_counter()
            out = None
            try:
                out = fn(*args, **kwargs)
                return out
            finally:
                elapsed = time.perf_counter() - started
                nested = self.stack.pop()
                if self.stack:
                    self.stack[-1] += elapsed
                record["calls"] += 1
                record["incl"] += elapsed
                record["excl"] += elapsed - nested
                record["rows_in"] += self._rows(list(args) + list(kwargs.values()))
                record["rows_out"] += self._rows(out)

        setattr(module, name, timed)
        return True


# (module, function, label, stage); the engine module binds some functions by name: those are patched there
_E, _M = "mt5recon.recon.engine", "mt5recon.recon."
WF, MATCH, CLASSIFY, MISSING, NETTING, OTHER = (
    "working_frames",
    "matching.match_hedging",
    "classify",
    "missing causes",
    "netting",
    "other (engine glue, _closing, snapshots, _stats)",
)
PROFILE_TARGETS = [
    (_E, "reconcile", "reconcile (glue: split by margin mode, concat, final sort)", OTHER),
    (_E, "working_frames", "working_frames (own joins and filters)", WF),
    (_M + "inputs", "_instrument_specs", "  working_frames/_instrument_specs", WF),
    (_M + "inputs", "_working_trades", "  working_frames/_working_trades", WF),
    (_M + "inputs", "_with_tolerances", "  working_frames/_with_tolerances", WF),
    (_M + "snapshots", "stale_accounts", "snapshots.stale_accounts", OTHER),
    (_E, "_hedging", "engine._hedging (own anti-joins, grace filter)", OTHER),
    (_M + "matching", "match_hedging", "matching.match_hedging (own _unmatched anti-joins)", MATCH),
    (_M + "matching", "by_identity", "  matching.by_identity", MATCH),
    (_M + "matching", "by_tag", "  matching.by_tag", MATCH),
    (_M + "matching", "by_fuzzy", "  matching.by_fuzzy", MATCH),
    (_M + "one_to_one", "assign", "  one_to_one.assign (mutual-best rounds)", MATCH),
    (_E, "_closing", "engine._closing (recently closed)", OTHER),
    (_M + "classify", "bot_magics", "classify.bot_magics", CLASSIFY),
    (_M + "classify", "paired", "classify.paired", CLASSIFY),
    (_M + "classify", "matched_divergences", "classify.matched_divergences", CLASSIFY),
    (_M + "classify", "unknown_positions", "classify.unknown_positions", CLASSIFY),
    (_E, "_verifiable", "engine._verifiable", MISSING),
    (_E, "missing_causes", "causes.missing_causes", MISSING),
    (_M + "entry_deals", "tagged_entries", "entry_deals.tagged_entries", NETTING),
    (_M + "entry_deals", "entry_slippage", "entry_deals.entry_slippage", NETTING),
    (_M + "netting", "reconcile_netting", "netting.reconcile_netting", NETTING),
    (_M + "netting", "one_sided_divergences", "netting.one_sided_divergences", NETTING),
    (_E, "_netting_missing", "engine._netting_missing", NETTING),
    (_M + "snapshots", "snapshot_divergences", "snapshots.snapshot_divergences", OTHER),
    (_E, "_stats", "engine._stats", OTHER),
]


def task_profile(folder: str) -> dict[str, Any]:
    import importlib

    frames = _load(folder)
    timer = _Timed()
    patched: dict[str, str] = {}
    for module_name, name, label, stage in PROFILE_TARGETS:
        if timer.wrap(importlib.import_module(module_name), name, label):
            patched[label] = stage
    call = _engine_call(frames)
    started = time.perf_counter()
    result = call()
    total = time.perf_counter() - started
    missing = [f"{m}.{n}" for m, n, label, _ in PROFILE_TARGETS if label not in patched]
    return {
        "total": total,
        "records": {label: timer.records[label] for label in timer.order if timer.records[label]["calls"]},
        "stages": patched,
        "not_found": missing,
        "matches": result.matches.height,
        "divergences": result.divergences.height,
    }


# ---------------------------------------------------------------- report


def _fmt_row(cells: list[str], widths: list[int]) -> str:
    return (
        "| "
        + " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        + " |"
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([_fmt_row(header, widths), rule, *(_fmt_row(r, widths) for r in rows)])


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _engine_runs(folder: str, repeat: int, hedging_only: bool, warm: bool = False) -> list[dict[str, Any]]:
    return [in_fresh_process(task_engine, folder, hedging_only, warm) for _ in range(repeat)]


def _time_cells(times: list[float]) -> list[str]:
    return [str(len(times)), f"{statistics.median(times):.3f}", f"{min(times):.3f}", f"{max(times):.3f}"]


def _engine_row(label: str, runs: list[dict[str, Any]]) -> list[str]:
    first = runs[0]
    delta = max(r["peak_mb"] - r["baseline_mb"] for r in runs)
    return [
        label,
        _n(first["positions"]),
        _n(first["expected"]),
        *_time_cells([r["secs"] for r in runs]),
        _n(first["matches"]),
        _n(first["divergences"]),
        f"{delta:,.0f}",
        f"{max(r['peak_mb'] for r in runs):,.0f}",
        f"{max(r['baseline_mb'] for r in runs):,.0f}",
        f"{statistics.median(r['warm_secs'] for r in runs):.3f}" if "warm_secs" in first else "-",
    ]


ENGINE_HEADER = [
    "run",
    "positions",
    "expected rows",
    "runs",
    "median s",
    "min s",
    "max s",
    "matches",
    "divergences",
    "peak - baseline MB",
    "peak RSS MB",
    "baseline MB",
    "warm median s",
]
WARM_NOTE = "warm = a second reconcile call in the same process (the first call pays one-off costs)"


def _describe(stats: dict[str, Any], accounts: int, per_account: int) -> list[str]:
    netting = accounts - stats["hedging_accounts"]
    return [
        f"  {accounts:,} accounts ({stats['hedging_accounts']:,} hedging, {netting:,} netting) x {per_account} "
        f"bot trades/foreign positions each, generated in {stats['generate_secs']:.1f} s",
        f"  positions {stats['positions']:,} (hedging {stats['hedging_positions']:,}); expected trades "
        f"{stats['expected_trades']:,} ({stats['expected_open']:,} open, "
        f"hedging open {stats['hedging_expected_open']:,}); "
        f"deals {stats['deals']:,}; symbols {stats['symbols']:,}; {stats['in_memory_mb']:,.0f} MB in memory",
    ]


def _counts(mapping: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in mapping.items())


def print_profile(profile: dict[str, Any]) -> None:
    total = profile["total"]
    records = profile["records"]
    print(f"\n== Profile: per-function wall time inside one reconcile call ({total:.3f} s total) ==")
    print("exclusive = time in the function minus the time of the profiled functions it calls")
    rows = [
        [
            label,
            str(int(r["calls"])),
            f"{r['incl']:.3f}",
            f"{r['excl']:.3f}",
            f"{100 * r['excl'] / total:.1f}",
            _n(r["rows_in"]),
            _n(r["rows_out"]),
        ]
        for label, r in records.items()
    ]
    print(table(["function", "calls", "inclusive s", "exclusive s", "% of total", "rows in", "rows out"], rows))
    stages: dict[str, float] = {}
    for label, r in records.items():
        stage = profile["stages"][label]
        stages[stage] = stages.get(stage, 0.0) + r["excl"]
    group_rows = [[stage, f"{secs:.3f}", f"{100 * secs / total:.1f}"] for stage, secs in stages.items()]
    print("\nby stage (sum of exclusive times):")
    print(table(["stage", "s", "% of total"], sorted(group_rows, key=lambda r: -float(r[1]))))
    if profile["not_found"]:
        print(f"(not in this engine version, not profiled: {', '.join(profile['not_found'])})")


def compare_with_reference(work: str, accounts: int, positions: int, args: argparse.Namespace) -> None:
    """The engine and the row-by-row reference on the same all-hedging fleet, in this run."""
    ref_accounts = accounts
    small = str(Path(work) / f"reference-{accounts}x{positions}")
    # the original rules know hedging accounts only: the comparison fleet is all hedging
    small_stats = in_fresh_process(task_generate, small, ref_accounts, positions, args.seed, 0.0)
    print(f"\n== Engine vs row-by-row reference, {ref_accounts:,} hedging accounts x {positions:,} ==")
    print("\n".join(_describe(small_stats, ref_accounts, positions)))
    full = _engine_runs(small, args.repeat, hedging_only=False, warm=True)
    hedging = _engine_runs(small, args.repeat, hedging_only=True, warm=True)
    reference = in_fresh_process(task_reference, small, args.repeat, args.reference_budget)
    rows = [
        _engine_row("engine, all accounts", full),
        _engine_row("engine, hedging accounts only", hedging),
    ]
    print(table(ENGINE_HEADER, rows))
    print(WARM_NOTE)
    if "missing" in reference:
        print(f"reference: {reference['missing']}")
    else:
        ref_times = reference["times"]
        print(
            "\nreference = tests/reference_rules.reconcile_row_by_row on the hedging accounts' open trades; "
            f"timed: that call only (rows_from_frames, {reference['convert_secs']:.2f} s, not timed)"
        )
        print(
            table(
                [
                    "run",
                    "positions",
                    "expected rows",
                    "runs",
                    "median s",
                    "min s",
                    "max s",
                    "pairs",
                    "divergences",
                ],
                [
                    [
                        "reference (row by row)",
                        _n(reference["position_rows"]),
                        _n(reference["expected_rows"]),
                        *_time_cells(ref_times),
                        _n(reference["pairs"]),
                        _n(reference["divergences"]),
                    ]
                ],
            )
        )
        if len(ref_times) < args.repeat:
            print(f"(reference ran {len(ref_times)}x: another run would exceed --reference-budget)")
        reference_median = statistics.median(ref_times)
        for which, key in (("first call", "secs"), ("warm", "warm_secs")):
            engine_median = statistics.median(r[key] for r in hedging)
            print(
                f"ratio reference / engine (hedging accounts only, medians, engine {which}): "
                f"{reference_median / engine_median:,.2f}x ({reference_median:.3f} s / {engine_median:.3f} s)"
            )
        print(f"reference divergences by kind: {_counts(reference['by_kind'])}")
        print(
            f"pairs: engine {reference['engine_hedging_pairs']:,}, reference {reference['pairs']:,}, "
            f"both {reference['common_pairs']:,} (the reference compares broker symbols as-is and pairs "
            "within 2 pips / 5 % volume only, so it pairs fewer)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recon_engine", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--positions", type=int, default=100, help="bot trades/foreign positions per account")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reference-positions", type=int, default=100_000, help="fleet size of the comparison")
    parser.add_argument("--reference-budget", type=float, default=240.0, help="max seconds of reference repeats")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--netting-share", type=float, default=0.3)
    parser.add_argument("--profile", action="store_true", help="per-function breakdown at the large size")
    parser.add_argument("--no-reference", action="store_true", help="skip the row-by-row comparison")
    args = parser.parse_args(argv)
    wall = time.perf_counter()

    print("mt5-recon engine benchmark")
    print("\n".join(machine_lines()))
    work = tempfile.mkdtemp(prefix="mt5recon-bench-")
    try:
        large = str(Path(work) / "large")
        stats = in_fresh_process(task_generate, large, args.accounts, args.positions, args.seed, args.netting_share)
        print(f"polars: {stats['polars']} ({stats['threads']} threads)")
        print(f"\nfleet (seed {args.seed}, netting share {args.netting_share}):")
        print("\n".join(_describe(stats, args.accounts, args.positions)))

        runs = _engine_runs(large, args.repeat, hedging_only=False)
        print(f"\n== Engine: one reconcile call over the whole fleet, {args.accounts:,} accounts ==")
        print("each run in a fresh spawned process; baseline = ru_maxrss after imports + loading the frames")
        print("(warm not measured at this size, to keep the run short)")
        print(table(ENGINE_HEADER, [_engine_row(f"{args.accounts:,} accounts", runs)]))
        print(f"matches by stage: {_counts(runs[0]['by_stage'])}")
        print(f"divergences by kind: {_counts(runs[0]['by_kind'])}")

        if not args.no_reference:
            # the same number of positions in many small accounts, then in few large ones: the
            # original scans an account's positions for every trade, so its cost grows with account size
            for per_account in (args.positions, 1000):
                compare_with_reference(work, max(1, args.reference_positions // per_account), per_account, args)
        if args.profile:
            print_profile(in_fresh_process(task_profile, large))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal wall time: {time.perf_counter() - wall:.0f} s; load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
