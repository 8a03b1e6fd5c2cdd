"""The pure middle of a cycle as one task, so the run graph shows it without a task (and its
state events) per step; no retries (a bug does not heal)."""

from __future__ import annotations

import time
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from mt5recon import pipeline
from mt5recon.fleet import FleetConfig
from mt5recon.recon.engine import ReconResult
from mt5recon.snapshot import Snapshot


@task(name="validate-and-reconcile", cache_policy=NO_CACHE)
def reconcile(
    snapshot: Snapshot, expected: pipeline.CheckedExpected, fleet: FleetConfig, fetched_at: datetime, as_of: datetime
) -> tuple[pipeline.ValidatedCycle, ReconResult, float]:
    """Quarantine bad rows (the bot's trades were validated before the fetch), then match and
    classify (snapshots too old at `as_of` are stale); returns the reconcile time in ms too."""
    validated = pipeline.validate_fetched(snapshot, expected, now=fetched_at)
    started = time.perf_counter()
    result = pipeline.reconcile_cycle(validated, fleet, as_of=as_of)
    return validated, result, (time.perf_counter() - started) * 1000
