"""The MetaTrader5 module hosted in a worker process per terminal: enforced call timeouts,
a worker that dies mid-call, results by value, sessions reused across cycles."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import fake_mt5_module as fake
import pytest

from mt5recon import pipeline
from mt5recon.fleet import AccountConfig, ConnectorConfig, ExpectedTradesSource, FleetConfig
from mt5recon.terminal import constants as c
from mt5recon.terminal.factory import TerminalSessions, sessions
from mt5recon.terminal.records import AccountInfo
from mt5recon.terminal.session import SessionTerminal
from mt5recon.terminal.worker import ProcessTerminal

MODULE = fake.__name__
SHORT_CALL_SECS = 1.0


@pytest.fixture
def worker() -> ProcessTerminal:
    terminal = ProcessTerminal(MODULE, call_timeout_secs=SHORT_CALL_SECS)
    yield terminal  # type: ignore[misc]
    terminal.close()


def test_calls_run_in_another_process_and_return_records_by_value(worker: ProcessTerminal) -> None:
    assert worker.initialize(login=7001, password="pw", server=fake.SERVER)
    account = worker.account_info()
    assert isinstance(account, AccountInfo) and account.login == 7001
    version = worker.version()
    assert version is not None and version[1] == worker.pid != os.getpid(), "the module runs in the worker"
    assert worker.positions_get() == (), "an empty tuple stays empty, not None"


def test_a_call_that_blocks_is_cut_off_and_the_worker_replaced(worker: ProcessTerminal) -> None:
    assert worker.initialize(login=7001, server=fake.SERVER)
    first_pid = worker.pid
    assert worker.symbol_info(fake.HANG) is None
    code, message = worker.last_error()
    assert code == c.RES_E_INTERNAL_FAIL_TIMEOUT, message
    assert worker.pid is None, "the blocked worker was stopped"
    # the next call starts a fresh worker: its module state is new, so it must log in again
    assert worker.account_info() is None and worker.last_error()[0] == c.RES_E_INTERNAL_FAIL_INIT
    assert worker.initialize(login=7001, server=fake.SERVER) and worker.account_info() is not None
    assert worker.starts == 2 and worker.pid not in (None, first_pid)


def test_a_worker_that_dies_mid_call_is_a_lost_connection(worker: ProcessTerminal) -> None:
    assert worker.initialize(login=7001, server=fake.SERVER)
    assert worker.symbol_info_tick(fake.CRASH) is None
    assert worker.last_error()[0] == c.RES_E_INTERNAL_FAIL_CONNECT
    assert worker.initialize(login=7001, server=fake.SERVER), "a new worker serves the next call"


def test_a_module_that_cannot_be_hosted_fails_initialize_with_its_reason() -> None:
    terminal = ProcessTerminal("no_such_mt5_package_here")
    try:
        assert not terminal.initialize(login=1)
        code, message = terminal.last_error()
        assert code == c.RES_E_INTERNAL_FAIL_CONNECT and "no_such_mt5_package_here" in message
    finally:
        terminal.close()


def test_names_off_the_allow_list_are_refused_in_the_worker(worker: ProcessTerminal) -> None:
    assert worker._call("__import__", ("os",)) is None
    code, message = worker.last_error()
    assert code == c.RES_E_INTERNAL_FAIL and "refused" in message


def test_close_stops_the_worker(worker: ProcessTerminal) -> None:
    assert worker.initialize(login=7001, server=fake.SERVER)
    pid = worker.pid
    assert pid is not None
    worker.close()
    assert worker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped, not a zombie


def _official_fleet(watch: dict[int, tuple[str, ...]]) -> FleetConfig:
    connector = ConnectorConfig(kind="metatrader5", module=MODULE, call_timeout_secs=SHORT_CALL_SECS)
    accounts = tuple(
        AccountConfig(login=login, server=fake.SERVER, connector=connector, watch_symbols=symbols)
        for login, symbols in watch.items()
    )
    return FleetConfig(accounts=accounts, expected_trades=ExpectedTradesSource(kind="sim"))


def test_official_accounts_are_fetched_in_parallel_workers_and_sessions_are_reused() -> None:
    """Each account's terminal has its own worker, so a terminal that hangs costs only its own
    account; the others' sessions stay logged in from one cycle to the next."""
    fleet = _official_fleet({7001: ("EURUSD",), 7002: ("EURUSD",), 7003: (fake.HANG,), 7004: ("GBPUSD",)})
    pool: TerminalSessions = sessions()

    def opener(account: AccountConfig) -> object:
        from mt5recon.terminal.factory import open_terminal

        return open_terminal(account)

    try:
        for _ in range(2):
            snapshot, _ = pipeline.fetch_fleet(
                fleet, fetched_at=datetime.now(UTC), open_terminal=opener, concurrency=4, deadline_secs=6.0
            )
            ok = dict(snapshot.accounts.select("login", "account_ok").iter_rows())
            assert ok == {7001: True, 7002: True, 7003: True, 7004: True}, "account_info answered for all"
            assert snapshot.error_codes == {7003: c.RES_E_INTERNAL_FAIL_TIMEOUT}, "the hung call is cut off"
            health = dict(snapshot.health.select("login", "error_kind").iter_rows())
            assert health[7003] == "ipc_timeout" and health[7001] is None
        healthy = [pool.get(a) for a in fleet.accounts if a.login != 7003]
        assert all(isinstance(s, SessionTerminal) and s.stats.connects == 1 for s in healthy)
        assert all(s.stats.reuses == 1 for s in healthy if isinstance(s, SessionTerminal)), "kept between cycles"
    finally:
        pool.close_all()


def test_the_bridge_host_keeps_the_session_between_cycles_and_shuts_down_cleanly() -> None:
    """`python -m mt5recon.terminal.bridge` as an operator runs it: each cycle is a new client
    connection, the terminal's worker (and its login) outlives them, SIGTERM ends both."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from mt5recon.terminal.bridge import BridgeTerminal

    tests_dir = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")])}
    host = subprocess.Popen(
        [sys.executable, "-m", "mt5recon.terminal.bridge", "--port", "0", "--module", MODULE, "--call-timeout", "1"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert host.stderr is not None
        line = ""
        while "serving" not in line:
            line = host.stderr.readline()
            assert line, "the bridge host exited before serving"
        port = int(line.rsplit(":", 1)[1])
        pids = []
        for _cycle in range(2):
            with BridgeTerminal("127.0.0.1", port, call_timeout_secs=5.0) as client:
                assert client.initialize(login=7001, password="pw", server=fake.SERVER)
                version = client.version()
                assert version is not None
                pids.append(version[1])
                client.shutdown()  # the cycle is done; the host keeps the session
        assert pids[0] == pids[1] != host.pid, "one worker, logged in once, served both cycles"
        host.send_signal(signal.SIGTERM)
        assert host.wait(timeout=30) == 0
        assert "the terminal session is shut down" in host.stderr.read()
        with pytest.raises(ProcessLookupError):
            os.kill(pids[0], 0)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
