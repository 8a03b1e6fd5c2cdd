"""Risk guards on the simulated fleet, cycle after cycle through the real fetch, validation,
reconciliation and guards: drawdown levels, a withdrawal, and the protective close in dry-run
and enabled mode (with a recovery inside the grace, and a failed snapshot during a breach)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pytest
from sim_cycle import run_cycle, sim_fleet_config

from mt5recon import pipeline
from mt5recon.fleet import FleetConfig
from mt5recon.guards.config import GuardConfig
from mt5recon.guards.cycle import GuardState, GuardUpdate
from mt5recon.guards.drawdown import DrawdownGuardConfig, DrawdownLevels
from mt5recon.guards.protect import CLOSE_COMMENT, ProtectConfig, execute_closes
from mt5recon.store.stored_state import StoredState, read_guard_state
from mt5recon.terminal import constants as c
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

LOGIN = 5001
LEVELS = DrawdownLevels(warning_pct=3, critical_pct=6, daily_loss_pct=50)


@dataclass
class GuardRun:
    """Cycles 10 s apart, the guard state carried between them as the store would."""

    sim: SimFleet
    clock: SimClock
    config: FleetConfig
    state: GuardState = field(default_factory=lambda: read_guard_state(None))
    updates: list[GuardUpdate] = field(default_factory=list)
    actions: list[pl.DataFrame] = field(default_factory=list)

    def cycle(self) -> GuardUpdate:
        run = run_cycle(self.sim, self.config)
        fresh = run.result.observed.filter(pl.col("reconciled")).select("login")
        stored = StoredState(*_empty_recon_state(), guards=self.state)
        update = pipeline.run_guards(stored, run.validated, fresh, self.config, at=self.sim.now())
        actions = execute_closes(
            update.protection.decisions,
            run.validated.frames["positions"],
            run.validated.frames["ticks"],
            self.config.guards.protect,
            lambda login: open_terminal(next(a for a in self.config.accounts if a.login == login)),
            at=self.sim.now(),
        )
        self.state = GuardState(update.drawdown.state, update.market.state, update.protection.pending)
        self.updates.append(update)
        self.actions.append(actions)
        self.clock.advance(10)
        return update

    def alerts(self, login: int = LOGIN) -> list[str]:
        rows = pl.concat([u.alerts for u in self.updates]).filter(pl.col("login") == login)
        return [f"{guard}:{event}" for guard, event in rows.select("guard", "event").iter_rows()]

    def decisions(self, login: int = LOGIN) -> list[list[str]]:
        return [u.protection.decisions.filter(pl.col("login") == login)["decision"].to_list() for u in self.updates]


def _empty_recon_state() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    empty = StoredState.empty()
    return empty.breaks, empty.positions, empty.trades


def _run(protect: ProtectConfig | None = None) -> GuardRun:
    clock = SimClock(DEFAULT_START)
    sim = SimFleet.quiet(clock=clock)
    guards = GuardConfig(drawdown=DrawdownGuardConfig(default=LEVELS), protect=protect or ProtectConfig())
    config = sim_fleet_config(sim).model_copy(update={"guards": guards})
    use_in_process_fleet(sim)
    return GuardRun(sim, clock, config)


@pytest.fixture(autouse=True)
def _release_fleet() -> Any:
    yield
    use_in_process_fleet(None)


def _recover(sim: SimFleet) -> None:
    """A rally: stops that fired on the way down realized their loss, so prices merely going back
    would not bring the equity back; a move in the account's favour does."""
    sim.account(LOGIN).drawdown(-12, max_move_pct=12)


def test_drawdown_through_warning_then_critical_then_recovery() -> None:
    run = _run()
    run.cycle()
    run.sim.account(LOGIN).drawdown(4, max_move_pct=5)
    run.cycle()
    run.cycle()  # still in the warning band: no second alert
    run.sim.account(LOGIN).drawdown(4, max_move_pct=5)
    run.cycle()
    _recover(run.sim)
    run.cycle()
    assert run.alerts() == [
        "drawdown_warning:raised",
        "drawdown_critical:raised",
        "drawdown_critical:cleared",
        "drawdown_warning:cleared",
    ], run.alerts()
    raised = pl.concat([u.alerts for u in run.updates]).filter(
        (pl.col("login") == LOGIN) & (pl.col("event") == "raised")
    )
    assert raised["peak_equity"].null_count() == 0 and (raised["equity"] < raised["peak_equity"]).all()


def test_a_withdrawal_is_not_a_drawdown() -> None:
    run = _run()
    run.cycle()
    equity = run.sim.account(LOGIN).info().equity
    run.sim.account(LOGIN).withdraw(equity * 0.3)
    run.cycle()
    run.cycle()
    assert run.alerts() == [], "30 % withdrawn: no drawdown alert"
    state = run.state.drawdown.filter(pl.col("login") == LOGIN).row(0, named=True)
    assert state["drawdown_pct"] < 1.0


@pytest.mark.parametrize("mode", ["dry_run", "enabled"])
def test_protective_close_after_the_grace(mode: str) -> None:
    run = _run(ProtectConfig(mode=mode, accounts=(LOGIN,), grace_secs=10))  # type: ignore[arg-type]
    run.cycle()
    run.sim.account(LOGIN).drawdown(8, max_move_pct=8)
    run.cycle()  # critical: announced
    run.cycle()  # 10 s later, still critical: close (or record it)
    run.cycle()  # after the close: nothing more in this breach
    assert run.decisions()[1:] == [["warn"], ["close"], []], run.decisions()
    assert "protective_close:announced" in run.alerts()
    actions = pl.concat(run.actions)
    assert set(actions["login"].to_list()) == {LOGIN} and actions.height > 0
    closing_deals = [d for d in run.sim.account(LOGIN).deals() if d.comment == CLOSE_COMMENT]
    if mode == "dry_run":
        assert actions["retcode"].null_count() == actions.height, "dry-run sends nothing"
        assert closing_deals == [], "and nothing reached the broker"
    else:
        assert set(actions["retcode"].to_list()) == {c.TRADE_RETCODE_DONE}, actions["result_comment"].to_list()
        assert {d.position_id for d in closing_deals} == set(actions["ticket"].to_list())
        assert not {p.ticket for p in run.sim.account(LOGIN).positions()} & set(actions["ticket"].to_list())


def test_a_recovery_inside_the_grace_cancels_the_close() -> None:
    run = _run(ProtectConfig(mode="enabled", accounts=(LOGIN,), grace_secs=10))
    run.cycle()
    run.sim.account(LOGIN).drawdown(8, max_move_pct=8)
    run.cycle()  # announced
    _recover(run.sim)
    run.cycle()  # recovered before the close
    assert run.decisions()[1:] == [["warn"], ["cancel"]], run.decisions()
    assert pl.concat(run.actions).height == 0, "nothing was sent"


def test_a_failed_snapshot_during_a_breach_takes_no_action() -> None:
    run = _run(ProtectConfig(mode="enabled", accounts=(LOGIN,), grace_secs=10))
    run.cycle()
    run.sim.account(LOGIN).drawdown(8, max_move_pct=8)
    run.cycle()  # announced
    run.sim.account(LOGIN).fail_snapshot(calls=None)
    run.cycle()  # the grace is over, but the snapshot failed: no decision
    run.cycle()
    assert run.decisions()[1:] == [["warn"], [], []], run.decisions()
    assert pl.concat(run.actions).height == 0
    run.sim.account(LOGIN).clear_faults()
    run.cycle()  # a fresh snapshot, still critical: now it closes
    assert run.decisions()[-1] == ["close"]
