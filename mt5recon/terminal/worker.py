"""The MetaTrader5 module in a worker process per terminal, where a timeout can be enforced.

The official package blocks inside its calls and drives one terminal per process through
module-level state. Run in the caller's process, a hung terminal would hang the caller's
thread for good (a thread cannot be stopped) and two accounts could not be served at once.
So each terminal gets its own worker process (spawned, never forked: polars deadlocks
after fork) that hosts the module behind the same `CallDispatcher` as the bridge:

- every call has a deadline; a call that misses it kills the worker (the only way to stop
  a blocked MT5 call) and returns None with RES_E_INTERNAL_FAIL_TIMEOUT, like an IPC timeout;
- a worker that dies mid-call gives RES_E_INTERNAL_FAIL_CONNECT; the next call starts a new one;
- only plain data crosses the pipe, in the bridge's wire form;
- a snapshot's reads may cross as one batch (`read_many`): one round trip instead of one per
  call, each call with its own reply and last_error, and the batch's deadline the sum of its
  calls' deadlines.
"""

from __future__ import annotations

import importlib
import multiprocessing
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from mt5recon.terminal.constants import (
    RES_E_INTERNAL_FAIL,
    RES_E_INTERNAL_FAIL_CONNECT,
    RES_E_INTERNAL_FAIL_TIMEOUT,
)
from mt5recon.terminal.dispatch import CallDispatcher
from mt5recon.terminal.remote import RemoteTerminal, TransportError

OFFICIAL_MODULE = "MetaTrader5"
_READY = "ready"
_BROKEN = "broken"  # the worker cannot host the module, or refused a call: (_BROKEN, reason)
_STOP = None  # sent to ask the worker to exit
_BATCH = "call_many"  # (_BATCH, calls): snapshot reads answered in one reply


def serve_module(module_name: str, conn: Connection) -> None:
    """Worker process: import the module, then answer calls until told to stop or orphaned."""
    try:
        dispatcher = CallDispatcher(importlib.import_module(module_name))
    except Exception as exc:  # reported to the parent, which turns it into a connect failure
        conn.send((_BROKEN, f"cannot host {module_name}: {type(exc).__name__}: {exc}"))
        return
    conn.send((_READY, module_name))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is _STOP:
            return
        try:
            batch = type(message) is tuple and len(message) == 2 and message[0] == _BATCH
            reply: object = dispatcher.call_many(message[1]) if batch else dispatcher.call(*message)
        except Exception as exc:  # refused (not allow-listed, not plain data): the caller's mistake
            reply = (_BROKEN, str(exc))
        conn.send(reply)


class ProcessTerminal(RemoteTerminal):
    """`MT5Api` backed by `module` (the official `MetaTrader5` by default) in its own process."""

    def __init__(
        self,
        module: str = OFFICIAL_MODULE,
        *,
        call_timeout_secs: float = 10.0,
        start_timeout_secs: float = 30.0,
    ) -> None:
        super().__init__()
        self.module = module
        self.call_timeout_secs = call_timeout_secs
        self.start_timeout_secs = start_timeout_secs
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self.starts = 0

    def __repr__(self) -> str:
        pid = self._process.pid if self._process is not None else None
        return f"ProcessTerminal({self.module!r}, pid={pid})"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def close(self) -> None:
        """Ask the worker to exit; stop it if it does not (a call may still be blocking it)."""
        with self._lock:
            conn, process = self._conn, self._process
            if conn is not None and process is not None and process.is_alive():
                try:
                    conn.send(_STOP)
                    process.join(timeout=1.0)
                except OSError:
                    pass
            self._stop()

    def _exchange(self, name: str, args: tuple[Any, ...], kwargs: tuple[Any, ...]) -> object:
        return self._round_trip((name, args, kwargs), name, self.call_timeout_secs)

    def _exchange_many(self, calls: tuple[tuple[str, tuple[Any, ...], tuple[Any, ...]], ...]) -> object:
        label = f"a batch of {len(calls)} calls"
        return self._round_trip((_BATCH, calls), label, self.call_timeout_secs * max(1, len(calls)))

    def _round_trip(self, message: object, label: str, timeout_secs: float) -> object:
        """Send one message to the worker and wait for its reply, at most `timeout_secs`."""
        conn = self._worker()
        try:
            conn.send(message)
        except OSError as exc:
            self._stop()
            raise TransportError(RES_E_INTERNAL_FAIL_CONNECT, f"{label}: the terminal worker is gone: {exc}") from exc
        if not conn.poll(timeout_secs):
            self._stop()  # the call is blocked inside the terminal: only ending the process stops it
            silent = f"{label}: no answer within {timeout_secs:g} s; the terminal worker was stopped"
            raise TransportError(RES_E_INTERNAL_FAIL_TIMEOUT, silent)
        try:
            reply = conn.recv()
        except (EOFError, OSError) as exc:
            self._stop()
            raise TransportError(RES_E_INTERNAL_FAIL_CONNECT, f"{label}: the terminal worker died mid-call") from exc
        if type(reply) is tuple and len(reply) == 2 and reply[0] == _BROKEN:
            raise TransportError(RES_E_INTERNAL_FAIL, f"{label}: refused: {reply[1]}")
        return reply

    def _worker(self) -> Connection:
        """The live worker's pipe, starting a worker if there is none."""
        if self._conn is not None and self._process is not None and self._process.is_alive():
            return self._conn
        self._stop()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=serve_module, args=(self.module, child), name=f"mt5-worker-{self.module}", daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        self.starts += 1
        if not parent.poll(self.start_timeout_secs):
            self._stop()
            late = f"the terminal worker did not start within {self.start_timeout_secs:g} s"
            raise TransportError(RES_E_INTERNAL_FAIL_CONNECT, late)
        try:
            status, detail = parent.recv()
        except (EOFError, OSError) as exc:
            self._stop()
            raise TransportError(RES_E_INTERNAL_FAIL_CONNECT, "the terminal worker died while starting") from exc
        if status != _READY:
            self._stop()
            raise TransportError(RES_E_INTERNAL_FAIL_CONNECT, str(detail))
        return parent

    def _stop(self) -> None:
        conn, process = self._conn, self._process
        self._conn, self._process = None, None
        if conn is not None:
            conn.close()
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(timeout=5.0)
            process.close()
