"""Store housekeeping on its own schedule: retention, compaction, snapshot expiry, clean-up."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from mt5recon.fleet import load_fleet
from mt5recon.settings import Settings
from tasks.io import housekeep
from tasks.report import publish_housekeeping_report


@flow(name="housekeeping", log_prints=False)
async def housekeep_store(fleet_file: str | None = None) -> dict[str, Any]:
    """One housekeeping pass over the store; returns (and publishes) what it did."""
    settings = Settings()
    fleet = load_fleet(Path(fleet_file) if fleet_file else settings.fleet)
    stats = housekeep(settings.store_config(), fleet.housekeeping, datetime.now(UTC))
    publish_housekeeping_report(stats)
    get_run_logger().info("housekeeping: %s", stats)
    return asdict(stats)
