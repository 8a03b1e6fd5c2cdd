"""Production mode as the README has it: a Prefect server, `prefect deploy --all` from
prefect.yaml, a process worker on the pool with the 10-second settings; the terminals live
elsewhere (here: `mt5recon sim serve` in its own process)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from worker_stack import PREFECT, deploy, production_env, reconcile_runs, start, states, stop

from mt5recon.store.lake import StoreConfig, open_reader

WAIT_SECS = 240


def test_prefect_deploy_and_a_worker_run_the_ten_second_cycle(tmp_path: Path) -> None:
    # a process worker starts a Python process per run: on a slow 2-core machine (`import prefect`
    # ~5 s) that is ~10-20 s from claim to cycle, so runs start late; this test is about deploying
    # and a worker running the cycle, `up`'s test about punctuality
    with production_env(tmp_path, MT5RECON_MAX_START_DELAY_SECS="30") as env:
        deploy(env, "mt5recon")
        terminals = start([sys.executable, "-m", "mt5recon.cli", "sim", "serve"], env, tmp_path / "terminals.log")
        worker = start([*PREFECT, "worker", "start", "--pool", "mt5recon"], env, tmp_path / "worker.log")
        seen = states([])
        try:
            deadline = time.monotonic() + WAIT_SECS
            while time.monotonic() < deadline and worker.poll() is None and seen["COMPLETED"] < 3:
                seen = states(reconcile_runs(env["PREFECT_API_URL"]))
                time.sleep(1)  # polling another process's server: no event to wait on
        finally:
            stop(worker)
            stop(terminals)
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
    assert seen["COMPLETED"] >= 3, f"{seen}\n{worker_log}"
    assert seen["FAILED"] == 0 and seen["CRASHED"] == 0, f"{seen}\n{worker_log}"
    reader = open_reader(StoreConfig.under(tmp_path / "home"))
    try:
        row = reader.execute(
            "SELECT count(DISTINCT cycle_id), count(*) FILTER (WHERE status = 'ok') FROM cycles"
        ).fetchone()
    finally:
        reader.close()
    assert row is not None and row[0] >= 3 and row[1] >= 30, f"cycles, ok account-cycles: {row}"
