"""The one place that picks a terminal implementation for an account and logs it in."""

from __future__ import annotations

import importlib
import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

from mt5recon.fleet import AccountConfig, ConnectorConfig, resolve_reference
from mt5recon.terminal.api import MT5Api

# The official package drives ONE terminal per process through module-level state: sessions of
# several `metatrader5` accounts must take turns, while bridge and simulator sessions are independent.
_OFFICIAL_MODULE_TURN = threading.Lock()


def session_turn(connector: ConnectorConfig) -> AbstractContextManager[object]:
    """Hold this around initialize -> fetch -> shutdown of one account."""
    return _OFFICIAL_MODULE_TURN if connector.kind == "metatrader5" else nullcontext()


class TerminalUnavailable(RuntimeError):
    """initialize/login failed; carries the terminal's last_error."""

    def __init__(self, login: int, code: int, message: str) -> None:
        super().__init__(f"account {login}: initialize failed: {code} {message}")
        self.code = code


def _official_module() -> MT5Api:
    try:
        return cast(MT5Api, importlib.import_module("MetaTrader5"))
    except ImportError as error:
        raise RuntimeError(
            "the MetaTrader5 package ships Windows wheels only; on Linux run the terminal under Wine "
            "and use connector kind 'bridge'"
        ) from error


def implementation(connector: ConnectorConfig, login: int) -> MT5Api:
    """A fresh, not yet initialized API object for this connector kind."""
    if connector.kind == "metatrader5":
        return _official_module()
    if connector.kind == "bridge":
        from mt5recon.terminal.bridge import BridgeTerminal

        return BridgeTerminal(
            connector.host,
            connector.port,
            connect_timeout_secs=connector.connect_timeout_secs,
            call_timeout_secs=connector.call_timeout_secs,
        )
    from mt5recon.terminal.sim_host import in_process_fleet

    return in_process_fleet().terminal(login)


def open_terminal(account: AccountConfig) -> MT5Api:
    """Initialize and log in; raises TerminalUnavailable with the terminal's own error code."""
    api = implementation(account.connector, account.login)
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
        api.shutdown()
        raise TerminalUnavailable(account.login, code, message)
    return api
