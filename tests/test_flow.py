"""The reconcile flow end to end under a real (test) Prefect API, on the in-process simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from sim_cycle import sim_fleet_config

from mt5recon.settings import Settings
from mt5recon.store.lake import StoreConfig, open_reader
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

ROOT = Path(__file__).resolve().parents[1]


def _write_fleet(sim: SimFleet, path: Path) -> Path:
    config = sim_fleet_config(sim, name="flowtest")
    # the flow stamps fetches with the wall clock; this world runs on a simulated one, so its
    # quotes look days old: the quote-age check is for live terminals
    lines = ['name = "flowtest"', "[breaks]", "stale_data_after_secs = 1e12", "[expected_trades]", 'kind = "sim"']
    for account in config.accounts:
        lines += [
            "[[accounts]]",
            f"login = {account.login}",
            f'server = "{account.server}"',
            'connector = { kind = "sim" }',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def _latest_table(key: str) -> list[dict[str, object]]:
    """The rows of the newest table artifact under `key`, as the UI shows them."""
    import json

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC, limit=1
        )
    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) else data  # type: ignore[return-value]


async def _events(prefix: str, expected: int) -> list[dict[str, object]]:
    """The server's events under `prefix`, once at least `expected` of them have been persisted."""
    from datetime import UTC, datetime, timedelta

    from prefect import get_client

    now = datetime.now(UTC)
    window = {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(hours=1)).isoformat()}
    body = {"filter": {"occurred": window, "event": {"prefix": [prefix]}}, "limit": 50}
    found: list[dict[str, object]] = []
    async with get_client() as client:
        for _ in range(60):  # the event persister writes in batches
            found = (await client._client.post("/events/filter", json=body)).json()["events"]
            if len(found) >= expected:
                break
            await asyncio.sleep(0.5)
    return found


def test_flow_runs_a_cycle_and_stores_it(prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.reconcile import reconcile_fleet

    clock = SimClock(DEFAULT_START)
    sim = SimFleet.quiet(clock=clock)
    sim.account(5001).manual_open("GBPUSD", "sell", 0.2)
    clock.advance(60)
    use_in_process_fleet(sim)
    monkeypatch.setenv("MT5RECON_HOME", str(tmp_path))
    fleet_file = _write_fleet(sim, tmp_path / "fleet.toml")

    first = asyncio.run(reconcile_fleet(fleet_file=str(fleet_file)))
    assert first["accounts"] == 10 and first["accounts_ok"] == 10
    assert first["breaks_pending"] >= 1, "an unknown position is observed once before it is confirmed"
    assert first["duplicate"] is False
    clock.advance(10)
    sim.account(5002).fail_timeout(calls=None)  # its terminal stops answering in the second cycle
    sim.account(5001).drawdown(12, max_move_pct=12)  # and 5001 falls 12 % below its peak
    second = asyncio.run(reconcile_fleet(fleet_file=str(fleet_file)))
    assert second["accounts_failed"] == 1 and second["breakers"] == {"closed": 10}, "one failure: not yet open"
    changed = asyncio.run(_latest_table("cycle-breaks"))
    assert {(r["login"], r["kind"], r["event"]) for r in changed} >= {(5002, "snapshot_failed", "opened")}, changed
    troubled = asyncio.run(_latest_table("terminal-health"))
    assert [(r["login"], r["error_kind"], r["breaker_state"]) for r in troubled] == [(5002, "ipc_timeout", "closed")]
    cycles_done = asyncio.run(_events("mt5recon.cycle.completed", 2))
    assert {e["payload"]["cycle_id"] for e in cycles_done} >= {first["cycle_id"], second["cycle_id"]}  # type: ignore[index]
    assert second["guard_alerts_raised"] >= 1 and second["worst_drawdown_pct"] >= 10, second
    guard_events = asyncio.run(_events("mt5recon.guard.alert", 1))
    assert any(
        e["payload"]["login"] == 5001 and e["payload"]["guard"] == "drawdown_warning"  # type: ignore[index]
        for e in guard_events
    ), guard_events
    opened = asyncio.run(_events("mt5recon.break.opened", 2))
    kinds = {(e["payload"]["login"], e["payload"]["kind"]) for e in opened}  # type: ignore[index]
    assert {(5001, "unknown_position"), (5002, "snapshot_failed")} <= kinds, kinds
    assert second["open_breaks_by_kind"].get("unknown_position", 0) >= 1, "confirmed on the second observation"

    reader = open_reader(StoreConfig.under(tmp_path))
    try:
        cycles = reader.execute("SELECT count(*), count(DISTINCT cycle_id) FROM cycles").fetchone()
        manual = reader.execute(
            "SELECT status, occurrences FROM breaks WHERE kind = 'unknown_position' AND cause = 'manual' AND login = 5001"
        ).fetchall()
        events = reader.execute(
            "SELECT event FROM break_events WHERE kind = 'unknown_position' AND login = 5001 ORDER BY event_at"
        ).fetchall()
        opened, later = reader.execute(
            "SELECT count(*) FILTER (WHERE change = 'opened' AND cycle_id = min_cycle), "
            "count(*) FILTER (WHERE cycle_id <> min_cycle) "
            "FROM position_changes, (SELECT min(cycle_id) AS min_cycle FROM cycles)"
        ).fetchone()
        current = reader.execute("SELECT count(*) FROM current_positions").fetchone()
        warnings = reader.execute(
            "SELECT count(*) FROM guard_alerts WHERE login = 5001 AND guard = 'drawdown_warning' AND event = 'raised'"
        ).fetchone()
        health = reader.execute(
            "SELECT count(*), count(*) FILTER (WHERE connected AND breaker_state = 'closed') FROM terminal_health"
        ).fetchone()
    finally:
        reader.close()
    assert cycles == (20, 2)
    assert warnings == (1,), "the drawdown alert is stored once"
    assert manual == [("open", 2)]
    assert events == [("observed",), ("opened",)]
    assert opened == first["positions"], "first cycle: every position opened"
    assert current == (first["positions"],), "the failed fetch of 5002 closed none of its positions"
    assert later < second["positions"], "the second cycle writes changes only, not a copy of every position"
    assert health == (20, 19), "every terminal's health, every cycle; 5002 failed the second"
    use_in_process_fleet(None)


@pytest.mark.parametrize("project_file", ["prefect.yaml", "prefect.sharded.yaml"])
def test_every_prefect_yaml_entrypoint_loads_with_its_parameters(project_file: str) -> None:
    from prefect.flows import load_flow_from_entrypoint

    config = yaml.safe_load((ROOT / project_file).read_text())
    deployments = config["deployments"]
    assert deployments, f"{project_file} declares deployments"
    for deployment in deployments:
        flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
        assert flow.name, deployment["entrypoint"]
        flow.validate_parameters(deployment.get("parameters") or {})  # the parameters fit the flow


def test_the_shard_deployments_cover_every_shard_once() -> None:
    config = yaml.safe_load((ROOT / "prefect.sharded.yaml").read_text())
    shards = [d["parameters"] for d in config["deployments"] if d["entrypoint"].endswith(":reconcile_fleet")]
    assert sorted(p["shard"] for p in shards) == list(range(shards[0]["shards"]))
    assert {p["shards"] for p in shards} == {len(shards)}


@pytest.mark.parametrize(("project_file", "slots"), [("prefect.yaml", "served"), ("prefect.sharded.yaml", 1)])
def test_cycle_deployments_run_every_ten_seconds_and_cancel_runs_past_their_slots(
    project_file: str, slots: int | str
) -> None:
    """prefect.yaml takes the slots `up` serves with (the cycle and the next runs' early processes);
    a shard takes one. Runs past the slots are cancelled, never queued."""
    from mt5recon.serving import CYCLE_SLOTS

    limit = CYCLE_SLOTS if slots == "served" else slots
    config = yaml.safe_load((ROOT / project_file).read_text())
    cycles = [d for d in config["deployments"] if d["entrypoint"].endswith(":reconcile_fleet")]
    assert cycles
    for reconcile in cycles:
        assert reconcile["schedules"][0]["interval"] == 10
        assert reconcile["concurrency_limit"] == {"limit": limit, "collision_strategy": "CANCEL_NEW"}


def test_a_run_that_begins_while_its_deployment_still_runs_a_cycle_cancels_itself(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Extra slots let the next runs' processes start early; they never let two cycles run at once."""
    from prefect import get_client
    from prefect.flow_engine import run_flow_async
    from prefect.states import Completed, Running

    from flows.reconcile import reconcile_fleet
    from mt5recon.serving import another_run_running

    monkeypatch.setenv("MT5RECON_HOME", str(tmp_path))

    async def scenario() -> tuple[str, str, bool, bool]:
        deployment = await reconcile_fleet.ato_deployment(name="overlap-test")
        deployment_id = await deployment.aapply()
        async with get_client() as client:
            running = await client.create_flow_run_from_deployment(deployment_id)
            late = await client.create_flow_run_from_deployment(deployment_id)
            await client.set_flow_run_state(running.id, Running(), force=True)
            state = await run_flow_async(reconcile_fleet, flow_run=late, return_type="state")
            seen_by_the_running_one = await another_run_running(deployment_id, running.id)
            await client.set_flow_run_state(running.id, Completed(), force=True)
            after = await another_run_running(deployment_id, late.id)
        return state.type.value, state.message or "", seen_by_the_running_one, after

    state_type, message, seen_by_the_running_one, after = asyncio.run(scenario())
    assert (state_type, "previous cycle is still running" in message) == ("CANCELLED", True), message
    assert not seen_by_the_running_one, "the late run ended: nothing else runs"
    assert not after, "once the cycle completed, the next run may go"
    assert not StoreConfig.under(tmp_path).exists(), "the skipped run wrote nothing"


def test_settings_are_read_when_asked_not_at_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MT5RECON_HOME", str(tmp_path))
    assert Settings().resolved_home() == tmp_path.resolve()


def test_housekeeping_flow_reports_what_it_did(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.housekeeping import housekeep_store
    from mt5recon.store.lake import Store
    from mt5recon.store.samples import sample_cycle

    monkeypatch.setenv("MT5RECON_HOME", str(tmp_path))
    with Store.open(StoreConfig.under(tmp_path)) as store:
        for number in range(3):
            store.commit_cycle(f"hk-{number}", sample_cycle(f"hk-{number}"))
    stats = asyncio.run(housekeep_store())
    assert set(stats["step_secs"]) == {"measure", "retention", "compact", "expire"}
    assert stats["files_after"] >= 1
    with Store.open(StoreConfig.under(tmp_path)) as store:
        assert store.has_cycle("hk-0")
