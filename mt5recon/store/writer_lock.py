"""One writer per SQLite-catalog lake, enforced by an OS file lock.

A DuckLake writer caches its next snapshot/table ids in memory: two writer processes on one
SQLite catalog can hand out the same ids and corrupt it. Postgres catalogs arbitrate writers
themselves; SQLite ones get this lock. The kernel drops it when the holder dies (even by
SIGKILL), so a crashed writer never leaves a stale lock behind.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO


class StoreLockedError(RuntimeError):
    """Another process already holds the store's writer lock."""


def _try_lock(handle: IO[bytes]) -> bool:
    """Take an exclusive, non-blocking lock on the open file; False if someone else holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class WriterLock:
    """Held from `acquire` until `release` (or process death)."""

    def __init__(self, path: Path, handle: IO[bytes]) -> None:
        self.path = path
        self._handle: IO[bytes] | None = handle

    @classmethod
    def acquire(cls, path: Path) -> WriterLock:
        """Lock `path` (created if missing) or raise StoreLockedError at once, without waiting."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")  # noqa: SIM115 - held open for the lock's lifetime
        if not _try_lock(handle):
            handle.close()
            raise StoreLockedError(
                f"another process is writing this store (lock {path}); a SQLite catalog allows "
                "one writer process; use a Postgres catalog for several"
            )
        return cls(path, handle)

    def release(self) -> None:
        """Closing the file drops the lock."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
