"""I/O tasks: the only ones with retries (bounded, jittered, transient errors only)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from mt5recon import pipeline
from mt5recon.deal_segments import load as load_deals
from mt5recon.deal_segments import save as save_deals
from mt5recon.fleet import FleetConfig
from mt5recon.guards.protect import execute_closes
from mt5recon.snapshot import Snapshot
from mt5recon.sources import read_expected_trades
from mt5recon.store.housekeeping import HousekeepingStats, Retention, run_housekeeping
from mt5recon.store.lake import CommitResult, Store, StoreConfig, open_reader
from mt5recon.store.stored_state import (
    Scope,
    StoredState,
    read_stored_state,
    with_returning_breaks,
)
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.breaker import load_book, save_book
from mt5recon.terminal.factory import open_terminal
from tasks.retry import retry_transient

# two quick retries keep a retried cycle well inside its 10-second slot
RETRIES = 2
RETRY_DELAYS_SECS = [0.5, 1.0]
RETRY_JITTER = 0.5
COMMIT_LOCK_WAIT_SECS = 3.0
# every I/O task retries the same way: a few quick, jittered tries, transient errors only
IO_RETRY: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "retries": RETRIES,
    "retry_delay_seconds": RETRY_DELAYS_SECS,
    "retry_jitter_factor": RETRY_JITTER,
    "retry_condition_fn": retry_transient,
}


@task(name="load-expected-trades", **IO_RETRY)
def load_expected_trades(fleet: FleetConfig, home: Path, store: StoreConfig) -> pl.DataFrame:
    """From wherever the bot writes (its own database, files, or the store's `expected_trades`)."""
    return read_expected_trades(fleet.expected_trades, home, store=store)


@task(name="fetch-snapshots", cache_policy=NO_CACHE)
def fetch_snapshots(
    fleet: FleetConfig,
    fetched_at: datetime,
    open_terminal: pipeline.TerminalOpener,
    expected_raw: pl.DataFrame,
    concurrency: int,
    breaker_book: Path,
    deal_cache: Path,
) -> tuple[Snapshot, float]:
    """Fan-out over terminals happens inside (one task per cycle, not per account); a failing
    terminal is recorded as that account's failure rather than retried here, and its circuit
    breaker (kept in `breaker_book` between runs) decides whether the next cycles call it.
    Earlier cycles' deals (`deal_cache`, a folder between runs) narrow each deals call to what is new."""
    deals = load_deals(deal_cache)
    snapshot, fetch_ms, book = pipeline.fetch_with_breakers(
        fleet,
        fetched_at=fetched_at,
        open_terminal=open_terminal,
        expected_raw=expected_raw,
        book=load_book(breaker_book),
        concurrency=concurrency,
        deadline_secs=fleet.fetch_deadline_secs,
        deals=deals,
    )
    save_book(breaker_book, book)
    save_deals(deal_cache, deals)
    return snapshot, fetch_ms


@task(name="load-state", **IO_RETRY)
def load_state(config: StoreConfig, logins: list[int], scope: Scope) -> StoredState:
    """The stored current state of `logins` this cycle advances, active breaks only: it needs
    nothing from the fetch, so it is read while the terminals answer (read-only: never blocks
    the writer)."""
    if not config.exists():
        return StoredState.empty()
    con = open_reader(config)
    try:
        return read_stored_state(con, logins, [], scope)
    finally:
        con.close()


@task(name="load-returning-breaks", **IO_RETRY)
def load_returning_breaks(config: StoreConfig, stored: StoredState, break_ids: list[str]) -> StoredState:
    """`stored` with the stored rows of `break_ids`, the cycle's breaks it lacks (a resolved
    break that comes back is reopened, never started afresh)."""
    if not break_ids or not config.exists():
        return stored
    con = open_reader(config)
    try:
        return with_returning_breaks(con, stored, break_ids)
    finally:
        con.close()


@task(name="commit-cycle", **IO_RETRY)
def commit_cycle(
    config: StoreConfig, cycle_id: str, tables: dict[str, pl.DataFrame], deletes: dict[str, pl.DataFrame]
) -> CommitResult:
    """One transaction with a ledger row: a retry after a failed commit never duplicates."""
    # housekeeping may hold the writer lock for one short step: wait for it rather than fail
    with Store.open(config, lock_wait_secs=COMMIT_LOCK_WAIT_SECS) as store:
        return store.commit_cycle(cycle_id, tables, deletes)


@task(name="housekeep-store", **IO_RETRY)
def housekeep(config: StoreConfig, retention: Retention, now: datetime) -> HousekeepingStats:
    """Short steps, each taking the writer lock on its own, so cycles keep committing meanwhile."""
    return run_housekeeping(config, retention, now=now)


@task(name="protect-accounts", cache_policy=NO_CACHE)
def protect_accounts(
    decisions: pl.DataFrame, positions: pl.DataFrame, ticks: pl.DataFrame, fleet: FleetConfig, at: datetime
) -> pl.DataFrame:
    """Send (or, in dry-run, record) this cycle's protective closes. Never retried: a close that
    may have reached the broker is not sent twice; the next cycle sees what happened."""
    by_login = {account.login: account for account in fleet.accounts}

    def terminal_for(login: int) -> MT5Api:
        return open_terminal(by_login[login], policy=fleet.reconnect)

    return execute_closes(decisions, positions, ticks, fleet.guards.protect, terminal_for, at=at)
