"""The connector turns MT5 records into typed frames with UTC times, whatever the broker's clock."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from sim_cycle import run_cycle, sim_fleet_config

from mt5recon import frames
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

GMT_PLUS_2 = 7200


def test_server_clock_offset_becomes_utc() -> None:
    sim = SimFleet.quiet(clock=SimClock(DEFAULT_START), server_offset_secs=GMT_PLUS_2)
    run = run_cycle(sim, sim_fleet_config(sim, server_offset_secs=GMT_PLUS_2))
    positions = run.snapshot.positions
    assert positions.height > 100
    assert positions["time"].max() <= sim.now(), "no position opened in the future"
    assert positions["time"].min() >= sim.now() - timedelta(hours=2), "prepopulated over the last hour"
    assert run.result.divergences.height == 0


def test_a_wrong_offset_shows_as_times_in_the_future() -> None:
    sim = SimFleet.quiet(clock=SimClock(DEFAULT_START), server_offset_secs=GMT_PLUS_2)
    run = run_cycle(sim, sim_fleet_config(sim, server_offset_secs=0))
    assert run.snapshot.positions["time"].max() > sim.now() + timedelta(hours=1)


def test_frames_have_the_declared_dtypes() -> None:
    sim = SimFleet.quiet(clock=SimClock(DEFAULT_START))
    sim.account(5001).deposit(2_500)
    run = run_cycle(sim)
    for name, frame in run.snapshot.frames().items():
        assert frame.schema == frames.SNAPSHOT_FRAMES[name], name
    balance = run.snapshot.deals.filter(pl.col("type") == 2)  # DEAL_TYPE_BALANCE
    assert balance["profit"].to_list() == [2_500.0], "the deposit inside the deals window comes through"
