"""Store housekeeping: retention per table, compaction, snapshot expiry, statistics; the store
stays readable and writable throughout."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mt5recon.store.housekeeping import TIME_COLUMNS, Retention, run_housekeeping
from mt5recon.store.lake import Store, StoreConfig, open_reader
from mt5recon.store.samples import EPOCH, sample_cycle


@pytest.fixture()
def config(tmp_path: Path, extension_dir: Path) -> StoreConfig:
    config = StoreConfig.under(tmp_path / "home", extension_dir=extension_dir)
    with Store.open(config) as store:
        for number in range(6):
            store.commit_cycle(f"h-{number}", sample_cycle(f"h-{number}"))
    return config


def count(config: StoreConfig, table: str, where: str = "true") -> int:
    con = open_reader(config)
    try:
        row = con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def test_retention_deletes_per_table_and_keeps_breaks_forever(config: StoreConfig) -> None:
    before = {t: count(config, t) for t in ("cycles", "account_snapshots", "quarantine", "breaks", "break_events")}
    undated = {t: count(config, t, f"{TIME_COLUMNS[t]} IS NULL") for t in ("account_snapshots", "quarantine")}
    now = EPOCH + timedelta(days=45)  # past the 30-day tables, inside the 90-day ones
    stats = run_housekeeping(config, Retention(), now=now)
    after = {t: count(config, t) for t in before}
    assert after["account_snapshots"] == undated["account_snapshots"], "30-day table emptied (undated rows stay)"
    assert after["quarantine"] == undated["quarantine"]
    assert after["cycles"] == before["cycles"], "cycles are kept 90 days"
    assert after["breaks"] == before["breaks"] and after["break_events"] == before["break_events"], "kept forever"
    assert stats.rows_deleted["account_snapshots"] == before["account_snapshots"] - undated["account_snapshots"]
    assert stats.rows_deleted["quarantine"] == before["quarantine"] - undated["quarantine"]
    assert set(stats.step_secs) == {"measure", "retention", "compact", "expire"}


def test_compaction_and_expiry_shrink_the_files_and_the_store_keeps_working(config: StoreConfig) -> None:
    reader = open_reader(config)  # an analyst session open throughout
    stats = run_housekeeping(
        config, Retention(snapshot_retention_hours=0, delete_files_after_hours=0), now=EPOCH + timedelta(days=400)
    )
    assert stats.snapshots_expired > 0
    with Store.open(config) as store:
        per_table = store.connection.execute(
            "SELECT t.table_name, count(*) FROM __ducklake_metadata_recon.ducklake_data_file f "
            "JOIN __ducklake_metadata_recon.ducklake_table t USING (table_id) "
            "WHERE f.end_snapshot IS NULL AND t.end_snapshot IS NULL GROUP BY 1"
        ).fetchall()
    assert all(files == 1 for _, files in per_table), f"compaction leaves one file per table: {per_table}"
    assert stats.files_after == len(per_table)
    assert "Store housekeeping" in stats.markdown()
    assert reader.execute("SELECT count(*) FROM break_events").fetchone() == (6 * 3,)
    reader.close()
    with Store.open(config) as store:
        assert store.has_cycle("h-0"), "the ledger survives: an old cycle is still not committed twice"
        assert not store.commit_cycle("h-6", sample_cycle("h-6")).duplicate


def test_a_cycle_commit_waits_for_a_held_writer_lock_instead_of_failing(config: StoreConfig) -> None:
    import threading

    from mt5recon.store.writer_lock import StoreLockedError

    results: list[bool] = []

    def commit() -> None:
        with Store.open(config, lock_wait_secs=30) as store:
            results.append(store.commit_cycle("w-1", sample_cycle("w-1")).duplicate)

    holder = Store.open(config)  # e.g. one housekeeping step
    with pytest.raises(StoreLockedError):
        Store.open(config)  # without a wait the second writer is refused at once
    waiting = threading.Thread(target=commit)
    waiting.start()
    waiting.join(timeout=0.5)
    assert waiting.is_alive(), "the commit waits while the lock is held"
    holder.close()
    waiting.join(timeout=60)
    assert results == [False], "and commits once the lock is released"
