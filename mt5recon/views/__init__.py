"""Operator views over the store, read-only: the fleet now (`status`) and its breaks (`breaks`).

Each view is a query into polars frames plus a plain dict for `--json`; rendering is separate, so
a script and a person read the same numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime

NO_CYCLES = "no cycles yet: run `mt5recon up` or `mt5recon cycle`"


class NoCycles(LookupError):
    """The store does not exist or holds no cycle: there is nothing to show yet."""

    def __init__(self) -> None:
        super().__init__(NO_CYCLES)


def utc_now() -> datetime:
    """The time ages are measured at; one seam, so a test on a simulated clock can pin it."""
    return datetime.now(UTC)
