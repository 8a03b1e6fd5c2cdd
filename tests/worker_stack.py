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
from typing import cast

from demo_fleet_files import demo_fleet_on_free_ports, free_port

from mt5recon.local import prefect_server
from mt5recon.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PREFECT = [sys.executable, "-m", "prefect", "--no-prompt"]
PAGE = 200  # the server's largest page of a filter request


@contextmanager
def production_env(tmp_path: Path, *, fleet: Path | None = None, **settings: str) -> Iterator[dict[str, str]]:
    """A Prefect server of its own, and the environment the CLI, workers and runs share; the fleet
    is `fleet`, else the demo fleet on free ports."""
    port = free_port()
    with prefect_server(Settings(home=tmp_path / "home", prefect_port=port)) as api:
        yield {
            **os.environ,
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(tmp_path / "client-prefect"),
            "MT5RECON_HOME": str(tmp_path / "home"),
            "MT5RECON_FLEET": str(fleet or demo_fleet_on_free_ports(tmp_path / "fleet.toml")),
            "MT5RECON_PROJECT_DIR": str(ROOT),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "15",
            **settings,
        }


def deploy(env: dict[str, str], pool: str, project_file: str = "prefect.yaml", *, quiet: bool = False) -> None:
    subprocess.run(
        [*PREFECT, "work-pool", "create", pool, "--type", "process"],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=quiet,
    )
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


API_TIMEOUT_SECS = 30.0  # a local SQLite-backed server on 2 busy cores once took over 10 s


def api_post(api: str, path: str, body: dict[str, object] | None = None) -> object:
    """POST a JSON body to the server's REST API; the decoded answer (None when empty)."""
    request = urllib.request.Request(
        f"{api}{path}", data=json.dumps(body or {}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=API_TIMEOUT_SECS) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def reconcile_runs(api: str) -> list[dict[str, object]]:
    """Every reconcile flow run the server has, page after page: the scheduler keeps ~100 future runs
    per deployment, so one page of 200 may hold none of the runs that already ran."""
    runs: dict[str, dict[str, object]] = {}  # by id: a run created meanwhile may shift a page
    offset = 0
    while True:
        body = {
            "limit": PAGE,
            "offset": offset,
            "sort": "EXPECTED_START_TIME_ASC",
            "flows": {"name": {"any_": ["reconcile"]}},
        }
        page = cast(list[dict[str, object]], api_post(api, "/flow_runs/filter", body))
        runs.update((str(run["id"]), run) for run in page)
        offset += len(page)
        if len(page) < PAGE:
            return list(runs.values())


def pause_deployments(api: str) -> list[str]:
    """Pause every deployment (the server deletes their runs not yet started); their names."""
    deployments = cast(list[dict[str, object]], api_post(api, "/deployments/filter", {"limit": PAGE}))
    for deployment in deployments:
        api_post(api, f"/deployments/{deployment['id']}/pause_deployment")
    return [str(deployment["name"]) for deployment in deployments]


def states(runs: list[dict[str, object]]) -> Counter[str]:
    return Counter(str(run["state_type"]) for run in runs)
