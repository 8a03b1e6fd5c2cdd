"""The connector turns MT5 records into typed frames with UTC times, whatever the broker's clock."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from sim_cycle import run_cycle, sim_fleet_config

from mt5recon import frames
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

GMT_PLUS_2 = 7200


def test_server_clock_offset_becomes_utc() -> None:
    sim = SimFleet.quiet(clock=SimClock(DEFAULT_START), server_offset_secs=GMT_PLUS_2)
    run = run_cycle(sim, sim_fleet_config(sim, server_offset_secs=GMT_PLUS_2))
    positions = run.snapshot.positions
    assert positions.height > 100
    assert positions["time"].max() <= sim.now(), "no position opened in the future"
    assert positions["time"].min() >= sim.now() - timedelta(hours=2), "prepopulated over the last hour"
    assert run.result.divergences.height == 0


def test_a_wrong_offset_shows_as_times_in_the_future() -> None:
    sim = SimFleet.quiet(clock=SimClock(DEFAULT_START), server_offset_secs=GMT_PLUS_2)
    run = run_cycle(sim, sim_fleet_config(sim, server_offset_secs=0))
    assert run.snapshot.positions["time"].max() > sim.now() + timedelta(hours=1)


def test_frames_have_the_declared_dtypes() -> None:
    sim = SimFleet.quiet(clock=SimClock(DEFAULT_START))
    sim.account(5001).deposit(2_500)
    run = run_cycle(sim)
    for name, frame in run.snapshot.frames().items():
        assert frame.schema == frames.SNAPSHOT_FRAMES[name], name
    balance = run.snapshot.deals.filter(pl.col("type") == 2)  # DEAL_TYPE_BALANCE
    assert balance["profit"].to_list() == [2_500.0], "the deposit inside the deals window comes through"


def test_official_module_sessions_take_turns() -> None:
    """Accounts on the official MetaTrader5 module (one terminal per process) are fetched one
    session at a time; bridge accounts stay parallel."""
    import threading
    from datetime import UTC, datetime

    from mt5recon import pipeline
    from mt5recon.fleet import ConnectorConfig

    sim = SimFleet.quiet(clock=SimClock(DEFAULT_START))
    active = {"metatrader5": 0, "bridge": 0}
    peak = {"metatrader5": 0, "bridge": 0}
    lock = threading.Lock()
    both_bridges_in = threading.Barrier(2, timeout=5)
    another_official_in = threading.Event()

    class Session:
        """A sim terminal that counts open sessions per connector kind until shutdown."""

        def __init__(self, login: int, kind: str) -> None:
            self.api, self.kind = sim.terminal(login), kind

        def __getattr__(self, name: str) -> object:
            return getattr(self.api, name)

        def shutdown(self) -> None:
            with lock:
                active[self.kind] -= 1

    def opener(account: object) -> Session:
        kind = account.connector.kind  # type: ignore[attr-defined]
        with lock:
            active[kind] += 1
            peak[kind] = max(peak[kind], active[kind])
        if kind == "bridge":
            both_bridges_in.wait()  # proves bridge sessions overlap
        elif active[kind] > 1:
            another_official_in.set()
        else:
            another_official_in.wait(0.2)  # give a second official session the chance to overlap
        return Session(account.login, kind)  # type: ignore[attr-defined]

    base = sim_fleet_config(sim)
    kinds = ["metatrader5"] * 4 + ["bridge"] * 2
    accounts = tuple(
        a.model_copy(update={"connector": ConnectorConfig(kind=k)}) for a, k in zip(base.accounts, kinds, strict=False)
    )
    fleet = base.model_copy(update={"accounts": accounts})
    snapshot, _ = pipeline.fetch_fleet(fleet, fetched_at=datetime.now(UTC), open_terminal=opener, concurrency=6)  # type: ignore[arg-type]
    assert snapshot.accounts["account_ok"].all()
    assert peak == {"metatrader5": 1, "bridge": 2}
