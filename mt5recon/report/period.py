"""The report's time window: `--since 24h` / an ISO time, and the bucket width its charts use."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
# bucket widths a reader recognises (a 7-minute bucket reads as noise); the cycle is 10 s
NICE_BUCKETS_SECS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 7 * 86_400)


def parse_when(text: str, now: datetime) -> datetime:
    """A relative duration back from `now` (`90m`, `24h`, `7d`, `2w`, `30s`), `now`, or an ISO
    date/time; a time without a zone is taken as UTC (the store's zone). Returns UTC."""
    if text.strip().lower() == "now":
        return now.astimezone(UTC)
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2).lower()
        return now.astimezone(UTC) - timedelta(seconds=amount * _UNIT_SECS[unit])
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (90m, 24h, 7d, 2w) nor an ISO time (2026-11-20T08:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """[since, until), UTC."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.until <= self.since:
            raise ValueError(f"the period is empty: until ({self.until:%Y-%m-%d %H:%M:%S}) is not after since")

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()

    def bucket_secs(self, max_buckets: int) -> int:
        """The narrowest recognisable width that cuts the period into at most `max_buckets`
        (a week of 10-second cycles cannot be drawn point by point)."""
        needed = self.seconds / max(1, max_buckets)
        for width in NICE_BUCKETS_SECS:
            if width >= needed:
                return width
        return int(math.ceil(needed / 86_400) * 86_400)

    def label(self) -> str:
        return f"{format_time(self.since)} → {format_time(self.until)} UTC"


def format_time(at: datetime) -> str:
    """UTC, to the second only when it is not on the minute."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S" if at.second or at.microsecond else "%Y-%m-%d %H:%M")


def format_duration(secs: float) -> str:
    """`10 s`, `15 min`, `1 h`, `1 d`: the bucket width as the tables name it."""
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if secs >= size and secs % size == 0:
            return f"{int(secs // size)} {unit}"
    return f"{secs:g} s"
