"""Circuit breakers per terminal and typed last_error() codes: the state machine as scenario rows,
the book across runs, and a flapping simulated terminal while the rest of the fleet reconciles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from builders import NOW
from sim_cycle import sim_fleet_config

from mt5recon import pipeline
from mt5recon.terminal import constants as c
from mt5recon.terminal import errors
from mt5recon.terminal.breaker import Breaker, BreakerPolicy, allows, load_book, record, save_book
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

POLICY = BreakerPolicy(failure_threshold=3, cooldown_secs=30, max_cooldown_secs=100)


@dataclass(frozen=True)
class Step:
    after_secs: float  # since the previous step
    ok: bool
    transient: bool = True


@dataclass(frozen=True)
class Case:
    description: str
    steps: list[Step]
    states: list[str]  # the visible state after each step
    allowed: list[bool]  # whether the terminal was called at each step


CASES = [
    Case(
        "two failures stay closed, the third opens",
        [Step(0, False), Step(10, False), Step(10, False), Step(10, False)],
        ["closed", "closed", "open", "open"],
        [True, True, True, False],
    ),
    Case(
        "after the cooldown one probe: success closes",
        [Step(0, False), Step(10, False), Step(10, False), Step(30, True), Step(10, True)],
        ["closed", "closed", "open", "closed", "closed"],
        [True, True, True, True, True],
    ),
    Case(
        "a failed probe reopens with a doubled cooldown",
        [Step(0, False), Step(10, False), Step(10, False), Step(30, False), Step(30, False), Step(30, False)],
        ["closed", "closed", "open", "open", "open", "open"],
        [True, True, True, True, False, True],
    ),
    Case(
        "a permanent error (bad credentials) opens at once",
        [Step(0, False, transient=False), Step(10, True)],
        ["open", "open"],
        [True, False],
    ),
    Case(
        "a success in between resets the count",
        [Step(0, False), Step(10, False), Step(10, True), Step(10, False), Step(10, False)],
        ["closed"] * 5,
        [True] * 5,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.description)
def test_breaker_states(case: Case) -> None:
    breaker, now = Breaker(), NOW
    states, allowed = [], []
    for step in case.steps:
        now += timedelta(seconds=step.after_secs)
        called = allows(breaker, now)
        allowed.append(called)
        if called:
            breaker = record(breaker, ok=step.ok, now=now, policy=POLICY, transient=step.transient, error="e")
        states.append(breaker.visible_state(now + timedelta(milliseconds=1)))
    assert allowed == case.allowed, f"{case.description}: called {allowed}"
    assert states == case.states, f"{case.description}: states {states}"


def test_the_cooldown_doubles_up_to_its_cap() -> None:
    breaker, now = Breaker(), NOW
    cooldowns = []
    for _ in range(6):
        breaker = record(breaker, ok=False, now=now, policy=POLICY, transient=False)
        assert breaker.retry_at is not None
        cooldowns.append((breaker.retry_at - now).total_seconds())
        now = breaker.retry_at
    assert cooldowns == [30, 60, 100, 100, 100, 100]


def test_the_book_survives_a_new_process(tmp_path: Path) -> None:
    book = {5001: record(Breaker(), ok=False, now=NOW, policy=POLICY, transient=False, error="auth"), 5002: Breaker()}
    save_book(tmp_path / "breakers.json", book)
    assert load_book(tmp_path / "breakers.json") == book
    assert load_book(tmp_path / "missing.json") == {}


@pytest.mark.parametrize(
    ("code", "kind", "transient"),
    [
        (c.RES_E_FAIL, errors.GenericFailure, True),
        (c.RES_E_INVALID_PARAMS, errors.InvalidParams, False),
        (c.RES_E_NO_MEMORY, errors.OutOfMemory, True),
        (c.RES_E_NOT_FOUND, errors.NotFound, False),
        (c.RES_E_INVALID_VERSION, errors.InvalidVersion, False),
        (c.RES_E_AUTH_FAILED, errors.AuthFailed, False),
        (c.RES_E_UNSUPPORTED, errors.Unsupported, False),
        (c.RES_E_AUTO_TRADING_DISABLED, errors.AutoTradingDisabled, False),
        (c.RES_E_INTERNAL_FAIL, errors.IpcFailure, True),
        (c.RES_E_INTERNAL_FAIL_SEND, errors.IpcFailure, True),
        (c.RES_E_INTERNAL_FAIL_RECEIVE, errors.IpcFailure, True),
        (c.RES_E_INTERNAL_FAIL_INIT, errors.IpcFailure, True),
        (c.RES_E_INTERNAL_FAIL_CONNECT, errors.Disconnected, True),
        (c.RES_E_INTERNAL_FAIL_TIMEOUT, errors.IpcTimeout, True),
        (-424242, errors.GenericFailure, True),
    ],
)
def test_last_error_codes_are_typed(code: int, kind: type[errors.TerminalError], transient: bool) -> None:
    error = errors.error_for(code, "message", "positions_get", 5001)
    assert type(error) is kind and error.transient is transient and errors.is_transient(code) is transient
    assert "positions_get" in str(error) and str(code) in str(error)


def test_a_flapping_terminal_is_rested_while_the_others_reconcile() -> None:
    clock = SimClock(DEFAULT_START)
    sim = SimFleet.quiet(clock=clock)
    fleet = sim_fleet_config(sim).model_copy(update={"breaker": POLICY})
    use_in_process_fleet(sim)
    flapping = sim.account(5003)
    book: dict[int, Breaker] = {}
    seen: list[tuple[str, bool]] = []
    rested: list[bool] = []
    try:
        for number in range(9):
            if number == 0:
                flapping.fail_timeout(calls=None)  # every call times out (-10005) until cleared
            if number == 4:
                flapping.clear_faults()  # healthy again before the probe at +50 s
            snapshot, _ = pipeline.fetch_fleet(fleet, fetched_at=sim.now(), open_terminal=open_terminal, book=book)
            book = pipeline.advance_breakers(book, snapshot, fleet, at=sim.now())
            accounts = snapshot.accounts
            others_ok = accounts.filter(pl.col("login") != 5003)["positions_ok"].all()
            seen.append((book.get(5003, Breaker()).visible_state(sim.now()), bool(others_ok)))
            rested.append(snapshot.errors.get(5003, "").startswith("circuit open"))
            clock.advance(10)
    finally:
        use_in_process_fleet(None)
    states = [state for state, _ in seen]
    assert all(ok for _, ok in seen), "the other accounts reconcile in every cycle"
    assert states[:3] == ["closed", "closed", "open"], states
    assert rested[3:5] == [True, True], f"not called while open: {rested}"
    assert states[5:] == ["closed"] * 4, f"the probe after the cooldown closes it again: {states}"
    assert snapshot.error_codes.get(5003) is None
