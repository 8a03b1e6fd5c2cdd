"""Pure steps wrapped as tasks so the run graph shows them; no retries (a bug does not heal)."""

from __future__ import annotations

import time
from datetime import datetime

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from mt5recon import pipeline
from mt5recon.fleet import FleetConfig
from mt5recon.recon.engine import ReconResult
from mt5recon.snapshot import Snapshot
from mt5recon.store.stored_state import StoredState


@task(name="validate", cache_policy=NO_CACHE)
def validate(snapshot: Snapshot, expected_raw: pl.DataFrame, now: datetime) -> pipeline.ValidatedCycle:
    return pipeline.validate_cycle(snapshot, expected_raw, now=now)


@task(name="reconcile", cache_policy=NO_CACHE)
def reconcile(validated: pipeline.ValidatedCycle, fleet: FleetConfig, as_of: datetime) -> tuple[ReconResult, float]:
    started = time.perf_counter()
    result = pipeline.reconcile_cycle(validated, fleet, as_of=as_of)
    return result, (time.perf_counter() - started) * 1000


@task(name="advance-state", cache_policy=NO_CACHE)
def advance_state(
    stored: StoredState, validated: pipeline.ValidatedCycle, result: ReconResult, fleet: FleetConfig, at: datetime
) -> pipeline.CycleState:
    """Break transitions and position / bot-trade histories for this cycle."""
    return pipeline.advance_state(stored, validated, result, fleet, at=at)
