"""The README's main command as a user runs it: a local Prefect server, the simulated fleet
behind its bridges, the 10-second deployment; an analyst reads the store the whole time."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from demo_fleet_files import demo_fleet_on_free_ports, free_port

from mt5recon.store.lake import StoreConfig, open_reader

WAIT_SECS = 240


def _flow_runs(api: str) -> list[dict[str, object]]:
    request = urllib.request.Request(
        f"{api}/flow_runs/filter",
        data=json.dumps({"limit": 200}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.load(response))


def _expected_start(run: dict[str, object]) -> str:
    return str(run["expected_start_time"])  # ISO 8601 in UTC: sorts as text


def _finished_runs(api: str) -> list[dict[str, object]]:
    done = ("COMPLETED", "CANCELLED", "FAILED", "CRASHED")
    return sorted((r for r in _flow_runs(api) if r["state_type"] in done), key=_expected_start)


def _message(run: dict[str, object]) -> str:
    state = run.get("state")
    return str(state.get("message") or "") if isinstance(state, dict) else ""


def _cancelled_by_us(run: dict[str, object]) -> bool:
    return any(reason in _message(run) for reason in ("after its scheduled time", "previous cycle is still running"))


def _steady(finished: list[dict[str, object]], cycles: int = 3, interval_secs: float = 10.0) -> bool:
    """The last `cycles` finished runs all completed, on consecutive schedule slots."""
    last = finished[-cycles:]
    if len(last) < cycles or any(r["state_type"] != "COMPLETED" for r in last):
        return False
    starts = [datetime.fromisoformat(_expected_start(r)) for r in last]
    return all(abs((b - a).total_seconds() - interval_secs) < 0.5 for a, b in itertools.pairwise(starts))


def _said(run: dict[str, object]) -> str:
    return f"{run['name']} due {run['expected_start_time']}: {run['state_type']} {_message(run)}"


def test_up_runs_cycles_on_schedule_while_an_analyst_reads(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "MT5RECON_HOME": str(tmp_path / "home"),
        "MT5RECON_FLEET": str(demo_fleet_on_free_ports(tmp_path / "fleet.toml")),
        "MT5RECON_PREFECT_PORT": str(port),
    }
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115 - closed in finally
    up = subprocess.Popen([sys.executable, "-m", "mt5recon.cli", "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    reader = None
    reader_errors: list[str] = []
    seen_cycles: list[int] = []
    try:
        deadline = time.monotonic() + WAIT_SECS
        store = StoreConfig.under(tmp_path / "home")
        while time.monotonic() < deadline and up.poll() is None:
            if reader is None and store.sqlite_path is not None and store.sqlite_path.exists():
                try:
                    reader = open_reader(store)
                except Exception as error:  # the catalog may not exist yet on the very first cycle
                    reader_errors.append(f"open: {error}")
                    reader = None
            if reader is not None:
                try:
                    row = reader.execute("SELECT count(DISTINCT cycle_id) FROM cycles").fetchone()
                    seen_cycles.append(int(row[0]) if row else 0)
                except Exception as error:
                    reader_errors.append(str(error))
                if seen_cycles and seen_cycles[-1] >= 4:
                    break
            time.sleep(1)
        assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
        assert seen_cycles and seen_cycles[-1] >= 4, (
            f"cycles seen {seen_cycles}; log: {(tmp_path / 'up.log').read_text()[-3000:]}"
        )
        assert [e for e in reader_errors if not e.startswith("open:")] == [], reader_errors
        assert seen_cycles == sorted(seen_cycles), "the reader sees cycles only ever added"

        api = f"http://127.0.0.1:{port}/api"
        finished: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            finished = _finished_runs(api)
            if _steady(finished):
                break
            time.sleep(1)
        assert not [r for r in finished if r["state_type"] in ("FAILED", "CRASHED")], [_said(r) for r in finished]
        # warm-up may cost a run (due before its process could start a prefetch early, or beside a
        # first cycle slowed by creating the store); only the product's own reasons cancel a run,
        # never a concurrency-slot collision, and the cadence then holds: 3 cycles in a row, 10 s apart
        cancelled = [r for r in finished if r["state_type"] == "CANCELLED"]
        assert all(_cancelled_by_us(r) for r in cancelled), [_said(r) for r in cancelled]
        assert _steady(finished), [_said(r) for r in finished]
    finally:
        if reader is not None:
            reader.close()
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        finally:
            if up.poll() is None:
                up.kill()
            log.close()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "Ctrl-C stopped the Prefect server too"
