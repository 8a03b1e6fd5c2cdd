"""The caller's side of a remote terminal: the MetaTrader5 functions over some transport.

`RemoteTerminal` implements `MT5Api` by sending each call as plain data to a hosting
`CallDispatcher` and rebuilding the records from the reply. A transport only supplies
`_exchange`; the RPyC bridge and the worker process are the two. Transport problems never
raise: the call returns None (False for initialize/login) and `last_error()` says
RES_E_INTERNAL_FAIL_CONNECT or _TIMEOUT, as the package reports its own IPC failures.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from mt5recon.terminal.api import given
from mt5recon.terminal.bridge_wire import WireError, decode_value
from mt5recon.terminal.constants import (
    RES_E_INTERNAL_FAIL,
    RES_E_INTERNAL_FAIL_RECEIVE,
    RES_E_INVALID_PARAMS,
)
from mt5recon.terminal.dispatch import FAILED, OK, ErrorPair, Reply
from mt5recon.terminal.forwarding import ForwardedCalls

log = logging.getLogger(__name__)


class TransportError(Exception):
    """The call did not reach the terminal or its answer did not come back: (code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _epoch_seconds(value: datetime) -> int:
    """A datetime as epoch seconds; naive datetimes are taken as UTC, as MT5 expects."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return int(aware.timestamp())


def _to_wire(value: object) -> Any:
    """A local argument as plain data: datetimes as epoch seconds, dicts as (key, value) pairs."""
    if value is None or type(value) in (bool, int, float, str, bytes):
        return value
    if isinstance(value, datetime):
        return _epoch_seconds(value)
    if isinstance(value, int):  # IntEnum and friends: send the plain value
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return tuple((_key(k), _to_wire(v)) for k, v in value.items())
    if isinstance(value, (tuple, list)):
        return tuple(_to_wire(item) for item in value)
    raise WireError(f"cannot send a {type(value).__name__} over the bridge")


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise WireError(f"request keys must be str, got {key!r}")
    return str(key)


def _is_reply(reply: object) -> bool:
    """An envelope (status, payload, (code, message)) made of plain data only."""
    return (
        type(reply) is tuple
        and len(reply) == 3
        and reply[0] in (OK, FAILED)
        and type(reply[2]) is tuple
        and len(reply[2]) == 2
        and type(reply[2][0]) is int
        and type(reply[2][1]) is str
    )


class RemoteTerminal(ForwardedCalls):
    """`MT5Api` over a transport: same functions, same failure style as the real package.

    `last_error()` is the terminal's own, read right after this caller's previous call
    under the host's lock, or the transport's failure when the call never completed.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._error: ErrorPair | None = None

    def close(self) -> None:
        """Release the transport (the next call would open it again)."""

    # -- MT5Api -------------------------------------------------------------------------

    def initialize(
        self,
        path: str | None = None,
        *,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        timeout: int | None = None,
        portable: bool = False,
    ) -> bool:
        kwargs = given(login=login, password=password, server=server, timeout=timeout)
        if portable:
            kwargs["portable"] = True
        args = () if path is None else (path,)
        return bool(self._call("initialize", args, kwargs, failure=False))

    def login(
        self, login: int, password: str | None = None, server: str | None = None, timeout: int | None = None
    ) -> bool:
        kwargs = given(password=password, server=server, timeout=timeout)
        return bool(self._call("login", (login,), kwargs, failure=False))

    def shutdown(self) -> None:
        self._call("shutdown")

    def last_error(self) -> tuple[int, str]:
        with self._lock:
            if self._error is None:  # no call yet: ask the terminal
                self._call("last_error")
            return self._error or (RES_E_INTERNAL_FAIL, "no error information")

    def _forward(self, name: str, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None) -> Any:
        return self._call(name, args, kwargs)

    # -- transport ----------------------------------------------------------------------

    def _exchange(self, name: str, args: tuple[Any, ...], kwargs: tuple[Any, ...]) -> object:
        """Deliver one call in wire form and return the host's reply; raise TransportError."""
        raise NotImplementedError

    def _exchange_many(self, calls: tuple[tuple[str, tuple[Any, ...], tuple[Any, ...]], ...]) -> object:
        """Deliver several calls and return their replies in order; a transport without a batch
        entry point delivers them one by one."""
        return tuple(self._exchange(name, args, kwargs) for name, args, kwargs in calls)

    def read_many(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[tuple[Any, ErrorPair]]:
        """Snapshot reads in one exchange: each call's result (None when it failed) and the
        terminal's last_error right after it. A transport failure fails every call with it."""
        with self._lock:
            try:
                wire = tuple((name, _to_wire(args), ()) for name, args in calls)
            except WireError as exc:
                return self._all_failed(calls, RES_E_INVALID_PARAMS, str(exc))
            try:
                replies = self._exchange_many(wire)
            except TransportError as exc:
                return self._all_failed(calls, exc.code, exc.message)
            except Exception as exc:
                return self._all_failed(calls, RES_E_INTERNAL_FAIL, f"the host refused the batch: {exc}")
            if type(replies) is not tuple or len(replies) != len(calls):
                return self._all_failed(calls, RES_E_INTERNAL_FAIL_RECEIVE, "malformed batch reply")
            answers = []
            for (name, _), reply in zip(calls, replies, strict=True):
                value = self._unpack(name, reply, None)
                answers.append((value, self._error or (RES_E_INTERNAL_FAIL, "no error information")))
            return answers

    def _all_failed(
        self, calls: Sequence[tuple[str, tuple[Any, ...]]], code: int, message: str
    ) -> list[tuple[Any, ErrorPair]]:
        self._fail(None, code, message)
        return [(None, (code, f"{name}: {message}")) for name, _ in calls]

    def _call(
        self,
        name: str,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        failure: Any = None,
    ) -> Any:
        """One round trip; every failure becomes `failure` plus a last_error, never an exception."""
        with self._lock:
            try:
                wire_args = _to_wire(args)
                wire_kwargs = tuple((key, _to_wire(value)) for key, value in (kwargs or {}).items())
            except WireError as exc:
                return self._fail(failure, RES_E_INVALID_PARAMS, f"{name}: {exc}")
            try:
                reply = self._exchange(name, wire_args, wire_kwargs)
            except TransportError as exc:
                return self._fail(failure, exc.code, exc.message)
            except Exception as exc:
                return self._fail(failure, RES_E_INTERNAL_FAIL, f"{name}: the host refused it: {exc}")
            return self._unpack(name, reply, failure)

    def _unpack(self, name: str, reply: object, failure: Any) -> Any:
        """Check the envelope, rebuild the records, remember the terminal's last_error."""
        if not _is_reply(reply):
            return self._fail(failure, RES_E_INTERNAL_FAIL_RECEIVE, f"{name}: malformed reply")
        status, payload, error = cast(Reply, reply)
        if status == FAILED:
            self._error = error
            return failure
        try:
            value = decode_value(payload)
        except WireError as exc:
            return self._fail(failure, RES_E_INTERNAL_FAIL_RECEIVE, f"{name}: {exc}")
        self._error = error
        return value

    def _fail(self, failure: Any, code: int, message: str) -> Any:
        self._error = (code, message)
        log.debug("%r: %s", self, message)
        return failure
