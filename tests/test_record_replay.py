"""What `record` writes, `replay` reads back: a recorded period re-reconciles to the same results."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from sim_cycle import run_cycle, sim_fleet_config

from mt5recon import pipeline
from mt5recon.recordings import replay_cycle
from mt5recon.store.lake import Store, StoreConfig
from mt5recon.terminal.recording import Replay, record_cycle
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet
from mt5recon.terminal.simulator.scenarios import ScenarioRates


def _busy_fleet() -> tuple[SimFleet, SimClock]:
    clock = SimClock(DEFAULT_START)
    rates = ScenarioRates()  # the demo's scenarios, now and then
    return SimFleet.demo(seed=11, clock=clock, rates=rates), clock


def test_replay_reproduces_live_results(tmp_path: Path) -> None:
    sim, clock = _busy_fleet()
    config = sim_fleet_config(sim)
    sim.account(5002).malform("nan_price_open")
    sim.account(5003).fail_snapshot(methods={"positions_get"})
    live = []
    for _ in range(4):
        clock.advance(30)
        run = run_cycle(sim, config)
        record_cycle(tmp_path, run.snapshot, run.expected_raw, sim.now())
        live.append(run)

    recording = Replay(tmp_path)
    cycles = recording.cycles()
    assert len(cycles) == 4
    for at, run in zip(cycles, live, strict=True):
        expected = recording.expected_trades(at)
        assert expected is not None
        validated = pipeline.validate_cycle(recording.snapshot(at), expected, now=at)
        result = pipeline.reconcile_cycle(validated, config)
        assert result.divergences.equals(run.result.divergences), f"divergences differ at {at}"
        assert result.matches.equals(run.result.matches), f"matches differ at {at}"
        assert validated.quarantine.drop("quarantined_at").equals(run.validated.quarantine.drop("quarantined_at"))
    assert live[0].validated.quarantine.height >= 1, "the malformed row was recorded and quarantined again"


def test_replay_with_other_tolerances_into_its_own_store_is_idempotent(tmp_path: Path) -> None:
    sim, clock = _busy_fleet()
    config = sim_fleet_config(sim)
    sim.account(5001).bot_open("EURUSD", "buy", 0.1, slippage_pips=8, record_position_id=False)
    for _ in range(2):
        clock.advance(30)
        run = run_cycle(sim, config)
        record_cycle(tmp_path / "rec", run.snapshot, run.expected_raw, sim.now())

    recording = Replay(tmp_path / "rec")
    lenient = config.model_copy(
        update={
            "tolerances": config.tolerances.model_copy(
                update={"default": config.tolerances.default.model_copy(update={"slippage_pips": 20.0})}
            )
        }
    )
    with Store.open(StoreConfig.under(tmp_path / "replay")) as store:
        first = [replay_cycle(recording, at, lenient, tmp_path, store) for at in recording.cycles()]
        again = [replay_cycle(recording, at, lenient, tmp_path, store) for at in recording.cycles()]
        assert not any(r.duplicate for r in first)
        assert all(r.duplicate for r in again), "a replayed cycle adds nothing twice"
        slips = store.connection.execute(
            "SELECT count(*) FROM breaks WHERE kind = 'slippage' AND abs(size_pips) < 20"
        ).fetchone()
        cycles = store.connection.execute("SELECT count(DISTINCT cycle_id) FROM cycles").fetchone()
    assert slips == (0,), "the 8-pip slip is within the replay's 20-pip tolerance"
    assert cycles == (2,)


def test_replay_refuses_a_folder_that_is_not_a_recording(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a recording"):
        Replay(tmp_path)


def test_recorded_frames_carry_login_and_fetched_at(tmp_path: Path) -> None:
    sim, _ = _busy_fleet()
    run = run_cycle(sim)
    record_cycle(tmp_path, run.snapshot, run.expected_raw, sim.now())
    for name in ("accounts", "positions", "orders", "deals", "ticks", "symbols", "expected_trades"):
        frame = pl.read_parquet(next((tmp_path / name).glob("*.parquet")))
        assert {"login", "fetched_at"} <= set(frame.columns), name
    accounts = pl.read_parquet(next((tmp_path / "accounts").glob("*.parquet")))
    assert {"account_ok", "positions_ok", "orders_ok", "deals_ok"} <= set(accounts.columns)
