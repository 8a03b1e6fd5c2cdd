"""Keep the store small and fast after months of 10-second cycles: retention, compaction,
snapshot expiry and file clean-up, each step short, with statistics of what it did.

Each step is its own transaction, so a reader never sees a half-done step, and on a SQLite
catalog the writer lock is taken per step (`Store.open(lock_wait_secs=...)`), never for the
whole run: a cycle commit waits at most one step. Run it often (hourly): the work per run then
stays small.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mt5recon.store.lake import Store, StoreConfig
from mt5recon.store.sqltext import identifier

# the column that dates each append-only table's rows (retention cuts on it)
TIME_COLUMNS: dict[str, str] = {
    "cycles": "started_at",
    "account_snapshots": "fetched_at",
    "terminal_health": "fetched_at",
    "position_changes": "changed_at",
    "expected_trade_changes": "changed_at",
    "quarantine": "quarantined_at",
    "break_events": "event_at",
    "breaks": "updated_at",  # only finished breaks (resolved, dismissed) are ever removed
}
_FINISHED_ONLY = {"breaks": "status IN ('resolved', 'dismissed')"}


DEFAULT_DAYS: dict[str, int | None] = {
    "cycles": 90,
    "account_snapshots": 30,
    "terminal_health": 30,
    "position_changes": 180,
    "expected_trade_changes": 180,
    "quarantine": 30,
    "break_events": None,
    "breaks": None,
}


class Retention(BaseModel):
    """How long rows are kept, per table, in days (null: forever)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: dict[str, int | None] = Field(default_factory=lambda: dict(DEFAULT_DAYS))

    @field_validator("days", mode="before")
    @classmethod
    def _over_defaults(cls, value: object) -> object:
        """A fleet file names only the tables it changes; unknown tables are an error."""
        if not isinstance(value, dict):
            return value
        unknown = sorted(set(value) - set(TIME_COLUMNS))
        if unknown:
            raise ValueError(f"no retention for {unknown}: tables with retention are {sorted(TIME_COLUMNS)}")
        return {**DEFAULT_DAYS, **value}

    # time travel (`AT (VERSION => n)`) stays possible this far back; older snapshots are expired
    snapshot_retention_hours: float = Field(default=24.0, ge=0)
    # files replaced by compaction or expiry are deleted once this old (a long read may still scan them)
    delete_files_after_hours: float = Field(default=1.0, ge=0)


@dataclass
class HousekeepingStats:
    rows_deleted: dict[str, int] = field(default_factory=dict)
    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    snapshots_expired: int = 0
    files_removed: int = 0
    step_secs: dict[str, float] = field(default_factory=dict)

    def markdown(self) -> str:
        deleted = ", ".join(f"{t}: {n:,}" for t, n in self.rows_deleted.items() if n) or "none"
        steps = ", ".join(f"{s} {secs:.2f} s" for s, secs in self.step_secs.items())
        return (
            "### Store housekeeping\n\n"
            "| data files | bytes | snapshots expired | files removed |\n|---|---|---|---|\n"
            f"| {self.files_before:,} → {self.files_after:,} | {self.bytes_before:,} → {self.bytes_after:,} "
            f"| {self.snapshots_expired:,} | {self.files_removed:,} |\n\n"
            f"Rows past retention deleted: {deleted}\n\nSteps: {steps}\n"
        )


def _data_files(store: Store) -> tuple[int, int]:
    """Live data files and their bytes, from the catalog (works for any data path)."""
    metadata = identifier(f"__ducklake_metadata_{store.config.alias}")
    row = store.connection.execute(
        f"SELECT count(*), coalesce(sum(file_size_bytes), 0) FROM {metadata}.ducklake_data_file "  # noqa: S608 - our alias
        "WHERE end_snapshot IS NULL"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


def _delete_past_retention(store: Store, table: str, days: int, now: datetime) -> int:
    column = TIME_COLUMNS[table]
    extra = f" AND {_FINISHED_ONLY[table]}" if table in _FINISHED_ONLY else ""
    con = store.connection
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute(
            f"DELETE FROM {identifier(table)} WHERE {identifier(column)} < ?{extra}",  # noqa: S608 - registry names
            [now - timedelta(days=days)],
        ).fetchone()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(row[0]) if row is not None else 0


def run_housekeeping(
    config: StoreConfig,
    retention: Retention,
    *,
    now: datetime,
    lock_wait_secs: float = 30.0,
    opener: Callable[..., Store] = Store.open,
) -> HousekeepingStats:
    """Retention deletes, then compaction, snapshot expiry and file clean-up; returns what it did."""
    stats = HousekeepingStats()

    def step(name: str, work: Callable[[Store], None]) -> None:
        started = time.perf_counter()
        with opener(config, lock_wait_secs=lock_wait_secs) as store:
            work(store)
        stats.step_secs[name] = stats.step_secs.get(name, 0.0) + time.perf_counter() - started

    def measure_before(store: Store) -> None:
        stats.files_before, stats.bytes_before = _data_files(store)

    step("measure", measure_before)

    def retain(store: Store) -> None:
        for table, days in retention.days.items():
            if days is not None and table in TIME_COLUMNS:
                stats.rows_deleted[table] = _delete_past_retention(store, table, days, now)

    step("retention", retain)
    step("compact", lambda store: store.compact())

    def expire(store: Store) -> None:
        cutoff = now - timedelta(hours=retention.snapshot_retention_hours)
        expired = store.connection.execute(
            "CALL ducklake_expire_snapshots(?, older_than => ?)", [store.config.alias, cutoff]
        ).fetchall()
        stats.snapshots_expired = len(expired)
        files_cutoff = now - timedelta(hours=retention.delete_files_after_hours)
        removed = store.connection.execute(
            "CALL ducklake_cleanup_old_files(?, older_than => ?)", [store.config.alias, files_cutoff]
        ).fetchall()
        stats.files_removed = len(removed)
        stats.files_after, stats.bytes_after = _data_files(store)

    step("expire", expire)
    return stats
