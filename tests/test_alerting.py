"""Break transitions become Prefect events, and the example automation turns them into a
webhook notification: end to end against a real (test) Prefect server and a local receiver."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import polars as pl
import pytest
from builders import NOW

from mt5recon.notifications import BREAK_OPENED, BREAK_RESOLVED, break_notifications, cycle_notification
from mt5recon.recon import lifecycle


def _events(rows: list[dict[str, Any]]) -> pl.DataFrame:
    base = {column: None for column in lifecycle.EVENT_SCHEMA}
    return pl.DataFrame([base | row for row in rows], schema=lifecycle.EVENT_SCHEMA)


EVENTS = _events(
    [
        {"event_id": "e1", "break_id": "b1", "login": 1, "kind": "slippage", "event": "opened", "size_money": -5.0},
        {
            "event_id": "e2",
            "break_id": "b2",
            "login": 2,
            "kind": "missing_position",
            "event": "opened",
            "size_money": -90.0,
            "symbol": "EURUSD",
        },
        {"event_id": "e3", "break_id": "b3", "login": 1, "kind": "unknown_position", "event": "resolved"},
        {"event_id": "e4", "break_id": "b4", "login": 1, "kind": "unknown_position", "event": "observed"},
        {"event_id": "e5", "break_id": "b5", "login": 3, "kind": "sl_mismatch", "event": "updated"},
        {"event_id": "e6", "break_id": "b6", "login": 3, "kind": "sl_mismatch", "event": "reopened"},
    ]
).with_columns(pl.lit(NOW).cast(lifecycle.EVENT_SCHEMA["event_at"]).alias("event_at"))


def test_only_transitions_worth_telling_are_notified_worst_first() -> None:
    specs, left_out = break_notifications(EVENTS, fleet="desk")
    assert [(s.event, s.resource["prefect.resource.id"]) for s in specs] == [
        (BREAK_OPENED, "mt5recon.break.b2"),
        (BREAK_OPENED, "mt5recon.break.b1"),
        (BREAK_RESOLVED, "mt5recon.break.b3"),
        (BREAK_OPENED, "mt5recon.break.b6"),
    ]
    assert left_out == 0
    assert specs[0].resource["prefect.resource.name"] == "missing_position on 2 EURUSD"
    assert {r["prefect.resource.id"] for r in specs[0].related} == {"mt5recon.account.2", "mt5recon.fleet.desk"}
    json.dumps(specs[0].payload)  # JSON-ready for the event API


def test_event_ids_are_stable_so_a_retried_publish_never_notifies_twice() -> None:
    first, _ = break_notifications(EVENTS, fleet="desk")
    again, _ = break_notifications(EVENTS.reverse(), fleet="desk")
    assert {s.id for s in first} == {s.id for s in again}
    limited, left_out = break_notifications(EVENTS, fleet="desk", limit=1)
    assert len(limited) == 1 and left_out == 3
    cycle = cycle_notification({"cycle_id": "desk:1", "accounts": 3}, fleet="desk", at=NOW)
    assert cycle.id == cycle_notification({"cycle_id": "desk:1"}, fleet="desk", at=NOW).id


class _Receiver(BaseHTTPRequestHandler):
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.put(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_the_example_automation_notifies_a_webhook_when_a_break_opens(prefect_api: None, receiver: str) -> None:
    from prefect.events import emit_event

    from mt5recon.alerting import BREAKS_AUTOMATION, install_automations

    installed = install_automations(receiver)
    assert set(installed.automation_ids) >= {BREAKS_AUTOMATION}
    assert install_automations(receiver).automation_ids.keys() == installed.automation_ids.keys(), "re-install replaces"
    now = datetime.now(UTC)
    fresh = EVENTS.filter(pl.col("event_id") == "e2").with_columns(
        pl.lit(now).cast(lifecycle.EVENT_SCHEMA["event_at"]).alias("event_at"),
        pl.lit(f"e2-{now.timestamp()}").alias("event_id"),
    )
    [spec], _ = break_notifications(fresh, fleet="desk")
    emit_event(spec.event, resource=spec.resource, related=spec.related, payload=spec.payload, id=spec.id)
    deadline = now + timedelta(seconds=90)
    while datetime.now(UTC) < deadline:
        try:
            message = _Receiver.received.get(timeout=1)
        except queue.Empty:
            continue
        if "missing_position" in message.get("subject", ""):
            break
    else:
        pytest.fail("no notification reached the webhook")
    assert "account 2 EURUSD" in message["body"] and "size" in message["body"]
