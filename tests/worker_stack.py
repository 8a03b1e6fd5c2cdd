"""Production-mode plumbing for tests: a Prefect server of the test's own, deployments from a
project file, worker and terminal-host processes, and the server's record of the runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from demo_fleet_files import demo_fleet_on_free_ports, free_port

from mt5recon.local import prefect_server
from mt5recon.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PREFECT = [sys.executable, "-m", "prefect", "--no-prompt"]


@contextmanager
def production_env(tmp_path: Path, **settings: str) -> Iterator[dict[str, str]]:
    """A Prefect server of its own, and the environment the CLI, workers and runs share."""
    port = free_port()
    with prefect_server(Settings(home=tmp_path / "home", prefect_port=port)) as api:
        yield {
            **os.environ,
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(tmp_path / "client-prefect"),
            "MT5RECON_HOME": str(tmp_path / "home"),
            "MT5RECON_FLEET": str(demo_fleet_on_free_ports(tmp_path / "fleet.toml")),
            "MT5RECON_PROJECT_DIR": str(ROOT),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            **settings,
        }


def deploy(env: dict[str, str], pool: str, project_file: str = "prefect.yaml") -> None:
    subprocess.run([*PREFECT, "work-pool", "create", pool, "--type", "process"], env=env, check=True, cwd=ROOT)
    done = subprocess.run(
        [*PREFECT, "deploy", "--prefect-file", project_file, "--all"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:  # the child keeps its own handle
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as an operator would; killed only if it does not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def reconcile_runs(api: str) -> list[dict[str, object]]:
    """The server's reconcile flow runs."""
    body = {"limit": 200, "flows": {"name": {"any_": ["reconcile"]}}}
    request = urllib.request.Request(
        f"{api}/flow_runs/filter", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.load(response))


def states(runs: list[dict[str, object]]) -> Counter[str]:
    return Counter(str(run["state_type"]) for run in runs)
