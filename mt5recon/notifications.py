"""What operators are told, as Prefect events an automation can act on (built here, sent by a task).

Events (resource `mt5recon.break.<break_id>`, related to `mt5recon.account.<login>` and
`mt5recon.fleet.<name>`):

- `mt5recon.break.opened`   a break was confirmed (or came back: `reopened` in the payload);
- `mt5recon.break.resolved` the divergence is gone;
- `mt5recon.cycle.completed` once per cycle, on the fleet: the cycle's counts, so an automation
  can also fire when cycles stop arriving;
- `mt5recon.guard.alert`    a guard level crossed or cleared, a protective close announced,
  cancelled or carried out (resource `mt5recon.account.<login>` or `mt5recon.symbol.<symbol>`).

Event ids are derived from the break event ids, so a retried publish never notifies twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

PREFIX = "mt5recon"
BREAK_OPENED = f"{PREFIX}.break.opened"
BREAK_RESOLVED = f"{PREFIX}.break.resolved"
CYCLE_COMPLETED = f"{PREFIX}.cycle.completed"
GUARD_ALERT = f"{PREFIX}.guard.alert"
_NOTIFIED = {"opened": BREAK_OPENED, "reopened": BREAK_OPENED, "resolved": BREAK_RESOLVED}
MAX_BREAK_EVENTS = 200  # per cycle, worst first; the cycle event carries the full counts
_NAMESPACE = uuid.UUID("6f1c3d52-2f7e-4c1e-9a51-5d1f3b0e8a11")


@dataclass(frozen=True)
class EventSpec:
    """One Prefect event, as plain data."""

    event: str
    resource: dict[str, str]
    related: list[dict[str, str]]
    payload: dict[str, Any]
    occurred: datetime
    id: uuid.UUID


def _fleet(fleet: str) -> dict[str, str]:
    return {"prefect.resource.id": f"{PREFIX}.fleet.{fleet}", "prefect.resource.role": "fleet"}


def _plain(value: object) -> object:
    """JSON-ready: times as ISO strings, everything else as is."""
    return value.isoformat() if isinstance(value, datetime) else value


def break_notifications(
    events: pl.DataFrame, *, fleet: str, limit: int = MAX_BREAK_EVENTS
) -> tuple[list[EventSpec], int]:
    """The break transitions worth telling someone about (opened, reopened, resolved), worst
    first, at most `limit`; returns them and how many were left out."""
    notable = events.filter(pl.col("event").is_in(list(_NOTIFIED)))
    worst = notable.sort(pl.col("size_money").abs(), pl.col("size_pips").abs(), descending=True, nulls_last=True)
    specs = []
    for row in worst.head(limit).iter_rows(named=True):
        name = f"{row['kind']} on {row['login']}" + (f" {row['symbol']}" if row.get("symbol") else "")
        specs.append(
            EventSpec(
                event=_NOTIFIED[row["event"]],
                resource={
                    "prefect.resource.id": f"{PREFIX}.break.{row['break_id']}",
                    "prefect.resource.name": name,
                    f"{PREFIX}.kind": str(row["kind"]),
                    f"{PREFIX}.login": str(row["login"]),
                },
                related=[
                    {"prefect.resource.id": f"{PREFIX}.account.{row['login']}", "prefect.resource.role": "account"},
                    _fleet(fleet),
                ],
                payload={key: _plain(value) for key, value in row.items()},
                occurred=row["event_at"],
                id=uuid.uuid5(_NAMESPACE, str(row["event_id"])),
            )
        )
    return specs, max(0, notable.height - limit)


def cycle_notification(summary: dict[str, Any], *, fleet: str, at: datetime) -> EventSpec:
    """One event per cycle on the fleet, carrying the summary."""
    return EventSpec(
        event=CYCLE_COMPLETED,
        resource={"prefect.resource.id": f"{PREFIX}.fleet.{fleet}", "prefect.resource.name": fleet},
        related=[],
        payload={key: _plain(value) for key, value in summary.items()},
        occurred=at,
        id=uuid.uuid5(_NAMESPACE, f"cycle|{summary.get('cycle_id', at.isoformat())}"),
    )


def guard_notifications(alerts: pl.DataFrame, *, fleet: str, limit: int = MAX_BREAK_EVENTS) -> list[EventSpec]:
    """One event per guard alert of this cycle (raised first), on its account or symbol."""
    specs = []
    for row in (
        alerts.sort("event", "guard", "login", "symbol", descending=[True, False, False, False])
        .head(limit)
        .iter_rows(named=True)
    ):
        on_account = row["login"] is not None
        resource_id = f"{PREFIX}.account.{row['login']}" if on_account else f"{PREFIX}.symbol.{row['symbol']}"
        specs.append(
            EventSpec(
                event=GUARD_ALERT,
                resource={
                    "prefect.resource.id": resource_id,
                    "prefect.resource.name": f"{row['guard']} {row['event']}",
                    f"{PREFIX}.guard": str(row["guard"]),
                    f"{PREFIX}.alert": str(row["event"]),
                },
                related=[_fleet(fleet)],
                payload={key: _plain(value) for key, value in row.items()},
                occurred=row["at"],
                id=uuid.uuid5(_NAMESPACE, f"guard|{row['alert_id']}|{row['event']}"),
            )
        )
    return specs
