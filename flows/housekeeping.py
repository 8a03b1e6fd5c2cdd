"""Store housekeeping on its own schedule: retention, compaction, snapshot expiry, clean-up; and,
on the first run of each UTC day, the report's summary of the last 24 hours as an artifact."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_client, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from mt5recon.fleet import FleetConfig, load_fleet
from mt5recon.report.data import last_day, read_report
from mt5recon.report.summary import daily_report_due, daily_report_key, summary_markdown
from mt5recon.settings import Settings
from mt5recon.store.lake import StoreConfig
from tasks.io import housekeep
from tasks.report import publish_housekeeping_report


def last_published(key: str) -> datetime | None:
    """When the newest artifact under `key` was created (None: never), as the server recorded it."""
    with get_client(sync_client=True) as client:
        newest = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC, limit=1
        )
    created = newest[0].created if newest else None
    return datetime.fromtimestamp(created.timestamp(), UTC) if created is not None else None


@task(name="publish-daily-report", cache_policy=NO_CACHE)
def publish_daily_report(store: StoreConfig, fleet: FleetConfig, now: datetime) -> bool:
    """The last 24 hours' report tables as a markdown artifact, once per UTC day; True if published."""
    key = daily_report_key(fleet.name)
    if not daily_report_due(last_published(key), now):
        return False
    data = read_report(store, fleet, last_day(now), generated_at=now)
    create_markdown_artifact(
        summary_markdown(data), key=key, description=f"daily report of fleet {fleet.name}: the last 24 hours"
    )
    return True


@flow(name="housekeeping", log_prints=False)
async def housekeep_store(fleet_file: str | None = None) -> dict[str, Any]:
    """One housekeeping pass over the store; returns (and publishes) what it did."""
    settings = Settings()
    fleet = load_fleet(Path(fleet_file) if fleet_file else settings.fleet)
    now = datetime.now(UTC)
    stats = housekeep(settings.store_config(), fleet.housekeeping, now)
    publish_housekeeping_report(stats)
    daily = publish_daily_report(settings.store_config(), fleet, now)
    get_run_logger().info("housekeeping: %s; daily report published: %s", stats, daily)
    return asdict(stats)
