"""Typed terminal errors from the package's `last_error()` codes, each transient or permanent.

A transient error (an IPC timeout, a lost connection, a terminal still starting) may heal on a
retry or the next cycle; a permanent one (bad credentials, algo trading disabled, an unsupported
call) needs a person, so retrying it only hammers the terminal.
"""

from __future__ import annotations

from mt5recon.terminal import constants as c


class TerminalError(RuntimeError):
    """A failed terminal call: `code` from last_error(), `call` the MetaTrader5 function."""

    transient = False
    name = "terminal_error"

    def __init__(self, code: int, message: str, call: str = "", login: int | None = None) -> None:
        where = f"account {login}: " if login is not None else ""
        super().__init__(f"{where}{call or 'terminal'} failed: {code} {message} ({self.name})")
        self.code = code
        self.message = message
        self.call = call
        self.login = login


class TransientTerminalError(TerminalError):
    transient = True


class GenericFailure(TransientTerminalError):
    name = "generic_fail"


class OutOfMemory(TransientTerminalError):
    name = "no_memory"


class IpcFailure(TransientTerminalError):
    name = "ipc_failure"


class IpcTimeout(IpcFailure):
    name = "ipc_timeout"


class Disconnected(IpcFailure):
    name = "not_connected"


class InvalidParams(TerminalError):
    name = "invalid_params"


class NotFound(TerminalError):
    name = "not_found"


class InvalidVersion(TerminalError):
    name = "invalid_version"


class AuthFailed(TerminalError):
    name = "auth_failed"


class Unsupported(TerminalError):
    name = "unsupported"


class AutoTradingDisabled(TerminalError):
    name = "auto_trading_disabled"


_BY_CODE: dict[int, type[TerminalError]] = {
    c.RES_E_FAIL: GenericFailure,
    c.RES_E_INVALID_PARAMS: InvalidParams,
    c.RES_E_NO_MEMORY: OutOfMemory,
    c.RES_E_NOT_FOUND: NotFound,
    c.RES_E_INVALID_VERSION: InvalidVersion,
    c.RES_E_AUTH_FAILED: AuthFailed,
    c.RES_E_UNSUPPORTED: Unsupported,
    c.RES_E_AUTO_TRADING_DISABLED: AutoTradingDisabled,
    c.RES_E_INTERNAL_FAIL: IpcFailure,
    c.RES_E_INTERNAL_FAIL_SEND: IpcFailure,
    c.RES_E_INTERNAL_FAIL_RECEIVE: IpcFailure,
    c.RES_E_INTERNAL_FAIL_INIT: IpcFailure,
    c.RES_E_INTERNAL_FAIL_CONNECT: Disconnected,
    c.RES_E_INTERNAL_FAIL_TIMEOUT: IpcTimeout,
}


def error_for(code: int, message: str, call: str = "", login: int | None = None) -> TerminalError:
    """The typed error for a last_error() code; an unknown code is a (transient) generic failure."""
    return _BY_CODE.get(code, GenericFailure)(code, message, call, login)


def is_transient(code: int) -> bool:
    return _BY_CODE.get(code, GenericFailure).transient


def error_pair(value: object) -> tuple[int, str]:
    """Normalize a last_error() result to a plain (int, str)."""
    if isinstance(value, tuple) and len(value) == 2:
        try:
            return int(value[0]), str(value[1])
        except (TypeError, ValueError):
            pass
    return c.RES_E_INTERNAL_FAIL, f"the terminal's last_error() returned {value!r}"
