"""The one place that picks a terminal implementation for an account and logs it in.

Sessions are kept per process and account between cycles (see `session`), and shut down when
the process exits:

- `metatrader5`: the official module in a worker process per terminal, behind a session;
- `bridge`: a connection to the terminal host, whose bridge keeps the session logged in;
- `sim`: the process's simulated fleet, behind a session like a real terminal.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Hashable
from typing import Any

from mt5recon.fleet import AccountConfig, resolve_reference
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.session import ReconnectPolicy, SessionTerminal


class TerminalUnavailable(RuntimeError):
    """initialize/login failed; carries the terminal's last_error."""

    def __init__(self, login: int, code: int, message: str) -> None:
        super().__init__(f"account {login}: initialize failed: {code} {message}")
        self.code = code


class TerminalSessions:
    """This process's terminals, one per account and connector, kept between cycles."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._terminals: dict[Hashable, MT5Api] = {}

    def get(self, account: AccountConfig, policy: ReconnectPolicy | None = None) -> MT5Api:
        key, make = _terminal_for(account, policy or ReconnectPolicy())
        with self._lock:
            terminal = self._terminals.get(key)
            if terminal is None:
                terminal = self._terminals[key] = make()
            return terminal

    def close_all(self) -> None:
        """Shut every session down: worker processes stop, bridge connections close."""
        with self._lock:
            terminals, self._terminals = list(self._terminals.values()), {}
        for terminal in terminals:
            close = getattr(terminal, "close", None)
            if callable(close):
                close()


def _terminal_for(account: AccountConfig, policy: ReconnectPolicy) -> tuple[Hashable, Callable[[], MT5Api]]:
    """The pool key and the constructor of this account's terminal."""
    connector = account.connector
    if connector.kind == "metatrader5":
        from mt5recon.terminal.worker import ProcessTerminal

        def worker() -> MT5Api:
            return ProcessTerminal(
                connector.module,
                call_timeout_secs=connector.call_timeout_secs,
                start_timeout_secs=max(connector.connect_timeout_secs, 30.0),
            )

        return (connector, account.login), lambda: SessionTerminal(worker, policy=policy)
    if connector.kind == "bridge":
        from mt5recon.terminal.bridge import BridgeTerminal

        def bridge() -> MT5Api:
            return BridgeTerminal(
                connector.host,
                connector.port,
                connect_timeout_secs=connector.connect_timeout_secs,
                call_timeout_secs=connector.call_timeout_secs,
            )

        return (connector, account.login), bridge
    from mt5recon.terminal.sim_host import in_process_fleet

    sim = in_process_fleet()  # a session belongs to the fleet it was opened on, and lives in its time
    return (connector, account.login, id(sim)), lambda: SessionTerminal(
        lambda: sim.terminal(account.login, connect=False), policy=policy, clock=sim.now_s
    )


_sessions: list[TerminalSessions] = []
_sessions_lock = threading.Lock()


def sessions() -> TerminalSessions:
    """The process's sessions, created on first use and closed at exit."""
    with _sessions_lock:
        if not _sessions:
            _sessions.append(TerminalSessions())
            atexit.register(_sessions[0].close_all)
        return _sessions[0]


def open_terminal(account: AccountConfig, policy: ReconnectPolicy | None = None) -> MT5Api:
    """The account's session, logged in; raises TerminalUnavailable with the terminal's own error code.

    The password is resolved from its reference here, passed to `initialize` and not kept.
    """
    api = sessions().get(account, policy)
    options: dict[str, Any] = {
        "login": account.login,
        "server": account.server,
        "timeout": int(account.connector.connect_timeout_secs * 1000),
    }
    if account.password:
        options["password"] = resolve_reference(account.password)
    path = account.connector.path
    ok = api.initialize(path, **options) if path else api.initialize(**options)
    if not ok:
        code, message = api.last_error()
        raise TerminalUnavailable(account.login, code, message)
    return api
