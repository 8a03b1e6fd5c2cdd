"""Deployments served in-process, and clean-up of runs that went stale while nothing ran."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID

from mt5recon.settings import Settings

log = logging.getLogger(__name__)

DEPLOYMENT = "every-10s"
HOUSEKEEPING_DEPLOYMENT = "hourly"
# The cycle deployment's concurrency slots. A run's process starts a prefetch (15 s) early, claims
# its slot then and holds it until its cycle ends: from T - prefetch to T + lateness + duration.
# With one slot, start-up + cycle had to fit in one interval; with two, lateness + duration had to
# (a full suite on a slow 2-core machine measured 3.5 + 7.3 s), else CANCEL_NEW cancels a healthy
# run. Three cover lateness + duration up to 3 intervals - prefetch. Two cycles never run at once:
# a run that begins while another of its deployment is still running cancels itself
# (`another_run_running`), and runs past the slots are cancelled, never queued.
CYCLE_SLOTS = 3


def serve_deployments(settings: Settings) -> None:
    from prefect import serve
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Interval

    from flows.housekeeping import housekeep_store
    from flows.reconcile import reconcile_fleet

    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
    # the running cycle and the next runs' processes starting early: see `CYCLE_SLOTS`
    cycle_slots = ConcurrencyLimitConfig(limit=CYCLE_SLOTS, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)

    deployment = cast(
        RunnerDeployment,
        reconcile_fleet.to_deployment(
            name=DEPLOYMENT,
            interval=timedelta(seconds=settings.interval_secs),
            # runs beyond the slots are cancelled instead of queueing a backlog
            concurrency_limit=cycle_slots,
            description="Reconcile the whole fleet every 10 seconds",
        ),
    )
    housekeeping = cast(
        RunnerDeployment,
        housekeep_store.to_deployment(
            name=HOUSEKEEPING_DEPLOYMENT,
            # anchored to a fixed hour so restarts do not push the next run an interval away
            schedule=Interval(
                timedelta(seconds=settings.housekeeping_interval_secs), anchor_date=datetime(2026, 1, 1, tzinfo=UTC)
            ),
            concurrency_limit=one_at_a_time,
            description="Store retention, compaction, snapshot expiry and clean-up",
        ),
    )
    # The runner starts a run's process `prefetch` seconds early and the server holds it until its
    # time: that hides Python start-up (imports alone take 3-10 s, depending on the machine) and
    # makes runs punctual. The early process takes a concurrency slot from then on.
    serve(deployment, housekeeping, prefetch_seconds=settings.prefetch_secs)


async def _cancel_late_runs(grace: timedelta) -> int:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    cutoff = datetime.now(UTC) - grace
    flow_filter = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED, StateType.PENDING])),
        expected_start_time=FlowRunFilterExpectedStartTime(before_=cutoff),
    )
    cancelled = 0
    async with get_client() as client:
        while runs := await client.read_flow_runs(flow_run_filter=flow_filter, limit=200):
            for run in runs:
                await client.set_flow_run_state(
                    run.id, Cancelled(message="stale: a snapshot of the past is worthless"), force=True
                )
                cancelled += 1
    return cancelled


def cancel_late_runs(grace_secs: float = 5.0) -> int:
    """Cancel runs already late on start-up, instead of firing them in a burst."""
    return asyncio.run(_cancel_late_runs(timedelta(seconds=grace_secs)))


def start_late_run_reaper(grace_secs: float, every_secs: float, stop: threading.Event) -> threading.Thread:
    """Keep cancelling runs that fell behind (the machine slept, the server stalled, the runner
    lagged) while serving, so catching up never fires a burst of stale cycles."""

    def reap() -> None:
        while not stop.wait(every_secs):
            try:
                cancelled = cancel_late_runs(grace_secs)
            except Exception as error:  # the server may be restarting: try again next round
                log.warning("late-run check failed: %s", error)
                continue
            if cancelled:  # on the console of `up`, next to the server's own messages
                print(f"cancelled {cancelled} run(s) more than {grace_secs:g} s late (stale)", flush=True)

    thread = threading.Thread(target=reap, name="late-run-reaper", daemon=True)
    thread.start()
    return thread


async def another_run_running(deployment_id: UUID | None, flow_run_id: UUID | None) -> bool:
    """Another run of the same deployment is in the Running state (an ad-hoc run has no deployment:
    nothing to overlap with)."""
    if deployment_id is None:
        return False
    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    others = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
        id=FlowRunFilterId(not_any_=[flow_run_id] if flow_run_id else []),
    )
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=others,
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            limit=1,
        )
    return bool(runs)


def start_delay_secs(scheduled_at: datetime, started_at: datetime) -> float:
    """How late a run started against its schedule (negative: early)."""
    return (started_at - scheduled_at).total_seconds()
