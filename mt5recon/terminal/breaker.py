"""A circuit breaker per terminal: closed -> open after N failures -> half-open probe after a
cooldown -> closed on success (or open again, with a longer cooldown).

A terminal that keeps failing is then left alone instead of being hammered every 10 s, and its
accounts are reported as failed snapshots (never as flat). A permanent error (bad credentials,
algo trading disabled) opens the breaker at once. Pure functions over a small frozen record; the
book of breakers persists between flow runs (each run is a new process) as a JSON file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

State = Literal["closed", "open", "half_open"]


class BreakerPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(default=3, ge=1, description="consecutive failures that open the breaker")
    cooldown_secs: float = Field(default=30.0, gt=0, description="wait before the first half-open probe")
    max_cooldown_secs: float = Field(default=600.0, gt=0, description="cap of the doubling cooldown")


@dataclass(frozen=True)
class Breaker:
    state: State = "closed"
    failures: int = 0  # consecutive
    trips: int = 0  # consecutive openings: the cooldown doubles with each failed probe
    opened_at: datetime | None = None
    retry_at: datetime | None = None
    last_error: str | None = None

    def visible_state(self, now: datetime) -> State:
        """What an operator sees: an open breaker past its cooldown is waiting for its probe."""
        if self.state == "open" and self.retry_at is not None and now >= self.retry_at:
            return "half_open"
        return self.state


def allows(breaker: Breaker, now: datetime) -> bool:
    """Whether to call the terminal now (closed, or open past its cooldown: one probe)."""
    return breaker.visible_state(now) != "open"


def record(
    breaker: Breaker,
    *,
    ok: bool,
    now: datetime,
    policy: BreakerPolicy,
    transient: bool = True,
    error: str | None = None,
) -> Breaker:
    """The breaker after one attempt at `now`."""
    if ok:
        return Breaker()
    failures = breaker.failures + 1
    probing = breaker.state != "closed"
    if not probing and transient and failures < policy.failure_threshold:
        return replace(breaker, failures=failures, last_error=error)
    trips = breaker.trips + 1
    cooldown = min(policy.cooldown_secs * 2 ** (trips - 1), policy.max_cooldown_secs)
    return Breaker(
        state="open",
        failures=failures,
        trips=trips,
        opened_at=breaker.opened_at if probing and breaker.opened_at else now,
        retry_at=now + timedelta(seconds=cooldown),
        last_error=error,
    )


def _encode(breaker: Breaker) -> dict[str, object]:
    data = asdict(breaker)
    for key in ("opened_at", "retry_at"):
        value = data[key]
        data[key] = value.isoformat() if isinstance(value, datetime) else None
    return data


def _decode(data: dict[str, object]) -> Breaker:
    times = {k: datetime.fromisoformat(str(data[k])) if data.get(k) else None for k in ("opened_at", "retry_at")}
    return Breaker(
        state=str(data.get("state", "closed")),  # type: ignore[arg-type]
        failures=int(str(data.get("failures", 0))),
        trips=int(str(data.get("trips", 0))),
        last_error=str(data["last_error"]) if data.get("last_error") is not None else None,
        **times,
    )


def load_book(path: Path) -> dict[int, Breaker]:
    """The breakers as the last run left them (none yet: all closed)."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {int(login): _decode(data) for login, data in raw.items()}


def save_book(path: Path, book: dict[int, Breaker]) -> None:
    """Atomically replace the file: a run killed mid-write leaves the previous book."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({str(login): _encode(b) for login, b in sorted(book.items())}, indent=1)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(payload)
        temporary = Path(handle.name)
    os.replace(temporary, path)
