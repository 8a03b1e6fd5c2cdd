"""The store across real processes: a live analyst reader, and writers killed with SIGKILL.

Children are started with the `spawn` context (polars deadlocks after fork) and talk to the
test through queues/pipes, so every step is a handshake, never a sleep.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
from multiprocessing.connection import Connection
from pathlib import Path

import duckdb
import pytest

from mt5recon.store.lake import Store, StoreConfig, open_reader
from mt5recon.store.samples import sample_cycle
from mt5recon.store.tables import STORE_TABLES

SPAWN = multiprocessing.get_context("spawn")
CYCLES = 32
BIG_ROWS = 300_000
TIMEOUT = 60


@pytest.fixture()
def config(tmp_path: Path, extension_dir: Path) -> StoreConfig:
    config = StoreConfig.under(tmp_path / "home", extension_dir=extension_dir)
    Store.open(config).close()  # create and migrate the lake (and install extensions) once
    return config


def counts_sql() -> str:
    """Rows per table of one cycle, read in ONE statement so they come from one snapshot."""
    parts = [f"SELECT '{t}' AS t, count(*) AS n FROM \"{t}\" WHERE cycle_id = $1" for t in STORE_TABLES]
    parts.append("SELECT '_ledger', count(*) FROM cycle_ledger WHERE cycle_id = $1")
    return " UNION ALL ".join(parts)


def cycle_counts(con: duckdb.DuckDBPyConnection, cycle_id: str) -> dict[str, int]:
    return {table: int(n) for table, n in con.execute(counts_sql(), [cycle_id]).fetchall()}


# ---- a reader in another process ------------------------------------------------------


def reader_main(
    config: StoreConfig,
    commands: multiprocessing.Queue[tuple[str, ...]],
    replies: multiprocessing.Queue[tuple[object, ...]],
) -> None:
    """Hold one read-only attach open; check each cycle announced; keep querying in between."""
    errors: list[str] = []
    background_queries = 0
    con = open_reader(config)
    replies.put(("ready",))
    while True:
        try:
            command = commands.get(timeout=0.05)
        except queue.Empty:
            try:  # an analyst hammering the lake while the writer commits the next cycle
                con.execute("SELECT count(*), max(cycle_id), sum(volume) FROM position_changes").fetchall()
                background_queries += 1
            except duckdb.Error as exc:
                errors.append(repr(exc))
            continue
        if command[0] == "stop":
            break
        try:
            replies.put(("seen", command[1], cycle_counts(con, command[1])))
        except duckdb.Error as exc:
            errors.append(repr(exc))
            replies.put(("seen", command[1], {}))
    con.close()
    replies.put(("done", background_queries, errors))


def test_a_reader_in_another_process_sees_every_cycle_without_errors(config: StoreConfig) -> None:
    commands, replies = SPAWN.Queue(), SPAWN.Queue()
    reader = SPAWN.Process(target=reader_main, args=(config, commands, replies), daemon=True)
    reader.start()
    try:
        assert replies.get(timeout=TIMEOUT) == ("ready",)
        with Store.open(config) as store:
            for i in range(CYCLES):
                cycle_id = f"live-{i:03d}"
                frames = sample_cycle(cycle_id)
                store.commit_cycle(cycle_id, frames)
                commands.put(("check", cycle_id))
                kind, seen_id, counts = replies.get(timeout=TIMEOUT)
                # visible at the reader's very first query after the commit: no re-attach, no retry
                assert (kind, seen_id) == ("seen", cycle_id)
                assert counts == {**{t: f.height for t, f in frames.items()}, "_ledger": 1}
        commands.put(("stop",))
        kind, background_queries, errors = replies.get(timeout=TIMEOUT)
        assert kind == "done"
        assert errors == []
        assert background_queries > CYCLES  # the reader really was busy while the writer committed
    finally:
        reader.join(timeout=TIMEOUT)
        if reader.is_alive():
            reader.kill()
    assert reader.exitcode == 0


# ---- a writer killed with SIGKILL -----------------------------------------------------


class _StopAt(logging.Handler):
    """Tells the parent when the store reaches a phase; optionally blocks there until killed."""

    def __init__(self, phase: str, conn: Connection, *, block: bool) -> None:
        super().__init__(logging.DEBUG)
        self.phase, self.conn, self.block = phase, conn, block

    def emit(self, record: logging.LogRecord) -> None:
        phase = getattr(record, "store_phase", None)
        table = getattr(record, "store_table", None)
        here = f"{phase}:{table}" if table else phase
        if here == self.phase:
            self.conn.send(here)
            if self.block:
                self.conn.recv()  # never answered: the parent kills us right here


def writer_main(config: StoreConfig, cycle_id: str, stop_at: str, conn: Connection) -> None:
    """Commit one big cycle, reporting (and maybe freezing at) phase `stop_at`."""
    frames = sample_cycle(cycle_id, {"cycles": 10, "account_snapshots": 10, "position_changes": BIG_ROWS})
    store = Store.open(config)
    logger = logging.getLogger("mt5recon.store.lake")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(_StopAt(stop_at, conn, block=stop_at != "committing"))
    store.commit_cycle(cycle_id, frames)
    conn.send("returned")
    conn.recv()  # stay alive, holding the store open, until killed


def kill_writer_at(config: StoreConfig, cycle_id: str, stop_at: str, wait_for: str) -> None:
    """Run `writer_main` in a child and SIGKILL it as soon as it reports `wait_for`."""
    parent, child = SPAWN.Pipe()
    writer = SPAWN.Process(target=writer_main, args=(config, cycle_id, stop_at, child), daemon=True)
    writer.start()
    try:
        assert parent.poll(TIMEOUT), "the writer never reached the phase"
        assert parent.recv() == wait_for
        writer.kill()  # SIGKILL: no cleanup, no rollback, no atexit
    finally:
        writer.join(timeout=TIMEOUT)
    assert writer.exitcode == -signal.SIGKILL


def expected_counts(present: bool) -> dict[str, int]:
    sizes = {"cycles": 10, "account_snapshots": 10, "position_changes": BIG_ROWS}
    return {t: (sizes.get(t, 0) if present else 0) for t in STORE_TABLES} | {"_ledger": int(present)}


def test_killed_inside_the_transaction_leaves_nothing_and_recommits_once(config: StoreConfig) -> None:
    # cycles and account_snapshots are inserted, positions too: only the COMMIT is missing
    kill_writer_at(config, "big-1", "inserted:position_changes", "inserted:position_changes")
    with Store.open(config) as store:
        assert not store.has_cycle("big-1")
        assert cycle_counts(store.connection, "big-1") == expected_counts(False)
        frames = sample_cycle("big-1", {"cycles": 10, "account_snapshots": 10, "position_changes": BIG_ROWS})
        assert not store.commit_cycle("big-1", frames).duplicate
        assert cycle_counts(store.connection, "big-1") == expected_counts(True)


def test_killed_during_commit_is_all_or_nothing(config: StoreConfig) -> None:
    # the kill races the catalog write of COMMIT: either outcome is fine, a half one is not
    kill_writer_at(config, "big-2", "committing", "committing")
    with Store.open(config) as store:
        landed = store.has_cycle("big-2")
        assert cycle_counts(store.connection, "big-2") == expected_counts(landed)
        frames = sample_cycle("big-2", {"cycles": 10, "account_snapshots": 10, "position_changes": BIG_ROWS})
        assert store.commit_cycle("big-2", frames).duplicate is landed
        assert cycle_counts(store.connection, "big-2") == expected_counts(True)


def test_killed_after_the_commit_the_retry_is_a_no_op(config: StoreConfig) -> None:
    kill_writer_at(config, "big-3", "never", "returned")
    with Store.open(config) as store:
        assert store.has_cycle("big-3")
        frames = sample_cycle("big-3", {"cycles": 10, "account_snapshots": 10, "position_changes": BIG_ROWS})
        result = store.commit_cycle("big-3", frames)
        assert result.duplicate
        assert cycle_counts(store.connection, "big-3") == expected_counts(True)
