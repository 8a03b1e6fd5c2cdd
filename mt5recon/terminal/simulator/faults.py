"""Terminal-side failures of one account: what a connector must survive.

Each fault is one-shot (`calls=1`), counted (`calls=n`) or persistent (`calls=None`) until
cleared. They change what the terminal answers, never the broker's truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SNAPSHOT_CALLS = frozenset({"positions_get", "orders_get", "history_deals_get"})
MALFORMED_KINDS = ("nan_price_open", "negative_volume", "duplicate_ticket", "unknown_symbol")
UNKNOWN_SYMBOL = "XAGEUR.old"  # a delisted symbol the terminal no longer knows


@dataclass(slots=True)
class Fault:
    remaining: int | None  # calls left; None: until cleared
    methods: frozenset[str] | None = None  # None: every call
    delay: float = 0.0


@dataclass(slots=True)
class Faults:
    disconnected_until: float | None = None  # epoch s; math.inf until reconnect()
    timeout: Fault | None = None
    auth: Fault | None = None
    snapshot: Fault | None = None
    latency: Fault | None = None  # every matching call answers `delay` seconds late (a slow IPC link)
    malformed: dict[str, Fault] = field(default_factory=dict)
    unknown_ticket: int = 0  # ticket of the injected position on UNKNOWN_SYMBOL
    unknown_since_ms: int = 0

    def disconnected(self, now: float) -> bool:
        if self.disconnected_until is None:
            return False
        if now >= self.disconnected_until:
            self.disconnected_until = None
            return False
        return True

    def disconnect(self, now: float, seconds: float | None) -> None:
        self.disconnected_until = math.inf if seconds is None else now + seconds

    @staticmethod
    def _take(f: Fault | None, method: str) -> tuple[bool, Fault | None]:
        """(hit, fault left afterwards)."""
        if f is None or (f.methods is not None and method not in f.methods):
            return False, f
        if f.remaining is None:
            return True, f
        f.remaining -= 1
        return True, (f if f.remaining > 0 else None)

    def take_timeout(self, method: str) -> Fault | None:
        f = self.timeout
        hit, self.timeout = self._take(f, method)
        return f if hit else None

    def take_latency(self, method: str) -> float:
        """Seconds this call waits before answering (0.0 when the link is fast)."""
        f = self.latency
        hit, self.latency = self._take(f, method)
        return f.delay if hit and f is not None else 0.0

    def take_auth(self, method: str) -> bool:
        hit, self.auth = self._take(self.auth, method)
        return hit

    def take_snapshot(self, method: str) -> bool:
        hit, self.snapshot = self._take(self.snapshot, method)
        return hit

    def take_malformed(self) -> list[str]:
        kinds = []
        for kind in MALFORMED_KINDS:
            hit, left = self._take(self.malformed.get(kind), "positions_get")
            if hit:
                kinds.append(kind)
            if left is None:
                self.malformed.pop(kind, None)
        return kinds

    def clear(self) -> None:
        self.disconnected_until = None
        self.timeout = self.auth = self.snapshot = self.latency = None
        self.malformed.clear()
