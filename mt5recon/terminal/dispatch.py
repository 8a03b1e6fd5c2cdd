"""The terminal side of a remote terminal: one allow-listed, by-value entry point.

Whatever carries the calls (the RPyC bridge, a worker process's pipe), the hosting side runs
them through a `CallDispatcher`: only MetaTrader5 function names on the allow-list, only
plain data in (see `bridge_wire`), results encoded back to plain data with the terminal's
`last_error()` read right after the call, under the same lock.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from mt5recon.terminal.bridge_wire import WireError, encode_value, is_plain
from mt5recon.terminal.constants import (
    RES_E_INTERNAL_FAIL,
    RES_E_INTERNAL_FAIL_SEND,
    RES_E_INTERNAL_FAIL_TIMEOUT,
)
from mt5recon.terminal.errors import error_pair

log = logging.getLogger(__name__)

READ_CALLS: frozenset[str] = frozenset(
    {
        "terminal_info",
        "account_info",
        "positions_get",
        "orders_get",
        "history_deals_get",
        "symbol_info",
        "symbol_info_tick",
    }
)
"""The functions a snapshot reads with."""
SESSION_CALLS: frozenset[str] = frozenset({"initialize", "login", "shutdown", "last_error"})
ALLOWED_CALLS: frozenset[str] = SESSION_CALLS | READ_CALLS | {"order_send", "version"}  # version: if hosted
"""The MT5 functions the bridge will call; every other name is refused."""

# Parameters whose wire form differs from what the package accepts, by function.
_POSITIONAL_PARAMS: dict[str, tuple[str, ...]] = {
    "history_deals_get": ("date_from", "date_to", "group", "ticket", "position"),
    "order_send": ("request",),
}
_DATETIME_PARAMS = frozenset({("history_deals_get", "date_from"), ("history_deals_get", "date_to")})
_DICT_PARAMS = frozenset({("order_send", "request")})

MAX_BATCH_CALLS = 1024
"""Most read calls one batch may carry (a snapshot needs ~2 per symbol it quotes)."""

OK = "ok"
FAILED = "failed"

ErrorPair = tuple[int, str]
Reply = tuple[str, Any, ErrorPair]
"""(status, encoded result, the terminal's last_error right after the call)."""


def _to_datetime(value: object) -> object:
    """Epoch seconds -> aware UTC datetime, which the real package accepts; else unchanged."""
    if type(value) in (int, float):
        return datetime.fromtimestamp(value, tz=UTC)  # type: ignore[arg-type]
    return value


def _to_dict(name: str, value: object) -> dict[str, Any]:
    """A request travels as ((key, value), ...); the package wants a dict."""
    if type(value) is not tuple or not all(_is_pair(pair) for pair in value):
        raise ValueError(f"{name}: the request must be a tuple of (key, value) pairs")
    return dict(value)


def _is_call(call: object) -> bool:
    return type(call) is tuple and len(call) == 3 and type(call[0]) is str


def _is_pair(pair: object) -> bool:
    return type(pair) is tuple and len(pair) == 2 and type(pair[0]) is str


def _convert_arg(name: str, param: str | None, value: object) -> object:
    """Give an argument back the Python type the package expects."""
    if (name, param) in _DATETIME_PARAMS:
        return _to_datetime(value)
    if (name, param) in _DICT_PARAMS:
        return _to_dict(name, value)
    return value


def _decode_arguments(name: str, args: object, kwargs: object) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Check that the arguments are plain data (no netrefs) and convert them for the call."""
    if type(args) is not tuple or not is_plain(args):
        raise ValueError(f"{name}: args must be a tuple of plain values")
    if type(kwargs) is not tuple or not is_plain(kwargs) or not all(_is_pair(pair) for pair in kwargs):
        raise ValueError(f"{name}: kwargs must be a tuple of (name, plain value) pairs")
    params = _POSITIONAL_PARAMS.get(name, ())
    call_args = tuple(_convert_arg(name, params[i] if i < len(params) else None, value) for i, value in enumerate(args))
    call_kwargs = {key: _convert_arg(name, key, value) for key, value in kwargs}
    return call_args, call_kwargs


class CallDispatcher:
    """Runs allow-listed MT5 calls on a hosted object and answers by value.

    One lock serializes every call: an MT5 terminal is single-threaded and its
    last_error() is global, so it is read under the same lock as the call it explains.
    """

    def __init__(self, api: object, *, busy_timeout_secs: float = 60.0) -> None:
        if not callable(getattr(api, "last_error", None)):
            raise TypeError("the hosted object must have the MetaTrader5 functions (no last_error())")
        self._api = api
        self._lock = threading.Lock()
        self._busy_timeout_secs = busy_timeout_secs

    def call(self, name: str, args: tuple[Any, ...] = (), kwargs: tuple[Any, ...] = ()) -> Reply:
        """Call `name` on the hosted object; refuse (ValueError) anything off the allow-list."""
        function = self._resolve(name)
        call_args, call_kwargs = _decode_arguments(name, args, kwargs)
        if not self._lock.acquire(timeout=self._busy_timeout_secs):
            busy = f"{name}: the terminal stayed busy for {self._busy_timeout_secs} s"
            return FAILED, None, (RES_E_INTERNAL_FAIL_TIMEOUT, busy)
        try:
            return self._invoke(name, function, call_args, call_kwargs)
        finally:
            self._lock.release()

    def call_many(self, calls: object) -> tuple[Reply, ...]:
        """Several read calls in one exchange, run in order under one hold of the lock, so no
        other caller's call comes between them; each reply as `call` gives it. Only snapshot
        reads may be batched (never order_send or the session calls)."""
        if type(calls) is not tuple or len(calls) > MAX_BATCH_CALLS or not all(_is_call(c) for c in calls):
            raise ValueError(f"calls must be a tuple of at most {MAX_BATCH_CALLS} (name, args, kwargs) triples")
        prepared = []
        for name, args, kwargs in calls:
            if name not in READ_CALLS:
                raise ValueError(f"refused in a batch: {name!r} is not a snapshot read")
            prepared.append((name, self._resolve(name), *_decode_arguments(name, args, kwargs)))
        if not self._lock.acquire(timeout=self._busy_timeout_secs):
            busy = f"the terminal stayed busy for {self._busy_timeout_secs} s"
            return tuple((FAILED, None, (RES_E_INTERNAL_FAIL_TIMEOUT, f"{name}: {busy}")) for name, *_ in prepared)
        try:
            batch = getattr(self._api, "read_many", None)
            if callable(batch) and not any(kwargs for *_, kwargs in prepared):
                return self._invoke_many(batch, [(name, args) for name, _, args, _ in prepared])
            return tuple(self._invoke(name, function, args, kwargs) for name, function, args, kwargs in prepared)
        finally:
            self._lock.release()

    def _invoke_many(self, batch: Any, calls: list[tuple[str, tuple[Any, ...]]]) -> tuple[Reply, ...]:
        """The calls through the hosted object's own batch (a session over a worker process: one
        pipe round trip), each reply as `_invoke` gives it."""
        try:
            answers = list(batch(calls))
        except Exception as exc:
            log.warning("read_many raised %s: %s", type(exc).__name__, exc)
            failed = f"read_many raised {type(exc).__name__}: {exc}"
            return tuple((FAILED, None, (RES_E_INTERNAL_FAIL, f"{name}: {failed}")) for name, _ in calls)
        if len(answers) != len(calls):
            return tuple((FAILED, None, (RES_E_INTERNAL_FAIL, f"{name}: malformed batch answer")) for name, _ in calls)
        replies: list[Reply] = []
        for (name, _), (result, error) in zip(calls, answers, strict=True):
            try:
                replies.append((OK, encode_value(result), error_pair(error)))
            except WireError as exc:
                replies.append((FAILED, None, (RES_E_INTERNAL_FAIL_SEND, f"{name}: {exc}")))
        return tuple(replies)

    def _resolve(self, name: object) -> Any:
        """The hosted function for an allowed name, or a refusal."""
        if type(name) is not str or name not in ALLOWED_CALLS:
            raise ValueError(f"refused: {name!r} is not an allowed MetaTrader5 function")
        function = getattr(self._api, name, None)
        if not callable(function):
            raise ValueError(f"refused: the hosted terminal has no {name}()")
        return function

    def _invoke(self, name: str, function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Reply:
        """Run the call; an exception becomes a failed reply, as the package reports errors."""
        try:
            result = function(*args, **kwargs)
        except Exception as exc:
            log.warning("%s raised %s: %s", name, type(exc).__name__, exc)
            return FAILED, None, (RES_E_INTERNAL_FAIL, f"{name} raised {type(exc).__name__}: {exc}")
        try:
            payload = encode_value(result)
        except WireError as exc:
            return FAILED, None, (RES_E_INTERNAL_FAIL_SEND, f"{name}: {exc}")
        return OK, payload, self._last_error()

    def _last_error(self) -> ErrorPair:
        try:
            return error_pair(self._api.last_error())  # type: ignore[attr-defined]
        except Exception as exc:
            return RES_E_INTERNAL_FAIL, f"last_error raised {type(exc).__name__}: {exc}"
