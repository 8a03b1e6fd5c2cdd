"""The analysts' store: a DuckLake that the pipeline appends to while analysts query it.

One plain DuckDB file allows a writer OR readers across processes, never both. A DuckLake
(Parquet files + a SQLite or Postgres catalog) allows one writer and any number of read-only
processes at once; with a Postgres catalog several writers may commit too (scale-out).

Every cycle is committed in ONE DuckLake transaction (one snapshot) together with its ledger
row, so a crash leaves either the whole cycle or nothing, and a retried cycle is a no-op.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import duckdb
import polars as pl

from mt5recon.store import instances, migrations
from mt5recon.store.cycle_lock import PostgresCycleLocks
from mt5recon.store.instances import Release
from mt5recon.store.sqltext import identifier, literal, plain_identifier
from mt5recon.store.tables import CYCLE_ID, STATE_KEYS, STORE_TABLES
from mt5recon.store.writer_lock import StoreLockedError, WriterLock

__all__ = [
    "CommitResult",
    "Store",
    "StoreConfig",
    "StoreLockedError",
    "analyst_attach_sql",
    "attach_sql",
    "open_reader",
    "prepare_frames",
]

_log = logging.getLogger(__name__)

_POSTGRES_PREFIX = "postgres:"
_SQLITE_PREFIX = "sqlite:"
_CYCLE_ID_COLUMN = next(iter(CYCLE_ID))


def _absolute_catalog(catalog: str) -> str:
    """A SQLite catalog path made absolute (the lake must not depend on the cwd); DSNs unchanged."""
    if catalog.startswith(_POSTGRES_PREFIX):
        return catalog
    return str(Path(catalog.removeprefix(_SQLITE_PREFIX)).expanduser().resolve())


def _absolute_data_path(data_path: str) -> str:
    """A local data path made absolute with a trailing separator; URLs (s3://...) unchanged."""
    if "://" in data_path:
        return data_path
    return str(Path(data_path).expanduser().resolve()) + os.sep


@dataclass(frozen=True)
class StoreConfig:
    """Where the lake lives.

    `catalog` is a SQLite file path (one machine: one writer + readers) or a Postgres DSN
    in DuckLake's form, `postgres:dbname=... host=...` (scale-out: several writers).
    `data_path` holds the Parquet files; it is pinned in the catalog when the lake is created.
    `extension_dir` is where the packaged DuckDB extensions are installed (not the home folder).
    `inline_row_limit`: inserts below this many rows go into the catalog instead of a Parquet
    file (None keeps DuckLake's default, 10 rows in DuckLake 1.0; 0 turns inlining off).
    """

    catalog: str
    data_path: str
    extension_dir: str
    alias: str = "recon"
    metadata_schema: str | None = None
    inline_row_limit: int | None = None
    busy_timeout_ms: int = 5000

    def __post_init__(self) -> None:
        plain_identifier(self.alias)
        if self.inline_row_limit is not None and self.inline_row_limit < 0:
            raise ValueError("inline_row_limit must be >= 0")
        if self.busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must be >= 0")
        if self.is_postgres and not self.catalog[len(_POSTGRES_PREFIX) :].strip():
            raise ValueError("a Postgres catalog needs a DSN after 'postgres:'")

    @classmethod
    def under(
        cls,
        home: str | os.PathLike[str],
        *,
        catalog: str | None = None,
        data_path: str | None = None,
        extension_dir: str | os.PathLike[str] | None = None,
        **options: object,
    ) -> StoreConfig:
        """The default layout under `<home>/store/`: `catalog.sqlite`, `data/`, `extensions/`."""
        root = Path(home).expanduser().resolve() / "store"
        return cls(
            catalog=_absolute_catalog(catalog) if catalog is not None else str(root / "catalog.sqlite"),
            data_path=_absolute_data_path(data_path if data_path is not None else str(root / "data")),
            extension_dir=str(
                Path(extension_dir).expanduser().resolve() if extension_dir is not None else root / "extensions"
            ),
            **options,  # type: ignore[arg-type]
        )

    @property
    def is_postgres(self) -> bool:
        """True for the scale-out catalog."""
        return self.catalog.startswith(_POSTGRES_PREFIX)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite catalog file, or None for Postgres."""
        if self.is_postgres:
            return None
        return Path(self.catalog.removeprefix(_SQLITE_PREFIX))

    def exists(self) -> bool:
        """Whether the lake has been created: its SQLite file, or DuckLake's metadata tables in the
        Postgres catalog's schema (a reader must not be the one to create it)."""
        sqlite_path = self.sqlite_path
        if sqlite_path is not None:
            return sqlite_path.exists()
        import psycopg

        with psycopg.connect(self.postgres_dsn or "", connect_timeout=5) as con:
            row = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ducklake_metadata' "
                "AND table_schema = coalesce(%s, current_schema())",
                (self.metadata_schema,),
            ).fetchone()
        return bool(row and row[0])

    @property
    def writer_lock_path(self) -> Path | None:
        """The file whose OS lock makes a SQLite-catalog lake single-writer (None for Postgres)."""
        sqlite_path = self.sqlite_path
        return None if sqlite_path is None else sqlite_path.with_name(sqlite_path.name + ".writer-lock")

    @property
    def postgres_dsn(self) -> str | None:
        """The libpq DSN of a Postgres catalog (None for SQLite)."""
        return self.catalog[len(_POSTGRES_PREFIX) :] if self.is_postgres else None

    @property
    def attach_target(self) -> str:
        """The string after ATTACH: `ducklake:sqlite:<file>` or `ducklake:postgres:<dsn>`."""
        if self.is_postgres:
            return "ducklake:" + self.catalog
        return "ducklake:sqlite:" + str(self.sqlite_path)

    @property
    def needed_extensions(self) -> list[str]:
        """DuckLake plus the catalog database's scanner."""
        return ["ducklake", "postgres" if self.is_postgres else "sqlite"]


@dataclass(frozen=True)
class CommitResult:
    """What `commit_cycle` did: `duplicate` means the ledger already had the cycle and nothing was written."""

    cycle_id: str
    duplicate: bool
    row_counts: dict[str, int]
    snapshot_id: int | None
    seconds: float


def _attach_options(config: StoreConfig, *, read_only: bool) -> str:
    """The ATTACH option list; values are escaped literals or validated integers."""
    options: list[str] = []
    if read_only:
        options.append("READ_ONLY")
    else:
        options.append(f"DATA_PATH {literal(config.data_path)}")
        if config.inline_row_limit is not None:
            options.append(f"DATA_INLINING_ROW_LIMIT {int(config.inline_row_limit)}")
    if config.metadata_schema is not None:
        options.append(f"METADATA_SCHEMA {literal(config.metadata_schema)}")
    if not config.is_postgres:
        if not read_only:
            # WAL lets readers in other processes read while the writer commits
            options.append("META_JOURNAL_MODE 'WAL'")
        options.append(f"META_BUSY_TIMEOUT {int(config.busy_timeout_ms)}")
    return ", ".join(options)


def attach_sql(config: StoreConfig, *, read_only: bool) -> str:
    """The ATTACH statement for this lake."""
    alias = plain_identifier(config.alias)
    return f"ATTACH {literal(config.attach_target)} AS {alias} ({_attach_options(config, read_only=read_only)})"


def _connect(config: StoreConfig, *, read_only: bool) -> tuple[duckdb.DuckDBPyConnection, Release]:
    """A connection with the lake attached, selected, and UTC as the session zone, and what
    detaches it (the process's loaded DuckDB is lent out: `instances.lease`)."""
    con, release = instances.lease(Path(config.extension_dir), config.needed_extensions, config.alias)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(attach_sql(config, read_only=read_only))
        con.execute(f"USE {plain_identifier(config.alias)}")
    except BaseException:
        con.close()
        release()
        raise
    return con, release


def _prepare_local_folders(config: StoreConfig) -> None:
    """Create the SQLite catalog's folder and a local data path (DuckLake does not)."""
    sqlite_path = config.sqlite_path
    if sqlite_path is not None:
        sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    if "://" not in config.data_path:
        Path(config.data_path).mkdir(parents=True, exist_ok=True)


def open_reader(config: StoreConfig) -> duckdb.DuckDBPyConnection:
    """A read-only connection for analysts; `SELECT * FROM cycles` works as is.

    Each query outside an explicit transaction sees the latest committed cycle; inside
    BEGIN ... COMMIT the reader stays on the snapshot it started with.
    """
    con, _ = _connect(config, read_only=True)  # detached once the connection is closed and dropped
    return con


def analyst_attach_sql(config: StoreConfig) -> str:
    """What an analyst pastes into the DuckDB CLI to attach the store read-only.

    The extensions are the ones the writer installed under the store's extension folder, so
    the CLI needs no internet; a CLI of another DuckDB version must INSTALL its own instead.
    """
    loads = "\n".join(f"LOAD {name};" for name in config.needed_extensions)
    return (
        f"-- DuckDB {duckdb.__version__}: read-only attach of the mt5-recon store\n"
        f"SET extension_directory = {literal(config.extension_dir)};\n"
        f"{loads}\n"
        f"{attach_sql(config, read_only=True)};\n"
        f"USE {plain_identifier(config.alias)};\n"
    )


def _mismatch_message(table: str, frame: pl.DataFrame) -> str | None:
    """Why `frame` cannot go into `table` column-wise, or None when its columns are exactly right."""
    declared = STORE_TABLES[table]
    missing = [c for c in declared if c not in frame.columns]
    extra = [c for c in frame.columns if c not in declared]
    if not missing and not extra:
        return None
    return f"frame for table {table!r}: missing columns {missing}, unexpected columns {extra}"


def _conform(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The frame's columns in the table's order and dtypes; a lossy or impossible cast is an error."""
    declared = STORE_TABLES[table]
    exprs = [
        pl.col(name) if frame.schema[name] == dtype else pl.col(name).cast(dtype, strict=True)
        for name, dtype in declared.items()
    ]
    try:
        return frame.select(exprs)
    except pl.exceptions.PolarsError as exc:
        raise ValueError(f"frame for table {table!r} does not fit its declared dtypes: {exc}") from exc


def prepare_frames(cycle_id: str, frames: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Check every frame before anything is written, so a bad frame writes nothing."""
    if not isinstance(cycle_id, str) or not cycle_id:
        raise ValueError("cycle_id must be a non-empty string")
    unknown = sorted(set(frames) - set(STORE_TABLES))
    if unknown:
        raise ValueError(f"no store table named {unknown}; tables are {sorted(STORE_TABLES)}")
    problems = [m for t, f in frames.items() if (m := _mismatch_message(t, f)) is not None]
    if problems:
        raise ValueError("; ".join(problems))
    prepared = {table: _conform(table, frame) for table, frame in frames.items()}
    for table, key in STATE_KEYS.items():
        frame = prepared.get(table)
        if frame is not None and (frame[key].null_count() or frame[key].n_unique() != frame.height):
            raise ValueError(f"frame for state table {table!r} needs a unique, non-null {key!r} per row")
    for table, frame in prepared.items():
        stray = frame.filter(pl.col(_CYCLE_ID_COLUMN).ne_missing(cycle_id)).height
        if stray:
            raise ValueError(f"frame for table {table!r} has {stray} rows whose cycle_id is not {cycle_id!r}")
    return prepared


def prepare_deletes(deletes: Mapping[str, pl.DataFrame]) -> dict[str, pl.Series]:
    """The keys to delete per state table, checked before anything is written."""
    out: dict[str, pl.Series] = {}
    for table, frame in deletes.items():
        key = STATE_KEYS.get(table)
        if key is None:
            raise ValueError(f"rows can only be deleted from state tables {sorted(STATE_KEYS)}, not {table!r}")
        if key not in frame.columns or frame[key].null_count():
            raise ValueError(f"deletions from {table!r} need a non-null {key!r} column")
        dtype = STORE_TABLES[table][key]
        try:
            out[table] = frame[key].cast(dtype, strict=True).unique().sort()
        except pl.exceptions.InvalidOperationError as error:
            raise ValueError(f"deletions from {table!r}: {key!r} must be {dtype}: {error}") from error
    return out


def _keys_to_delete(prepared: dict[str, pl.DataFrame], removed: dict[str, pl.Series]) -> dict[str, pl.Series]:
    """Per state table, every key the cycle removes or rewrites: one DELETE per table (each
    scans the table's files, ~20 ms on a DuckLake catalog), typed as the table declares its key."""
    keys: dict[str, list[pl.Series]] = {}
    for table, gone in removed.items():
        keys.setdefault(table, []).append(gone)
    for table, frame in prepared.items():
        if table in STATE_KEYS:
            keys.setdefault(table, []).append(frame[STATE_KEYS[table]])
    out: dict[str, pl.Series] = {}
    for table, parts in keys.items():
        dtype = STORE_TABLES[table][STATE_KEYS[table]]
        out[table] = pl.concat([part.cast(dtype) for part in parts], how="vertical").unique().sort()
    return out


MERGE_BELOW_BYTES = 32 * 2**20


@dataclass
class Store:
    """A read-write connection to the lake: migrate it, commit cycles atomically and idempotently."""

    config: StoreConfig
    connection: duckdb.DuckDBPyConnection
    _lock: WriterLock | None = field(default=None, repr=False)
    _cycle_locks: PostgresCycleLocks | None = field(default=None, repr=False)
    _release: Release | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def open(cls, config: StoreConfig, *, migrate: bool = True, lock_wait_secs: float = 0.0) -> Store:
        """Attach read-write (creating the lake if new) and, by default, bring its schema up to date.

        A SQLite-catalog lake takes an OS writer lock first: a second writer process waits up to
        `lock_wait_secs`, then gets StoreLockedError instead of corrupting the catalog. A Postgres-catalog lake
        admits several writers; advisory locks serialize migrations and commits of one cycle.
        """
        _prepare_local_folders(config)
        lock_path = config.writer_lock_path
        lock = WriterLock.acquire(lock_path, lock_wait_secs) if lock_path is not None else None
        dsn = config.postgres_dsn
        cycle_locks = PostgresCycleLocks(dsn, config.metadata_schema) if dsn is not None else None
        try:
            # DuckLake creates its catalog tables on the first ATTACH; two writers doing that at once
            # on a new Postgres lake collide ("relation ducklake_metadata already exists")
            with cycle_locks.hold("attach") if cycle_locks is not None else contextlib.nullcontext():
                connection, release = _connect(config, read_only=False)
            store = cls(config, connection, lock, cycle_locks, release)
        except BaseException:
            if cycle_locks is not None:
                cycle_locks.close()
            if lock is not None:
                lock.release()
            raise
        if migrate:
            try:
                store.migrate()
            except BaseException:
                store.close()
                raise
        return store

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Detach (an open transaction is rolled back by DuckDB) and drop the writer lock."""
        if not self._closed:
            self._closed = True
            try:
                self.connection.close()
                if self._release is not None:
                    self._release()
            finally:
                if self._cycle_locks is not None:
                    self._cycle_locks.close()
                if self._lock is not None:
                    self._lock.release()

    # ---- schema -------------------------------------------------------------------------

    def _table(self, name: str) -> str:
        """`"alias"."name"` for a table of our own registry."""
        return f"{identifier(self.config.alias)}.{identifier(name)}"

    def schema_version(self) -> int:
        """The highest applied migration, 0 for a new lake (one query: the version table is
        read directly rather than looked up in DuckDB's catalog first, ~50 ms less per open)."""
        try:
            row = self.connection.execute(
                f"SELECT coalesce(max(version), 0) FROM {self._table(migrations.SCHEMA_VERSION)}"  # noqa: S608 - identifiers from our registry, values are parameters
            ).fetchone()
        except duckdb.CatalogException:  # a new lake: no migration has created the table yet
            return 0
        return int(row[0]) if row is not None else 0

    def _exclusive(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Mutual exclusion among the writers of a Postgres-catalog lake (one writer needs none)."""
        if self._cycle_locks is None:
            return contextlib.nullcontext()
        return self._cycle_locks.hold(name)

    def migrate(self) -> int:
        """Apply the migrations this lake lacks, each in its own transaction; a no-op when current."""
        if self.schema_version() == migrations.LATEST:  # the usual case: no lock, one version read
            self._check_columns()
            return migrations.LATEST
        with self._exclusive("migrate"):
            for migration in migrations.MIGRATIONS:
                if migration.version > self.schema_version():
                    self._apply(migration)
        self._check_columns()
        return self.schema_version()

    def _apply(self, migration: migrations.Migration) -> None:
        """Run one migration and record it in the same transaction."""
        con = self.connection
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in migration.statements(self.config.alias):
                con.execute(statement)
            con.execute(
                f"INSERT INTO {self._table(migrations.SCHEMA_VERSION)} VALUES (?, ?, now())",  # noqa: S608 - identifiers from our registry, values are parameters
                [migration.version, migration.description],
            )
            con.execute("COMMIT")
        except BaseException:
            self._rollback_quietly()
            raise
        _log.info("store migrated to version %d: %s", migration.version, migration.description)

    def _check_columns(self) -> None:
        """Fail loudly when STORE_TABLES declares a column the lake lacks (a migration is missing)."""
        rows = self.connection.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main'",
            [self.config.alias],
        ).fetchall()
        present: dict[str, set[str]] = {}
        for table, column in rows:
            present.setdefault(table, set()).add(column)
        gaps = {
            table: missing
            for table, schema in STORE_TABLES.items()
            if (missing := [c for c in schema if c not in present.get(table, set())])
        }
        if gaps:
            raise RuntimeError(
                f"the store lacks columns that STORE_TABLES declares: {gaps}; "
                "add a migration (ALTER TABLE ... ADD COLUMN IF NOT EXISTS) in mt5recon/store/migrations.py"
            )

    # ---- cycles -------------------------------------------------------------------------

    def _ledger_counts(self, cycle_id: str) -> dict[str, int] | None:
        """The row counts recorded for `cycle_id`, or None when the ledger does not have it."""
        row = self.connection.execute(
            f"SELECT row_counts FROM {self._table(migrations.LEDGER)} WHERE cycle_id = ? LIMIT 1",  # noqa: S608 - identifiers from our registry, values are parameters
            [cycle_id],
        ).fetchone()
        if row is None:
            return None
        counts: dict[str, int] = json.loads(row[0])
        return counts

    def has_cycle(self, cycle_id: str) -> bool:
        """Whether the ledger records `cycle_id` as committed."""
        return self._ledger_counts(cycle_id) is not None

    def commit_cycle(
        self,
        cycle_id: str,
        frames: Mapping[str, pl.DataFrame],
        deletes: Mapping[str, pl.DataFrame] | None = None,
    ) -> CommitResult:
        """Write every frame, the deletions from state tables and the ledger row in ONE transaction;
        a cycle the ledger has writes nothing.

        `deletes` maps a state table (STATE_KEYS) to a frame of the keys to remove (a closed
        position). Frames are checked first (ValueError, nothing written). Any failure rolls the
        whole cycle back, so the caller may simply retry it.
        """
        prepared = prepare_frames(cycle_id, frames)
        removed = prepare_deletes(deletes or {})
        started = time.perf_counter()
        # DuckLake aborts a transaction that inserts into a table another one deleted from: writers
        # that replace state rows take turns (one lock for all of them; appends alone run in parallel)
        writes_state = any(prepared[t].height for t in STATE_KEYS if t in prepared) or any(
            keys.len() for keys in removed.values()
        )
        state_turn = self._exclusive("state-tables") if writes_state else contextlib.nullcontext()
        with self._exclusive("cycle\x00" + cycle_id), state_turn:
            duplicate, counts = self._commit_prepared(cycle_id, prepared, removed)
        snapshot = None if duplicate else self._last_snapshot()
        return CommitResult(cycle_id, duplicate, counts, snapshot, time.perf_counter() - started)

    def _commit_prepared(
        self, cycle_id: str, prepared: dict[str, pl.DataFrame], removed: dict[str, pl.Series]
    ) -> tuple[bool, dict[str, int]]:
        """The transaction itself: (True, recorded counts) for a cycle already in the ledger."""
        con = self.connection
        con.execute("BEGIN TRANSACTION")
        try:
            recorded = self._ledger_counts(cycle_id)
            if recorded is not None:
                con.execute("ROLLBACK")
                return True, recorded
            _log.debug("cycle %s: transaction begun", cycle_id, extra={"store_phase": "begun"})
            counts = {table: frame.height for table, frame in prepared.items()}
            counts.update({f"{table}:deleted": keys.len() for table, keys in removed.items() if keys.len()})
            for table, keys in _keys_to_delete(prepared, removed).items():
                self._delete_keys(table, keys)
            for table, frame in prepared.items():
                self._insert(table, frame)
            con.execute(
                f"INSERT INTO {self._table(migrations.LEDGER)} VALUES (?, now(), ?)",  # noqa: S608 - identifiers from our registry, values are parameters
                [cycle_id, json.dumps(counts, sort_keys=True)],
            )
            _log.debug("cycle %s: committing", cycle_id, extra={"store_phase": "committing"})
            con.execute("COMMIT")
        except BaseException:
            self._rollback_quietly()
            raise
        _log.debug("cycle %s: committed", cycle_id, extra={"store_phase": "committed"})
        return False, counts

    def _insert(self, table: str, frame: pl.DataFrame) -> None:
        """Append a conformed frame through DuckDB's Arrow scan, columns named in the table's order."""
        if frame.height == 0:
            return
        view = f"_mt5recon_frame_{table}"
        columns = ", ".join(identifier(c) for c in frame.columns)
        self.connection.register(view, frame)
        try:
            self.connection.execute(
                f"INSERT INTO {self._table(table)} ({columns}) SELECT {columns} FROM {identifier(view)}"  # noqa: S608 - identifiers from our registry, values are parameters
            )
        finally:
            self.connection.unregister(view)
        _log.debug(
            "inserted %d rows into %s",
            frame.height,
            table,
            extra={"store_phase": "inserted", "store_table": table},
        )

    def _delete_keys(self, table: str, keys: pl.Series) -> None:
        """Remove a state table's rows with these keys (they are rewritten or gone this cycle)."""
        if keys.len() == 0:
            return
        key = STATE_KEYS[table]
        view = f"_mt5recon_keys_{table}"
        self.connection.register(view, keys.rename(key).to_frame())
        try:
            column = identifier(key)
            self.connection.execute(
                f"DELETE FROM {self._table(table)} WHERE {column} IN (SELECT {column} FROM {identifier(view)})"  # noqa: S608 - identifiers from our registry, values are parameters
            )
        finally:
            self.connection.unregister(view)

    def _last_snapshot(self) -> int | None:
        """The snapshot this connection committed last (for time travel: `AT (VERSION => id)`)."""
        row = self.connection.execute(
            "SELECT id FROM ducklake_last_committed_snapshot(?)", [self.config.alias]
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _rollback_quietly(self) -> None:
        """Roll back if a transaction is still open (a failed COMMIT has already ended it)."""
        with contextlib.suppress(duckdb.Error):
            self.connection.execute("ROLLBACK")

    # ---- maintenance --------------------------------------------------------------------

    def compact(self) -> None:
        """Fold inlined rows into Parquet and merge the many small per-cycle files.

        Run it from the writer between cycles (e.g. hourly). Replaced files stay on disk, and
        time travel to them keeps working, until `ducklake_expire_snapshots` and
        `ducklake_cleanup_old_files` are run.
        """
        alias = [self.config.alias]
        self.connection.execute("SELECT * FROM ducklake_flush_inlined_data(?)", alias).fetchall()
        # files that lost a fifth of their rows or more (retention, replaced state rows) are
        # rewritten without them (DuckLake's default waits for 95 %)
        self.connection.execute(
            "SELECT * FROM ducklake_rewrite_data_files(?, delete_threshold => 0.2)", alias
        ).fetchall()
        # only files under MERGE_BELOW_BYTES are merged: a run rewrites the last hours' small files,
        # never the month behind them (measured: without the bound, 1.2 GiB rewritten per run)
        self.connection.execute(
            "SELECT * FROM ducklake_merge_adjacent_files(?, max_file_size => ?)", [*alias, MERGE_BELOW_BYTES]
        ).fetchall()
