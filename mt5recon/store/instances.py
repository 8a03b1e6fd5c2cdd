"""One DuckDB database per process with the extensions loaded once, lent out lake by lake.

LOAD makes DuckDB check an extension's signature, a hash of its 30+ MB binary: 0.1-0.2 s per
extension for every new database, twice per cycle (read the state, commit). A lease is a cursor
on the process's loaded database; the lake is attached under its alias for the lease and
detached when the lease ends (its connection closed and dropped, or `release` called). While an
alias is lent out (a reader open during a commit, in one process), the next caller gets a fresh
database of its own, exactly as before: never two attachments under one alias.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from mt5recon.store import extensions
from mt5recon.store.sqltext import plain_identifier


@dataclass
class _Loaded:
    """The process's database for one extension folder and extension list."""

    pid: int
    base: duckdb.DuckDBPyConnection
    lock: threading.RLock = field(default_factory=threading.RLock)
    lent: set[str] = field(default_factory=set)

    def release(self, alias: str) -> None:
        with self.lock:
            # an error means the database is closing with the process: nothing left to detach
            with contextlib.suppress(duckdb.Error):
                self.base.execute(f"DETACH DATABASE IF EXISTS {plain_identifier(alias)}")
            self.lent.discard(alias)


_loaded: dict[tuple[str, tuple[str, ...]], _Loaded] = {}
_loaded_lock = threading.Lock()


def _loaded_for(extension_dir: Path, names: list[str]) -> _Loaded:
    key = (str(extension_dir), tuple(names))
    with _loaded_lock:
        found = _loaded.get(key)
        if found is None or found.pid != os.getpid():  # a forked child never shares its parent's
            base = extensions.connect(extension_dir)
            extensions.load(base, names)
            found = _loaded[key] = _Loaded(os.getpid(), base)
        return found


Release = Callable[[], object]


def lease(extension_dir: Path, names: list[str], alias: str) -> tuple[duckdb.DuckDBPyConnection, Release]:
    """A connection with `names` loaded on which the caller may attach `alias`; call the returned
    release (or drop the connection) when done. Release is idempotent."""
    loaded = _loaded_for(extension_dir, names)
    with loaded.lock:
        if alias not in loaded.lent:
            loaded.lent.add(alias)
            cursor = loaded.base.cursor()
            finalizer = weakref.finalize(cursor, loaded.release, alias)
            finalizer.atexit = False
            return cursor, finalizer
    fresh = extensions.connect(extension_dir)
    try:
        extensions.load(fresh, names)
    except BaseException:
        fresh.close()
        raise
    return fresh, lambda: None


def cursor(extension_dir: Path, names: list[str]) -> duckdb.DuckDBPyConnection:
    """A connection to the process's database with `names` loaded, for work that attaches
    nothing (scanning a file); close it when done."""
    return _loaded_for(extension_dir, names).base.cursor()
