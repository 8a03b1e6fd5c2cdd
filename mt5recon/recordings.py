"""Drivers for `record` (live snapshots -> recorded-snapshot format) and `replay`
(recording -> validate -> reconcile -> a separate store), sharing the cycle's own steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mt5recon import pipeline
from mt5recon.fleet import FleetConfig, load_fleet
from mt5recon.settings import Settings
from mt5recon.sources import read_expected_trades
from mt5recon.store.lake import CommitResult, Store, StoreConfig
from mt5recon.store.stored_state import read_stored_state
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.recording import Replay, record_cycle
from mt5recon.terminal.sim_host import hosted_fleet

Progress = Callable[[str], object]


def record(settings: Settings, directory: Path, *, cycles: int, every_secs: float, progress: Progress = print) -> int:
    """Fetch `cycles` live snapshots `every_secs` apart and append each to the recording."""
    fleet = load_fleet(settings.fleet)
    home = settings.resolved_home()
    with hosted_fleet(fleet, home):
        for number in range(1, cycles + 1):
            started = time.monotonic()
            record_once(fleet, home, directory, settings.fetch_concurrency, settings.store_config())
            progress(f"[{number}/{cycles}] recorded")
            if number < cycles:
                time.sleep(max(0.0, every_secs - (time.monotonic() - started)))
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
    validated = pipeline.validate_cycle(snapshot, expected, now=at)
    result = pipeline.reconcile_cycle(validated, fleet, as_of=at)
    cycle_id = pipeline.cycle_id_for(f"replay-{fleet.name}", at)
    stored = read_stored_state(store.connection, *pipeline.break_state_keys(fleet, result))
    state = pipeline.advance_state(stored, validated, result, fleet, at=at)
    tables = pipeline.cycle_tables(
        cycle_id=cycle_id,
        started_at=at,
        finished_at=at,
        snapshot=snapshot,
        validated=validated,
        result=result,
        state=state,
        fetch_ms=0.0,
        reconcile_ms=0.0,
    )
    return store.commit_cycle(cycle_id, tables, pipeline.state_deletes(state))


def replay(settings: Settings, directory: Path, *, into: Path, progress: Progress = print) -> list[CommitResult]:
    fleet = load_fleet(settings.fleet)
    recording = Replay(directory)
    cycles = recording.cycles()
    results: list[CommitResult] = []
    with Store.open(StoreConfig.under(into)) as store:
        for number, at in enumerate(cycles, start=1):
            results.append(replay_cycle(recording, at, fleet, settings.resolved_home(), store, settings.store_config()))
            progress(f"[{number}/{len(cycles)}] {at.isoformat()}")
    return results
