"""A terminal session kept logged in between cycles, rebuilt with backoff when it breaks.

Logging in is the slow, fragile part of talking to MT5 (the terminal may be starting, the
broker may refuse), so the process that holds a terminal keeps one session per terminal:
`initialize` for an account the session already serves is answered from the live session
after one cheap check, the caller's per-cycle `shutdown` leaves it open, and a call that
fails with an IPC error drops it. Reconnecting after a failure waits an exponential,
jittered backoff, so a flapping terminal is not hammered by every cycle.

`SessionTerminal` speaks the MetaTrader5 API itself, so it can be hosted by the bridge or
used in-process wherever a terminal is expected.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mt5recon.terminal import constants as c
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.errors import error_pair
from mt5recon.terminal.forwarding import ForwardedCalls

# last_error() codes that mean the link to the terminal itself is broken, not just one call
SESSION_LOST_CODES = frozenset(
    {
        c.RES_E_INTERNAL_FAIL,
        c.RES_E_INTERNAL_FAIL_SEND,
        c.RES_E_INTERNAL_FAIL_RECEIVE,
        c.RES_E_INTERNAL_FAIL_INIT,
        c.RES_E_INTERNAL_FAIL_CONNECT,
        c.RES_E_INTERNAL_FAIL_TIMEOUT,
    }
)
_OK = (c.RES_S_OK, "Success")
_NOT_INITIALIZED = (c.RES_E_INTERNAL_FAIL_INIT, "not initialized, call initialize() first")


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential backoff between failed connects: initial, doubled per failure up to a cap,
    then shortened by up to `jitter_pct` at random so many terminals do not retry in step."""

    initial_backoff_secs: float = 1.0
    max_backoff_secs: float = 60.0
    multiplier: float = 2.0
    jitter_pct: float = 50.0

    def __post_init__(self) -> None:
        if self.initial_backoff_secs <= 0 or self.max_backoff_secs < self.initial_backoff_secs:
            raise ValueError("backoff: need 0 < initial_backoff_secs <= max_backoff_secs")
        if self.multiplier < 1 or not 0 <= self.jitter_pct <= 100:
            raise ValueError("backoff: need multiplier >= 1 and 0 <= jitter_pct <= 100")

    def ceiling_secs(self, failures: int) -> float:
        """The un-jittered wait after `failures` consecutive failed connects (failures >= 1)."""
        return min(self.max_backoff_secs, self.initial_backoff_secs * self.multiplier ** max(0, failures - 1))

    def delay_secs(self, failures: int, draw: float) -> float:
        """The wait after `failures` failed connects; `draw` in [0, 1) picks the jitter."""
        ceiling = self.ceiling_secs(failures)
        return ceiling * (1.0 - self.jitter_pct / 100.0 * draw)


@dataclass
class SessionStats:
    """What the session did, for health and tests: logins made, cycles served from a live session."""

    connects: int = 0
    reuses: int = 0
    drops: int = 0
    failed_connects: int = 0


class SessionTerminal(ForwardedCalls):
    """One terminal's MT5 session, owned by the process that holds the terminal.

    `make_api` builds a fresh, uninitialized terminal object (the official module in a worker
    process, a simulator terminal); it is called again after the session is dropped.
    """

    def __init__(
        self,
        make_api: Callable[[], MT5Api],
        *,
        policy: ReconnectPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] | None = None,
    ) -> None:
        self._make_api = make_api
        self._policy = policy or ReconnectPolicy()
        self._clock = clock
        self._draw = draw or random.Random().random
        self._lock = threading.RLock()
        self._api: MT5Api | None = None
        self._live = False
        self._account: tuple[int | None, str | None] = (None, None)
        self._failures = 0
        self._retry_at: float | None = None
        self._error: tuple[int, str] | None = None
        self.stats = SessionStats()

    def __repr__(self) -> str:
        login, server = self._account
        return f"SessionTerminal(login={login}, server={server}, live={self._live}, failures={self._failures})"

    @property
    def live(self) -> bool:
        return self._live

    @property
    def retry_at(self) -> float | None:
        """Clock time before which no reconnect is attempted (None: no backoff pending)."""
        return self._retry_at

    # -- session ------------------------------------------------------------------------------------

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
        """Reuse the live session when it serves this account; else (re)connect, respecting backoff."""
        with self._lock:
            if self._serves(login, server):
                self.stats.reuses += 1
                self._error = _OK
                return True
            now = self._clock()
            if self._retry_at is not None and now < self._retry_at:
                wait = self._retry_at - now
                self._error = (
                    c.RES_E_INTERNAL_FAIL_INIT,
                    f"reconnect backoff: {self._failures} failed attempts, next in {wait:.1f} s",
                )
                return False
            self._drop()
            api = self._api = self._make_api()
            options: dict[str, Any] = {"login": login, "password": password, "server": server, "timeout": timeout}
            options = {key: value for key, value in options.items() if value is not None}
            if portable:
                options["portable"] = True
            ok = api.initialize(path, **options) if path else api.initialize(**options)
            if ok:
                self._live, self._account = True, (login, server)
                self._failures, self._retry_at, self._error = 0, None, _OK
                self.stats.connects += 1
                return True
            self._error = error_pair(api.last_error())
            self._failures += 1
            self._retry_at = now + self._policy.delay_secs(self._failures, self._draw())
            self.stats.failed_connects += 1
            self._drop()
            return False

    def login(
        self, login: int, password: str | None = None, server: str | None = None, timeout: int | None = None
    ) -> bool:
        """Switch the live session's account (the session then serves the new one)."""
        with self._lock:
            if self._api is None or not self._live:
                self._error = _NOT_INITIALIZED
                return False
            ok = self._api.login(login, password, server, timeout)
            self._account = (login, server) if ok else self._account
            self._error = None if ok else error_pair(self._api.last_error())
            return bool(ok)

    def shutdown(self) -> None:
        """The caller is done for this cycle: the session stays open for the next one."""

    def close(self) -> None:
        """Really shut the terminal session down (the hosting process is stopping)."""
        with self._lock:
            self._drop()

    def last_error(self) -> tuple[int, str]:
        with self._lock:
            if self._error is not None:
                return self._error
            if self._api is None:
                return _NOT_INITIALIZED
            return error_pair(self._api.last_error())

    # -- calls --------------------------------------------------------------------------------------

    def version(self) -> tuple[int, int, str] | None:
        """The terminal's (version, build, release date), when the terminal object has version()."""
        if not callable(getattr(self._api, "version", None)):
            self._error = (c.RES_E_NOT_FOUND, "the terminal has no version()")
            return None
        return super().version()

    def _forward(self, name: str, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None) -> Any:
        return self._through(name, *args, **(kwargs or {}))

    def read_many(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[tuple[Any, tuple[int, str]]]:
        """Snapshot reads: each call's result and the last_error right after it. A terminal object
        that takes a batch (a worker process) gets them in one round trip, any other one by one;
        either way the answers are those of the same calls made one by one (a call that loses
        the session drops it, and the calls after it fail as not initialized), except that a
        worker that dies or stops answering fails the whole batch, as it fails one call."""
        with self._lock:
            batch = getattr(self._api, "read_many", None)
            if not (self._live and callable(batch)):
                return [self._read_one(name, args) for name, args in calls]
            answers = list(batch(calls))
            for index, (result, error) in enumerate(answers):
                self._error = None if result is not None else error
                if result is None and error[0] in SESSION_LOST_CODES:
                    self._drop()
                    later = len(answers) - index - 1
                    answers[index + 1 :] = [(None, _NOT_INITIALIZED)] * later
                    self._error = _NOT_INITIALIZED if later else error
                    break
            return answers

    def _read_one(self, name: str, args: tuple[Any, ...]) -> tuple[Any, tuple[int, str]]:
        result = self._through(name, *args)
        return result, (self.last_error() if result is None else _OK)

    # -- internals ----------------------------------------------------------------------------------

    def _serves(self, login: int | None, server: str | None) -> bool:
        """The live session is logged in to this account and still answers as that account."""
        if not self._live or self._api is None:
            return False
        live_login, live_server = self._account
        if (login is not None and login != live_login) or (server is not None and server != live_server):
            return False
        account = self._api.account_info()
        if account is not None and (login is None or account.login == login):
            return True
        self._drop()  # the terminal lost the session (restarted, logged out): log in again now
        return False

    def _through(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the live session; an IPC-level failure drops it so the next cycle reconnects."""
        with self._lock:
            api = self._api
            if api is None or not self._live:
                self._error = _NOT_INITIALIZED
                return None
            self._error = None
            result = getattr(api, name)(*args, **kwargs)
            if result is None:
                self._error = error_pair(api.last_error())
                if self._error[0] in SESSION_LOST_CODES:
                    self._drop()
            return result

    def _drop(self) -> None:
        api, self._api = self._api, None
        if self._live:
            self.stats.drops += 1
        self._live = False
        if api is not None:
            with contextlib.suppress(Exception):  # a dead terminal cannot shut down politely; it is gone
                api.shutdown()
            close = getattr(api, "close", None)  # a worker process or a connection behind it
            if callable(close):
                close()
