"""A stand-in for the Windows-only MetaTrader5 package, to be hosted in a terminal worker process.

Like the real package it is a module: module-level functions over module-level state, calls
that block, errors reported through last_error(). Symbols steer the failure modes the worker
must survive: `HANG` blocks forever inside the call, `CRASH` kills the process mid-call.
A password of `wrong` fails authentication.
"""

from __future__ import annotations

import os
import threading
import time
import typing
from datetime import datetime
from typing import Any

from mt5recon.terminal import constants as c
from mt5recon.terminal import records

HANG = "HANG"
CRASH = "CRASH"
SERVER = "Fake-Demo"
_state: dict[str, Any] = {"login": None, "error": (c.RES_S_OK, "Success")}
_ZERO = {int: 0, float: 0.0, bool: False, str: ""}


def _record(cls: type[Any], **values: Any) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(**{name: values.get(name, _ZERO[hints[name]]) for name in cls._fields})


def _fail(code: int, message: str) -> None:
    _state["error"] = (code, message)


def _logged_in() -> bool:
    if _state["login"] is None:
        _fail(c.RES_E_INTERNAL_FAIL_INIT, "not initialized")
        return False
    _state["error"] = (c.RES_S_OK, "Success")
    return True


def _steer(symbol: str) -> None:
    if symbol == HANG:
        threading.Event().wait()  # blocks like a terminal that stopped answering
    if symbol == CRASH:
        os._exit(3)


def initialize(
    path: str | None = None,
    *,
    login: int | None = None,
    password: str | None = None,
    server: str | None = None,
    timeout: int | None = None,
    portable: bool = False,
) -> bool:
    if password == "wrong" or (server is not None and server != SERVER):
        _fail(c.RES_E_AUTH_FAILED, "Authorization failed")
        return False
    _state["login"] = login if login is not None else 1
    _state["error"] = (c.RES_S_OK, "Success")
    return True


def login(login: int, password: str | None = None, server: str | None = None, timeout: int | None = None) -> bool:
    return initialize(login=login, password=password, server=server)


def shutdown() -> None:
    _state["login"] = None


def last_error() -> tuple[int, str]:
    return tuple(_state["error"])  # type: ignore[return-value]


def version() -> tuple[int, int, str]:
    return (500, os.getpid(), "worker pid in the build field")


def terminal_info() -> Any:
    if not _logged_in():
        return None
    return _record(records.TerminalInfo, connected=True, trade_allowed=True, ping_last=1500, name="fake")


def account_info() -> Any:
    if not _logged_in():
        return None
    return _record(
        records.AccountInfo,
        login=_state["login"],
        trade_allowed=True,
        trade_expert=True,
        margin_mode=c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
        balance=10_000.0,
        equity=10_000.0,
        server=SERVER,
        currency="USD",
    )


def positions_get(symbol: str | None = None, group: str | None = None, ticket: int | None = None) -> Any:
    return () if _logged_in() else None


def orders_get(symbol: str | None = None, group: str | None = None, ticket: int | None = None) -> Any:
    return () if _logged_in() else None


def history_deals_get(date_from: datetime | int | None = None, date_to: datetime | int | None = None, **_: Any) -> Any:
    return () if _logged_in() else None


def symbol_info(symbol: str) -> Any:
    _steer(symbol)
    if not _logged_in():
        return None
    return _record(records.SymbolInfo, name=symbol, digits=5, point=0.00001, trade_tick_size=0.00001)


def symbol_info_tick(symbol: str) -> Any:
    _steer(symbol)
    if not _logged_in():
        return None
    now = time.time()
    return _record(records.Tick, time=int(now), time_msc=int(now * 1000), bid=1.1, ask=1.1001)


def order_send(request: dict[str, Any]) -> Any:
    _fail(c.RES_E_UNSUPPORTED, "trading is not faked")
    return None
