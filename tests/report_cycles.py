"""Whole cycles of the simulated fleet committed to a store, without Prefect: the flow's own steps
(fetch with circuit breakers, validate, reconcile, advance the stored state, commit), on a
simulated clock. The report tests read what these cycles leave behind."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mt5recon import pipeline
from mt5recon.fleet import FleetConfig
from mt5recon.offline import commit_snapshot
from mt5recon.sources import read_expected_trades
from mt5recon.store.lake import Store
from mt5recon.terminal import breaker as breakers
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import SimFleet


def fleet_toml(
    sim: SimFleet, name: str, *, warning_pct: float = 3.0, critical_pct: float = 6.0, overrides: str = ""
) -> str:
    """A fleet file for the simulated accounts (what `--fleet` points at), drawdown levels included."""
    lines = [
        f"name = {name!r}",
        "[expected_trades]",
        'kind = "sim"',
        "[breaker]",
        "failure_threshold = 2",
        "cooldown_secs = 20.0",
        "[guards.drawdown.default]",
        f"warning_pct = {warning_pct}",
        f"critical_pct = {critical_pct}",
        "daily_loss_pct = 50.0",
        overrides,
    ]
    for account in sim.accounts():
        lines += ["[[accounts]]", f"login = {account.login}", f"server = {account.spec.server!r}"]
        lines += ['connector = { kind = "sim" }']
    return "\n".join(lines) + "\n"


@dataclass
class StoreCycles:
    """Cycles `step_secs` apart into `store`, breakers and stored state carried as the flow does."""

    sim: SimFleet
    clock: SimClock
    fleet: FleetConfig
    store: Store
    step_secs: float = 10.0
    book: dict[int, breakers.Breaker] = field(default_factory=dict)
    committed: list[str] = field(default_factory=list)

    def run(self, count: int = 1) -> None:
        for _ in range(count):
            self._one()
            self.clock.advance(self.step_secs)

    def _one(self) -> None:
        use_in_process_fleet(self.sim)
        at = self.sim.now()
        expected_raw = read_expected_trades(self.fleet.expected_trades, Path("."))
        snapshot, _, self.book = pipeline.fetch_with_breakers(
            self.fleet, fetched_at=at, open_terminal=open_terminal, expected_raw=expected_raw, book=self.book
        )
        committed = commit_snapshot(self.store, snapshot, expected_raw, self.fleet, at=at)
        self.committed.append(committed.cycle_id)
