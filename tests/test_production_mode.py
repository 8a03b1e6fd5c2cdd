"""Production mode as the README has it: a Prefect server, `prefect deploy --all` from
prefect.yaml, a process worker on the pool with the 10-second settings; the terminals live
elsewhere (here: `mt5recon sim serve` in its own process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_fleet_files import demo_fleet_on_free_ports, free_port

from mt5recon.local import prefect_server
from mt5recon.settings import Settings
from mt5recon.store.lake import StoreConfig, open_reader

ROOT = Path(__file__).resolve().parents[1]
WAIT_SECS = 240
POOL = "mt5recon"  # the work pool prefect.yaml names


def _post(api: str, path: str, body: dict[str, object]) -> list[dict[str, object]]:
    request = urllib.request.Request(
        f"{api}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.load(response))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def production_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A Prefect server of its own, the fleet file and the data folder the worker's runs use."""
    port = free_port()
    settings = Settings(home=tmp_path / "home", prefect_port=port)
    with prefect_server(settings) as api:
        yield {
            **os.environ,
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(tmp_path / "client-prefect"),
            "MT5RECON_HOME": str(tmp_path / "home"),
            "MT5RECON_FLEET": str(demo_fleet_on_free_ports(tmp_path / "fleet.toml")),
            "MT5RECON_PROJECT_DIR": str(ROOT),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        }


def test_prefect_deploy_and_a_worker_run_the_ten_second_cycle(production_env: dict[str, str], tmp_path: Path) -> None:
    env = production_env
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    subprocess.run([*prefect, "work-pool", "create", POOL, "--type", "process"], env=env, check=True, cwd=ROOT)
    deployed = subprocess.run([*prefect, "deploy", "--all"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]

    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("terminals", "worker")}  # noqa: SIM115
    terminals = subprocess.Popen(
        [sys.executable, "-m", "mt5recon.cli", "sim", "serve"],
        env=env,
        stdout=logs["terminals"],
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [*prefect, "worker", "start", "--pool", POOL],
        env=env,
        cwd=ROOT,
        stdout=logs["worker"],
        stderr=subprocess.STDOUT,
    )
    api = env["PREFECT_API_URL"]
    states: Counter[str] = Counter()
    try:
        deadline = time.monotonic() + WAIT_SECS
        while time.monotonic() < deadline and worker.poll() is None:
            runs = _post(api, "/flow_runs/filter", {"limit": 200, "flows": {"name": {"any_": ["reconcile"]}}})
            states = Counter(str(r["state_type"]) for r in runs)
            if states["COMPLETED"] >= 3:
                break
            time.sleep(1)  # polling another process's server: no event to wait on
    finally:
        _stop(worker)
        _stop(terminals)
        for log in logs.values():
            log.close()
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
    assert states["COMPLETED"] >= 3, f"{states}\n{worker_log}"
    assert states["FAILED"] == 0 and states["CRASHED"] == 0, f"{states}\n{worker_log}"
    reader = open_reader(StoreConfig.under(tmp_path / "home"))
    try:
        row = reader.execute(
            "SELECT count(DISTINCT cycle_id), count(*) FILTER (WHERE status = 'ok') FROM cycles"
        ).fetchone()
    finally:
        reader.close()
    assert row is not None and row[0] >= 3 and row[1] >= 30, f"cycles, ok account-cycles: {row}"
