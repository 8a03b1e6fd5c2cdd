"""The analysts' store in one process: round trip, idempotency, validation, migrations, reader SQL.

Every test that takes the `catalog` fixture (directly or through `config`/`store`) runs twice:
against a SQLite-catalog lake and against one whose catalog is the real Postgres server (a fresh
metadata schema per test, dropped afterwards; see store_catalogs). Tests that must leave the lake
empty share one lake per catalog (`empty_store`). The few that only make sense for one catalog
pin it with `@pytest.mark.parametrize("catalog", [...])` and say why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from store_catalogs import CATALOGS, catalog_config

from mt5recon.store import migrations
from mt5recon.store.lake import Store, StoreConfig, StoreLockedError, analyst_attach_sql, open_reader
from mt5recon.store.samples import sample_cycle, sample_frame
from mt5recon.store.tables import STORE_TABLES


@pytest.fixture(params=CATALOGS)
def catalog(request: pytest.FixtureRequest) -> str:
    """The catalog kind of the lake under test: "sqlite" (the default) or "postgres" (scale-out)."""
    kind: str = request.param
    return kind


@pytest.fixture()
def config(catalog: str, tmp_path: Path, extension_dir: Path) -> Iterator[StoreConfig]:
    """A fresh lake of that catalog; a Postgres one lives in its own metadata schema, dropped afterwards."""
    with catalog_config(catalog, tmp_path / "home", extension_dir) as fresh:
        yield fresh


@pytest.fixture()
def store(config: StoreConfig) -> Iterator[Store]:
    with Store.open(config) as opened:
        yield opened


@pytest.fixture(scope="module", params=CATALOGS)
def empty_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, extension_dir: Path
) -> Iterator[Store]:
    """One migrated lake per catalog, shared by the tests that must leave it as they found it: empty.

    Opening a lake costs about a second; the read-only and rejected-write tests share one instead
    (each checks that nothing was written, so a test that wrote would be caught, not hidden).
    """
    with (
        catalog_config(request.param, tmp_path_factory.mktemp("empty-home"), extension_dir) as config,
        Store.open(config) as store,
    ):
        yield store


def assert_empty(store: Store) -> None:
    assert ledger_size(store.connection) == 0
    for table in STORE_TABLES:
        assert store.connection.execute(f'SELECT count(*) FROM "{table}"').fetchone() == (0,), table


def read_table(con: duckdb.DuckDBPyConnection, table: str, cycle_id: str) -> pl.DataFrame:
    """A table's rows of one cycle, in declared dtypes, in a stable order."""
    frame = con.execute(f'SELECT * FROM "{table}" WHERE cycle_id = ?', [cycle_id]).pl()
    return frame.cast(STORE_TABLES[table]).sort(pl.all(), nulls_last=True)


def ledger_size(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT count(*) FROM cycle_ledger").fetchone()
    return int(row[0]) if row else -1


# 3 rows are inlined into the catalog database itself (DuckLake's default limit is 10), 25 go to Parquet
@pytest.mark.parametrize("rows", [3, 25], ids=["inlined", "parquet"])
def test_round_trip_every_table(store: Store, rows: int) -> None:
    frames = sample_cycle("c-1", {table: rows for table in STORE_TABLES})
    result = store.commit_cycle("c-1", frames)
    assert not result.duplicate
    assert result.row_counts == {table: rows for table in STORE_TABLES}
    assert result.snapshot_id is not None
    for table, frame in frames.items():
        back = read_table(store.connection, table, "c-1")
        assert back.columns == list(STORE_TABLES[table])
        assert_frame_equal(back, frame.sort(pl.all(), nulls_last=True))


def test_columns_are_typed_from_polars(empty_store: Store) -> None:
    types = dict(
        empty_store.connection.execute(
            "SELECT column_name, data_type FROM duckdb_columns()"
            " WHERE database_name = 'recon' AND table_name = 'position_changes'"
        ).fetchall()
    )
    assert types["time"] == "TIMESTAMP WITH TIME ZONE"
    assert types["changed_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["ticket"] == "BIGINT"
    assert types["type"] == "INTEGER"
    assert types["volume"] == "DOUBLE"
    assert types["symbol"] == "VARCHAR"


def test_same_cycle_twice_is_stored_once(store: Store) -> None:
    frames = sample_cycle("c-2")
    first = store.commit_cycle("c-2", frames)
    again = store.commit_cycle("c-2", frames)
    assert not first.duplicate and again.duplicate
    assert again.row_counts == first.row_counts
    assert again.snapshot_id is None
    counts = store.connection.execute("SELECT count(*) FROM position_changes WHERE cycle_id = 'c-2'").fetchone()
    assert counts == (frames["position_changes"].height,)
    assert ledger_size(store.connection) == 1
    assert store.has_cycle("c-2") and not store.has_cycle("c-3")


def test_frames_are_reordered_and_cast_by_name(store: Store) -> None:
    frame = sample_frame("cycles", 3, "c-4")
    shuffled = frame.select(list(reversed(frame.columns))).with_columns(pl.col("login").cast(pl.Int32))
    store.commit_cycle("c-4", {"cycles": shuffled})
    assert_frame_equal(read_table(store.connection, "cycles", "c-4"), frame.sort(pl.all(), nulls_last=True))


def test_an_empty_cycle_still_enters_the_ledger(store: Store) -> None:
    result = store.commit_cycle("c-5", {"position_changes": sample_frame("position_changes", 0, "c-5")})
    assert result.row_counts == {"position_changes": 0}
    assert store.has_cycle("c-5")


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ({"nope": sample_frame("cycles", 1, "c-9")}, "no store table named"),
        ({"cycles": sample_frame("cycles", 1, "c-9").drop("status")}, "missing columns ['status']"),
        (
            {"cycles": sample_frame("cycles", 1, "c-9").with_columns(extra=pl.lit(1))},
            "unexpected columns ['extra']",
        ),
        ({"cycles": sample_frame("cycles", 2, "another")}, "whose cycle_id is not"),
        (
            {"cycles": sample_frame("cycles", 1, "c-9").with_columns(login=pl.lit("not a number"))},
            "does not fit its declared dtypes",
        ),
    ],
)
def test_bad_frames_fail_before_anything_is_written(
    empty_store: Store, frames: dict[str, pl.DataFrame], message: str
) -> None:
    good = {"position_changes": sample_frame("position_changes", 5, "c-9")}  # listed first: must not land either
    with pytest.raises(ValueError) as error:
        empty_store.commit_cycle("c-9", {**good, **frames})
    assert message in str(error.value)
    assert_empty(empty_store)


def test_a_failing_insert_rolls_back_the_whole_cycle(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real_insert = Store._insert

    def insert_then_fail_on_breaks(self: Store, table: str, frame: pl.DataFrame) -> None:
        real_insert(self, table, frame)
        if table == "breaks":  # position changes and breaks are in the transaction by now
            raise OSError("disk gone")

    monkeypatch.setattr(Store, "_insert", insert_then_fail_on_breaks)
    frames = sample_cycle("c-6")
    with pytest.raises(OSError):
        store.commit_cycle("c-6", frames)
    assert not store.has_cycle("c-6")
    assert store.connection.execute("SELECT count(*) FROM position_changes").fetchone() == (0,)
    monkeypatch.setattr(Store, "_insert", real_insert)
    assert not store.commit_cycle("c-6", frames).duplicate
    counts = store.connection.execute("SELECT count(*) FROM position_changes").fetchone()
    assert counts == (frames["position_changes"].height,)


def test_migrate_is_versioned_and_a_no_op_when_current(config: StoreConfig) -> None:
    with Store.open(config) as store:
        assert store.schema_version() == migrations.LATEST
        snapshot = store.connection.execute("SELECT * FROM ducklake_current_snapshot('recon')").fetchone()
        store.commit_cycle("c-7", sample_cycle("c-7"))
    with Store.open(config) as store:  # re-open migrates again
        assert store.migrate() == migrations.LATEST
        versions = store.connection.execute("SELECT version FROM schema_version").fetchall()
        assert versions == [(m.version,) for m in migrations.MIGRATIONS]
        assert store.has_cycle("c-7")
        after = store.connection.execute("SELECT * FROM ducklake_snapshots('recon') WHERE snapshot_id > ?", snapshot)
        assert len(after.fetchall()) == 1  # only the cycle's commit: migrating created no snapshot


def test_compaction_keeps_every_row(store: Store) -> None:
    for i in range(4):
        store.commit_cycle(f"k-{i}", sample_cycle(f"k-{i}"))
    store.compact()
    assert store.connection.execute("SELECT count(*) FROM position_changes").fetchone() == (4 * 30,)
    assert store.connection.execute("SELECT count(*) FROM cycle_ledger").fetchone() == (4,)
    assert store.commit_cycle("k-0", sample_cycle("k-0")).duplicate
    assert not store.commit_cycle("k-4", sample_cycle("k-4")).duplicate


def test_a_missing_registry_column_is_reported(empty_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    widened = {**STORE_TABLES, "cycles": pl.Schema({**STORE_TABLES["cycles"], "new_column": pl.Int64()})}
    monkeypatch.setattr("mt5recon.store.lake.STORE_TABLES", widened)
    with pytest.raises(RuntimeError, match="new_column"):
        empty_store.migrate()
    monkeypatch.undo()
    assert empty_store.migrate() == migrations.LATEST  # reporting the gap changed nothing


def test_reader_is_read_only_and_sees_each_new_cycle(config: StoreConfig, store: Store) -> None:
    reader = open_reader(config)
    try:
        store.commit_cycle("r-1", sample_cycle("r-1"))
        assert reader.execute("SELECT count(*) FROM cycles").fetchone() == (10,)
        with pytest.raises(duckdb.Error, match="read-only"):
            reader.execute("DELETE FROM cycles")
        # inside an explicit transaction the reader keeps its snapshot ...
        reader.execute("BEGIN TRANSACTION")
        assert reader.execute("SELECT count(*) FROM cycles").fetchone() == (10,)
        store.commit_cycle("r-2", sample_cycle("r-2"))
        assert reader.execute("SELECT count(*) FROM cycles").fetchone() == (10,)
        reader.execute("COMMIT")
        # ... and the next autocommit query sees the new snapshot, no re-attach needed
        assert reader.execute("SELECT count(*) FROM cycles").fetchone() == (20,)
    finally:
        reader.close()


# SQLite only: the OS writer lock is what makes a SQLite-catalog lake single-writer; a Postgres
# catalog admits several writers by design (test_store_postgres covers two writers sharing it)
@pytest.mark.parametrize("catalog", ["sqlite"])
def test_a_second_writer_is_refused_but_readers_are_not(config: StoreConfig, store: Store) -> None:
    with pytest.raises(StoreLockedError):
        Store.open(config)
    reader = open_reader(config)
    reader.close()
    store.close()
    Store.open(config).close()  # the lock went with the first writer


def test_analyst_sql_works_in_a_plain_duckdb(config: StoreConfig, store: Store, tmp_path: Path) -> None:
    store.commit_cycle("a-1", sample_cycle("a-1"))
    sql = analyst_attach_sql(config)
    assert "READ_ONLY" in sql and "USE recon;" in sql
    script = textwrap.dedent(
        """
        import sys, duckdb
        con = duckdb.connect()  # a default DuckDB, as the CLI would be
        con.execute(sys.stdin.read())
        print(con.execute("SELECT count(*) FROM cycles").fetchone()[0])
        """
    )
    empty_home = tmp_path / "analyst-home"
    empty_home.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=sql,
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(empty_home)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "10"
    assert not (empty_home / ".duckdb").exists()


def test_config_quotes_what_it_splices(catalog: str, tmp_path: Path, extension_dir: Path) -> None:
    # the quote lands in the data path (both catalogs) and the SQLite catalog's file path
    with catalog_config(catalog, tmp_path / "it's a home", extension_dir) as odd:
        with Store.open(odd) as store:
            store.commit_cycle("q-1", sample_cycle("q-1"))
        reader = open_reader(odd)
        try:
            assert reader.execute("SELECT count(*) FROM cycle_ledger").fetchone() == (1,)
        finally:
            reader.close()
    with pytest.raises(ValueError):
        StoreConfig.under(tmp_path, alias="recon; DROP TABLE x")


# no lake is opened: this checks how StoreConfig spells both forms, so it runs once (the default
# layout is the SQLite one by definition)
def test_default_layout_and_postgres_form(tmp_path: Path) -> None:
    config = StoreConfig.under(tmp_path)
    assert Path(config.catalog) == tmp_path.resolve() / "store" / "catalog.sqlite"
    assert config.data_path == str(tmp_path.resolve() / "store" / "data") + os.sep
    assert config.attach_target == f"ducklake:sqlite:{config.catalog}"
    assert config.writer_lock_path is not None
    scale_out = StoreConfig.under(tmp_path, catalog="postgres:dbname=recon host=db")
    assert scale_out.is_postgres and scale_out.writer_lock_path is None
    assert scale_out.attach_target == "ducklake:postgres:dbname=recon host=db"
    assert "LOAD postgres;" in analyst_attach_sql(scale_out)
    with pytest.raises(ValueError):
        StoreConfig.under(tmp_path, catalog="postgres:  ")


def test_breaks_hold_current_state_replaced_by_id_while_events_append(store: Store) -> None:
    for cycle_id in ("s-1", "s-2"):
        store.commit_cycle(cycle_id, sample_cycle(cycle_id, {"breaks": 12, "break_events": 3}))
    breaks = store.connection.execute("SELECT count(*), count(DISTINCT break_id), min(cycle_id) FROM breaks").fetchone()
    events = store.connection.execute("SELECT count(*) FROM break_events").fetchone()
    assert breaks == (12, 12, "s-2"), "a break written again replaces its row"
    assert events == (6,), "events are an append-only log"


def test_a_state_frame_with_duplicate_or_null_keys_writes_nothing(empty_store: Store) -> None:
    frame = sample_frame("breaks", 3, "d-1")
    duplicated = pl.concat([frame, frame.head(1)])
    with pytest.raises(ValueError, match="unique, non-null 'break_id'"):
        empty_store.commit_cycle("d-1", {"breaks": duplicated})
    assert not empty_store.has_cycle("d-1")
    assert_empty(empty_store)


def test_a_version_1_store_upgrades_without_dropping_anything(config: StoreConfig) -> None:
    with Store.open(config, migrate=False) as store:
        store._apply(migrations.MIGRATIONS[0])
        # what version 1 had and version 2 stops writing: rows an analyst may still query
        store.connection.execute("CREATE TABLE IF NOT EXISTS divergences (cycle_id VARCHAR, kind VARCHAR)")
        store.connection.execute("INSERT INTO divergences VALUES ('old-cycle', 'slippage')")
        assert store.schema_version() == 1
    with Store.open(config) as store:
        assert store.schema_version() == migrations.LATEST
        assert store.connection.execute("SELECT count(*) FROM divergences").fetchone() == (1,)
        assert store.connection.execute("SELECT count(*) FROM break_events").fetchone() == (0,)


def test_a_closed_position_is_deleted_from_the_current_state_in_the_cycle(store: Store) -> None:
    first = sample_frame("current_positions", 5, "p-1")
    store.commit_cycle("p-1", {"current_positions": first})
    gone = first.head(2).select("position_key")
    result = store.commit_cycle("p-2", {}, {"current_positions": gone})
    remaining = store.connection.execute("SELECT position_key FROM current_positions ORDER BY 1").fetchall()
    assert [r[0] for r in remaining] == sorted(first["position_key"].to_list()[2:])
    assert result.row_counts == {"current_positions:deleted": 2}
    with pytest.raises(ValueError, match="only be deleted from state tables"):
        store.commit_cycle("p-3", {}, {"position_changes": gone})


def test_the_daily_views_answer_on_an_empty_and_a_filled_store(store: Store) -> None:
    from mt5recon.store.migrations import VIEWS

    for view in VIEWS:
        store.connection.execute(f"SELECT * FROM {view}").fetchall()
    store.commit_cycle("v-1", sample_cycle("v-1"))
    for view in VIEWS:
        assert store.connection.execute(f"SELECT count(*) FROM {view}").fetchone() is not None
