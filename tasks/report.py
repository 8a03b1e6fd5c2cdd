"""What the Prefect UI shows per run: a markdown summary and a table of the breaks that changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from mt5recon.notifications import EventSpec, break_notifications, cycle_notification, guard_notifications
from mt5recon.store.housekeeping import HousekeepingStats

MAX_ROWS = 50


def summary_markdown(summary: dict[str, Any]) -> str:
    kinds = ", ".join(f"{k}: {n}" for k, n in summary["open_breaks_by_kind"].items()) or "none"
    breakers = ", ".join(f"{state}: {n}" for state, n in summary.get("breakers", {}).items()) or "none"
    worst = (
        f"{summary['worst_drawdown_pct']}% (account {summary['worst_drawdown_login']})"
        if summary.get("worst_drawdown_pct") is not None
        else "n/a"
    )
    return (
        f"### Cycle `{summary['cycle_id']}`\n\n"
        "| accounts | reconciled | stale | failed | positions | matched | divergences | breaks opened "
        "| breaks resolved | pending | quarantined |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {summary['accounts']} | {summary['accounts_ok']} | {summary['accounts_stale']} "
        f"| {summary['accounts_failed']} | {summary['positions']} "
        f"| {summary['matched']} | {summary['divergences']} | {summary['breaks_opened']} "
        f"| {summary['breaks_resolved']} | {summary['breaks_pending']} | {summary['quarantined']} |\n\n"
        f"Open breaks by kind (accounts observed this cycle): {kinds}\n\n"
        f"Terminal circuit breakers: {breakers}\n\n"
        f"Guards: {summary.get('guard_alerts_raised', 0)} alert(s) raised, "
        f"{summary.get('positions_at_risk', 0)} position(s) on flagged symbols, "
        f"{summary.get('protective_actions', 0)} protective order(s); worst drawdown {worst}\n"
    )


def changed_breaks(events: pl.DataFrame) -> pl.DataFrame:
    """This cycle's transitions, worst first, as the rows of the run's table artifact."""
    worst = events.sort(pl.col("size_money").abs(), pl.col("size_pips").abs(), descending=True, nulls_last=True)
    return worst.head(MAX_ROWS).select(
        "login", "event", "kind", "cause", "symbol", "trade_id", "size_pips", "size_money", "age_secs", "break_id"
    )


def troubled_terminals(health: pl.DataFrame) -> pl.DataFrame:
    """Terminals an operator should look at: breaker not closed, a failed call, or cut off from
    their server; with what the breaker and the terminal said."""
    troubled = (pl.col("breaker_state") != "closed") | pl.col("error_code").is_not_null() | ~pl.col("connected")
    return (
        health.filter(troubled.fill_null(True))
        .sort("login")
        .head(MAX_ROWS)
        .select("login", "breaker_state", "error_kind", "error_code", "connected", "data_age_secs", "calls_ms")
    )


def _emit(spec: EventSpec) -> None:
    emit_event(
        spec.event,
        resource=spec.resource,
        related=spec.related,
        payload=spec.payload,
        occurred=spec.occurred,
        id=spec.id,
    )


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_cycle_report(
    summary: dict[str, Any],
    events: pl.DataFrame,
    health: pl.DataFrame,
    guard_alerts: pl.DataFrame,
    fleet: str,
    at: datetime,
) -> int:
    """Artifacts for the run page, and events for automations; returns the break events sent."""
    notifications, left_out = break_notifications(events, fleet=fleet)
    for spec in [*notifications, *guard_notifications(guard_alerts, fleet=fleet)]:
        _emit(spec)
    create_table_artifact(
        guard_alerts.select("login", "symbol", "guard", "event", "value", "threshold", "detail")
        .head(MAX_ROWS)
        .to_dicts(),
        key="guard-alerts",
        description=f"guard levels crossed or cleared, protective closes, this cycle (top {MAX_ROWS})",
    )
    _emit(cycle_notification({**summary, "break_events_left_out": left_out}, fleet=fleet, at=at))
    create_markdown_artifact(summary_markdown(summary), key="cycle-summary", description="reconciliation cycle")
    create_table_artifact(
        troubled_terminals(health).to_dicts(),
        key="terminal-health",
        description=f"terminals with an open breaker, a failed call or no server connection (top {MAX_ROWS})",
    )
    create_table_artifact(
        changed_breaks(events).to_dicts(),
        key="cycle-breaks",
        description=f"breaks that changed this cycle (top {MAX_ROWS})",
    )
    return len(notifications)


@task(name="publish-housekeeping-report", cache_policy=NO_CACHE)
def publish_housekeeping_report(stats: HousekeepingStats) -> None:
    create_markdown_artifact(stats.markdown(), key="store-housekeeping", description="store housekeeping")
