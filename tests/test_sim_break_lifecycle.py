"""Breaks over consecutive cycles of the simulated fleet: the real fetch, validation, engine and
lifecycle steps, on a simulated clock (no sleeping)."""

from __future__ import annotations

import polars as pl
from sim_cycle import run_cycle, sim_fleet_config

from mt5recon import pipeline
from mt5recon.recon import lifecycle
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet


class Cycles:
    """Run cycles 10 s apart, carrying the break state as the store would."""

    def __init__(self, sim: SimFleet, clock: SimClock) -> None:
        self.sim, self.clock = sim, clock
        self.config = sim_fleet_config(sim)
        self.state = pl.DataFrame(schema=lifecycle.STATE_SCHEMA)
        self.events: list[pl.DataFrame] = []

    def run(self, count: int = 1) -> None:
        for _ in range(count):
            result = run_cycle(self.sim, self.config).result
            update = pipeline.advance_breaks(self.state, result, self.config, at=self.sim.now())
            self.state = lifecycle.merged(self.state, update)
            self.events.append(update.events)
            self.clock.advance(10)

    def history(self, login: int, kind: str) -> list[str]:
        events = pl.concat(self.events).filter((pl.col("login") == login) & (pl.col("kind") == kind))
        return events["event"].to_list()


def test_a_manual_trade_is_confirmed_then_resolved_when_closed() -> None:
    clock = SimClock(DEFAULT_START)
    sim = SimFleet.quiet(clock=clock)
    cycles = Cycles(sim, clock)
    ticket = sim.account(5001).manual_open("GBPUSD", "sell", 0.2)
    clock.advance(30)  # past the grace window of a fresh position
    cycles.run(3)
    assert cycles.history(5001, "unknown_position") == ["observed", "opened"]
    sim.account(5001).manual_close(ticket)
    cycles.run(1)
    assert cycles.history(5001, "unknown_position") == ["observed", "opened", "resolved"]
    resolved = cycles.state.filter(pl.col("kind") == "unknown_position").row(0, named=True)
    assert resolved["status"] == "resolved" and resolved["age_secs"] == 30.0


def test_a_disconnect_opens_a_snapshot_break_and_no_missing_break() -> None:
    clock = SimClock(DEFAULT_START)
    sim = SimFleet.quiet(clock=clock)
    cycles = Cycles(sim, clock)
    cycles.run(2)
    sim.account(5002).disconnect(seconds=25)  # the cycles at +0, +10 and +20 s fail
    cycles.run(4)
    assert cycles.history(5002, "snapshot_failed") == ["opened", "resolved"]
    assert cycles.history(5002, "missing_position") == [], "a failed snapshot is never a flat account"
    assert cycles.state.filter(pl.col("status") == "open").height == 0
