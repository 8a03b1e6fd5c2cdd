"""One cycle committed without Prefect, the flow's steps in the flow's order, so replays, tools
and tests store exactly what the deployment would have stored from the same snapshot."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from mt5recon import pipeline
from mt5recon.fleet import FleetConfig
from mt5recon.snapshot import Snapshot
from mt5recon.store.lake import CommitResult, Store
from mt5recon.store.stored_state import Scope, read_stored_state


def commit_snapshot(
    store: Store,
    snapshot: Snapshot,
    expected_raw: pl.DataFrame,
    fleet: FleetConfig,
    *,
    at: datetime,
    scope: Scope | None = None,
    cycle_name: str | None = None,
) -> CommitResult:
    """Validate, reconcile, advance the stored state (of `scope`) and commit, as cycle
    `<cycle_name or fleet name>:<at>`."""
    validated = pipeline.validate_cycle(snapshot, expected_raw, now=at)
    result = pipeline.reconcile_cycle(validated, fleet, as_of=at)
    stored = read_stored_state(store.connection, *pipeline.break_state_keys(fleet, result), scope)
    state = pipeline.advance_state(stored, validated, result, fleet, at=at)
    cycle_id = pipeline.cycle_id_for(cycle_name or fleet.name, at)
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
