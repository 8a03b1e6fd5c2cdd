"""A terminal that hangs past the cycle's fetch deadline: its account is that cycle's IPC timeout,
the other accounts are fetched on time, and its late answer never enters the cycle."""

from __future__ import annotations

import polars as pl
import pytest
from sim_cycle import sim_fleet_config

from mt5recon import pipeline
from mt5recon.terminal import constants as c
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import WallClock
from mt5recon.terminal.simulator.fleet import SimFleet


def test_a_hung_terminal_times_out_alone() -> None:
    sim = SimFleet.quiet(clock=WallClock(), accounts=4)
    fleet = sim_fleet_config(sim).model_copy(update={"fetch_deadline_secs": 0.8})
    sim.account(5002).fail_timeout(calls=1, delay_secs=2.5, methods={"positions_get"})  # blocks for real
    use_in_process_fleet(sim)
    try:
        snapshot, _ = pipeline.fetch_fleet(
            fleet, fetched_at=sim.now(), open_terminal=open_terminal, deadline_secs=fleet.fetch_deadline_secs
        )
        book = pipeline.advance_breakers({}, snapshot, fleet, at=sim.now())
    finally:
        use_in_process_fleet(None)
    accounts = snapshot.accounts.sort("login")
    assert accounts.filter(pl.col("login") != 5002)["positions_ok"].all(), "the others were fetched"
    hung = accounts.filter(pl.col("login") == 5002).row(0, named=True)
    assert not hung["positions_ok"] and not hung["account_ok"], "reported failed, never flat"
    assert snapshot.error_codes[5002] == c.RES_E_INTERNAL_FAIL_TIMEOUT
    assert "deadline" in snapshot.errors[5002], "the fetch returned while the terminal was still busy"
    assert snapshot.positions.filter(pl.col("login") == 5002).height == 0, "no late rows in this cycle"
    assert book[5002].failures == 1 and book[5002].state == "closed", "a transient failure counts toward the breaker"


def test_hundreds_of_terminals_fan_out_within_the_concurrency_limit() -> None:
    """250 slow terminals (50 ms a snapshot): all fetched in one cycle, never more than the limit
    talking at once, each account's rows its own."""
    import threading

    sim = SimFleet.quiet(clock=WallClock(), accounts=250, prepopulate=False)
    fleet = sim_fleet_config(sim)
    for login in sim.logins:
        sim.account(login).slow_down(0.05, methods={"account_info"})
    limit, inside, peak = 20, [0], [0]
    lock = threading.Lock()

    class Counted:
        read_many = None  # the fetch calls one by one through this wrapper, so account_info is seen

        def __init__(self, api: object) -> None:
            self._api = api

        def __getattr__(self, name: str) -> object:
            return getattr(self._api, name)

        def account_info(self) -> object:
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            try:
                return self._api.account_info()  # type: ignore[attr-defined]
            finally:
                with lock:
                    inside[0] -= 1

    use_in_process_fleet(sim)
    try:
        snapshot, _ = pipeline.fetch_fleet(
            fleet, fetched_at=sim.now(), open_terminal=lambda a: Counted(open_terminal(a)), concurrency=limit
        )  # type: ignore[arg-type, return-value]
    finally:
        use_in_process_fleet(None)
    assert snapshot.accounts.height == 250 and snapshot.accounts["account_ok"].all()
    assert sorted(snapshot.accounts["login"].to_list()) == sorted(sim.logins)
    assert 1 < peak[0] <= limit, f"{peak[0]} terminals at once with a limit of {limit}"
    logins = snapshot.health["login"].to_list()
    assert len(logins) == len(set(logins)) == 250, "one health row per terminal"


def test_frames_built_a_chunk_at_a_time_are_the_frames_built_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers become frames in chunks while the fan-out goes on, accounts asked a window ahead
    (memory): same rows, same order."""
    from mt5recon.terminal.simulator.clock import SimClock
    from mt5recon.terminal.simulator.fleet import DEFAULT_START

    sim = SimFleet.quiet(clock=SimClock(DEFAULT_START), accounts=7)
    sim.account(5003).fail_auth()
    fleet = sim_fleet_config(sim)
    snapshots = {}
    use_in_process_fleet(sim)
    try:
        for chunk in (1000, 3, 1):
            monkeypatch.setattr(pipeline, "FRAMES_EVERY_ACCOUNTS", chunk)
            # one terminal at a time: accounts are asked at most two chunks ahead of the frames built
            snapshots[chunk], _ = pipeline.fetch_fleet(
                fleet, fetched_at=sim.now(), open_terminal=open_terminal, concurrency=1
            )
    finally:
        use_in_process_fleet(None)
    whole = snapshots[1000]
    assert whole.positions.height > 0 and 5003 in whole.errors, "a real fleet with one refused login"
    for chunk in (3, 1):
        for name, frame in snapshots[chunk].frames().items():
            assert frame.equals(whole.frames()[name]), f"{name} built {chunk} accounts at a time"
        assert snapshots[chunk].errors.keys() == whole.errors.keys(), "the same account failed"
