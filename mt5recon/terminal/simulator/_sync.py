"""One lock per fleet: terminals may be called from many threads, the world steps once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, Protocol, TypeVar

if TYPE_CHECKING:
    from mt5recon.terminal.simulator.fleet import SimFleet

P = ParamSpec("P")
R = TypeVar("R")


class HasFleet(Protocol):
    @property
    def fleet(self) -> SimFleet: ...


S = TypeVar("S", bound=HasFleet)


def synced(fn: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Bring the world up to `clock.now()` first, then act, all under the fleet's lock."""

    @functools.wraps(fn)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        fleet = self.fleet
        with fleet.lock:
            fleet.sync()
            return fn(self, *args, **kwargs)

    return wrapper
