"""Terminal sessions kept between cycles: reuse while healthy, reconnect with jittered
exponential backoff, drop on IPC failures, clean shutdown. Scenario rows over the simulator
on a simulated clock (no real waiting)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mt5recon.terminal import constants as c
from mt5recon.terminal.session import ReconnectPolicy, SessionTerminal
from mt5recon.terminal.simulator.fleet import SimFleet

LOGIN = 5001
POLICY = ReconnectPolicy(initial_backoff_secs=2.0, max_backoff_secs=16.0, jitter_pct=0.0)
Action = Callable[[SimFleet], None]


def _nothing(sim: SimFleet) -> None:
    return None


@dataclass(frozen=True)
class Cycle:
    after_secs: float  # simulated seconds since the previous cycle
    before: Action = _nothing  # what happens to the terminal before this cycle
    logged_in: bool = True  # initialize() succeeded
    fetched: bool = True  # positions_get() answered


@dataclass(frozen=True)
class Case:
    description: str
    cycles: list[Cycle]
    connects: int  # logins actually made
    reuses: int  # cycles served by the live session
    failed_connects: int = 0


def _fail_auth(sim: SimFleet) -> None:
    sim.account(LOGIN).fail_auth(calls=1)


def _fail_auth_forever(sim: SimFleet) -> None:
    sim.account(LOGIN).fail_auth(calls=None)


def _ipc_timeout_on_positions(sim: SimFleet) -> None:
    sim.account(LOGIN).fail_timeout(calls=1, methods={"positions_get"})


def _disconnect_20s(sim: SimFleet) -> None:
    sim.account(LOGIN).disconnect(20)


CASES = [
    Case("a healthy terminal logs in once and is reused every cycle", [Cycle(0), Cycle(10), Cycle(10)], 1, 2),
    Case(
        "an auth failure waits out the backoff: no login attempt inside it, success after",
        [Cycle(0, _fail_auth, logged_in=False, fetched=False), Cycle(1, logged_in=False, fetched=False), Cycle(1.5)],
        connects=1,
        reuses=0,
        failed_connects=1,
    ),
    Case(
        "an IPC timeout drops the session; the next cycle logs in again at once",
        [Cycle(0), Cycle(10, _ipc_timeout_on_positions, fetched=False), Cycle(10), Cycle(10)],
        connects=2,
        reuses=2,
    ),
    Case(
        "a lost server drops the session; reconnects back off until the terminal is back",
        [
            Cycle(0),
            Cycle(10, _disconnect_20s, logged_in=False, fetched=False),  # check fails, login fails: 2 s
            Cycle(1, logged_in=False, fetched=False),  # inside the backoff: not even tried
            Cycle(1, logged_in=False, fetched=False),  # tried again, fails: backoff 4 s
            Cycle(2, logged_in=False, fetched=False),  # inside the backoff
            Cycle(20),  # the terminal is back
        ],
        connects=2,
        reuses=0,
        failed_connects=2,
    ),
    Case(
        "a permanent auth failure is retried at a doubling, capped interval",
        [Cycle(0, _fail_auth_forever, logged_in=False, fetched=False)]
        + [Cycle(1, logged_in=False, fetched=False) for _ in range(40)],
        connects=0,
        reuses=0,
        failed_connects=5,  # attempts at t = 0, 2, 6, 14, 30 (then every 16 s: 46 is past the run)
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.description for case in CASES])
def test_session_scenarios(case: Case) -> None:
    sim = SimFleet.quiet(accounts=2)
    session = SessionTerminal(lambda: sim.terminal(LOGIN, connect=False), policy=POLICY, clock=sim.now_s)
    for number, cycle in enumerate(case.cycles):
        sim.clock.sleep(cycle.after_secs)  # type: ignore[attr-defined]
        cycle.before(sim)
        logged_in = session.initialize(login=LOGIN, password="pw", server=sim.account(LOGIN).spec.server)
        fetched = logged_in and session.positions_get() is not None
        session.shutdown()
        where = f"{case.description}: cycle {number}"
        assert logged_in == cycle.logged_in, f"{where}: initialize -> {session.last_error()}"
        assert fetched == cycle.fetched, f"{where}: positions_get -> {session.last_error()}"
    stats = session.stats
    assert (stats.connects, stats.reuses, stats.failed_connects) == (
        case.connects,
        case.reuses,
        case.failed_connects,
    ), case.description


def test_backoff_answer_names_the_wait_and_is_transient() -> None:
    sim = SimFleet.quiet(accounts=2)
    sim.account(LOGIN).fail_auth(calls=1)
    session = SessionTerminal(lambda: sim.terminal(LOGIN, connect=False), policy=POLICY, clock=sim.now_s)
    assert not session.initialize(login=LOGIN, password="pw")
    assert session.last_error()[0] == c.RES_E_AUTH_FAILED, "the terminal's own error first"
    assert not session.initialize(login=LOGIN, password="pw")
    code, message = session.last_error()
    assert code == c.RES_E_INTERNAL_FAIL_INIT and "next in 2.0 s" in message


def test_a_restarted_terminal_is_noticed_before_the_cycle_uses_it() -> None:
    """The live session is checked (one account_info) before reuse: a terminal that lost its
    login (restarted, logged out by hand) is logged in again in the same cycle."""
    sim = SimFleet.quiet(accounts=2)
    terminals = []

    def fresh() -> object:
        terminals.append(sim.terminal(LOGIN, connect=False))
        return terminals[-1]

    session = SessionTerminal(fresh, policy=POLICY, clock=sim.now_s)  # type: ignore[arg-type]
    assert session.initialize(login=LOGIN, password="pw")
    terminals[-1].shutdown()  # the terminal itself forgot the session
    assert session.initialize(login=LOGIN, password="pw") and session.positions_get() is not None
    assert (session.stats.connects, session.stats.drops, len(terminals)) == (2, 1, 2)


def test_another_account_is_a_new_login_not_a_reuse() -> None:
    sim = SimFleet.quiet(accounts=2)
    session = SessionTerminal(lambda: sim.terminal(connect=False), policy=POLICY, clock=sim.now_s)
    other = sim.logins[1]
    assert session.initialize(login=LOGIN, password="pw")
    assert session.initialize(login=other, password="pw")
    account = session.account_info()
    assert account is not None and account.login == other and session.stats.reuses == 0


def test_shutdown_keeps_the_session_close_ends_it() -> None:
    sim = SimFleet.quiet(accounts=2)
    session = SessionTerminal(lambda: sim.terminal(LOGIN, connect=False), policy=POLICY, clock=sim.now_s)
    assert session.initialize(login=LOGIN, password="pw")
    session.shutdown()
    assert session.live and session.account_info() is not None
    session.close()
    assert not session.live and session.account_info() is None
    assert session.last_error()[0] == c.RES_E_INTERNAL_FAIL_INIT


@given(
    initial=st.floats(0.1, 10),
    factor=st.floats(1, 4),
    cap_over_initial=st.floats(1, 100),
    jitter_pct=st.floats(0, 100),
    failures=st.integers(1, 50),
    draw=st.floats(0, 1, exclude_max=True),
)
def test_backoff_grows_stays_capped_and_jitter_only_shortens(
    initial: float, factor: float, cap_over_initial: float, jitter_pct: float, failures: int, draw: float
) -> None:
    policy = ReconnectPolicy(initial, initial * cap_over_initial, factor, jitter_pct)
    ceiling = policy.ceiling_secs(failures)
    assert initial <= ceiling <= policy.max_backoff_secs
    assert policy.ceiling_secs(failures + 1) >= ceiling, "never shrinks as failures pile up"
    delay = policy.delay_secs(failures, draw)
    assert ceiling * (1 - jitter_pct / 100) - 1e-9 <= delay <= ceiling + 1e-9
