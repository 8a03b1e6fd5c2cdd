"""RPyC bridge to a MetaTrader5 terminal: a by-value server on the terminal host, an MT5Api client.

The `MetaTrader5` package only runs on Windows, so Linux users run the terminal under Wine
with a Windows Python and reach it over the network:

- terminal host (Windows / Wine)::

      python -m mt5recon.terminal.bridge --host 127.0.0.1 --port 18812

  hosts the real `MetaTrader5` module; `serve_bridge(api)` hosts any object with the same
  functions (the simulator's terminal, a test fake).
- pipeline side: `BridgeTerminal(host, port)` implements `MT5Api`, so it drops in wherever
  the real module or the simulator does.

Unlike `mt5linux`, nothing is ever `eval`-ed: the server exposes one entry point,
`call(name, args, kwargs)`, for an explicit allow-list of MT5 function names, and only
plain data crosses the wire in either direction (see `bridge_wire`), so neither side ever
holds a live reference (netref) into the other.

SECURITY: the server has no authentication and executes MT5 calls - `order_send`
included - on the terminal host for anyone who can reach its port. Bind it to loopback
(the default) or to a private tunnel (SSH port forward, WireGuard) only; never to a
public or shared interface.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Self, cast

import rpyc
from rpyc.core.stream import SocketStream
from rpyc.utils.server import ThreadedServer

from mt5recon.terminal.bridge_wire import (
    WireError,
    decode_value,
    encode_value,
    is_plain,
)
from mt5recon.terminal.constants import (
    RES_E_INTERNAL_FAIL,
    RES_E_INTERNAL_FAIL_CONNECT,
    RES_E_INTERNAL_FAIL_RECEIVE,
    RES_E_INTERNAL_FAIL_SEND,
    RES_E_INTERNAL_FAIL_TIMEOUT,
    RES_E_INVALID_PARAMS,
)
from mt5recon.terminal.records import (
    AccountInfo,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
)

__all__ = [
    "ALLOWED_CALLS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "BridgeService",
    "BridgeTerminal",
    "main",
    "serve_bridge",
]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 18812

ALLOWED_CALLS: frozenset[str] = frozenset(
    {
        "initialize",
        "login",
        "shutdown",
        "last_error",
        "terminal_info",
        "account_info",
        "positions_get",
        "orders_get",
        "history_deals_get",
        "symbol_info",
        "symbol_info_tick",
        "order_send",
        "version",  # served only if the hosted object has it
    }
)
"""The MT5 functions the bridge will call; every other name is refused."""

# Parameters whose wire form differs from what the package accepts, by function.
_POSITIONAL_PARAMS: dict[str, tuple[str, ...]] = {
    "history_deals_get": ("date_from", "date_to", "group", "ticket", "position"),
    "order_send": ("request",),
}
_DATETIME_PARAMS = frozenset({("history_deals_get", "date_from"), ("history_deals_get", "date_to")})
_DICT_PARAMS = frozenset({("order_send", "request")})

# Both sides: no public/all attribute access, no pickle, no remote setattr, no foreign
# exception classes. Only `exposed_*` members are reachable (and the client exposes none).
_SAFE_CONFIG: dict[str, Any] = {
    "allow_public_attrs": False,
    "allow_all_attrs": False,
    "allow_setattr": False,
    "allow_delattr": False,
    "allow_pickle": False,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": False,
    "instantiate_oldstyle_exceptions": False,
}

_OK = "ok"
_FAILED = "failed"

ErrorPair = tuple[int, str]
Reply = tuple[str, Any, ErrorPair]
"""(status, encoded result, the terminal's last_error right after the call)."""


# ---------------------------------------------------------------------------------------
# server side
# ---------------------------------------------------------------------------------------


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


def _error_pair(value: object) -> ErrorPair:
    """Normalize a last_error() result to a plain (int, str)."""
    if isinstance(value, tuple) and len(value) == 2:
        try:
            return int(value[0]), str(value[1])
        except (TypeError, ValueError):
            pass
    return RES_E_INTERNAL_FAIL, f"the terminal's last_error() returned {value!r}"


class BridgeService(rpyc.Service):  # type: ignore[misc]
    """Hosts an MT5-like object behind one allow-listed, by-value entry point.

    One lock serializes every call: an MT5 terminal is single-threaded and its
    last_error() is global, so it is read under the same lock as the call it explains.
    """

    def __init__(self, api: object, *, busy_timeout_secs: float = 60.0) -> None:
        if not callable(getattr(api, "last_error", None)):
            raise TypeError("the hosted object must have the MetaTrader5 functions (no last_error())")
        self._api = api
        self._lock = threading.Lock()
        self._busy_timeout_secs = busy_timeout_secs

    def exposed_call(self, name: str, args: tuple[Any, ...] = (), kwargs: tuple[Any, ...] = ()) -> Reply:
        """Call `name` on the hosted object; refuse (ValueError) anything off the allow-list."""
        function = self._resolve(name)
        call_args, call_kwargs = _decode_arguments(name, args, kwargs)
        if not self._lock.acquire(timeout=self._busy_timeout_secs):
            busy = f"{name}: the terminal stayed busy for {self._busy_timeout_secs} s"
            return _FAILED, None, (RES_E_INTERNAL_FAIL_TIMEOUT, busy)
        try:
            return self._invoke(name, function, call_args, call_kwargs)
        finally:
            self._lock.release()

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
            return _FAILED, None, (RES_E_INTERNAL_FAIL, f"{name} raised {type(exc).__name__}: {exc}")
        try:
            payload = encode_value(result)
        except WireError as exc:
            return _FAILED, None, (RES_E_INTERNAL_FAIL_SEND, f"{name}: {exc}")
        return _OK, payload, self._last_error()

    def _last_error(self) -> ErrorPair:
        try:
            return _error_pair(self._api.last_error())  # type: ignore[attr-defined]
        except Exception as exc:
            return RES_E_INTERNAL_FAIL, f"last_error raised {type(exc).__name__}: {exc}"


class _BridgeServer(ThreadedServer):  # type: ignore[misc]
    """rpyc's ThreadedServer, quiet when a client vanishes while its call is still running."""

    def _handle_connection(self, conn: rpyc.Connection) -> None:  # rpyc's documented hook
        try:
            conn.serve_all()
        except (OSError, EOFError) as exc:  # reply to a client that gave up: nothing to do
            self.logger.info("client gone: %s", exc)


def _serve_in_background(server: ThreadedServer) -> None:
    try:
        server.start()
    except OSError:
        if server.listener.fileno() != -1:
            raise  # a real failure; otherwise it was closed before this thread got going


def serve_bridge(
    api: object,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    block: bool = False,
    busy_timeout_secs: float = 60.0,
) -> ThreadedServer:
    """Serve `api` on host:port (port 0 picks a free one: read `server.port`).

    A thread per connection keeps the listener responsive while one MT5 call blocks.
    With `block=False` the server already accepts connections when this returns and runs
    in a daemon thread (stop it with `server.close()`); `block=True` serves until closed.
    """
    server = _BridgeServer(
        BridgeService(api, busy_timeout_secs=busy_timeout_secs),
        hostname=host,
        port=port,
        protocol_config={**_SAFE_CONFIG, "include_local_traceback": False},
        auto_register=False,
        logger=logging.getLogger(f"{__name__}.server"),
    )
    if block:
        server.start()
        return server
    server.listener.listen(server.backlog)  # accept from now on, not once the thread runs
    name = f"mt5-bridge-{server.port}"
    threading.Thread(target=_serve_in_background, args=(server,), name=name, daemon=True).start()
    return server


# ---------------------------------------------------------------------------------------
# client side
# ---------------------------------------------------------------------------------------


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


def _given(**params: Any) -> dict[str, Any]:
    """Only the parameters the caller set: the package rejects None for several of them."""
    return {name: value for name, value in params.items() if value is not None}


def _is_reply(reply: object) -> bool:
    """An envelope (status, payload, (code, message)) made of plain data only."""
    return (
        type(reply) is tuple
        and len(reply) == 3
        and reply[0] in (_OK, _FAILED)
        and type(reply[2]) is tuple
        and len(reply[2]) == 2
        and type(reply[2][0]) is int
        and type(reply[2][1]) is str
    )


class BridgeTerminal:
    """`MT5Api` over the bridge: same functions, same failure style as the real package.

    Transport problems never raise: the call returns None (False for initialize/login)
    and `last_error()` says RES_E_INTERNAL_FAIL_CONNECT or _TIMEOUT; the next call
    reconnects. Otherwise `last_error()` is the terminal's own, read right after this
    client's previous call under the server's lock.
    """

    def __init__(
        self, host: str, port: int, connect_timeout_secs: float = 5.0, call_timeout_secs: float = 10.0
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout_secs = connect_timeout_secs
        self.call_timeout_secs = call_timeout_secs
        self._lock = threading.RLock()
        self._stream: SocketStream | None = None
        self._conn: rpyc.Connection | None = None
        self._error: ErrorPair | None = None

    def __repr__(self) -> str:
        return f"BridgeTerminal({self.host!r}, {self.port})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the connection (the next call would reconnect)."""
        with self._lock:
            self._disconnect()

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
        kwargs = _given(login=login, password=password, server=server, timeout=timeout)
        if portable:
            kwargs["portable"] = True
        args = () if path is None else (path,)
        return bool(self._call("initialize", args, kwargs, failure=False))

    def login(
        self, login: int, password: str | None = None, server: str | None = None, timeout: int | None = None
    ) -> bool:
        kwargs = _given(password=password, server=server, timeout=timeout)
        return bool(self._call("login", (login,), kwargs, failure=False))

    def shutdown(self) -> None:
        self._call("shutdown")

    def last_error(self) -> tuple[int, str]:
        with self._lock:
            if self._error is None:  # no call yet: ask the terminal
                self._call("last_error")
            return self._error or (RES_E_INTERNAL_FAIL, "no error information")

    def terminal_info(self) -> TerminalInfo | None:
        return self._call("terminal_info")  # type: ignore[no-any-return]

    def account_info(self) -> AccountInfo | None:
        return self._call("account_info")  # type: ignore[no-any-return]

    def positions_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[TradePosition, ...] | None:
        filters = _given(symbol=symbol, group=group, ticket=ticket)
        return self._call("positions_get", kwargs=filters)  # type: ignore[no-any-return]

    def orders_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[TradeOrder, ...] | None:
        filters = _given(symbol=symbol, group=group, ticket=ticket)
        return self._call("orders_get", kwargs=filters)  # type: ignore[no-any-return]

    def history_deals_get(
        self,
        date_from: datetime | int | None = None,
        date_to: datetime | int | None = None,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
    ) -> tuple[TradeDeal, ...] | None:
        # the package takes the date range positionally, the filters by keyword
        dates = () if date_from is None and date_to is None else (date_from, date_to)
        kwargs = _given(group=group, ticket=ticket, position=position)
        return self._call("history_deals_get", dates, kwargs)  # type: ignore[no-any-return]

    def symbol_info(self, symbol: str) -> SymbolInfo | None:
        return self._call("symbol_info", (symbol,))  # type: ignore[no-any-return]

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        return self._call("symbol_info_tick", (symbol,))  # type: ignore[no-any-return]

    def order_send(self, request: dict[str, Any]) -> OrderSendResult | None:
        return self._call("order_send", (request,))  # type: ignore[no-any-return]

    def version(self) -> tuple[int, int, str] | None:
        """The terminal's (version, build, release date), if the hosted object has version()."""
        return self._call("version")  # type: ignore[no-any-return]

    # -- transport ----------------------------------------------------------------------

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
                conn = self._connection()
            except (OSError, EOFError) as exc:
                unreachable = f"cannot reach the bridge at {self.host}:{self.port}: {exc}"
                return self._fail(failure, RES_E_INTERNAL_FAIL_CONNECT, unreachable)
            return self._round_trip(conn, name, wire_args, wire_kwargs, failure)

    def _round_trip(
        self, conn: rpyc.Connection, name: str, args: tuple[Any, ...], kwargs: tuple[Any, ...], failure: Any
    ) -> Any:
        """Send the call; sort what can go wrong into the package's error codes."""
        try:
            reply = conn.root.call(name, args, kwargs)
        except TimeoutError:  # rpyc's AsyncResultTimeout; must precede OSError, its base
            self._disconnect()  # a late reply must not be taken for the next call's
            timeout = f"{name}: no reply within {self.call_timeout_secs} s"
            return self._fail(failure, RES_E_INTERNAL_FAIL_TIMEOUT, timeout)
        except (EOFError, OSError) as exc:
            self._disconnect()
            lost = f"{name}: connection to the bridge lost: {exc}"
            return self._fail(failure, RES_E_INTERNAL_FAIL_CONNECT, lost)
        except Exception as exc:
            return self._fail(failure, RES_E_INTERNAL_FAIL, f"{name}: the bridge refused it: {exc}")
        return self._unpack(name, reply, failure)

    def _unpack(self, name: str, reply: object, failure: Any) -> Any:
        """Check the envelope, rebuild the records, remember the terminal's last_error."""
        if not _is_reply(reply):
            return self._fail(failure, RES_E_INTERNAL_FAIL_RECEIVE, f"{name}: malformed reply")
        status, payload, error = cast(Reply, reply)
        if status == _FAILED:
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
        log.debug("bridge %s:%s: %s", self.host, self.port, message)
        return failure

    def _connection(self) -> rpyc.Connection:
        """The live connection, (re)connecting if there is none or the server hung up."""
        if self._conn is not None and self._is_alive():
            return self._conn
        self._disconnect()
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_secs)
        sock.settimeout(self.call_timeout_secs)  # bounds a send to a server that stopped reading
        stream = SocketStream(sock)
        config = {**_SAFE_CONFIG, "sync_request_timeout": self.call_timeout_secs}
        self._stream = stream
        self._conn = rpyc.connect_stream(stream, rpyc.VoidService, config)
        return self._conn

    def _is_alive(self) -> bool:
        """No request is pending between calls, so anything readable means EOF or garbage."""
        if self._conn is None or self._stream is None or self._conn.closed:
            return False
        try:
            return not self._stream.poll(0)
        except (EOFError, OSError, ValueError):
            return False

    def _disconnect(self) -> None:
        """Close without the polite close request, which could wait on a blocked server."""
        stream, conn = self._stream, self._conn
        self._stream, self._conn = None, None
        if stream is not None:
            stream.close()
        if conn is not None:
            try:
                conn.close()  # the stream is gone: this only releases local resources
            except Exception as exc:
                log.debug("closing the bridge connection: %s", exc)


# ---------------------------------------------------------------------------------------
# entry point on the terminal host
# ---------------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mt5recon.terminal.bridge",
        description="Serve this machine's MetaTrader5 terminal to an mt5recon BridgeTerminal. "
        "No authentication: bind to loopback or a private tunnel only.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--busy-timeout", type=float, default=60.0, help="seconds a call waits for the terminal (default 60)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the real MetaTrader5 module until interrupted (run on the terminal host)."""
    args = _parse_args(argv)
    try:
        import MetaTrader5  # Windows-only: imported only here
    except ImportError:
        print("the MetaTrader5 package is not installed (it needs Windows or Wine Python)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not _is_loopback(args.host):
        log.warning("binding to %s: anyone who reaches this port can trade on this terminal", args.host)
    log.info("serving MetaTrader5 on %s:%s", args.host, args.port)
    serve_bridge(MetaTrader5, args.host, args.port, block=True, busy_timeout_secs=args.busy_timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
