"""Terminal checks: each account's terminal reached as the pipeline reaches it, logged in, asked
who it is, and let go; many at once, each with a short timeout.

The endpoints are checked as configured: a simulated fleet behind bridge ports is only reachable
while `mt5recon up` or `mt5recon sim serve` hosts it, exactly as for the pipeline.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

from mt5recon.doctor.results import CheckResult, fail, ok, warn
from mt5recon.fleet import AccountConfig, FleetConfig
from mt5recon.terminal import constants as c
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.errors import error_for
from mt5recon.terminal.factory import TerminalUnavailable, open_terminal, sessions
from mt5recon.terminal.session import ReconnectPolicy

DEFAULT_TIMEOUT_SECS = 5.0
MAX_PARALLEL = 32


def terminal_name(account: AccountConfig) -> str:
    return f"terminal {account.login}"


def _endpoint(account: AccountConfig) -> str:
    connector = account.connector
    return f"{connector.kind} {connector.host}:{connector.port}" if connector.kind == "bridge" else connector.kind


def _probe_config(account: AccountConfig, timeout_secs: float) -> AccountConfig:
    """The account with its connector's timeouts cut to the doctor's."""
    connector = account.connector
    short = connector.model_copy(
        update={
            "connect_timeout_secs": min(connector.connect_timeout_secs, timeout_secs),
            "call_timeout_secs": min(connector.call_timeout_secs, timeout_secs),
        }
    )
    return account.model_copy(update={"connector": short})


def _fix(account: AccountConfig, code: int, message: str, *, simulated: bool, timeout_secs: float) -> str:
    """The next step for a terminal error, by its last_error() code."""
    connector = account.connector
    if code == c.RES_E_INTERNAL_FAIL_CONNECT and "bridge" in message:
        if simulated:
            return "start `mt5recon up` or `mt5recon sim serve` (they host the simulated fleet on its bridge ports)"
        return (
            f"start the bridge on the terminal's host (`mt5recon bridge serve --port {connector.port}`, under Wine: "
            f"`wine python -m mt5recon.terminal.bridge --port {connector.port}`) and check {connector.host}:"
            f"{connector.port} is reachable from here"
        )
    if code == c.RES_E_INTERNAL_FAIL_CONNECT:
        return f"the terminal has no connection to its trade server {account.server!r}: check its network and Journal"
    if code == c.RES_E_AUTH_FAILED:
        credentials = account.password or "the terminal's saved password"
        return (
            f"the broker refused login {account.login}: check the login, the server name {account.server!r} "
            f"and the password behind {credentials}"
        )
    if code == c.RES_E_INTERNAL_FAIL_TIMEOUT:
        return f"no answer within {timeout_secs:g} s: the terminal may be hung or starting; restart it (and its bridge)"
    if code == c.RES_E_AUTO_TRADING_DISABLED:
        return "enable Algo Trading in the terminal (toolbar button; Tools > Options > Expert Advisors)"
    if code == c.RES_E_INVALID_VERSION:
        return "update the terminal (Help > Check for updates) and the MetaTrader5 package"
    if connector.kind == "metatrader5" and sys.platform != "win32":
        return 'the MetaTrader5 package runs on Windows only: on Linux reach the terminal with kind = "bridge"'
    return f"look at the terminal's Journal for error {code}; `mt5recon bridge serve` logs bridge-side failures"


def _failed(account: AccountConfig, what: str, code: int, message: str, simulated: bool, timeout: float) -> CheckResult:
    kind = error_for(code, message).name
    connector = account.connector
    where = "" if f"{connector.host}:{connector.port}" in message else f"{_endpoint(account)}: "
    return fail(
        terminal_name(account),
        f"{where}{what} failed: {code} {message} ({kind})",
        _fix(account, code, message, simulated=simulated, timeout_secs=timeout),
    )


def _ask(account: AccountConfig, api: MT5Api, started: float, simulated: bool, timeout: float) -> CheckResult:
    """Logged in: the terminal must serve this account and be connected to its trade server."""
    info = api.account_info()
    if info is None:
        return _failed(account, "account_info()", *api.last_error(), simulated, timeout)
    if info.login != account.login:
        return fail(
            terminal_name(account),
            f"the terminal serves account {info.login}, not {account.login}",
            "log the terminal into the configured account, or fix the login in the fleet file",
        )
    terminal = api.terminal_info()
    elapsed_ms = (time.monotonic() - started) * 1000
    if terminal is None:
        code, message = api.last_error()
        return warn(
            terminal_name(account),
            f"logged in to {info.server}, but terminal_info() failed: {code} {message}",
            _fix(account, code, message, simulated=simulated, timeout_secs=timeout),
        )
    if not terminal.connected:
        return warn(
            terminal_name(account),
            f"logged in, but the terminal has no connection to {info.server}: its snapshots are reported stale",
            f"check the terminal's network and the broker's server {account.server!r} (Journal tab)",
        )
    detail = (
        f"{_endpoint(account)}: logged in to {info.server}, connected (ping {terminal.ping_last // 1000} ms), "
        f"answered in {elapsed_ms:.0f} ms"
    )
    return ok(terminal_name(account), detail)


def check_terminal(
    account: AccountConfig, *, simulated: bool = False, timeout_secs: float = DEFAULT_TIMEOUT_SECS
) -> CheckResult:
    """initialize (login) -> account_info -> terminal_info, then the session is let go."""
    probe = _probe_config(account, timeout_secs)
    policy = ReconnectPolicy()
    started = time.monotonic()
    logged_in = False
    try:
        try:
            api = open_terminal(probe, policy)
        except TerminalUnavailable as error:
            _, message = sessions().get(probe, policy).last_error()  # the pooled terminal open_terminal used
            return _failed(account, "initialize (login)", error.code, message, simulated, timeout_secs)
        except LookupError as error:  # the password reference
            return fail(terminal_name(account), f"password not available: {error}", "see the secrets check")
        logged_in = True
        return _ask(account, api, started, simulated, timeout_secs)
    except Exception as error:
        return fail(
            terminal_name(account),
            f"the check itself failed: {type(error).__name__}: {error}",
            "run `mt5recon doctor` again; if it persists, report it with this message",
        )
    finally:
        _let_go(probe, policy, logged_in)


def _let_go(probe: AccountConfig, policy: ReconnectPolicy, logged_in: bool) -> None:
    """Shut the doctor's session down (a bridge host keeps its own session for the pipeline)."""
    terminal = sessions().get(probe, policy)  # the pooled object open_terminal used
    try:
        if logged_in:
            terminal.shutdown()
    finally:
        close = getattr(terminal, "close", None)
        if callable(close):
            close()


def check_terminals(
    fleet: FleetConfig, *, timeout_secs: float = DEFAULT_TIMEOUT_SECS, parallel: int = MAX_PARALLEL
) -> list[CheckResult]:
    """Every account's terminal, `parallel` at a time, in the fleet's order."""
    if not fleet.accounts:
        return [warn("terminals", "the fleet has no accounts", "add [[accounts]] to the fleet file")]
    simulated = fleet.simulator.enabled
    workers = max(1, min(parallel, len(fleet.accounts)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="doctor-terminal") as pool:
        futures = [
            pool.submit(check_terminal, account, simulated=simulated, timeout_secs=timeout_secs)
            for account in fleet.accounts
        ]
        return [future.result() for future in futures]
