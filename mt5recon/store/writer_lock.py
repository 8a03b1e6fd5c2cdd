"""One writer per SQLite-catalog lake, enforced by an OS file lock.

A DuckLake writer caches its next snapshot/table ids in memory: two writer processes on one
SQLite catalog can hand out the same ids and corrupt it. Postgres catalogs arbitrate writers
themselves; SQLite ones get this lock. The kernel drops it when the holder dies (even by
SIGKILL), so a crashed writer never leaves a stale lock behind.
"""

from __future__ import annotations

import sys
import time
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
    def acquire(cls, path: Path, wait_secs: float = 0.0) -> WriterLock:
        """Lock `path` (created if missing), trying for up to `wait_secs` (0: once), else StoreLockedError."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")  # noqa: SIM115 - held open for the lock's lifetime
        deadline = time.monotonic() + wait_secs
        while not _try_lock(handle):
            if time.monotonic() < deadline:
                time.sleep(0.05)  # the holder commits in ~0.1-1 s; a blocking flock could not time out
                continue
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
