"""The housekeeping flow publishes the report's summary as a markdown artifact once per UTC day,
read back from the (test) Prefect API; and when it is due, as a plain function."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from report_cycles import StoreCycles, fleet_toml

from mt5recon.fleet import load_fleet
from mt5recon.report.summary import daily_report_due, daily_report_key
from mt5recon.store.lake import Store, StoreConfig, open_reader
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import SimFleet

FLEET = "Daily Test"


def test_due_on_the_first_run_of_each_utc_day() -> None:
    now = datetime(2026, 11, 20, 0, 0, 4, tzinfo=UTC)
    assert daily_report_due(None, now)
    assert daily_report_due(datetime(2026, 11, 19, 0, 0, 9, tzinfo=UTC), now)  # under 24 h old, but yesterday
    assert not daily_report_due(now, now + timedelta(hours=1))  # the other hourly runs of the day
    assert not daily_report_due(now, now + timedelta(hours=23, minutes=59))
    assert daily_report_due(datetime(2026, 11, 18, 13, 0, tzinfo=UTC), now)  # days missed: the next run catches up
    # times in another zone count by their UTC date: 04:00 at +05:00 is 23:00 UTC the day before
    assert daily_report_due(datetime(2026, 11, 20, 4, 0, tzinfo=timezone(timedelta(hours=5))), now)


def test_artifact_key_is_what_prefect_accepts() -> None:
    assert daily_report_key("Daily Test") == "daily-report-daily-test"
    assert daily_report_key("prop_desk/EU #1") == "daily-report-prop-desk-eu-1"
    assert daily_report_key("£££") == "daily-report-fleet"


async def _daily_reports(key: str) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC
        )
    return [str(artifact.data) for artifact in artifacts]


def test_housekeeping_publishes_the_daily_report_once_a_day(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.housekeeping import housekeep_store

    # cycles in the last hour, so they fall in the report's 24 hours up to the flow's own `now`
    start = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    clock = SimClock(start)
    sim = SimFleet.quiet(clock=clock, accounts=3)
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(fleet_toml(sim, FLEET, warning_pct=1.0, critical_pct=2.0))
    with Store.open(StoreConfig.under(tmp_path)) as store:
        cycles = StoreCycles(sim, clock, load_fleet(fleet_file), store)
        cycles.run(2)
        sim.account(5001).drawdown(3, max_move_pct=5)
        sim.account(5002).bot_open("EURUSD", "buy", 0.5, slippage_pips=8)
        cycles.run(2)
    use_in_process_fleet(None)
    monkeypatch.setenv("MT5RECON_HOME", str(tmp_path))
    key = daily_report_key(FLEET)
    assert asyncio.run(_daily_reports(key)) == []

    day = datetime.now(UTC).date()
    asyncio.run(housekeep_store(fleet_file=str(fleet_file)))
    published = asyncio.run(_daily_reports(key))
    assert len(published) == 1
    markdown = published[0]
    assert markdown.startswith(f"### Report: {FLEET}\n")
    assert f"**{len(cycles.committed)} cycles**" in markdown
    con = open_reader(StoreConfig.under(tmp_path))
    try:
        deepest = con.execute(
            "SELECT login, max(equity) AS peak FROM account_snapshots WHERE account_ok GROUP BY login ORDER BY login"
        ).fetchall()
    finally:
        con.close()
    for login, peak in deepest:  # every account's row, with its peak from the store
        assert f"| {login} | USD | " in markdown and f"{peak:,.2f}" in markdown
    assert "| EURUSD | USD | 1 | 40.00 | 0.00 | 40.00 | 8.00 |" in markdown  # the slipped fill
    assert "| 1.00 | 2.00 |" in markdown  # the fleet's levels

    asyncio.run(housekeep_store(fleet_file=str(fleet_file)))  # the next hourly run
    if datetime.now(UTC).date() == day:  # (unless UTC midnight passed meanwhile: then a new day's report is due)
        assert len(asyncio.run(_daily_reports(key))) == 1
