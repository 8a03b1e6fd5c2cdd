"""Whole cycles of the simulated fleet committed to a store, without Prefect: the flow's own steps
(fetch with circuit breakers, validate, reconcile, advance the stored state, commit), on a
simulated clock. The report tests read what these cycles leave behind."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from mt5recon import pipeline
from mt5recon.fleet import FleetConfig
from mt5recon.sources import read_expected_trades
from mt5recon.store.lake import Store
from mt5recon.store.stored_state import read_stored_state
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
        snapshot, _ = pipeline.fetch_fleet(
            self.fleet, fetched_at=at, open_terminal=open_terminal, expected_raw=expected_raw, book=self.book
        )
        self.book = pipeline.advance_breakers(self.book, snapshot, self.fleet, at=at)
        snapshot = replace(snapshot, health=pipeline.with_breaker_states(snapshot.health, self.book, at))
        validated = pipeline.validate_cycle(snapshot, expected_raw, now=at)
        result = pipeline.reconcile_cycle(validated, self.fleet, as_of=at)
        stored = read_stored_state(self.store.connection, *pipeline.break_state_keys(self.fleet, result))
        state = pipeline.advance_state(stored, validated, result, self.fleet, at=at)
        cycle_id = pipeline.cycle_id_for(self.fleet.name, at)
        tables = pipeline.cycle_tables(
            cycle_id=cycle_id,
            started_at=at,
            finished_at=at,
            snapshot=snapshot,
            validated=validated,
            result=result,
            state=state,
            fetch_ms=1.0,
            reconcile_ms=1.0,
        )
        self.store.commit_cycle(cycle_id, tables, pipeline.state_deletes(state))
        self.committed.append(cycle_id)
