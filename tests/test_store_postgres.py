"""The scale-out store: a DuckLake whose catalog is the real Postgres on 127.0.0.1:5432.

Each test gets its own metadata schema (DuckLake creates it) and drops it afterwards, so
runs are repeatable and leave nothing behind (see store_catalogs). The single-process store
tests run against this catalog too (tests/test_store.py); here are the Postgres-only ones.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal
from store_catalogs import PG_DSN, fresh_metadata_schema, postgres_config

from mt5recon.store.lake import Store, StoreConfig, analyst_attach_sql, open_reader
from mt5recon.store.samples import sample_cycle
from mt5recon.store.tables import STORE_TABLES

SPAWN = multiprocessing.get_context("spawn")
TIMEOUT = 60


@pytest.fixture()
def metadata_schema() -> Iterator[str]:
    """A fresh schema in the test database, dropped (with everything in it) afterwards."""
    with fresh_metadata_schema() as name:
        yield name


@pytest.fixture()
def config(tmp_path: Path, extension_dir: Path, metadata_schema: str) -> StoreConfig:
    return postgres_config(tmp_path / "home", extension_dir, metadata_schema)


def test_postgres_catalog_round_trip(config: StoreConfig, metadata_schema: str) -> None:
    frames = sample_cycle("pg-1", {table: 20 for table in STORE_TABLES})
    with Store.open(config) as store:
        assert not store.commit_cycle("pg-1", frames).duplicate
        assert store.commit_cycle("pg-1", frames).duplicate
    with psycopg.connect(PG_DSN) as pg:  # the catalog really lives in Postgres
        tables = pg.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema = %s AND table_name = 'ducklake_snapshot'",
            [metadata_schema],
        ).fetchone()
    assert tables == (1,)
    reader = open_reader(config)
    try:
        for table, frame in frames.items():
            back = reader.execute(f'SELECT * FROM "{table}"').pl().cast(STORE_TABLES[table])
            assert_frame_equal(back.sort(pl.all(), nulls_last=True), frame.sort(pl.all(), nulls_last=True))
        assert reader.execute("SELECT count(*) FROM cycle_ledger").fetchone() == (1,)
    finally:
        reader.close()
    assert "ducklake:postgres:" in analyst_attach_sql(config)
    assert "LOAD postgres;" in analyst_attach_sql(config)


def writer_main(
    config: StoreConfig,
    cycle_ids: list[str],
    start: threading.Barrier,
    results: multiprocessing.Queue[dict[str, bool]],
) -> None:
    """A writer: open, wait until every writer is open, commit the cycles, report which were duplicates."""
    with Store.open(config) as store:
        start.wait(TIMEOUT)
        duplicates = [store.commit_cycle(c, sample_cycle(c)).duplicate for c in cycle_ids]
    results.put(dict(zip(cycle_ids, duplicates, strict=True)))


def test_two_writer_processes_share_the_lake_and_never_double_a_cycle(config: StoreConfig) -> None:
    # no migration beforehand: both writers open (and migrate) the new lake at the same moment
    cycle_ids = [f"shared-{i:02d}" for i in range(8)]
    start, results = SPAWN.Barrier(3), SPAWN.Queue()
    orders = (cycle_ids, list(reversed(cycle_ids)))  # they meet in the middle, on the same cycles
    writers = [SPAWN.Process(target=writer_main, args=(config, order, start, results)) for order in orders]
    for writer in writers:
        writer.start()
    start.wait(TIMEOUT)  # both writers are attached: their commits now interleave
    reports = [results.get(timeout=TIMEOUT) for _ in writers]
    for writer in writers:
        writer.join(TIMEOUT)
        assert writer.exitcode == 0
    # every cycle was written by exactly one writer and found as a duplicate by the other
    assert all(reports[0][c] != reports[1][c] for c in cycle_ids)
    reader = open_reader(config)
    try:
        assert reader.execute("SELECT count(*), count(DISTINCT cycle_id) FROM cycle_ledger").fetchone() == (
            8,
            8,
        )
        positions = reader.execute("SELECT count(*) FROM position_changes").fetchone()
        assert positions == (8 * sample_cycle("x")["position_changes"].height,)
    finally:
        reader.close()
