"""The connector turns MT5 records into typed frames with UTC times, whatever the broker's clock."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from sim_cycle import run_cycle, sim_fleet_config

from mt5recon import frames
from mt5recon.terminal.connector import records_to_frame
from mt5recon.terminal.records import TradePosition
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


_POSITION = TradePosition(
    ticket=7,
    time=1_700_000_000,
    time_msc=1_700_000_000_000,
    time_update=1_700_000_000,
    time_update_msc=1_700_000_000_000,
    type=0,
    magic=42,
    identifier=7,
    reason=3,
    volume=0.1,
    price_open=1.1,
    sl=0.0,
    tp=0.0,
    price_current=1.1,
    swap=0.0,
    profit=0.0,
    symbol="EURUSD",
    comment="",
    external_id="",
)


@pytest.mark.parametrize(
    ("description", "odd", "column", "expected"),
    [
        ("an int where MT5 sends a float is the same number", {"sl": 0}, "sl", 0.0),
        ("a float ticket is kept as sent for validation to judge", {"magic": 42.5}, "magic", None),
        ("text in a price is not a number", {"price_open": "1.1x"}, "price_open", None),
        ("a number as the symbol is kept as text", {"symbol": 5}, "symbol", "5"),
        ("a ticket past Int64 is not a ticket", {"magic": 2**70}, "magic", None),
    ],
)
def test_off_type_values_from_a_terminal_reach_validation_without_breaking_the_frame(
    description: str, odd: dict[str, object], column: str, expected: object
) -> None:
    at = DEFAULT_START
    good = _POSITION._replace(ticket=8, identifier=8)
    frame = records_to_frame("positions", [([_POSITION._replace(**odd), good], 5001, at, 0)])
    assert frame.schema == frames.POSITIONS, description
    assert frame[column].to_list()[0] == expected, description
    assert frame["ticket"].to_list() == [7, 8], f"{description}: both rows kept, in order"
