"""The 10-second reconciliation cycle: fetch -> validate -> reconcile -> store -> report."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import deployment, flow_run
from prefect.states import Cancelled

import schemas
from mt5recon import pipeline
from mt5recon.fleet import load_fleet
from mt5recon.serving import another_run_running, start_delay_secs
from mt5recon.settings import Settings
from mt5recon.sharding import shard_expected_trades, shard_fleet, shard_scope
from mt5recon.store.stored_state import unseen_break_ids
from mt5recon.terminal.factory import open_terminal
from tasks.io import (
    commit_cycle,
    fetch_snapshots,
    load_expected_trades,
    load_returning_breaks,
    load_state,
    protect_accounts,
)
from tasks.report import publish_cycle_report
from tasks.transform import reconcile

# one-off validation set-up runs while the process waits for its scheduled start, not inside the cycle
schemas.warm_up()


def breaker_book(home: Path, fleet_name: str) -> Path:
    """Where the terminals' circuit breakers live between runs (one file per fleet)."""
    return home / "state" / f"breakers-{fleet_name}.json"


def deal_cache(home: Path, fleet_name: str) -> Path:
    """Where earlier cycles' deals are kept between runs (one folder per fleet or shard)."""
    return home / "state" / f"deals-{fleet_name}"


def _scheduled_time() -> datetime:
    """The run's scheduled start (stable across retries of the run), else now."""
    scheduled = flow_run.scheduled_start_time
    return datetime.fromtimestamp(scheduled.timestamp(), UTC) if scheduled else datetime.now(UTC)


def _uuid(value: str | None) -> UUID | None:
    return UUID(value) if value else None


@flow(name="reconcile", log_prints=False)
async def reconcile_fleet(fleet_file: str | None = None, shard: int = 0, shards: int = 1) -> dict[str, Any] | State:
    """One cycle over the fleet (or over shard `shard` of `shards`: each shard is a deployment of
    its own, all committing to one store); returns the summary shown in the run's artifacts."""
    settings = Settings()
    whole = load_fleet(Path(fleet_file) if fleet_file else settings.fleet)
    fleet, scope = shard_fleet(whole, shard, shards), shard_scope(whole, shard, shards)
    home = settings.resolved_home()
    scheduled_at = _scheduled_time()
    cycle_id = pipeline.cycle_id_for(fleet.name, scheduled_at)
    started_at = datetime.now(UTC)
    delay = start_delay_secs(scheduled_at, started_at)
    if delay > settings.max_start_delay_secs:  # a backlog after an outage: the next cycle takes over
        message = f"started {delay:.1f} s after its scheduled time: a snapshot of the past is worthless"
        get_run_logger().warning("cycle %s cancelled: %s", cycle_id, message)
        return Cancelled(message=message)
    if await another_run_running(_uuid(deployment.id), _uuid(flow_run.id)):  # an overrun: never two at once
        message = "the previous cycle is still running: this one is skipped, never run beside it"
        get_run_logger().warning("cycle %s cancelled: %s", cycle_id, message)
        return Cancelled(message=message)
    store = settings.store_config()
    # the stored state needs nothing from the terminals: it is read while they answer
    state_read = load_state.submit(store, [a.login for a in fleet.accounts], scope)
    # validated first: the fetch reads the valid trades' parsed open times (how far back deals
    # go); the rows as read are not kept past this line
    expected = pipeline.validate_expected(
        shard_expected_trades(load_expected_trades(fleet, home, store), scope), now=started_at
    )
    snapshot, fetch_ms = fetch_snapshots(
        fleet,
        started_at,
        partial(open_terminal, policy=fleet.reconnect),
        expected.valid,
        settings.fetch_concurrency,
        breaker_book(home, fleet.name),
        deal_cache(home, fleet.name),
    )
    validated, result, reconcile_ms = reconcile(snapshot, expected, fleet, started_at, datetime.now(UTC))
    stored = state_read.result()
    returning = unseen_break_ids(stored, pipeline.cycle_break_ids(result))  # new, or resolved and back
    if returning:
        stored = load_returning_breaks(store, stored, returning)
    # pure and quick: a plain call, not a task (each task costs the server a few state events)
    state = pipeline.advance_state(stored, validated, result, fleet, at=scheduled_at)
    decisions = state.guards.protection.decisions
    actions = (
        protect_accounts(decisions, validated.frames["positions"], validated.frames["ticks"], fleet, scheduled_at)
        if decisions.height
        else None
    )
    tables = pipeline.cycle_tables(
        cycle_id=cycle_id,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        snapshot=snapshot,
        validated=validated,
        result=result,
        state=state,
        fetch_ms=fetch_ms,
        reconcile_ms=reconcile_ms,
        protective_actions=actions,
    )
    committed = commit_cycle(store, cycle_id, tables, pipeline.state_deletes(state))
    summary = {"cycle_id": cycle_id, "duplicate": committed.duplicate, **pipeline.summarize(tables)}
    publish_cycle_report(
        summary, state.breaks.events, tables["terminal_health"], tables["guard_alerts"], fleet.name, scheduled_at
    )
    get_run_logger().info("cycle %s: %s", cycle_id, summary)
    return summary
