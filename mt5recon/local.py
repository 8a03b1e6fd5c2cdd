"""Local mode: a Prefect server with its UI, the simulated fleet (when the fleet is simulated),
and the deployments served in-process, with the settings that make a 10-second cadence punctual.
One Ctrl-C stops everything."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mt5recon.settings import Settings


def prefect_env(settings: Settings) -> dict[str, str]:
    """Prefect settings for local mode: data under the project's home, fast polling, vacuum on."""
    home = settings.resolved_home()
    api = f"http://{settings.prefect_host}:{settings.prefect_port}/api"
    return {
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_UI_API_URL": api,
        "PREFECT_SERVER_API_HOST": settings.prefect_host,
        "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",  # default polling starts 10 s runs up to 6 s late
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
        # ~0.2 MB of runs and events per 10-second cycle: two days is ~3.5 GB, a week would be ~14
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(2 * 24 * 3600),
        "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": "P2D",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "INFO"),
    }


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def prefect_server(settings: Settings, *, startup_timeout_secs: float = 120.0) -> Iterator[str]:
    """Start `prefect server start` (or reuse one already answering) and stop it on exit."""
    env = {**os.environ, **prefect_env(settings)}
    api_url = env["PREFECT_API_URL"]
    if _healthy(api_url):
        yield api_url
        return
    log_path = Path(env["PREFECT_HOME"]) / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                settings.prefect_host,
                "--port",
                str(settings.prefect_port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us; we stop the server ourselves, in order
        )
    try:
        deadline = time.monotonic() + startup_timeout_secs
        while not _healthy(api_url):
            if server.poll() is not None:
                raise RuntimeError(f"prefect server exited with {server.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prefect server not healthy after {startup_timeout_secs:.0f} s; see {log_path}")
            time.sleep(0.25)
        yield api_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def run_local(settings: Settings) -> None:
    """The README's main command: server + UI, simulated fleet if configured, 10-second deployment."""
    os.environ.update(prefect_env(settings))
    settings.resolved_home().mkdir(parents=True, exist_ok=True)
    from mt5recon.fleet import load_fleet
    from mt5recon.serving import cancel_late_runs, serve_deployments, start_late_run_reaper
    from mt5recon.terminal.sim_host import hosted_fleet

    fleet = load_fleet(settings.fleet)
    with prefect_server(settings) as api_url:
        print(f"Prefect UI: {api_url.removesuffix('/api')}  (Ctrl-C stops everything)", flush=True)
        with hosted_fleet(fleet, settings.resolved_home()):
            cancelled = cancel_late_runs(settings.max_start_delay_secs)
            print(f"cancelled {cancelled} late run(s) left from an earlier session", flush=True)
            stop = threading.Event()
            start_late_run_reaper(settings.max_start_delay_secs, settings.interval_secs, stop)
            try:
                serve_deployments(settings)
            finally:
                stop.set()
