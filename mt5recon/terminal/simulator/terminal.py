"""A simulated MetaTrader5 terminal: the `MT5Api` of one account of a `SimFleet`.

Same conventions as the real module: a failed call returns None (False for initialize and
login) and `last_error()` says why; an empty tuple means "nothing", never a failure; times
are integers in the trade server's clock (UTC + `fleet.server_offset_secs`), and
`history_deals_get(date_from, date_to)` compares its bounds in that clock too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, TypeVar

from mt5recon.terminal import constants as c
from mt5recon.terminal.records import (
    AccountInfo,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)
from mt5recon.terminal.simulator.account import SimAccount
from mt5recon.terminal.simulator.book import shift_deal
from mt5recon.terminal.simulator.faults import UNKNOWN_SYMBOL
from mt5recon.terminal.simulator.market import Market
from mt5recon.terminal.simulator.trading import execute

if TYPE_CHECKING:
    from mt5recon.terminal.simulator.fleet import SimFleet

R = TypeVar("R")

OK = (c.RES_S_OK, "Success")
NOT_INITIALIZED = (c.RES_E_INTERNAL_FAIL_INIT, "Terminal: not initialized, call initialize() first")
NO_CONNECTION = (c.RES_E_INTERNAL_FAIL_CONNECT, "No connection to the trade server")
TIMEOUT = (c.RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
AUTH_FAILED = (c.RES_E_AUTH_FAILED, "Authorization failed")
CALL_FAILED = (c.RES_E_FAIL, "Terminal: Call failed")
NOT_FOUND = (c.RES_E_NOT_FOUND, "Terminal: Not found")
INVALID_PARAMS = (c.RES_E_INVALID_PARAMS, "Terminal: Invalid params")

_REQUEST_FIELDS = frozenset(TradeRequest._fields)


@dataclass(frozen=True, slots=True)
class _Timeout:
    delay: float


def _group_matcher(group: str) -> Callable[[str], bool]:
    """MT5 group syntax: comma-separated wildcards, `!` excludes ("*USD*,!EUR*")."""
    include: list[str] = []
    exclude: list[str] = []
    for part in (p.strip().upper() for p in group.split(",")):
        if part:
            (exclude if part.startswith("!") else include).append(part.lstrip("!"))

    def match(symbol: str) -> bool:
        s = symbol.upper()
        return (not include or any(fnmatchcase(s, p) for p in include)) and not any(fnmatchcase(s, p) for p in exclude)

    return match


def _epoch(value: datetime | float) -> int:
    """datetime (naive means UTC) or integer seconds, as the package accepts."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return math.floor(value.timestamp())
    return int(value)


class SimTerminal:
    """One terminal, one account at a time; cheap to create, safe to use from one thread."""

    def __init__(self, fleet: SimFleet, login: int | None = None) -> None:
        self.fleet = fleet
        self._default_login = login
        self._login: int | None = None
        self._initialized = False
        self._error: tuple[int, str] = OK
        self._path: str | None = None
        self._request_id = 0

    def __repr__(self) -> str:
        state = "initialized" if self._initialized else "not initialized"
        return f"SimTerminal(login={self._login or self._default_login}, {state})"

    # -- plumbing ------------------------------------------------------------------------------------
    def _gate(self, method: str, *, offline_ok: bool = False) -> SimAccount | _Timeout | None:
        if not self._initialized or self._login is None:
            self._error = NOT_INITIALIZED
            return None
        acct = self.fleet.account(self._login)
        if acct.faults.auth is not None:  # the broker refuses the account: the session is logged out
            self._initialized, self._error = False, AUTH_FAILED
            return None
        fault = acct.faults.take_timeout(method)
        if fault is not None:
            self._error = TIMEOUT
            return _Timeout(fault.delay)
        if not offline_ok and acct.faults.disconnected(self.fleet.now_s()):
            self._error = NO_CONNECTION
            return None
        return acct

    def _call(self, method: str, body: Callable[[SimAccount], R], failure: R, *, offline_ok: bool = False) -> R:
        fleet = self.fleet
        latency = self._latency(method)
        if latency > 0:
            fleet.clock.sleep(latency)  # outside the lock: other terminals keep working
        with fleet.lock:
            fleet.sync()
            gate = self._gate(method, offline_ok=offline_ok)
            if isinstance(gate, SimAccount):
                return body(gate)
        if isinstance(gate, _Timeout) and gate.delay > 0:
            fleet.clock.sleep(gate.delay)  # outside the lock: other terminals keep working
        return failure

    def _latency(self, method: str) -> float:
        login = self._login if self._initialized else None
        if login is None:
            return 0.0
        with self.fleet.lock:
            return self.fleet.account(login).faults.take_latency(method)

    def _ok(self, value: R) -> R:
        self._error = OK
        return value

    @property
    def _off_ms(self) -> int:
        return self.fleet.server_offset_secs * 1000

    # -- session -------------------------------------------------------------------------------------
    def _log_in(self, method: str, login: int | None, password: str | None, server: str | None) -> bool:
        fleet = self.fleet
        delay: float | None = None
        with fleet.lock:
            fleet.sync()
            if login is None or not fleet.has_account(login):
                self._error = AUTH_FAILED
                return False
            acct = fleet.account(login)
            fault = acct.faults.take_timeout(method)
            if fault is not None:
                self._error, delay = TIMEOUT, fault.delay
            elif acct.faults.disconnected(fleet.now_s()):
                self._error = NO_CONNECTION
                return False
            elif acct.faults.take_auth(method) or password == "" or (server and server != acct.spec.server):
                self._error = AUTH_FAILED
                return False
            else:
                self._initialized, self._login, self._error = True, login, OK
                return True
        if delay:
            fleet.clock.sleep(delay)
        return False

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
        """Connect (and log in to `login`, else the terminal's own account). Any non-empty
        password works; None means the terminal's saved one."""
        target = login if login is not None else (self._login or self._default_login)
        ok = self._log_in("initialize", target, password, server)
        if ok:
            self._path = path
        return ok

    def login(
        self, login: int, password: str | None = None, server: str | None = None, timeout: int | None = None
    ) -> bool:
        if not self._initialized:
            self._error = NOT_INITIALIZED
            return False
        return self._log_in("login", login, password, server)

    def attach(self) -> None:
        """Bind to the default account without a login round-trip (a terminal started logged in)."""
        if self._default_login is None:
            raise ValueError("no account to attach to")
        self._initialized, self._login, self._error = True, self._default_login, OK

    def shutdown(self) -> None:
        self._initialized = False
        self._error = OK

    def last_error(self) -> tuple[int, str]:
        return self._error

    # -- info ----------------------------------------------------------------------------------------
    def terminal_info(self) -> TerminalInfo | None:
        def body(a: SimAccount) -> TerminalInfo:
            online = not a.faults.disconnected(self.fleet.now_s())
            company = a.spec.company
            return self._ok(
                TerminalInfo(
                    community_account=False,
                    community_connection=False,
                    connected=online,
                    dlls_allowed=False,
                    trade_allowed=True,
                    tradeapi_disabled=False,
                    email_enabled=False,
                    ftp_enabled=False,
                    notifications_enabled=False,
                    mqid=False,
                    build=4755,
                    maxbars=100_000,
                    codepage=0,
                    ping_last=30_000 + (a.login % 17) * 1000 if online else 0,
                    community_balance=0.0,
                    retransmission=0.0,
                    company=company,
                    name=f"{company} MetaTrader 5",
                    language="English",
                    path=self._path or f"C:\\Program Files\\{company} MetaTrader 5",
                    data_path=f"C:\\Users\\trader\\AppData\\Roaming\\MetaQuotes\\Terminal\\SIM{a.login}",
                    commondata_path="C:\\Users\\trader\\AppData\\Roaming\\MetaQuotes\\Terminal\\Common",
                )
            )

        return self._call("terminal_info", body, None, offline_ok=True)

    def account_info(self) -> AccountInfo | None:
        return self._call("account_info", lambda a: self._ok(a.book.account_record()), None)

    def symbol_info(self, symbol: str) -> SymbolInfo | None:
        def body(a: SimAccount) -> SymbolInfo | None:
            q = a.book.quotes.get(symbol)
            if q is None:
                self._error = NOT_FOUND
                return None
            return self._ok(Market.symbol_info(q, symbol))

        return self._call("symbol_info", body, None)

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        def body(a: SimAccount) -> Tick | None:
            q = a.book.quotes.get(symbol)
            if q is None:
                self._error = NOT_FOUND
                return None
            return self._ok(Market.tick(q, self.fleet.server_offset_secs))

        return self._call("symbol_info_tick", body, None)

    # -- snapshots -----------------------------------------------------------------------------------
    def positions_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[TradePosition, ...] | None:
        def body(a: SimAccount) -> tuple[TradePosition, ...] | None:
            if a.faults.take_snapshot("positions_get"):
                self._error = CALL_FAILED
                return None
            chosen = list(a.book.positions.values())
            if ticket is not None:
                chosen = [p for p in chosen if p.ticket == ticket]
            elif symbol is not None:
                chosen = [p for p in chosen if p.symbol == symbol]
            elif group is not None:
                match = _group_matcher(group)
                chosen = [p for p in chosen if match(p.symbol)]
            off = self._off_ms
            rows = [a.book.position_record(p, off) for p in chosen]
            kinds = a.faults.take_malformed()
            if kinds:
                rows = self._malform(a, rows, kinds)
            return self._ok(tuple(rows))

        return self._call("positions_get", body, None)

    def _malform(self, a: SimAccount, rows: list[TradePosition], kinds: list[str]) -> list[TradePosition]:
        rows = list(rows)
        if "nan_price_open" in kinds and rows:
            rows[0] = rows[0]._replace(price_open=math.nan)
        if "negative_volume" in kinds and rows:
            rows[-1] = rows[-1]._replace(volume=-abs(rows[-1].volume))
        if "duplicate_ticket" in kinds and rows:
            if len(rows) >= 2:
                rows[1] = rows[1]._replace(ticket=rows[0].ticket)
            else:
                rows.append(rows[0])
        if "unknown_symbol" in kinds:
            f = a.faults
            t_ms = f.unknown_since_ms + self._off_ms
            rows.append(
                TradePosition(
                    ticket=f.unknown_ticket,
                    time=t_ms // 1000,
                    time_msc=t_ms,
                    time_update=t_ms // 1000,
                    time_update_msc=t_ms,
                    type=c.POSITION_TYPE_BUY,
                    magic=0,
                    identifier=f.unknown_ticket,
                    reason=c.POSITION_REASON_CLIENT,
                    volume=0.1,
                    price_open=1.78912,
                    sl=0.0,
                    tp=0.0,
                    price_current=1.79120,
                    swap=0.0,
                    profit=20.8,
                    symbol=UNKNOWN_SYMBOL,
                    comment="",
                    external_id="",
                )
            )
        return rows

    def orders_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[TradeOrder, ...] | None:
        def body(a: SimAccount) -> tuple[TradeOrder, ...] | None:
            if a.faults.take_snapshot("orders_get"):
                self._error = CALL_FAILED
                return None
            chosen = list(a.book.orders.values())
            if ticket is not None:
                chosen = [o for o in chosen if o.ticket == ticket]
            elif symbol is not None:
                chosen = [o for o in chosen if o.symbol == symbol]
            elif group is not None:
                match = _group_matcher(group)
                chosen = [o for o in chosen if match(o.symbol)]
            off = self._off_ms
            return self._ok(tuple(a.book.order_record(o, off) for o in chosen))

        return self._call("orders_get", body, None)

    def history_deals_get(
        self,
        date_from: datetime | int | None = None,
        date_to: datetime | int | None = None,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
    ) -> tuple[TradeDeal, ...] | None:
        """By dates (server clock, inclusive), or by order `ticket`, or by `position` identifier."""

        def body(a: SimAccount) -> tuple[TradeDeal, ...] | None:
            book = a.book
            off = self.fleet.server_offset_secs
            if ticket is not None:
                chosen = [d for d in book.deals if d.order == ticket]
            elif position is not None:
                chosen = list(book.deals_by_position.get(position, ()))
            elif date_from is None or date_to is None:
                self._error = INVALID_PARAMS
                return None
            else:
                chosen = book.deals_between(_epoch(date_from) - off, _epoch(date_to) - off)
                if group is not None:
                    match = _group_matcher(group)
                    chosen = [d for d in chosen if match(d.symbol)]
            if a.faults.take_snapshot("history_deals_get"):
                self._error = CALL_FAILED
                return None
            return self._ok(tuple(shift_deal(d, off) for d in chosen))

        return self._call("history_deals_get", body, None)

    # -- trading -------------------------------------------------------------------------------------
    def order_send(self, request: dict[str, Any]) -> OrderSendResult | None:
        """Market open/close (TRADE_ACTION_DEAL), SL/TP edits, pending orders (place/modify/remove)."""

        def body(a: SimAccount) -> OrderSendResult | None:
            if not isinstance(request, dict) or "action" not in request or set(request) - _REQUEST_FIELDS:
                self._error = INVALID_PARAMS
                return None
            self._request_id += 1
            return self._ok(execute(a.book, request, self.fleet.event_ms(), self._request_id))

        return self._call("order_send", body, None)
