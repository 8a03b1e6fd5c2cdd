"""End-to-end reconciliation cycles on the simulated fleet, stage by stage, at growing fleet sizes.

    python -m bench.cycle [--accounts 10,100,1000,10000] [--repeats 3] [--positions-per-account 100]
                          [--netting-pct 30] [--postgres] [--no-prefect] [--profile]

Each fleet size runs in its own spawned process (so its peak memory is its own): the simulated world
is built (`SimFleet`, in-process terminals, connector kind "sim"), a fresh DuckLake store is created
and migrated, then `1 + --repeats` cycles run 10 simulated seconds apart. The first cycle is reported
on its own (sessions log in, the store receives every position for the first time); the others give
the medians. Between cycles, untimed: the clock advances, the world steps to it and the simulated bot
rewrites its SQLite database (as the demo fleet's bot does).

A cycle is the flow's steps (`flows/reconcile.py`) called as plain functions, each timed with
`time.perf_counter()`:

    read expected     the bot's SQLite database -> frame (`read_expected_trades`)
    fetch             `pipeline.fetch_fleet` over every terminal + the breakers' update + the deal
                      cache's folder read and written (`deal_segments.load/save`, as the flow's fetch task)
    validate          `pipeline.validate_expected` (the bot's trades, before the fetch, as the flow
                      does) + `pipeline.validate_fetched` (the snapshot's frames)
    match + classify  `pipeline.reconcile_cycle` (the engine)
    load state        waiting for `tasks.io.load_state` (`open_reader` + `read_stored_state` of the
                      active breaks, started in a thread before "read expected", as the flow submits
                      it, so it runs while the terminals answer) + `load_returning_breaks` (the
                      cycle's break ids it lacked); "load state: beside the fetch" is the read's own
                      time, mostly hidden
    breaks            `pipeline.advance_breaks` (the break lifecycle)
    histories         `history.track_positions` + `history.track_trades`
    guards            `pipeline.run_guards` + protective closes (`execute_closes`, dry run)
    tables            `pipeline.cycle_tables` + `state_deletes` + `summarize`
    commit            `Store.open` + `commit_cycle` + close (what `tasks.io.commit_cycle` does)

breaks + histories + guards are `pipeline.advance_state`'s own parts, timed through its `timed` hook.
Prefect's own cost ("Prefect overhead") is measured on
its own, at the smallest size: `flows.reconcile.reconcile_fleet` under `prefect_test_harness` against
the same world, alternating with plain cycles; the overhead is the flow's wall time minus the plain
cycle's (task and flow run bookkeeping, the report's artifacts and events, the fleet file's parse).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import math
import os
import pstats
import re
import shutil
import statistics
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar, cast

import polars as pl

import schemas
from bench.recon_engine import in_fresh_process, load_average, machine_lines, table
from mt5recon import deal_segments, pipeline
from mt5recon.fleet import (
    AccountConfig,
    ConnectorConfig,
    ExpectedTradesSource,
    FleetConfig,
    SimulatorConfig,
    load_fleet,
)
from mt5recon.guards.protect import execute_closes
from mt5recon.sources import read_expected_trades
from mt5recon.store.lake import Store, StoreConfig
from mt5recon.store.stored_state import Scope, unseen_break_ids
from mt5recon.terminal import breaker as breakers
from mt5recon.terminal import constants as c
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.book import AccountSpec
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.config import BotConfig, ScenarioRates
from mt5recon.terminal.simulator.fleet import ALL_SYMBOLS, DEFAULT_START, SimFleet, demo_accounts
from tasks.io import load_returning_breaks, load_state

STAGES = (
    "read expected",
    "fetch",
    "fetch: terminals' CPU",
    "fetch: frames",
    "fetch: deal cache folder",
    "validate",
    "match + classify",
    "load state",
    "load state: beside the fetch",
    "breaks",
    "histories",
    "guards",
    "tables",
    "commit",
)
T = TypeVar("T")
TARGET_SECS = {1_000: 2.0, 10_000: 8.0}  # a whole cycle, from the issue (printed, never asserted)
TARGET_PEAK_MIB = 2048.0
DEFAULT_ACCOUNTS = "10,100,1000,10000"
PG_DSN = os.environ.get("MT5RECON_TEST_PG_DSN", "dbname=test host=127.0.0.1 port=5432")
BOT_DB = "bot/expected_trades.sqlite"  # relative to the size's home, as in the demo fleet
COMMIT_LOCK_WAIT_SECS = 3.0  # tasks.io.COMMIT_LOCK_WAIT_SECS (not imported: tasks.io imports Prefect)
NETTING_SYMBOLS = ("EURUSD", "XAUUSD", "US500")  # what demo_accounts' netting bots trade
BACKFILL_AGE_SECS = (20.0, 3600.0)  # Bot.backfill: trades opened 20 s - 1 h before the world starts
MIB = 1024.0


# ---------------------------------------------------------------- the world of one size


@dataclass(frozen=True)
class SizeJob:
    """What one spawned process measures (sent as a dict: only builtins cross the process boundary)."""

    accounts: int
    positions_per_account: int
    netting_pct: float
    repeats: int
    seed: int
    folder: str  # this size's home: store, bot database
    extension_dir: str  # shared by every size: installing the DuckDB extensions copies ~100 MB
    catalog: str | None  # a Postgres catalog (`postgres:<dsn>`), or None for SQLite under the folder
    metadata_schema: str | None
    concurrency: int
    deadline_secs: float | None
    interval_secs: float
    profile: bool


def open_share(bot: BotConfig) -> float:
    """Share of back-filled trades still open when the world starts: opened uniformly 20 s - 1 h
    before it (`Bot.backfill`), each held uniformly `hold_secs` (about 0.70 with the defaults)."""
    low, high = bot.hold_secs
    first, last = BACKFILL_AGE_SECS
    steps = 1000
    ages = (first + (last - first) * (k + 0.5) / steps for k in range(steps))
    return sum(min(1.0, max(0.0, (high - age) / (high - low))) for age in ages) / steps


def fleet_specs(accounts: int, netting_pct: float) -> list[AccountSpec]:
    """`demo_accounts`' brokers, balances, symbol suffixes and comment rewriting; netting accounts
    spread evenly at `netting_pct` % (their bots trade three symbols, as the demo's do)."""
    specs = []
    for i, spec in enumerate(demo_accounts(accounts)):
        netting = math.floor((i + 1) * netting_pct / 100) > math.floor(i * netting_pct / 100)
        specs.append(
            replace(
                spec,
                margin_mode=c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING if netting else c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
                bot_symbols=NETTING_SYMBOLS if netting else ALL_SYMBOLS,
            )
        )
    return specs


def bot_config(positions_per_account: int) -> BotConfig:
    """An active bot (it keeps opening and closing: every cycle has changes) whose last hour is
    back-filled so that a hedging account starts with ~`positions_per_account` open positions. A
    netting bot gets as many trades; they net into one position per symbol."""
    backfill = max(1, round(positions_per_account / open_share(BotConfig())))
    return replace(BotConfig(), active=True, backfill_hedging=backfill, backfill_netting=backfill)


def bench_fleet(sim: SimFleet) -> FleetConfig:
    """The demo fleet's settings (tolerances, breaks, guards, lookbacks) on the simulated accounts,
    reached in-process (connector kind "sim"); the bot writes its own SQLite database."""
    return load_fleet().model_copy(
        update={
            "name": "bench-cycle",
            "accounts": tuple(
                AccountConfig(login=a.login, server=a.spec.server, connector=ConnectorConfig(kind="sim"))
                for a in sim.accounts()
            ),
            "expected_trades": ExpectedTradesSource(kind="sqlite", path=BOT_DB),
            "simulator": SimulatorConfig(),
        }
    )


def _freeze_world() -> None:
    """Move every object alive now (the simulated world: millions of Python objects at 10,000
    accounts, which real terminals keep in their own processes) out of the cyclic collector's
    reach, so that its walks over them are not charged to the cycle (measured: 2.6 s of collection
    in one 3,000-account cycle). What the cycle allocates is collected as before."""
    gc.collect()
    gc.freeze()


def _timed_call(function: Callable[..., T], *args: Any) -> tuple[T, float]:
    """`function(*args)` and its wall time in seconds (for work run in another thread)."""
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


class Stages:
    """Wall time per named stage of one cycle."""

    def __init__(self) -> None:
        self.secs: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.secs[name] = self.secs.get(name, 0.0) + time.perf_counter() - started


def _status_mib(key: str) -> float:
    """VmRSS / VmHWM of this process from /proc (Linux), in MiB; NaN elsewhere."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return float("nan")
    found = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) / MIB if found else float("nan")


def reset_peak_rss() -> bool:
    """Restart the process's resident high-water mark (Linux: `5` into /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class CpuCounter:
    """CPU seconds added up from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.secs = 0.0

    def add(self, secs: float) -> None:
        with self._lock:
            self.secs += secs


class CpuCountedTerminal:
    """Forwards every MT5 call and adds the CPU time the calling thread spent inside it: the
    simulated terminal's own work, which a real terminal does in its own process."""

    def __init__(self, api: MT5Api, counter: CpuCounter) -> None:
        self._api = api
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._api, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return attribute(*args, **kwargs)
            finally:
                self._counter.add(time.thread_time() - started)

        return counted


class World:
    """One simulated fleet, its store and fleet config, and the cycle run on them."""

    def __init__(self, job: SizeJob, start: datetime = DEFAULT_START) -> None:
        self.job = job
        self.home = Path(job.folder)
        self.clock = SimClock(start)
        started = time.perf_counter()
        self.sim = SimFleet(
            fleet_specs(job.accounts, job.netting_pct),
            seed=job.seed,
            clock=self.clock,
            rates=ScenarioRates.zero(),  # no faults or scenarios: every terminal answers
            bot=bot_config(job.positions_per_account),
            volatility=1.0,  # prices move: equity, drawdown and SL/TP hits change between cycles
        )
        self.build_secs = time.perf_counter() - started
        _freeze_world()
        schemas.warm_up()  # as flows/reconcile.py does at import, before its first cycle
        use_in_process_fleet(self.sim)
        self.fleet = bench_fleet(self.sim)
        self.terminal_cpu = CpuCounter()
        self.opener = self._opener(self.fleet)
        self.book: dict[int, breakers.Breaker] = {}
        self.store = StoreConfig.under(
            self.home, catalog=job.catalog, metadata_schema=job.metadata_schema, extension_dir=job.extension_dir
        )
        started = time.perf_counter()
        Store.open(self.store).close()  # the lake exists and is migrated before the first cycle
        self.store_secs = time.perf_counter() - started
        self.bot_db = self.home / BOT_DB
        self.deal_file = self.home / "state" / "deals-bench"  # as the flow keeps it between runs
        self.bot_db.parent.mkdir(parents=True, exist_ok=True)
        self.step_secs: list[float] = []
        self.bot_write_secs: list[float] = []
        self.logins = [account.login for account in self.fleet.accounts]
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-state")

    def _opener(self, fleet: FleetConfig) -> Callable[[AccountConfig], MT5Api]:
        def opener(account: AccountConfig) -> MT5Api:
            return cast(MT5Api, CpuCountedTerminal(open_terminal(account, policy=fleet.reconnect), self.terminal_cpu))

        return opener

    def counts(self) -> dict[str, Any]:
        hedging = [a for a in self.sim.accounts() if a.spec.hedging]
        netting = [a for a in self.sim.accounts() if not a.spec.hedging]
        return {
            "hedging_accounts": len(hedging),
            "netting_accounts": len(netting),
            "positions": self.sim.open_positions(),
            "hedging_positions": sum(len(a.book.positions) for a in hedging),
            "netting_positions": sum(len(a.book.positions) for a in netting),
            "bot_trades": sum(len(a.bot.trades) for a in self.sim.accounts()),
            "open_bot_trades": sum(len(a.bot.open) for a in self.sim.accounts()),
        }

    def advance(self, seconds: float | None = None) -> None:
        """Untimed: the clock moves (to the wall clock when `seconds` is None), the world steps to
        it and the bot writes its database, as it would between two cycles."""
        gap = seconds if seconds is not None else (datetime.now(UTC) - self.clock.now()).total_seconds()
        self.clock.advance(max(0.0, gap))
        started = time.perf_counter()
        self.sim.sync()
        self.step_secs.append(time.perf_counter() - started)
        started = time.perf_counter()
        self.sim.write_expected_trades_sqlite(self.bot_db)
        self.bot_write_secs.append(time.perf_counter() - started)
        _freeze_world()

    def cycle(self) -> dict[str, Any]:
        """One cycle at the clock's time, every stage timed."""
        fleet, at, t = self.fleet, self.clock.now(), Stages()
        cycle_id = pipeline.cycle_id_for(fleet.name, at)
        self.terminal_cpu.secs = 0.0
        started = time.perf_counter()
        state_read = self.reader.submit(_timed_call, load_state.fn, self.store, self.logins, Scope(name=fleet.name))
        with t("read expected"):
            expected_raw = read_expected_trades(fleet.expected_trades, self.home, store=self.store)
        with t("validate"):  # the bot's trades, before the fetch; the rows as read go (as in the flow)
            expected = pipeline.validate_expected(expected_raw, now=at)
            del expected_raw
        with t("fetch"):
            with t("fetch: deal cache folder"):
                deals = deal_segments.load(self.deal_file)
            snapshot, fetch_ms, self.book = pipeline.fetch_with_breakers(
                fleet,
                fetched_at=at,
                open_terminal=self.opener,
                expected_raw=expected.valid,
                book=self.book,
                concurrency=self.job.concurrency,
                deadline_secs=self.job.deadline_secs,
                timed=lambda part: t("fetch: frames") if part == "frames" else contextlib.nullcontext(),
                deals=deals,
            )
            with t("fetch: deal cache folder"):
                deal_segments.save(self.deal_file, deals)
            del deals  # as the flow's fetch task lets it go once saved (the snapshot keeps its deals)
        with t("validate"):
            validated = pipeline.validate_fetched(snapshot, expected, now=at)
        with t("match + classify"):
            recon_started = time.perf_counter()
            result = pipeline.reconcile_cycle(validated, fleet, as_of=at)
            reconcile_ms = (time.perf_counter() - recon_started) * 1000
        with t("load state"):
            stored, t.secs["load state: beside the fetch"] = state_read.result()
            returning = unseen_break_ids(stored, pipeline.cycle_break_ids(result))
            if returning:
                stored = load_returning_breaks.fn(self.store, stored, returning)
        state = pipeline.advance_state(stored, validated, result, fleet, at=at, timed=t)
        with t("guards"):
            by_login = {account.login: account for account in fleet.accounts}
            actions = execute_closes(
                state.guards.protection.decisions,
                validated.frames["positions"],
                validated.frames["ticks"],
                fleet.guards.protect,
                lambda login: self.opener(by_login[login]),
                at=at,
            )
        with t("tables"):
            tables = pipeline.cycle_tables(
                cycle_id=cycle_id,
                started_at=at,
                finished_at=at,
                snapshot=snapshot,
                validated=validated,
                result=result,
                state=state,
                fetch_ms=fetch_ms,
                reconcile_ms=reconcile_ms,
                protective_actions=actions,
            )
            deletes = pipeline.state_deletes(state)
            summary = pipeline.summarize(tables)
        with t("commit"), Store.open(self.store, lock_wait_secs=COMMIT_LOCK_WAIT_SECS) as store:
            committed = store.commit_cycle(cycle_id, tables, deletes)
        wall = time.perf_counter() - started
        t.secs["fetch: terminals' CPU"] = self.terminal_cpu.secs
        if committed.duplicate:
            raise RuntimeError(f"cycle {cycle_id} was already in the ledger: nothing was written")
        return {
            "stages": t.secs,
            "wall": wall,
            "rows": {k: v for k, v in committed.row_counts.items() if not k.endswith(":deleted")},
            "deleted": {
                k.removesuffix(":deleted"): v for k, v in committed.row_counts.items() if k.endswith(":deleted")
            },
            "expected_rows": expected.rows_in,
            "summary": {k: v for k, v in summary.items() if isinstance(v, int | float) or v is None},
        }

    def close(self) -> None:
        self.reader.shutdown(wait=True)
        use_in_process_fleet(None)


# ---------------------------------------------------------------- child processes


def _profile_text(world: World, top: int = 25) -> str:
    """cProfile of one more cycle: the functions with the most own time, then the most cumulative."""
    world.advance(world.job.interval_secs)
    profiler = cProfile.Profile()
    profiler.runcall(world.cycle)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(top)
    return out.getvalue()


def measure_size(job_fields: dict[str, Any]) -> dict[str, Any]:
    """Child process: build one size's world, run 1 + repeats cycles, return the measurements."""
    job = SizeJob(**job_fields)
    label = f"{job.accounts:,} accounts"
    rss_imports = _status_mib("VmRSS")
    world = World(job)
    try:
        counts = world.counts()
        print(
            f"  {label}: world built in {world.build_secs:.1f} s ({counts['positions']:,} positions, "
            f"{counts['bot_trades']:,} bot trades), store created in {world.store_secs:.1f} s",
            flush=True,
        )
        rss_world = _status_mib("VmRSS")
        resettable = reset_peak_rss()
        cycles = []
        for index in range(job.repeats + 1):
            world.advance(job.interval_secs)
            reset_peak_rss()
            cycle = world.cycle()
            cycle["peak_mib"] = _status_mib("VmHWM")
            cycles.append(cycle)
            kind = "first" if index == 0 else f"{index}/{job.repeats}"
            print(
                f"  {label}: cycle {kind}: {cycle['wall']:.2f} s, {sum(cycle['rows'].values()):,} rows committed, "
                f"peak RSS {cycle['peak_mib']:,.0f} MiB, load {load_average()}",
                flush=True,
            )
        return {
            "accounts": job.accounts,
            "counts": counts,
            "build_secs": world.build_secs,
            "store_secs": world.store_secs,
            "rss_imports_mib": rss_imports,
            "rss_world_mib": rss_world,
            "peak_resettable": resettable,
            "cycles": cycles,
            "step_secs": statistics.median(world.step_secs),
            "bot_write_secs": statistics.median(world.bot_write_secs),
            "profile": _profile_text(world) if job.profile else None,
            "polars_threads": pl.thread_pool_size(),
        }
    finally:
        world.close()


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's string escapes are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _without_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def toml_text(data: Mapping[str, Any], path: Sequence[str] = ()) -> str:
    """A fleet config dump (`model_dump(mode="json")`) as a TOML document; None values are left
    out (TOML has no null)."""
    data = _without_none(data)
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    arrays = {k: v for k, v in data.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)}
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if k not in tables and k not in arrays]
    for key, value in tables.items():
        lines += ["", "[" + ".".join(_toml_key(p) for p in [*path, key]) + "]", toml_text(value, [*path, key])]
    for key, items in arrays.items():
        for item in items:
            header = "[[" + ".".join(_toml_key(p) for p in [*path, key]) + "]]"
            lines += ["", header, *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items())]
    return "\n".join(line for line in lines if line != "") + "\n"


def write_fleet_file(fleet: FleetConfig, path: Path) -> FleetConfig:
    """The fleet as a file the flow loads, and the config it loads back as. It must be the same
    config, housekeeping aside (its retention uses None for "forever", which TOML cannot write;
    the reconcile flow does not use it)."""
    path.write_text(toml_text(fleet.model_dump(mode="json")))
    loaded = load_fleet(path)
    if loaded.model_copy(update={"housekeeping": fleet.housekeeping}) != fleet:
        raise RuntimeError(f"the fleet file {path.name} does not load back as the benchmark's fleet config")
    return loaded


def measure_prefect(job_fields: dict[str, Any]) -> dict[str, Any]:
    """Child process: the flow under a test Prefect API vs plain cycles on the same world and store.

    The world's clock follows the wall clock here (the flow stamps its cycle with the wall time), so
    flow and plain cycles see the same fresh data; they alternate, flow first."""
    job = SizeJob(**job_fields)
    os.environ["MT5RECON_HOME"] = job.folder  # the flow's Settings: store and bot database under it
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from the test server
    for name in ("MT5RECON_FLEET", "MT5RECON_STORE_CATALOG", "MT5RECON_STORE_DATA_PATH"):
        os.environ.pop(name, None)
    world = World(job, start=datetime.fromtimestamp(math.floor(time.time()), UTC))
    fleet_file = Path(job.folder) / "fleet.toml"
    world.fleet = write_fleet_file(world.fleet, fleet_file)  # the flow and the plain cycles share it
    started = time.perf_counter()
    from prefect.testing.utilities import prefect_test_harness

    from flows.reconcile import reconcile_fleet

    imports_secs = time.perf_counter() - started
    flow_secs: list[float] = []
    plains: list[dict[str, Any]] = []
    try:
        started = time.perf_counter()
        with prefect_test_harness(server_startup_timeout=180):
            harness_secs = time.perf_counter() - started
            for index in range(job.repeats + 1):
                world.advance()
                started = time.perf_counter()
                summary = asyncio.run(reconcile_fleet(fleet_file=str(fleet_file)))
                flow_secs.append(time.perf_counter() - started)
                if not isinstance(summary, dict) or summary.get("accounts_ok") != job.accounts:
                    raise RuntimeError(f"the flow's cycle did not reconcile every account: {summary}")
                world.advance()
                plains.append(world.cycle())
                kind = "first" if index == 0 else f"{index}/{job.repeats}"
                print(
                    f"  Prefect, {job.accounts:,} accounts: cycle {kind}: flow {flow_secs[-1]:.2f} s, "
                    f"plain {plains[-1]['wall']:.2f} s",
                    flush=True,
                )
    finally:
        world.close()
    return {
        "accounts": job.accounts,
        "imports_secs": imports_secs,
        "harness_secs": harness_secs,
        "flow_secs": flow_secs,
        "plain_secs": [p["wall"] for p in plains],
        "plain_stages": [p["stages"] for p in plains],
        "prefect": version("prefect"),
    }


# ---------------------------------------------------------------- report


def _ms(secs: float) -> str:
    ms = secs * 1000
    if math.isnan(ms):
        return "-"
    return f"{ms:,.2f}" if ms < 10 else f"{ms:,.1f}" if ms < 100 else f"{ms:,.0f}"


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def steady(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The measured cycles (all but the first; the first alone when there is no other)."""
    cycles: list[dict[str, Any]] = result["cycles"]
    return cycles[1:] or cycles[:1]


def stage_median(result: dict[str, Any], stage: str) -> float:
    return _median([cycle["stages"].get(stage, 0.0) for cycle in steady(result)])


def wall_median(result: dict[str, Any]) -> float:
    return _median([cycle["wall"] for cycle in steady(result)])


def _size_header(results: list[dict[str, Any]], first: str) -> list[str]:
    return [first, *(f"{r['accounts']:,} acc" for r in results)]


def stage_table(results: list[dict[str, Any]], prefect: dict[str, Any] | None) -> str:
    rows = [[stage, *(_ms(stage_median(r, stage)) for r in results)] for stage in STAGES]
    rows.append(["total (cycle wall time)", *(_ms(wall_median(r)) for r in results)])
    rows.append(["total without fetch", *(_ms(wall_median(r) - stage_median(r, "fetch")) for r in results)])
    rows.append(
        [
            "total without the terminals' CPU",
            *(_ms(wall_median(r) - stage_median(r, "fetch: terminals' CPU")) for r in results),
        ]
    )
    rows.append(
        [
            "target (whole cycle)",
            *(_ms(TARGET_SECS[r["accounts"]]) if r["accounts"] in TARGET_SECS else "-" for r in results),
        ]
    )
    if prefect is not None:
        overhead = prefect_overhead(prefect)
        rows.append(
            [
                "Prefect overhead",
                *(_ms(overhead) + " *" if r["accounts"] == prefect["accounts"] else "-" for r in results),
            ]
        )
    rows.append(["first cycle total", *(_ms(r["cycles"][0]["wall"]) for r in results)])
    return table(_size_header(results, "stage, ms (median)"), rows)


def first_cycle_table(results: list[dict[str, Any]]) -> str:
    rows = [[stage, *(_ms(r["cycles"][0]["stages"].get(stage, 0.0)) for r in results)] for stage in STAGES]
    rows.append(["total (cycle wall time)", *(_ms(r["cycles"][0]["wall"]) for r in results)])
    return table(_size_header(results, "first cycle, ms"), rows)


def _mib(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


def size_table(results: list[dict[str, Any]]) -> str:
    def cells(fn: Callable[[dict[str, Any]], str]) -> list[str]:
        return [fn(r) for r in results]

    def rows_of(cycle: dict[str, Any]) -> int:
        return sum(cycle["rows"].values())

    def peak(r: dict[str, Any]) -> float:
        return _median([cycle["peak_mib"] for cycle in steady(r)])

    rows = [
        [
            "accounts (hedging / netting)",
            *cells(lambda r: f"{r['counts']['hedging_accounts']:,} / {r['counts']['netting_accounts']:,}"),
        ],
        ["open positions at start", *cells(lambda r: f"{r['counts']['positions']:,}")],
        [
            "  per hedging / netting account",
            *cells(
                lambda r: (
                    f"{r['counts']['hedging_positions'] / max(1, r['counts']['hedging_accounts']):.1f} / "
                    f"{r['counts']['netting_positions'] / max(1, r['counts']['netting_accounts']):.1f}"
                )
            ),
        ],
        ["expected trades read (rows)", *cells(lambda r: f"{steady(r)[-1]['expected_rows']:,}")],
        [
            "accounts ok / failed",
            *cells(
                lambda r: (
                    f"{steady(r)[-1]['summary']['accounts_ok']:,} / {steady(r)[-1]['summary']['accounts_failed']:,}"
                )
            ),
        ],
        [
            "matched / divergences",
            *cells(lambda r: f"{steady(r)[-1]['summary']['matched']:,} / {steady(r)[-1]['summary']['divergences']:,}"),
        ],
        ["rows committed (median)", *cells(lambda r: f"{_median([rows_of(x) for x in steady(r)]):,.0f}")],
        ["rows deleted (median)", *cells(lambda r: f"{_median([sum(x['deleted'].values()) for x in steady(r)]):,.0f}")],
        ["rows committed, first cycle", *cells(lambda r: f"{rows_of(r['cycles'][0]):,}")],
        ["RSS after imports, MiB", *cells(lambda r: _mib(r["rss_imports_mib"]))],
        ["RSS with the world built, MiB", *cells(lambda r: _mib(r["rss_world_mib"]))],
        ["peak RSS in a cycle, MiB (median)", *cells(lambda r: _mib(peak(r)))],
        ["  above the world, MiB", *cells(lambda r: _mib(peak(r) - r["rss_world_mib"]))],
        ["peak RSS, first cycle, MiB", *cells(lambda r: _mib(r["cycles"][0]["peak_mib"]))],
        ["  above the world, MiB", *cells(lambda r: _mib(r["cycles"][0]["peak_mib"] - r["rss_world_mib"]))],
        ["target peak, MiB", *cells(lambda r: f"{TARGET_PEAK_MIB:,.0f}")],
        ["world build s (untimed)", *cells(lambda r: f"{r['build_secs']:.1f}")],
        [
            "world step + bot write s per cycle (untimed)",
            *cells(lambda r: f"{r['step_secs']:.2f} + {r['bot_write_secs']:.2f}"),
        ],
    ]
    return table(_size_header(results, "per size"), rows)


def rows_table(results: list[dict[str, Any]]) -> str:
    names = sorted({name for r in results for cycle in r["cycles"] for name in cycle["rows"]})
    rows = [
        [name, *(f"{_median([cycle['rows'].get(name, 0) for cycle in steady(r)]):,.0f}" for r in results)]
        for name in names
    ]
    deleted = sorted({name for r in results for cycle in r["cycles"] for name in cycle["deleted"]})
    rows += [
        [
            f"{name} (deleted)",
            *(f"{_median([cycle['deleted'].get(name, 0) for cycle in steady(r)]):,.0f}" for r in results),
        ]
        for name in deleted
    ]
    return table(_size_header(results, "table, rows per cycle (median)"), rows)


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares y = a + b x."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def growth_table(results: list[dict[str, Any]]) -> str:
    """Per stage: µs per account at each size; the log-log slope between the two largest sizes (1 =
    linear, 0 = constant); a linear fit over every size: fixed ms + µs per account."""
    sizes = [float(r["accounts"]) for r in results]
    rows = []
    for stage in [*STAGES, "total"]:
        secs = [wall_median(r) if stage == "total" else stage_median(r, stage) for r in results]
        per_account = [f"{s / n * 1e6:,.1f}" for s, n in zip(secs, sizes, strict=True)]
        slope = (
            f"{math.log(secs[-1] / secs[-2]) / math.log(sizes[-1] / sizes[-2]):.2f}"
            if len(secs) > 1 and secs[-1] > 0 and secs[-2] > 0 and sizes[-1] != sizes[-2]
            else "-"
        )
        fixed, marginal = linear_fit(sizes, secs)
        rows.append([stage, *per_account, slope, f"{fixed * 1000:,.1f}", f"{marginal * 1e6:,.1f}"])
    last_two = f"slope {int(sizes[-2]):,}->{int(sizes[-1]):,}" if len(sizes) > 1 else "slope"
    header = ["stage, µs/account", *(f"{int(n):,} acc" for n in sizes), last_two, "fit: fixed ms", "fit: µs/account"]
    return table(header, rows)


def prefect_overhead(prefect: dict[str, Any]) -> float:
    """Median over the measured pairs of (flow wall time - plain cycle wall time)."""
    pairs = list(zip(prefect["flow_secs"], prefect["plain_secs"], strict=True))
    measured = pairs[1:] or pairs
    return _median([flow - plain for flow, plain in measured])


def prefect_lines(prefect: dict[str, Any]) -> list[str]:
    flows, plains = prefect["flow_secs"], prefect["plain_secs"]
    return [
        f"Prefect {prefect['prefect']}, {prefect['accounts']:,} accounts: harness started in "
        f"{prefect['harness_secs']:.1f} s (imports {prefect['imports_secs']:.1f} s)",
        f"  first pair: flow {flows[0] * 1000:,.0f} ms, plain cycle {plains[0] * 1000:,.0f} ms",
        f"  measured pairs: flow {_ms(_median(flows[1:] or flows))} ms, plain cycle "
        f"{_ms(_median(plains[1:] or plains))} ms (medians); overhead (median of flow - plain) "
        f"{_ms(prefect_overhead(prefect))} ms",
        "  * measured once at this size: reconcile_fleet under prefect_test_harness (a local API on a temp",
        "    SQLite database) against the same world and store, alternating with plain cycles; the flow's",
        "    extra work is Prefect's task/flow run bookkeeping, publish-report (artifacts, events), the fleet",
        "    file's parse and the breaker book's file; the SQLite catalog is used whatever --postgres says",
    ]


def explain(args: argparse.Namespace, results: list[dict[str, Any]]) -> list[str]:
    deadline = "no fetch deadline" if args.fetch_deadline is None else f"fetch deadline {args.fetch_deadline:g} s"
    catalog = f"Postgres catalog at {PG_DSN}" if args.postgres else "SQLite catalog"
    sizes = ", ".join(f"{r['accounts']:,}" for r in results)
    paragraphs = [
        f"Stage times are medians of {args.repeats} cycle(s) after the first; 'total' is the median of the cycles' "
        "wall times (not the sum of the medians). The first cycle is shown on its own: terminal sessions log in "
        "and the store receives every open position, bot trade and break for the first time.",
        "fetch: in-process simulated terminals (connector kind 'sim', no latency). 'terminals' CPU' is the CPU "
        "time the fetching threads spent inside the terminals' API calls (the simulator computing every answer, "
        "in this process, sharing its cores and GIL with the pipeline), summed over accounts; 'frames' is the "
        "pipeline turning the answers into the snapshot frames, a chunk of accounts at a time while the fan-out "
        "goes on. In production the terminals compute their answers in their own processes on their own hosts "
        "and the fan-out is bound by their latency (see bench/fetch_fanout.py); 'total without the terminals' "
        "CPU' is the cycle's wall time minus that CPU: "
        f"the pipeline's own work. Concurrency {args.concurrency}, {deadline}.",
        "Peak RSS: the process's resident high-water mark during the cycle (VmHWM, reset before each cycle), so "
        "it includes the simulated world (Python objects of every terminal, position and bot trade); 'above the "
        "world' is what the pipeline adds on top. The 2 GiB target is the pipeline's.",
        "Growth: a stage that grows linearly has a constant µs/account once its fixed cost is amortized and a "
        "log-log slope near 1 between the two largest sizes; the fit's fixed ms is the per-cycle constant.",
        f"Store: a fresh DuckLake per size ({catalog}), created and migrated before the first cycle; load state "
        "opens a reader and commit opens the Store once per cycle, as the flow's tasks do. As in the flow, the "
        "stored state (active breaks, positions, bot trades, guards) is read in another thread from the cycle's "
        "start, while the terminals answer: 'load state' is the wait for it after the engine plus the read of "
        "the cycle's new or returning break ids; 'load state: beside the fetch' is that read's own time, not "
        "part of the total.",
        f"World: SimFleet with {args.netting_pct:g} % netting accounts, active bots back-filled to "
        f"~{args.positions_per_account} open positions per hedging account (a netting account nets its bot's "
        "trades into one position per symbol), no scenarios or faults, moving prices; cycles are "
        f"{args.interval_secs:g} simulated s apart. Sizes measured: {sizes}. After the world is built and after "
        "each step, its objects are frozen out of the cyclic collector's reach (gc.freeze): real terminals keep "
        "them in their own processes, and a collection walking them is not the pipeline's cost.",
    ]
    return [line for text in paragraphs for line in textwrap.wrap(text, width=104, subsequent_indent="  ")]


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


# ---------------------------------------------------------------- main


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("fleet sizes must be positive integers")
    return sorted(set(sizes))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cycle", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--accounts", type=parse_sizes, default=parse_sizes(DEFAULT_ACCOUNTS),
        help=f"comma-separated fleet sizes ({DEFAULT_ACCOUNTS})",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="measured cycles per size after the first (median)")
    parser.add_argument("--positions-per-account", type=int, default=100, help="open positions per hedging account")
    parser.add_argument("--netting-pct", type=float, default=30.0, help="share of netting accounts, %%")
    parser.add_argument("--postgres", action="store_true", help=f"Postgres catalog ({PG_DSN}), fresh schema per size")
    parser.add_argument("--no-prefect", dest="prefect", action="store_false", help="skip the Prefect overhead run")
    parser.add_argument(
        "--prefect-accounts", type=int, default=None, help="fleet size of the Prefect overhead run (the smallest)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one more cycle at the largest size")
    parser.add_argument("--concurrency", type=int, default=64, help="terminals fetched at once (the flow's default)")
    parser.add_argument("--fetch-deadline", type=float, default=None, help="fetch deadline, s (default: none)")
    parser.add_argument("--interval-secs", type=float, default=10.0, help="simulated seconds between cycles")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (stores, bot databases)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.positions_per_account < 1 or args.concurrency < 1:
        parser.error("--repeats, --positions-per-account and --concurrency must be at least 1")
    if not 0.0 <= args.netting_pct <= 100.0:
        parser.error("--netting-pct must be within [0, 100]")
    return args


def _drop_schemas(names: list[str]) -> None:
    if not names:
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as admin:
        for name in names:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wall = time.perf_counter()
    print("mt5-recon cycle benchmark: end-to-end cycles on the simulated fleet")
    print("\n".join(machine_lines()))
    print(
        f"versions: polars {pl.__version__} ({pl.thread_pool_size()} threads), duckdb {_version('duckdb')}, "
        f"prefect {_version('prefect')}, mt5-recon {_version('mt5-recon')}"
    )
    root = Path(tempfile.mkdtemp(prefix="mt5recon-bench-cycle-"))
    schemas: list[str] = []
    results: list[dict[str, Any]] = []
    prefect: dict[str, Any] | None = None

    def job(accounts: int, name: str, postgres: bool) -> SizeJob:
        schema = f"mt5recon_bench_{uuid.uuid4().hex[:12]}" if postgres else None
        if schema is not None:
            schemas.append(schema)
        return SizeJob(
            accounts=accounts,
            positions_per_account=args.positions_per_account,
            netting_pct=args.netting_pct,
            repeats=args.repeats,
            seed=args.seed,
            folder=str(root / name),
            extension_dir=str(root / "extensions"),
            catalog=f"postgres:{PG_DSN}" if postgres else None,
            metadata_schema=schema,
            concurrency=args.concurrency,
            deadline_secs=args.fetch_deadline,
            interval_secs=args.interval_secs,
            profile=args.profile and accounts == args.accounts[-1],
        )

    try:
        print(f"\nsizes: {', '.join(f'{n:,}' for n in args.accounts)} accounts; work folder: a temp folder", flush=True)
        for accounts in args.accounts:
            results.append(in_fresh_process(measure_size, asdict(job(accounts, f"accounts-{accounts}", args.postgres))))
        if args.prefect:
            size = args.prefect_accounts or args.accounts[0]
            prefect_job = replace(job(size, f"prefect-{size}", False), profile=False)
            prefect = in_fresh_process(measure_prefect, asdict(prefect_job))
    finally:
        with contextlib.suppress(Exception):
            _drop_schemas(schemas)
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    repeats = f"median of {args.repeats} cycle(s) after the first"
    print(f"\n== Stage wall times per cycle ({repeats}) ==")
    print(stage_table(results, prefect))
    print("\n== The first cycle ==")
    print(first_cycle_table(results))
    print("\n== Fleet, rows and memory ==")
    print(size_table(results))
    print("\n== Rows committed per table ==")
    print(rows_table(results))
    if len(results) > 1:
        print("\n== Growth: time per account per stage ==")
        print(growth_table(results))
    if prefect is not None:
        print("\n== Prefect overhead ==")
        print("\n".join(prefect_lines(prefect)))
    profiled = next((r for r in results if r.get("profile")), None)
    if profiled is not None:
        print(f"\n== cProfile of one more cycle at {profiled['accounts']:,} accounts ==")
        print(profiled["profile"])
    print("\n" + "\n".join(explain(args, results)))
    print(f"\ntotal wall time: {time.perf_counter() - wall:.0f} s; load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
