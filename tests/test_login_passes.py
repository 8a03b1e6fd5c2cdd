"""A large fleet is reconciled and diffed a range of logins at a time (a bounded working set):
the result must be exactly the one-pass result, whatever the range size, on a simulated fleet
where every scenario and fault happens often, and on generated histories."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from builders import NOW, frame
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal as frames_equal
from sim_cycle import run_cycle, sim_fleet_config

from mt5recon import history, pipeline
from mt5recon.login_ranges import in_range, login_ranges
from mt5recon.recon.engine import ReconResult, reconcile
from mt5recon.store.stored_state import POSITIONS_SCHEMA, TRADES_SCHEMA
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.config import ScenarioRates
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

ONE_PASS = 1_000_000


def assert_frame_equal(got: pl.DataFrame, expected: pl.DataFrame, *, obj: str) -> None:
    """polars' comparison, its message prefixed with what was compared."""
    try:
        frames_equal(got, expected)
    except AssertionError as error:
        raise AssertionError(f"{obj}: {error}") from None


def test_login_ranges_cover_every_login_once_in_order() -> None:
    accounts = pl.DataFrame({"login": [7, 3, 3, None, 12, 5, 9]}, schema={"login": pl.Int64})
    assert login_ranges(accounts, 2) == [(3, 5), (7, 9), (12, 12)]
    assert login_ranges(accounts, 10) == [(3, 12)]
    assert login_ranges(accounts.clear(), 2) == []
    assert in_range(accounts, 5, 9)["login"].to_list() == [7, 5, 9]
    with pytest.raises(ValueError, match="at least 1"):
        login_ranges(accounts, 0)


def _busy_fleet(seed: int) -> SimFleet:
    """Every scenario and fault many times an hour: failed calls, malformed rows (quarantined),
    disconnects (stale), manual and foreign trades, slippage, closes at the broker."""
    rates = ScenarioRates(**{f.name: 30.0 for f in fields(ScenarioRates) if f.name.endswith("_per_hour")})
    rates = replace(rates, slippage=0.3, partial_fill=0.2)
    return SimFleet.demo(seed=seed, clock=SimClock(DEFAULT_START), accounts=8, rates=rates)


def _assert_same_result(one: ReconResult, passes: ReconResult, description: str) -> None:
    for name in (f.name for f in fields(ReconResult)):
        assert_frame_equal(getattr(passes, name), getattr(one, name), obj=f"{description}: {name}")


@pytest.mark.parametrize("seed", [3, 11])
def test_reconciling_in_passes_equals_one_pass_on_a_busy_simulated_fleet(seed: int) -> None:
    sim = _busy_fleet(seed)
    config = sim_fleet_config(sim)
    seen_kinds: set[str] = set()
    stored_positions = pl.DataFrame(schema=POSITIONS_SCHEMA)
    stored_trades = pl.DataFrame(schema=TRADES_SCHEMA)
    for cycle in range(8):
        sim.clock.advance(30.0)
        run = run_cycle(sim, config)
        v, at = run.validated, sim.now()
        seen_kinds |= set(run.result.divergences["kind"].to_list())
        inputs: dict[str, Any] = {
            "accounts": v.frames["accounts"],
            "positions": v.frames["positions"],
            "deals": v.frames["deals"],
            "symbols": v.frames["symbols"],
            "expected_trades": v.frames["expected_trades"],
            "tolerances": config.tolerances,
            "symbol_map": config.symbol_map,
            "quarantine": v.quarantine,
            "as_of": at,
            "policy": config.breaks,
            "health": v.health,
        }
        one = reconcile(**inputs, accounts_per_pass=ONE_PASS)
        _assert_same_result(one, run.result, f"cycle {cycle}: the pipeline's pass")
        for per_pass in (1, 3):
            _assert_same_result(one, reconcile(**inputs, accounts_per_pass=per_pass), f"cycle {cycle}, {per_pass}")
        # accounts in no login order: the per-account frames keep the accounts' order
        shuffled = {**inputs, "accounts": inputs["accounts"].sample(fraction=1.0, shuffle=True, seed=cycle)}
        _assert_same_result(
            reconcile(**shuffled, accounts_per_pass=ONE_PASS),
            reconcile(**shuffled, accounts_per_pass=2),
            f"cycle {cycle}, shuffled accounts",
        )
        stored_positions, stored_trades = _same_histories(stored_positions, stored_trades, v, one, at, cycle)
    assert {"missing_position", "unknown_position", "snapshot_failed"} <= seen_kinds, seen_kinds


def _same_histories(
    positions: pl.DataFrame,
    trades: pl.DataFrame,
    validated: pipeline.ValidatedCycle,
    result: ReconResult,
    at: Any,
    cycle: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Both histories diffed in passes of 1 and 2 logins equal one pass; returns the stored state
    after the one-pass changes, as the store would hold it."""
    reconciled = result.observed.filter(pl.col("reconciled")).select("login")
    quarantined = pl.DataFrame(schema={"login": pl.Int64, "identifier": pl.Int64})

    def diff(per_pass: int) -> tuple[history.ChangeSet, history.ChangeSet]:
        return (
            history.track_positions(
                positions,
                validated.frames["positions"],
                result.matches,
                reconciled=reconciled,
                quarantined=quarantined,
                at=at,
                logins_per_pass=per_pass,
            ),
            history.track_trades(
                trades,
                validated.frames["expected_trades"],
                quarantine=validated.quarantine,
                at=at,
                logins_per_pass=per_pass,
            ),
        )

    one = diff(ONE_PASS)
    for per_pass in (1, 2):
        for whole, passes in zip(one, diff(per_pass), strict=True):
            for part in ("changes", "upserts", "deletes"):
                expected_part, got = getattr(whole, part), getattr(passes, part)
                assert_frame_equal(got, expected_part, obj=f"cycle {cycle}, {per_pass} per pass: {part}")
    return _apply(positions, one[0], "position_key"), _apply(trades, one[1], "trade_key")


def _apply(state: pl.DataFrame, change: history.ChangeSet, key: str) -> pl.DataFrame:
    kept = state.join(change.upserts.select(key), on=key, how="anti").join(change.deletes, on=key, how="anti")
    return pl.concat([kept, change.upserts.select(state.columns)], how="vertical").sort(key)


_trade = st.fixed_dictionaries(
    {
        "login": st.sampled_from([2, 9, 10, 11, 100, 1000]),  # keys sort as text: "10:" before "2:"
        "trade_id": st.sampled_from(["t1", "t2", "t3"]),
        "volume": st.sampled_from([0.1, 0.2]),
        "sl": st.sampled_from([None, 1.09]),
    }
)
_trades = st.lists(_trade, max_size=14, unique_by=lambda r: (r["login"], r["trade_id"]))


@settings(max_examples=60, deadline=None)
@given(_trades, _trades, st.integers(1, 4))
def test_bot_trade_history_in_passes_equals_one_pass(
    first: list[dict[str, Any]], second: list[dict[str, Any]], per_pass: int
) -> None:
    """Logins appearing, staying and vanishing between two cycles, diffed in any range size."""
    quarantine = pl.DataFrame(schema={"frame": pl.String, "raw": pl.String})

    def diff(state: pl.DataFrame, rows: list[dict[str, Any]], at: Any, size: int) -> history.ChangeSet:
        expected = frame("expected_trades", rows)
        return history.track_trades(state, expected, quarantine=quarantine, at=at, logins_per_pass=size)

    start = pl.DataFrame(schema=TRADES_SCHEMA)
    state = _apply(start, diff(start, first, NOW, ONE_PASS), "trade_key")
    later = NOW + timedelta(seconds=10)
    whole, passes = diff(state, second, later, ONE_PASS), diff(state, second, later, per_pass)
    for part in ("changes", "upserts", "deletes"):
        assert_frame_equal(getattr(passes, part), getattr(whole, part), obj=part)
