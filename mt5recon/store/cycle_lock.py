"""Per-cycle mutual exclusion for writers sharing a Postgres catalog.

DuckLake never conflicts two appends, so two writers committing the SAME cycle at the same
instant would both pass the ledger check and both append. A Postgres advisory lock keyed by
(lake, cycle_id), held from the ledger check to the end of COMMIT, makes the second one see
the first one's ledger row. Different cycles take different keys and never wait on each
other; the lock dies with the session, so a killed writer never leaves it behind.
A SQLite-catalog lake has one writer process (see writer_lock), so it needs none of this.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import psycopg

_LOCK_TIMEOUT = "30s"


def advisory_key(namespace: str, name: str) -> int:
    """A stable signed 64-bit key for (lake, name): Postgres' hashtext is not guaranteed stable."""
    digest = hashlib.blake2b(f"{namespace}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresCycleLocks:
    """One autocommit session to the catalog's server, used only for advisory locks.

    The key's namespace is the catalog's database and metadata schema as the server names
    them, so shards that spell the DSN differently (host alias, IP) still share locks.
    """

    def __init__(self, dsn: str, metadata_schema: str | None) -> None:
        self._dsn = dsn
        self._schema = metadata_schema or ""
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._namespace = ""

    def _session(self) -> psycopg.Connection[tuple[object, ...]]:
        """The lock session, reopened if the server dropped it (its locks went with it)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self._dsn, autocommit=True)
            row = self._conn.execute(
                "SELECT current_database(), set_config('lock_timeout', %s, false)", [_LOCK_TIMEOUT]
            ).fetchone()
            self._namespace = f"{row[0] if row else ''}/{self._schema}"
        return self._conn

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Wait (up to lock_timeout) for the lock on `name` (a cycle id), hold it for the block, release it."""
        session = self._session()
        key = advisory_key(self._namespace, name)
        session.execute("SELECT pg_advisory_lock(%s)", [key])
        try:
            yield
        finally:
            if not session.closed and not session.broken:
                session.execute("SELECT pg_advisory_unlock(%s)", [key])

    def close(self) -> None:
        """End the session (and with it any lock still held)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
