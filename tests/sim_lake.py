"""A store filled by real simulated-fleet cycles (the pipeline's own steps, no Prefect), for the CLI views' tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from sim_cycle import sim_fleet_config
from typer.testing import CliRunner, Result

from mt5recon import pipeline
from mt5recon.cli import app
from mt5recon.fleet import FleetConfig
from mt5recon.offline import commit_snapshot
from mt5recon.sharding import shard_expected_trades, shard_fleet, shard_scope
from mt5recon.sources import read_expected_trades
from mt5recon.store.lake import Store, StoreConfig, open_reader
from mt5recon.terminal.breaker import Breaker
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

runner = CliRunner()


@dataclass
class SimLake:
    """Cycles of a simulated fleet committed into a store under `home` by the flow's own steps
    (fetch with circuit breakers, validate, reconcile, advance state, commit), without Prefect, on
    the simulator's clock: 10 s per cycle, no sleeping."""

    home: Path
    sim: SimFleet
    clock: SimClock
    fleet: FleetConfig
    book: dict[int, Breaker] = field(default_factory=dict)

    @classmethod
    def quiet(
        cls,
        home: Path,
        extension_dir: Path,
        accounts: int,
        shards: tuple[int, ...] | None = None,
        **fleet_settings: object,
    ) -> SimLake:
        """A calm fleet of `accounts`; `shards` pins each account (in login order) to a shard;
        `fleet_settings` replace fields of the fleet config (e.g. a quicker breaker). The store's
        extension folder is the session's (installing the extensions costs seconds per store)."""
        clock = SimClock(DEFAULT_START)
        sim = SimFleet.quiet(clock=clock, accounts=accounts, prepopulate=False)
        fleet = sim_fleet_config(sim).model_copy(update=fleet_settings)
        if shards is not None:
            pinned = tuple(a.model_copy(update={"shard": s}) for a, s in zip(fleet.accounts, shards, strict=True))
            fleet = fleet.model_copy(update={"accounts": pinned})
        share_extensions(home, extension_dir)
        return cls(home, sim, clock, fleet)

    @property
    def config(self) -> StoreConfig:
        return StoreConfig.under(self.home)

    def run(self, count: int = 1, shards: int = 1) -> None:
        """`count` cycles, each one per shard at the same scheduled time, 10 s apart."""
        with Store.open(self.config) as store:
            for _ in range(count):
                for shard in range(shards):
                    self._commit(store, shard, shards)
                self.clock.advance(10)

    def _commit(self, store: Store, shard: int, shards: int) -> None:
        part, scope = shard_fleet(self.fleet, shard, shards), shard_scope(self.fleet, shard, shards)
        at = self.sim.now()
        use_in_process_fleet(self.sim)
        expected = shard_expected_trades(read_expected_trades(part.expected_trades, self.home), scope)
        snapshot, _, self.book = pipeline.fetch_with_breakers(
            part, fetched_at=at, open_terminal=open_terminal, expected_raw=expected, book=self.book
        )
        commit_snapshot(store, snapshot, expected, part, at=at, scope=scope)

    def query(self, sql: str) -> pl.DataFrame:
        """Read the store independently of the views under test."""
        con = open_reader(self.config)
        try:
            return con.execute(sql).pl()
        finally:
            con.close()

    def fleet_file(self, extra_logins: tuple[int, ...] = ()) -> Path:
        """The fleet as a TOML file for `--fleet` (plus accounts that never ran)."""
        lines = [f'name = "{self.fleet.name}"', 'expected_trades = { kind = "sim" }']
        for login in [a.login for a in self.fleet.accounts] + list(extra_logins):
            lines += ["[[accounts]]", f"login = {login}", 'server = "SimBroker-Demo"', 'connector = { kind = "sim" }']
        path = self.home / "fleet.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


def share_extensions(home: Path, extension_dir: Path) -> None:
    """Point the store's extension folder under `home` (where the CLI looks) at the session's."""
    (home / "store").mkdir(parents=True, exist_ok=True)
    (home / "store" / "extensions").symlink_to(extension_dir, target_is_directory=True)


def pin_clock(monkeypatch: pytest.MonkeyPatch, at: datetime) -> None:
    """Ages are measured at the simulator's time, not the wall clock's."""
    monkeypatch.setattr("mt5recon.views.utc_now", lambda: at)


def invoke(*args: str) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result
