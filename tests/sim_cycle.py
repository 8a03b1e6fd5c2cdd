"""Run the real pipeline steps against an in-process simulated fleet on a simulated clock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mt5recon import pipeline
from mt5recon.fleet import AccountConfig, ConnectorConfig, ExpectedTradesSource, FleetConfig
from mt5recon.recon.engine import ReconResult
from mt5recon.snapshot import Snapshot
from mt5recon.sources import read_expected_trades
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.fleet import SimFleet


def sim_fleet_config(sim: SimFleet, name: str = "test", server_offset_secs: int = 0) -> FleetConfig:
    """A fleet file's worth of config pointing every account at the in-process simulator."""
    return FleetConfig(
        name=name,
        accounts=tuple(
            AccountConfig(
                login=a.login,
                server=a.spec.server,
                connector=ConnectorConfig(kind="sim"),
                server_offset_secs=server_offset_secs,
            )
            for a in sim.accounts()
        ),
        expected_trades=ExpectedTradesSource(kind="sim"),
    )


@dataclass(frozen=True)
class CycleRun:
    snapshot: Snapshot
    expected_raw: pl.DataFrame
    validated: pipeline.ValidatedCycle
    result: ReconResult

    def divergences(self, login: int | None = None) -> pl.DataFrame:
        found = self.result.divergences
        return found if login is None else found.filter(pl.col("login") == login)


def run_cycle(sim: SimFleet, config: FleetConfig | None = None) -> CycleRun:
    """fetch -> validate -> reconcile, exactly the flow's steps, at the simulator's `now`."""
    use_in_process_fleet(sim)
    config = config or sim_fleet_config(sim)
    at = sim.now()
    expected_raw = read_expected_trades(config.expected_trades, Path("."))
    expected = pipeline.validate_expected(expected_raw, now=at)
    snapshot, _ = pipeline.fetch_fleet(
        config,
        fetched_at=at,
        open_terminal=open_terminal,
        expected_raw=expected.valid,
    )
    validated = pipeline.validate_fetched(snapshot, expected, now=at)
    return CycleRun(snapshot, expected_raw, validated, pipeline.reconcile_cycle(validated, config))
