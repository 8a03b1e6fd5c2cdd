"""Pause Python's cyclic garbage collector while a cycle builds many short-lived records.

A fleet's answers are millions of small tuples; each allocation burst triggers collections
that walk every tracked object in the process, so the cost grows with the heap as well as the
burst (super-linear at 10,000 accounts). The records hold no reference cycles, so nothing
waits for the collector: reference counting frees them, and collection resumes afterwards.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _PauseCount:
    """Nested and concurrent pauses: the last block to leave switches the collector back on,
    and only if it was on when the first one entered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.was_enabled = True


_pauses = _PauseCount()


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic collector is off inside the block."""
    with _pauses.lock:
        if _pauses.depth == 0:
            _pauses.was_enabled = gc.isenabled()
            gc.disable()
        _pauses.depth += 1
    try:
        yield
    finally:
        with _pauses.lock:
            _pauses.depth -= 1
            if _pauses.depth == 0 and _pauses.was_enabled:
                gc.enable()
