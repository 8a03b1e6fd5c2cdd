"""Scale-out on one machine: the fleet in two shards (prefect.sharded.yaml), two workers on
one pool, every shard committing to one DuckLake whose catalog is the real Postgres. Every
shard commits every cycle; no cycle is lost or written twice; every account is reconciled by
exactly one shard."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from store_catalogs import PG_DSN, fresh_metadata_schema
from worker_stack import PREFECT, deploy, production_env, reconcile_runs, start, states, stop

from mt5recon.fleet import load_fleet
from mt5recon.sharding import shard_fleet
from mt5recon.store.lake import StoreConfig, open_reader

WAIT_SECS = 300
POOL = "mt5recon-shards"
SHARDS = 2


def test_two_workers_two_shards_one_lake(tmp_path: Path) -> None:
    with (
        fresh_metadata_schema() as schema,
        production_env(
            tmp_path,
            MT5RECON_STORE_CATALOG=f"postgres:{PG_DSN}",
            MT5RECON_STORE_METADATA_SCHEMA=schema,
            # two shards' run processes start every 10 s on 2 cores: this test is about shards, not punctuality
            MT5RECON_MAX_START_DELAY_SECS="30",
            PREFECT_WORKER_PREFETCH_SECONDS="5",  # as prefect.sharded.yaml's header: one slot per shard
        ) as env,
    ):
        deploy(env, POOL, "prefect.sharded.yaml")
        terminals = start([sys.executable, "-m", "mt5recon.cli", "sim", "serve"], env, tmp_path / "terminals.log")
        workers = [
            start([*PREFECT, "worker", "start", "--pool", POOL, "--name", f"w{i}"], env, tmp_path / f"worker{i}.log")
            for i in range(2)
        ]
        runs: list[dict[str, object]] = []
        try:
            deadline = time.monotonic() + WAIT_SECS
            while time.monotonic() < deadline:
                try:
                    runs = reconcile_runs(env["PREFECT_API_URL"])
                except OSError:  # the server (SQLite, 2 busy cores) is slow to answer: ask again
                    time.sleep(1)
                    continue
                done = [r for r in runs if r["state_type"] == "COMPLETED"]
                per_deployment = {str(r["deployment_id"]) for r in done}
                if (
                    len(per_deployment) == SHARDS
                    and min(sum(1 for r in done if r["deployment_id"] == d) for d in per_deployment) >= 3
                ):
                    break
                time.sleep(1)  # polling another process's server: no event to wait on
        finally:
            for worker in workers:
                stop(worker)
            stop(terminals)
        logs = "\n".join((tmp_path / f"worker{i}.log").read_text(errors="replace")[-1500:] for i in range(2))
        seen = states(runs)
        assert seen["FAILED"] == 0 and seen["CRASHED"] == 0, f"{seen}\n{logs}"
        completed = [r for r in runs if r["state_type"] == "COMPLETED"]
        assert len({str(r["deployment_id"]) for r in completed}) == SHARDS, f"both shards ran: {seen}\n{logs}"

        fleet = load_fleet(Path(env["MT5RECON_FLEET"]))
        config = StoreConfig.under(tmp_path / "home", catalog=f"postgres:{PG_DSN}", metadata_schema=schema)
        reader = open_reader(config)
        try:
            per_cycle = reader.execute(
                "SELECT cycle_id, count(*), count(DISTINCT login) FROM cycles GROUP BY cycle_id ORDER BY cycle_id"
            ).fetchall()
            ledger = reader.execute("SELECT count(*), count(DISTINCT cycle_id) FROM cycle_ledger").fetchone()
            owners = dict(
                reader.execute(
                    "SELECT login, count(DISTINCT split_part(cycle_id, ':', 1)) FROM cycles GROUP BY login"
                ).fetchall()
            )
        finally:
            reader.close()
    expected = {
        shard_fleet(fleet, shard, SHARDS).name: len(shard_fleet(fleet, shard, SHARDS).accounts)
        for shard in range(SHARDS)
    }
    committed: dict[str, int] = {}
    for cycle_id, rows, logins in per_cycle:
        name = cycle_id.split(":", 1)[0]
        assert rows == logins == expected[name], f"cycle {cycle_id}: {rows} rows for {logins} accounts"
        committed[name] = committed.get(name, 0) + 1
    assert set(committed) == set(expected) and min(committed.values()) >= 3, committed
    assert ledger is not None and ledger[0] == ledger[1] == len(per_cycle), "one ledger row per cycle, none twice"
    assert sum(committed.values()) == len(completed), "every completed run committed exactly one cycle"
    assert set(owners) == {a.login for a in fleet.accounts} and set(owners.values()) == {1}, "one shard per account"
