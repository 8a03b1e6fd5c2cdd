"""Drivers for `record` (live snapshots -> recorded-snapshot format) and `replay`
(recording -> validate -> reconcile -> a separate store), sharing the cycle's own steps.

`what_if` replays a recording twice, with the fleet's tolerances and with a file's, each into a
throwaway store of its own, and returns both replays' breaks for `mt5recon.whatif` to compare.
Nothing here writes to the live store.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError

from mt5recon import pipeline
from mt5recon.fleet import FleetConfig, load_fleet
from mt5recon.offline import commit_snapshot
from mt5recon.settings import Settings
from mt5recon.sources import read_expected_trades
from mt5recon.store.lake import CommitResult, Store, StoreConfig
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.recording import Replay, record_cycle
from mt5recon.terminal.sim_host import hosted_fleet, served_elsewhere
from mt5recon.tolerances import BreakPolicy, Tolerances

# progress(done, total, what): called after each recorded or replayed cycle
Progress = Callable[[int, int, str], object]


def print_progress(done: int, total: int, what: str) -> None:
    print(f"[{done}/{total}] {what}", flush=True)


def record(
    settings: Settings,
    directory: Path,
    *,
    cycles: int,
    every_secs: float,
    progress: Progress = print_progress,
    note: Callable[[str], object] = print,
) -> int:
    """Fetch `cycles` live snapshots `every_secs` apart and append each to the recording. A simulated
    fleet is hosted for the recording, unless `up` or `sim serve` already hosts it on its ports."""
    fleet = load_fleet(settings.fleet)
    home = settings.resolved_home()
    with ExitStack() as stack:
        if served_elsewhere(fleet):  # `mt5recon up` or `sim serve` hosts it: record what it serves
            note("the simulated fleet's bridge ports are already served (`up` or `sim serve`?): recording from them")
        else:
            stack.enter_context(hosted_fleet(fleet, home))
        for number in range(1, cycles + 1):
            started = time.monotonic()
            fetched_at = record_once(fleet, home, directory, settings.fetch_concurrency, settings.store_config())
            progress(number, cycles, f"recorded {fetched_at.isoformat(timespec='seconds')}")
            if number < cycles:
                time.sleep(max(0.0, every_secs - (time.monotonic() - started)))  # the cadence, not a poll
    return cycles


def record_once(
    fleet: FleetConfig, home: Path, directory: Path, concurrency: int = 16, live_store: StoreConfig | None = None
) -> datetime:
    fetched_at = datetime.now(UTC)
    expected = read_expected_trades(fleet.expected_trades, home, store=live_store)
    snapshot, _ = pipeline.fetch_fleet(
        fleet,
        fetched_at=fetched_at,
        open_terminal=open_terminal,
        expected_raw=expected,
        concurrency=concurrency,
    )
    record_cycle(directory, snapshot, expected, fetched_at)
    return fetched_at


def replay_cycle(
    recording: Replay,
    at: datetime,
    fleet: FleetConfig,
    home: Path,
    store: Store,
    live_store: StoreConfig | None = None,
) -> CommitResult:
    """Reconcile one recorded cycle exactly as the live cycle would have, and commit it."""
    snapshot = recording.snapshot(at)
    expected = recording.expected_trades(at)
    if expected is None:
        # a recording without the bot's trades falls back to the live source (the live store, not the replay's)
        expected = read_expected_trades(fleet.expected_trades, home, store=live_store)
    return commit_snapshot(store, snapshot, expected, fleet, at=at, cycle_name=f"replay-{fleet.name}")


class ReplayTargetError(ValueError):
    """The replay would write where it must not (the live store) or where old results would mix in."""


def _refuse_live(target: StoreConfig, settings: Settings) -> None:
    live = settings.store_config()
    if target.catalog == live.catalog or target.data_path == live.data_path:
        raise ReplayTargetError(f"{target.catalog} is the live store: a replay writes into a separate home (--into)")


def _replay_into(
    recording: Replay,
    fleet: FleetConfig,
    settings: Settings,
    target: StoreConfig,
    *,
    label: str,
    progress: Progress,
) -> list[CommitResult]:
    cycles = recording.cycles()
    results: list[CommitResult] = []
    progress(0, len(cycles), f"{label}opening the store")
    with Store.open(target) as store:
        for number, at in enumerate(cycles, start=1):
            results.append(replay_cycle(recording, at, fleet, settings.resolved_home(), store, settings.store_config()))
            progress(number, len(cycles), f"{label}{at.isoformat(timespec='seconds')}")
    return results


def replay(
    settings: Settings, directory: Path, *, into: Path, progress: Progress = print_progress
) -> list[CommitResult]:
    """Re-reconcile every recorded cycle into the store under `into` (never the live one)."""
    fleet = load_fleet(settings.fleet)
    recording = Replay(directory)
    target = StoreConfig.under(into)
    _refuse_live(target, settings)
    return _replay_into(recording, fleet, settings, target, label="", progress=progress)


# ---- what-if ------------------------------------------------------------------------------


class ToleranceFile(BaseModel):
    """A what-if file: the fleet file's `[tolerances...]` section, optionally its `[breaks]` too.

    A section the file leaves out keeps the fleet's. Within `[tolerances]` the file is the whole
    section, as in a fleet file: `[tolerances.symbols.*]` it does not list are not inherited.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tolerances: Tolerances | None = None
    breaks: BreakPolicy | None = None


class ToleranceFileError(ValueError):
    """The what-if file does not parse or validate: `problems` lists each one by field path."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.path = path
        self.problems = problems


def load_tolerance_file(path: Path) -> ToleranceFile:
    """Read a what-if file. A bare section (`[default]`, `[symbols.XAUUSD]`) is taken as `[tolerances]`."""
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ToleranceFileError(path, [f"not valid TOML: {error}"]) from error
    except OSError as error:
        raise ToleranceFileError(path, [f"cannot be read: {error.strerror or error}"]) from error
    if not document:
        raise ToleranceFileError(path, ["empty: give a [tolerances.default] section (and [tolerances.symbols.*])"])
    if "tolerances" not in document and "breaks" not in document:
        document = {"tolerances": document}
    try:
        return ToleranceFile.model_validate(document)
    except ValidationError as error:
        problems = []
        for problem in error.errors(include_url=False, include_input=False, include_context=False):
            location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
            problems.append(f"{location}: {problem['msg']}")
        raise ToleranceFileError(path, problems) from error


def with_tolerances(fleet: FleetConfig, overrides: ToleranceFile) -> FleetConfig:
    """The fleet with the file's sections in place of its own."""
    return fleet.model_copy(
        update={
            "tolerances": overrides.tolerances if overrides.tolerances is not None else fleet.tolerances,
            "breaks": overrides.breaks if overrides.breaks is not None else fleet.breaks,
        }
    )


@dataclass(frozen=True)
class WhatIfReplay:
    """Both replays of one recording: their fleets and final `breaks` tables."""

    cycles: int
    baseline_fleet: FleetConfig
    what_if_fleet: FleetConfig
    baseline_breaks: pl.DataFrame
    what_if_breaks: pl.DataFrame
    kept_in: Path | None  # the two stores' homes when kept (`--into`), else None (removed)


BASELINE, WHAT_IF = "baseline", "what-if"


@contextmanager
def _work_folder(into: Path | None) -> Iterator[Path]:
    if into is not None:
        yield into
        return
    with tempfile.TemporaryDirectory(prefix="mt5recon-whatif-") as folder:
        yield Path(folder)


def _read_breaks(target: StoreConfig) -> pl.DataFrame:
    with Store.open(target, migrate=False) as store:
        return store.connection.execute("SELECT * FROM breaks").pl()


def what_if(
    settings: Settings,
    directory: Path,
    overrides: ToleranceFile,
    *,
    into: Path | None = None,
    fleet: FleetConfig | None = None,
    progress: Progress = print_progress,
) -> WhatIfReplay:
    """Replay the recording with the fleet's tolerances and with `overrides`, each into its own
    new store (under `into`, kept; else in a temporary folder, removed), and return both breaks."""
    baseline = fleet or load_fleet(settings.fleet)
    other = with_tolerances(baseline, overrides)
    recording = Replay(directory)
    cycles = len(recording.cycles())
    if into is not None:
        for name in (BASELINE, WHAT_IF):
            existing = StoreConfig.under(into / name)
            if existing.exists():
                raise ReplayTargetError(
                    f"{into / name} already holds a store: a replayed cycle is never written twice, so its old "
                    "results would stay; give --into an empty folder"
                )
    with _work_folder(into) as folder:
        live_extensions = Path(settings.store_config().extension_dir)
        # the extension binaries are copied once for both stores (~100 MB), or reused from the live store
        extensions = live_extensions if live_extensions.is_dir() else folder / "extensions"
        targets = {name: StoreConfig.under(folder / name, extension_dir=extensions) for name in (BASELINE, WHAT_IF)}
        for target in targets.values():
            _refuse_live(target, settings)
        progress(0, 2 * cycles, "preparing the stores")
        Store.open(targets[BASELINE]).close()  # installs the extensions once, before the two replays share them
        done = itertools.count(1)
        lock = threading.Lock()

        def step(one_done: int, _total: int, what: str) -> None:
            if one_done:  # each pass also announces itself with 0 done
                with lock:
                    progress(next(done), 2 * cycles, what)

        def run(name: str, config: FleetConfig) -> pl.DataFrame:
            _replay_into(recording, config, settings, targets[name], label=f"{name} ", progress=step)
            return _read_breaks(targets[name])

        # the two replays are independent: DuckDB and polars work outside the GIL
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="what-if") as pool:
            base_breaks, other_breaks = pool.submit(run, BASELINE, baseline), pool.submit(run, WHAT_IF, other)
            breaks = base_breaks.result(), other_breaks.result()
    return WhatIfReplay(cycles, baseline, other, *breaks, into)


# ---- progress on a terminal ---------------------------------------------------------------


@contextmanager
def progress_bar(description: str, *, stderr: bool = False) -> Iterator[Progress]:
    """A rich progress bar driven by a `Progress` callback (on stderr when stdout is for data)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    console = Console(stderr=stderr)
    if not console.is_terminal:  # piped or captured: the command's final line says what was done

        def silent(done: int, total: int, what: str) -> None:
            return None

        yield silent
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[what]}"),
    )
    with RichProgress(*columns, console=console) as bar:
        task = bar.add_task(description, total=None, what="")

        def advance(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, what=what)

        yield advance
