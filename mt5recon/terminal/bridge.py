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
import importlib.util
import ipaddress
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, Self

import rpyc
from rpyc.core.stream import SocketStream
from rpyc.utils.server import ThreadedServer

from mt5recon.terminal.constants import RES_E_INTERNAL_FAIL_CONNECT, RES_E_INTERNAL_FAIL_TIMEOUT
from mt5recon.terminal.dispatch import ALLOWED_CALLS, CallDispatcher, Reply
from mt5recon.terminal.remote import RemoteTerminal, TransportError
from mt5recon.terminal.session import SessionTerminal
from mt5recon.terminal.worker import OFFICIAL_MODULE, ProcessTerminal

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


class BridgeService(rpyc.Service):  # type: ignore[misc]
    """Hosts an MT5-like object behind the dispatcher's one allow-listed, by-value entry point."""

    def __init__(self, api: object, *, busy_timeout_secs: float = 60.0) -> None:
        self._dispatcher = CallDispatcher(api, busy_timeout_secs=busy_timeout_secs)

    def exposed_call(self, name: str, args: tuple[Any, ...] = (), kwargs: tuple[Any, ...] = ()) -> Reply:
        """Call `name` on the hosted object; refuse (ValueError) anything off the allow-list."""
        return self._dispatcher.call(name, args, kwargs)

    def exposed_call_many(self, calls: tuple[Any, ...]) -> tuple[Reply, ...]:
        """Several snapshot reads in one round trip (see `CallDispatcher.call_many`)."""
        return self._dispatcher.call_many(calls)


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


class BridgeTerminal(RemoteTerminal):
    """`MT5Api` over the bridge: same functions, same failure style as the real package.

    A lost connection or a call with no reply within `call_timeout_secs` returns None with
    RES_E_INTERNAL_FAIL_CONNECT / _TIMEOUT; the next call reconnects.
    """

    def __init__(
        self, host: str, port: int, connect_timeout_secs: float = 5.0, call_timeout_secs: float = 10.0
    ) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.connect_timeout_secs = connect_timeout_secs
        self.call_timeout_secs = call_timeout_secs
        self._stream: SocketStream | None = None
        self._conn: rpyc.Connection | None = None
        self._host_batches = True

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

    def _exchange(self, name: str, args: tuple[Any, ...], kwargs: tuple[Any, ...]) -> object:
        """Send the call over the socket; sort what can go wrong into the package's error codes."""
        return self._over_socket(name, lambda root: root.call(name, args, kwargs))

    def _exchange_many(self, calls: tuple[tuple[str, tuple[Any, ...], tuple[Any, ...]], ...]) -> object:
        """The calls in one round trip; a host that predates batches is asked call by call."""
        if not self._host_batches:
            return super()._exchange_many(calls)
        try:
            return self._over_socket("call_many", lambda root: root.call_many(calls))
        except AttributeError:  # the host exposes no call_many: remember, and ask one by one
            self._host_batches = False
            return super()._exchange_many(calls)

    def _over_socket(self, label: str, send: Callable[[Any], object]) -> object:
        try:
            conn = self._connection()
        except (OSError, EOFError) as exc:
            raise TransportError(
                RES_E_INTERNAL_FAIL_CONNECT, f"cannot reach the bridge at {self.host}:{self.port}: {exc}"
            ) from exc
        try:
            return send(conn.root)
        except TimeoutError as exc:  # rpyc's AsyncResultTimeout; must precede OSError, its base
            self._disconnect()  # a late reply must not be taken for the next call's
            raise TransportError(
                RES_E_INTERNAL_FAIL_TIMEOUT, f"{label}: no reply within {self.call_timeout_secs} s"
            ) from exc
        except (EOFError, OSError) as exc:
            self._disconnect()
            raise TransportError(RES_E_INTERNAL_FAIL_CONNECT, f"{label}: connection to the bridge lost: {exc}") from exc

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
        description="Serve this machine's MetaTrader5 terminal to an mt5recon BridgeTerminal, keeping its "
        "session logged in between cycles. No authentication: bind to loopback or a private tunnel only.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--busy-timeout", type=float, default=60.0, help="seconds a call waits for the terminal (default 60)"
    )
    parser.add_argument(
        "--call-timeout",
        type=float,
        default=10.0,
        help="seconds one MT5 call may block before the terminal's worker process is stopped (default 10)",
    )
    parser.add_argument("--module", default=OFFICIAL_MODULE, help="the package to host (default MetaTrader5)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the MetaTrader5 module until SIGTERM or Ctrl-C (run on the terminal host).

    The module runs in a worker process behind a session: a blocked call is cut off after
    `--call-timeout`, the login is kept between cycles, and stopping shuts the terminal
    session down cleanly.
    """
    args = _parse_args(argv)
    if importlib.util.find_spec(args.module) is None:
        print(f"the {args.module} package is not installed (it needs Windows or Wine Python)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not _is_loopback(args.host):
        log.warning("binding to %s: anyone who reaches this port can trade on this terminal", args.host)
    session = SessionTerminal(lambda: ProcessTerminal(args.module, call_timeout_secs=args.call_timeout))
    server = serve_bridge(session, args.host, args.port, busy_timeout_secs=args.busy_timeout)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    log.info("serving %s on %s:%s", args.module, args.host, server.port)
    try:
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
        session.close()
        log.info("stopped: the terminal session is shut down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
