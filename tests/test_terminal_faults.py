"""Terminal failure modes as scenario rows, through the real fetch, breakers, validation, engine
and break lifecycle: the faulted account is reported (failed or stale), never read as flat, and
every other account is reconciled in the same cycle."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sim_cycle import sim_fleet_config

from mt5recon import pipeline
from mt5recon.fleet import ConnectorConfig, FleetConfig
from mt5recon.recon import lifecycle
from mt5recon.sources import read_expected_trades
from mt5recon.terminal import breaker as breakers
from mt5recon.terminal.bridge import serve_bridge
from mt5recon.terminal.factory import open_terminal, sessions
from mt5recon.terminal.session import SessionTerminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock, WallClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet
from mt5recon.terminal.simulator.terminal import SimTerminal

FAULTED = 5003
QUICK_BREAKER = breakers.BreakerPolicy(failure_threshold=3, cooldown_secs=30, max_cooldown_secs=120)


class Harness:
    """Cycles of the whole fleet 10 s apart (simulated) or back to back (wall clock), carrying the
    break state and the breaker book between cycles as the store and the book file would."""

    def __init__(self, *, wall_clock: bool, deadline_secs: float = 6.0) -> None:
        self.clock = WallClock() if wall_clock else SimClock(DEFAULT_START)
        self.sim = SimFleet.quiet(clock=self.clock, accounts=4)
        self.config: FleetConfig = sim_fleet_config(self.sim).model_copy(
            update={"breaker": QUICK_BREAKER, "fetch_deadline_secs": deadline_secs}
        )
        self.state = pl.DataFrame(schema=lifecycle.STATE_SCHEMA)
        self.book: dict[int, breakers.Breaker] = {}
        self.events: list[pl.DataFrame] = []
        self.observed: list[dict[int, bool]] = []
        self.breaker_states: list[str] = []
        self.hosts: list[Any] = []

    def cycle(self) -> None:
        at = self.sim.now()
        expected_raw = read_expected_trades(self.config.expected_trades, Path("."))
        snapshot, _ = pipeline.fetch_fleet(
            self.config,
            fetched_at=at,
            open_terminal=open_terminal,
            expected_raw=expected_raw,
            book=self.book,
            deadline_secs=self.config.fetch_deadline_secs,
        )
        self.book = pipeline.advance_breakers(self.book, snapshot, self.config, at=at)
        validated = pipeline.validate_cycle(snapshot, expected_raw, now=at)
        result = pipeline.reconcile_cycle(validated, self.config, as_of=at)
        update = pipeline.advance_breaks(self.state, result, self.config, at=at)
        self.state = lifecycle.merged(self.state, update)
        self.events.append(update.events)
        self.observed.append(dict(result.observed.select("login", "reconciled").iter_rows()))
        self.breaker_states.append(self.book.get(FAULTED, breakers.Breaker()).visible_state(at))
        if isinstance(self.clock, SimClock):
            self.clock.advance(10)

    def history(self, kind: str, login: int = FAULTED) -> list[str]:
        events = pl.concat(self.events).filter((pl.col("login") == login) & (pl.col("kind") == kind))
        return events["event"].to_list()

    def kinds_seen(self, login: int) -> set[str]:
        return set(pl.concat(self.events).filter(pl.col("login") == login)["kind"].to_list())

    def close(self) -> None:
        for host in self.hosts:
            host.close()


Fault = Callable[[Harness], None]


@dataclass(frozen=True)
class Row:
    description: str
    wall_clock: bool
    setup: Fault  # before the first cycle
    faulty_cycles: int  # cycles run with the fault in place
    heal: Fault  # then the terminal recovers
    healthy_cycles: int
    history: dict[str, list[str]]  # break kind -> the faulted account's events, whole run
    breaker_states: list[str] = field(default_factory=list)  # after each cycle, when it matters
    deadline_secs: float = 6.0


def _nothing(h: Harness) -> None:
    return None


def _account(h: Harness) -> Any:
    return h.sim.account(FAULTED)


class _AnnouncingTerminal:
    """A simulated terminal that says when a positions_get call is in flight."""

    def __init__(self, inner: SimTerminal, entered: threading.Event) -> None:
        self._inner, self._entered = inner, entered

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def positions_get(self, *args: Any, **kwargs: Any) -> Any:
        self._entered.set()
        return self._inner.positions_get(*args, **kwargs)


def _behind_a_bridge(h: Harness) -> threading.Event:
    """Serve the faulted account through a bridge on loopback, as a terminal host would."""
    entered = threading.Event()
    session = SessionTerminal(lambda: _AnnouncingTerminal(h.sim.terminal(FAULTED, connect=False), entered))  # type: ignore[arg-type, return-value]
    server = serve_bridge(session, "127.0.0.1", 0)
    h.hosts.append(server)
    connector = ConnectorConfig(kind="bridge", host="127.0.0.1", port=server.port, call_timeout_secs=5.0)
    accounts = tuple(
        a.model_copy(update={"connector": connector}) if a.login == FAULTED else a for a in h.config.accounts
    )
    h.config = h.config.model_copy(update={"accounts": accounts})
    return entered


def _bridge_killed_mid_call(h: Harness) -> None:
    entered = _behind_a_bridge(h)
    h.cycle()  # healthy through the bridge
    _account(h).slow_down(2.0, methods={"positions_get"})  # the call the kill will cut
    entered.clear()
    server = h.hosts[-1]

    def kill_when_in_flight() -> None:
        if entered.wait(10):
            server.close()  # listener and every client socket, mid-call: what a dying host does

    threading.Thread(target=kill_when_in_flight, daemon=True).start()


def _bridge_restarted(h: Harness) -> None:
    _account(h).slow_down(0)
    port = h.hosts[-1].port
    session = SessionTerminal(lambda: h.sim.terminal(FAULTED, connect=False))
    h.hosts.append(serve_bridge(session, "127.0.0.1", port))  # a new host process: a fresh session


ROWS = [
    Row(
        "disconnect: the terminal loses its server",
        wall_clock=False,
        setup=lambda h: _account(h).disconnect(None),
        faulty_cycles=3,  # three failures open the breaker: +30 and +40 are rested
        heal=lambda h: _account(h).reconnect(),
        healthy_cycles=3,  # the probe at +50 finds it back
        history={"snapshot_failed": ["opened", "resolved"]},
    ),
    Row(
        "IPC timeout (-10005) on every call",
        wall_clock=False,
        setup=lambda h: _account(h).fail_timeout(calls=None),
        faulty_cycles=2,
        heal=lambda h: _account(h).clear_faults(),
        healthy_cycles=1,
        history={"snapshot_failed": ["opened", "resolved"]},
    ),
    Row(
        "authentication fails at login",
        wall_clock=False,
        setup=lambda h: _account(h).fail_auth(calls=None),
        faulty_cycles=2,  # permanent: the breaker opens at once, +10 is rested
        heal=lambda h: _account(h).clear_faults(),
        healthy_cycles=2,  # +20 rested; the probe at +30 logs in
        history={"snapshot_failed": ["opened", "resolved"]},
        breaker_states=["open", "open", "open", "closed"],
    ),
    Row(
        "None snapshot: positions_get / orders_get / history_deals_get return None",
        wall_clock=False,
        setup=lambda h: _account(h).fail_snapshot(calls=None),
        faulty_cycles=2,
        heal=lambda h: _account(h).clear_faults(),
        healthy_cycles=1,
        history={"snapshot_failed": ["opened", "resolved"]},
    ),
    Row(
        "a terminal that hangs past the fetch deadline",
        wall_clock=True,
        setup=lambda h: _account(h).fail_timeout(calls=1, delay_secs=2.0, methods={"positions_get"}),
        faulty_cycles=1,
        heal=_nothing,
        healthy_cycles=0,
        history={"snapshot_failed": ["opened"]},
        deadline_secs=0.5,
    ),
    Row(
        "the bridge host is killed mid-call and restarted",
        wall_clock=True,
        setup=_bridge_killed_mid_call,
        faulty_cycles=1,
        heal=_bridge_restarted,
        healthy_cycles=1,
        history={"snapshot_failed": ["opened", "resolved"]},
    ),
    Row(
        "a flapping terminal: the breaker opens, rests it, half-opens for one probe and closes",
        wall_clock=False,
        setup=lambda h: _account(h).fail_timeout(calls=None),
        faulty_cycles=4,  # failures at +0, +10, +20 open it; +30 is rested
        heal=lambda h: _account(h).clear_faults(),
        healthy_cycles=4,  # +40 rested; the probe at +50 (cooldown 30 s) succeeds
        history={"snapshot_failed": ["opened", "resolved"]},
        breaker_states=["closed", "closed", "open", "open", "open", "closed", "closed", "closed"],
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.description for row in ROWS])
def test_terminal_fault(row: Row) -> None:
    harness = Harness(wall_clock=row.wall_clock, deadline_secs=row.deadline_secs)
    use_in_process_fleet(harness.sim)
    try:
        row.setup(harness)
        for _ in range(row.faulty_cycles):
            harness.cycle()
        row.heal(harness)
        for _ in range(row.healthy_cycles):
            harness.cycle()
    finally:
        use_in_process_fleet(None)
        harness.close()
        sessions().close_all()
    where = row.description
    for number, observed in enumerate(harness.observed):
        others = {login: ok for login, ok in observed.items() if login != FAULTED}
        assert len(others) == 3 and all(others.values()), f"{where}: cycle {number}: others not reconciled {others}"
    for login in harness.sim.logins:
        false_breaks = harness.kinds_seen(login) & {"missing_position", "unknown_position"}
        assert not false_breaks, f"{where}: account {login} got {false_breaks} from a terminal fault"
    for kind, events in row.history.items():
        assert harness.history(kind) == events, f"{where}: {kind} events {harness.history(kind)}"
    if row.breaker_states:
        assert harness.breaker_states == row.breaker_states, f"{where}: breaker {harness.breaker_states}"
