"""A snapshot of the past is worthless: runs that are already late are cancelled, never fired in
a burst, by the serving process (start-up and periodic check) and by the flow itself."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect import flow

from mt5recon.serving import cancel_late_runs, start_late_run_reaper
from mt5recon.store.lake import StoreConfig


@flow(name="late-probe")
def _probe() -> None:
    return None


async def _schedule(at: datetime) -> str:
    from prefect import get_client
    from prefect.states import Scheduled

    async with get_client() as client:
        run = await client.create_flow_run(_probe, state=Scheduled(scheduled_time=at))
        return str(run.id)


async def _state(run_id: str) -> str:
    from prefect import get_client

    async with get_client() as client:
        run = await client.read_flow_run(run_id)  # type: ignore[arg-type]
        return run.state.type.value if run.state else "NONE"


def test_runs_already_late_are_cancelled_and_future_ones_kept(prefect_api: None) -> None:
    now = datetime.now(UTC)
    backlog = [asyncio.run(_schedule(now - timedelta(seconds=s))) for s in (120, 60, 30)]
    due_soon = asyncio.run(_schedule(now + timedelta(seconds=60)))
    assert cancel_late_runs(grace_secs=5.0) >= 3
    assert [asyncio.run(_state(r)) for r in backlog] == ["CANCELLED"] * 3
    assert asyncio.run(_state(due_soon)) == "SCHEDULED"


def test_the_reaper_keeps_cancelling_while_serving(prefect_api: None) -> None:
    """An outage while serving (the machine slept) leaves late runs behind: the periodic check
    cancels them without anyone restarting anything."""
    stop = threading.Event()
    start_late_run_reaper(grace_secs=5.0, every_secs=0.2, stop=stop)
    try:
        late = asyncio.run(_schedule(datetime.now(UTC) - timedelta(seconds=45)))
        for _ in range(100):  # waits for the reaper's next rounds, not for a fixed time
            if asyncio.run(_state(late)) == "CANCELLED":
                break
            stop.wait(0.2)
        assert asyncio.run(_state(late)) == "CANCELLED"
    finally:
        stop.set()


def test_a_cycle_that_starts_late_cancels_itself_and_stores_nothing(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.reconcile as module

    monkeypatch.setenv("MT5RECON_HOME", str(tmp_path))
    monkeypatch.setattr(module, "_scheduled_time", lambda: datetime.now(UTC) - timedelta(seconds=40))
    state = asyncio.run(module.reconcile_fleet(return_state=True))  # type: ignore[call-overload]
    assert state.is_cancelled() and "after its scheduled time" in (state.message or "")
    assert not StoreConfig.under(tmp_path).exists(), "nothing fetched, nothing stored"
