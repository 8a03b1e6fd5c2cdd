"""The RPyC bridge over real loopback sockets, against a tiny fake MetaTrader5 module."""

from __future__ import annotations

import importlib.util
import inspect
import multiprocessing
import threading
import typing
from collections import namedtuple
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import pytest
import rpyc
from rpyc.utils.server import ThreadedServer

from mt5recon.terminal import records
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.bridge import BridgeService, BridgeTerminal, main, serve_bridge
from mt5recon.terminal.bridge_wire import is_plain
from mt5recon.terminal.constants import (
    ORDER_FILLING_IOC,
    ORDER_TIME_GTC,
    ORDER_TYPE_BUY,
    RES_E_INTERNAL_FAIL,
    RES_E_INTERNAL_FAIL_CONNECT,
    RES_E_INTERNAL_FAIL_TIMEOUT,
    RES_E_NOT_FOUND,
    RES_S_OK,
    TRADE_ACTION_DEAL,
    TRADE_RETCODE_DONE,
)
from mt5recon.terminal.ports import free_ports

HOST = "127.0.0.1"
BLOCKING_SYMBOL = "BLOCK"


def _sample(cls: type[Any], seed: int) -> Any:
    """A record whose every field holds a distinct value, so a field mix-up cannot pass."""
    makers = {
        int: lambda i: seed * 100 + i,
        float: lambda i: seed * 100 + i + 0.25,
        bool: lambda i: i % 2 == 0,
        str: lambda i: f"s{seed}-{i}",
    }
    hints = typing.get_type_hints(cls)
    return cls(**{name: makers[hints[name]](i) for i, name in enumerate(cls._fields)})


def _blank_request() -> dict[str, Any]:
    hints = typing.get_type_hints(records.TradeRequest)
    return {name: hints[name]() for name in records.TradeRequest._fields}


TERMINAL = _sample(records.TerminalInfo, 1)
ACCOUNT = _sample(records.AccountInfo, 2)
POSITIONS = (_sample(records.TradePosition, 3), _sample(records.TradePosition, 4))
ORDERS = (_sample(records.TradeOrder, 5),)
DEALS = tuple(_sample(records.TradeDeal, seed) for seed in range(6, 9))
SYMBOL = _sample(records.SymbolInfo, 9)
TICK = _sample(records.Tick, 10)
VERSION = (500, 4410, "01 Nov 2026")

# The real package's SymbolInfo has many more fields, in its own order.
_REMOTE_SYMBOL_FIELDS = [*reversed(records.SymbolInfo._fields), "margin_hedged"]
RemoteSymbolInfo = namedtuple("SymbolInfo", _REMOTE_SYMBOL_FIELDS)  # type: ignore[misc]


class FakeMT5:
    """The MetaTrader5 module's functions with canned answers; it records what it receives."""

    def __init__(self, entered: Any = None, release: Any = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.raise_next: Exception | None = None
        self.entered = entered or threading.Event()
        self.release = release or threading.Event()
        self._error = (RES_S_OK, "Success")

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))
        self._error = (RES_S_OK, "Success")
        if self.raise_next is not None:
            exc, self.raise_next = self.raise_next, None
            raise exc

    def _block(self) -> None:
        """Hold the call (like a hung terminal) until released; tell the test it got here."""
        self.entered.set()
        self.release.wait(30)

    def initialize(self, path: str | None = None, **kwargs: Any) -> bool:
        self._record("initialize", *(() if path is None else (path,)), **kwargs)
        return True

    def login(self, login: int, **kwargs: Any) -> bool:
        self._record("login", login, **kwargs)
        return login == 42

    def shutdown(self) -> None:
        self._record("shutdown")

    def last_error(self) -> tuple[int, str]:
        return self._error

    def version(self) -> tuple[int, int, str]:
        self._record("version")
        return VERSION

    def terminal_info(self) -> records.TerminalInfo:
        self._record("terminal_info")
        return TERMINAL

    def account_info(self) -> records.AccountInfo:
        self._record("account_info")
        return ACCOUNT

    def positions_get(self, **kwargs: Any) -> tuple[records.TradePosition, ...]:
        self._record("positions_get", **kwargs)
        if kwargs.get("symbol") == BLOCKING_SYMBOL:
            self._block()
        return POSITIONS

    def orders_get(self, **kwargs: Any) -> tuple[records.TradeOrder, ...]:
        self._record("orders_get", **kwargs)
        return () if kwargs.get("symbol") == "NONE" else ORDERS

    def history_deals_get(self, *args: Any, **kwargs: Any) -> tuple[records.TradeDeal, ...]:
        self._record("history_deals_get", *args, **kwargs)
        return DEALS

    def symbol_info(self, symbol: str) -> Any:
        self._record("symbol_info", symbol)
        if symbol != SYMBOL.name:
            self._error = (RES_E_NOT_FOUND, "symbol not found")
            return None
        return RemoteSymbolInfo._make([*reversed(SYMBOL), 50_000.0])

    def symbol_info_tick(self, symbol: str) -> records.Tick:
        self._record("symbol_info_tick", symbol)
        return TICK

    def order_send(self, request: dict[str, Any]) -> records.OrderSendResult:
        self._record("order_send", request)
        sent = records.TradeRequest(**{**_blank_request(), **request})
        return records.OrderSendResult(
            TRADE_RETCODE_DONE, 7001, 8001, sent.volume, sent.price, 1.1, 1.2, "done", 3, 0, sent
        )


def _serve_fake_in_child(port: int, port_out: Connection, entered: Any) -> None:
    """Subprocess body: serve a fake on `port`, report the bound port, wait to be killed."""
    server = serve_bridge(FakeMT5(entered=entered), HOST, port)
    port_out.send(server.port)
    threading.Event().wait()


def _start_child(ctx: Any, port: int, entered: Any) -> tuple[Any, int]:
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_serve_fake_in_child, args=(port, sender, entered), daemon=True)
    proc.start()
    sender.close()
    if not receiver.poll(20):
        proc.kill()
        pytest.fail("the bridge subprocess did not start")
    return proc, receiver.recv()


@pytest.fixture
def fake() -> Iterator[FakeMT5]:
    fake = FakeMT5()
    yield fake
    fake.release.set()


@pytest.fixture
def bridge(fake: FakeMT5) -> Iterator[ThreadedServer]:
    server = serve_bridge(fake, port=0)
    yield server
    fake.release.set()
    server.close()


@pytest.fixture
def client(bridge: ThreadedServer) -> Iterator[BridgeTerminal]:
    terminal = BridgeTerminal(HOST, bridge.port, connect_timeout_secs=2.0, call_timeout_secs=5.0)
    yield terminal
    terminal.close()


def test_client_has_every_mt5api_function_with_the_same_signature() -> None:
    names = [name for name in vars(MT5Api) if not name.startswith("_")]
    assert len(names) == 12
    for name in names:
        expected = inspect.signature(getattr(MT5Api, name))
        assert inspect.signature(getattr(BridgeTerminal, name)) == expected, name
    assert isinstance(BridgeTerminal(HOST, 1), MT5Api)


def test_server_binds_loopback_by_default(bridge: ThreadedServer) -> None:
    assert bridge.host == "127.0.0.1"


def test_records_round_trip_rebuilt_by_field_name(client: BridgeTerminal) -> None:
    results: dict[str, Any] = {
        "terminal_info": client.terminal_info(),
        "account_info": client.account_info(),
        "positions_get": client.positions_get(),
        "orders_get": client.orders_get(symbol="EURUSD"),
        "history_deals_get": client.history_deals_get(ticket=6),
        "symbol_info": client.symbol_info(SYMBOL.name),
        "symbol_info_tick": client.symbol_info_tick("EURUSD"),
    }
    expected = {
        "terminal_info": TERMINAL,
        "account_info": ACCOUNT,
        "positions_get": POSITIONS,
        "orders_get": ORDERS,
        "history_deals_get": DEALS,
        "symbol_info": SYMBOL,
        "symbol_info_tick": TICK,
    }
    assert results == expected
    for name, value in results.items():  # the records.* classes, not look-alikes
        want = expected[name]
        got_items, want_items = (value, want) if type(want) is tuple else ((value,), (want,))
        assert [type(item) for item in got_items] == [type(item) for item in want_items], name
    assert client.version() == VERSION
    assert client.last_error() == (RES_S_OK, "Success")


def test_empty_tuple_is_not_a_failure(client: BridgeTerminal) -> None:
    assert client.orders_get(symbol="NONE") == ()


def test_session_calls_pass_only_the_given_arguments(client: BridgeTerminal, fake: FakeMT5) -> None:
    assert client.initialize(login=42, password="pw", server="Demo-1") is True
    assert client.initialize("C:/MT5/terminal64.exe", portable=True) is True
    assert client.login(42, "pw", "Demo-1") is True
    assert client.login(7) is False
    client.shutdown()
    assert fake.calls == [
        ("initialize", (), {"login": 42, "password": "pw", "server": "Demo-1"}),
        ("initialize", ("C:/MT5/terminal64.exe",), {"portable": True}),
        ("login", (42,), {"password": "pw", "server": "Demo-1"}),
        ("login", (7,), {}),
        ("shutdown", (), {}),
    ]


def test_datetime_args_arrive_as_utc_datetimes(client: BridgeTerminal, fake: FakeMT5) -> None:
    date_from = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    date_to = datetime(2026, 11, 2, 12, 0, tzinfo=UTC) + timedelta(hours=1)
    naive_to = datetime(2026, 11, 3, 0, 0)

    assert client.history_deals_get(date_from, date_to, group="*EUR*") == DEALS
    assert client.history_deals_get(date_from, naive_to) == DEALS
    assert client.history_deals_get(int(date_from.timestamp()), int(date_to.timestamp()), position=3) == DEALS

    first, naive, epoch = fake.calls
    assert first == ("history_deals_get", (date_from, date_to), {"group": "*EUR*"})
    assert naive[1] == (date_from, naive_to.replace(tzinfo=UTC))
    assert epoch == ("history_deals_get", (date_from, date_to), {"position": 3})
    for _, args, _ in fake.calls:
        assert all(type(value) is datetime and value.utcoffset() == timedelta(0) for value in args)


def test_order_send_request_arrives_intact(client: BridgeTerminal, fake: FakeMT5) -> None:
    request = {
        "action": TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": ORDER_TYPE_BUY,
        "price": 1.08512,
        "sl": 0.0,
        "tp": 1.09,
        "deviation": 10,
        "magic": 4242,
        "comment": "bot:t-17",
        "type_time": ORDER_TIME_GTC,
        "type_filling": ORDER_FILLING_IOC,
    }
    result = client.order_send(request)

    ((name, (received,), _),) = fake.calls
    assert name == "order_send" and type(received) is dict and received == request
    assert type(result) is records.OrderSendResult and result.retcode == TRADE_RETCODE_DONE
    assert type(result.request) is records.TradeRequest
    assert result.request == records.TradeRequest(**{**_blank_request(), **request})


def test_last_error_is_the_terminals_after_a_failed_call(client: BridgeTerminal) -> None:
    assert client.last_error() == (RES_S_OK, "Success")  # no call yet: asks the terminal
    assert client.symbol_info("NOPE") is None
    assert client.last_error() == (RES_E_NOT_FOUND, "symbol not found")
    assert client.symbol_info_tick("EURUSD") == TICK
    assert client.last_error() == (RES_S_OK, "Success")


def test_terminal_exception_becomes_none_and_last_error(client: BridgeTerminal, fake: FakeMT5) -> None:
    fake.raise_next = RuntimeError("terminal exploded")
    assert client.account_info() is None
    code, message = client.last_error()
    assert code == RES_E_INTERNAL_FAIL and "terminal exploded" in message
    assert client.account_info() == ACCOUNT


def test_only_allow_listed_names_and_plain_data_are_accepted(bridge: ThreadedServer, fake: FakeMT5) -> None:
    conn = rpyc.connect(HOST, bridge.port, config={"sync_request_timeout": 5})
    try:
        for name in ("eval", "exec", "__import__", "copy_rates_from", "_record", "calls"):
            with pytest.raises(ValueError, match="refused"):
                conn.root.call(name, (), ())
        with pytest.raises(ValueError, match="plain"):
            conn.root.call("positions_get", (), (("symbol", {"a": 1}),))  # a dict crosses as a netref
        with pytest.raises(AttributeError):
            conn.root._api  # noqa: B018
        with pytest.raises(AttributeError):
            conn.root.positions_get  # noqa: B018
        assert fake.calls == []

        reply = conn.root.call("positions_get", (), ())
        assert type(reply) is tuple and is_plain(reply)  # by value: no netref inside
    finally:
        conn.close()


def test_hosted_object_must_look_like_mt5() -> None:
    with pytest.raises(TypeError):
        BridgeService(object())


def test_no_server_means_connect_failure_not_an_exception() -> None:
    terminal = BridgeTerminal(HOST, free_ports(1)[0], connect_timeout_secs=1.0, call_timeout_secs=1.0)
    assert terminal.initialize() is False
    assert terminal.positions_get() is None
    assert terminal.last_error()[0] == RES_E_INTERNAL_FAIL_CONNECT


def test_call_timeout_returns_none_then_next_call_reconnects(bridge: ThreadedServer, fake: FakeMT5) -> None:
    terminal = BridgeTerminal(HOST, bridge.port, connect_timeout_secs=1.0, call_timeout_secs=0.5)
    try:
        assert terminal.positions_get(symbol=BLOCKING_SYMBOL) is None
        assert fake.entered.is_set()
        assert terminal.last_error()[0] == RES_E_INTERNAL_FAIL_TIMEOUT, "cut off while the terminal was blocked"

        fake.release.set()  # the terminal answers again
        assert terminal.account_info() == ACCOUNT
        assert terminal.last_error() == (RES_S_OK, "Success")
    finally:
        terminal.close()


def test_server_killed_mid_call_then_restarted_on_the_same_port() -> None:
    ctx = multiprocessing.get_context("spawn")
    entered = ctx.Event()
    proc, port = _start_child(ctx, 0, entered)
    terminal = BridgeTerminal(HOST, port, connect_timeout_secs=2.0, call_timeout_secs=8.0)
    restarted = None
    try:
        assert terminal.account_info() == ACCOUNT

        def kill_when_blocked() -> None:
            if entered.wait(20):
                proc.kill()  # SIGKILL: no goodbye on the socket from the server's code

        killer = threading.Thread(target=kill_when_blocked, daemon=True)
        killer.start()
        result = terminal.positions_get(symbol=BLOCKING_SYMBOL)
        killer.join(20)

        assert entered.is_set()
        assert result is None
        # a lost connection (-10004), not the call timeout (-10005): the kill was noticed at once
        assert terminal.last_error()[0] == RES_E_INTERNAL_FAIL_CONNECT
        proc.join(10)
        assert terminal.account_info() is None  # still down: refused at once
        assert terminal.last_error()[0] == RES_E_INTERNAL_FAIL_CONNECT

        restarted, same_port = _start_child(ctx, port, ctx.Event())
        assert same_port == port
        assert terminal.positions_get() == POSITIONS  # lazy reconnect
        assert terminal.last_error() == (RES_S_OK, "Success")
    finally:
        terminal.close()
        for process in (proc, restarted):
            if process is not None:
                process.kill()
                process.join(10)


def test_main_needs_the_metatrader5_package(capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("MetaTrader5") is not None:
        pytest.skip("MetaTrader5 is installed: main() would serve it")
    assert main(["--host", HOST, "--port", "0"]) == 2
    assert "MetaTrader5" in capsys.readouterr().err
