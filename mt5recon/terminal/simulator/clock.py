"""Clocks that drive the simulated world: a manual one for tests, the wall clock for live runs.

The fleet only ever asks `now()`; everything in the world is a function of the seed and of
the instants it was advanced to, so a `SimClock` makes whole runs reproducible.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SimClock:
    """A clock that moves only when told to (tests, back-fills): no real waiting ever."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += timedelta(seconds=seconds)
        return self._now

    def sleep(self, seconds: float) -> None:
        """A simulated delay (e.g. an IPC timeout) costs simulated time, not real time."""
        self.advance(max(0.0, seconds))


class WallClock:
    """Real UTC time: the world runs live, one simulated second per real second."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
