"""A snapshot's reads in one bridge round trip: the same answers and errors as call by call."""

from __future__ import annotations

import logging
import threading
from collections import namedtuple
from collections.abc import Iterator
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import rpyc

from mt5recon.terminal import records
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.bridge import BridgeTerminal, _BridgeServer, serve_bridge
from mt5recon.terminal.bridge_wire import WireError, decode_value, encode_value
from mt5recon.terminal.connector import FetchRequest, fetch_records
from mt5recon.terminal.constants import RES_E_INTERNAL_FAIL_CONNECT, RES_E_NOT_FOUND, RES_S_OK
from mt5recon.terminal.dispatch import MAX_BATCH_CALLS, CallDispatcher, Reply
from mt5recon.terminal.ports import free_ports
from tests.test_bridge import ACCOUNT, DEALS, HOST, ORDERS, POSITIONS, SYMBOL, TERMINAL, TICK, FakeMT5

SNAPSHOT_READS: list[tuple[str, tuple[Any, ...]]] = [
    ("terminal_info", ()),
    ("account_info", ()),
    ("positions_get", ()),
    ("orders_get", ()),
    ("history_deals_get", (1_700_000_000, 1_700_000_600)),
    ("symbol_info", (SYMBOL.name,)),
    ("symbol_info", ("NOPE",)),
    ("symbol_info_tick", ("EURUSD",)),
]


@pytest.fixture
def hosted() -> Iterator[tuple[FakeMT5, BridgeTerminal]]:
    """A fake terminal and a client over a real loopback bridge to it."""
    fake = FakeMT5()
    server = serve_bridge(fake, port=0)
    with BridgeTerminal(HOST, server.port, connect_timeout_secs=2.0, call_timeout_secs=5.0) as terminal:
        yield fake, terminal
    server.close()


def _one_by_one(terminal: BridgeTerminal) -> list[tuple[Any, tuple[int, str]]]:
    answers = []
    for name, args in SNAPSHOT_READS:
        result = getattr(terminal, name)(*args)
        answers.append((result, terminal.last_error()))
    return answers


def test_a_batch_answers_exactly_as_the_calls_one_by_one(hosted: tuple[FakeMT5, BridgeTerminal]) -> None:
    fake, client = hosted
    batched = client.read_many(SNAPSHOT_READS)
    calls_in_batch = list(fake.calls)
    fake.calls.clear()
    assert batched == _one_by_one(client)
    assert calls_in_batch == fake.calls  # the terminal saw the same calls, in the same order
    assert [value for value, _ in batched[:5]] == [TERMINAL, ACCOUNT, POSITIONS, ORDERS, DEALS]
    assert batched[5] == (SYMBOL, (RES_S_OK, "Success"))  # rebuilt by field name from the package's order
    assert batched[6] == (None, (RES_E_NOT_FOUND, "symbol not found"))  # this call's own last_error
    assert batched[7] == (TICK, (RES_S_OK, "Success"))
    assert [type(p) for p in batched[2][0]] == [records.TradePosition] * len(POSITIONS)


class _CountingService(rpyc.Service):  # type: ignore[misc]
    """A bridge host that counts the exchanges it answers."""

    def __init__(self, api: object, *, batches: bool) -> None:
        self._dispatcher = CallDispatcher(api)
        self.exchanges = 0
        if batches:
            self.exposed_call_many = self._call_many

    def exposed_call(self, name: str, args: tuple[Any, ...] = (), kwargs: tuple[Any, ...] = ()) -> Reply:
        self.exchanges += 1
        return self._dispatcher.call(name, args, kwargs)

    def _call_many(self, calls: tuple[Any, ...]) -> tuple[Reply, ...]:
        self.exchanges += 1
        return self._dispatcher.call_many(calls)


@pytest.mark.parametrize(
    ("batches", "exchanges", "description"),
    [
        (True, 1, "a host with call_many answers the batch in one exchange"),
        (False, len(SNAPSHOT_READS), "a host that predates batches is asked call by call, same answers"),
    ],
)
def test_batches_on_new_and_old_hosts(batches: bool, exchanges: int, description: str) -> None:
    service = _CountingService(FakeMT5(), batches=batches)
    server = _BridgeServer(  # the bridge's own server class: quiet when a client hangs up
        service, hostname=HOST, port=0, auto_register=False, logger=logging.getLogger("test-bridge-batches")
    )
    server.listener.listen(server.backlog)
    threading.Thread(target=server.start, daemon=True).start()
    terminal = BridgeTerminal(HOST, server.port, connect_timeout_secs=2.0, call_timeout_secs=5.0)
    try:
        batched = terminal.read_many(SNAPSHOT_READS)
        assert service.exchanges == exchanges, description
        assert batched == _one_by_one(terminal), description
        assert terminal.read_many(SNAPSHOT_READS[:2]) == batched[:2], description
    finally:
        terminal.close()
        server.close()


def test_a_transport_failure_fails_every_call_of_the_batch() -> None:
    terminal = BridgeTerminal(HOST, free_ports(1)[0], connect_timeout_secs=1.0, call_timeout_secs=1.0)
    answers = terminal.read_many(SNAPSHOT_READS)
    assert [value for value, _ in answers] == [None] * len(SNAPSHOT_READS)
    assert {code for _, (code, _) in answers} == {RES_E_INTERNAL_FAIL_CONNECT}
    assert terminal.last_error()[0] == RES_E_INTERNAL_FAIL_CONNECT


@pytest.mark.parametrize(
    ("calls", "match", "description"),
    [
        ((("order_send", ((("action", 1),),), ()),), "not a snapshot read", "trading is never batched"),
        ((("initialize", (), ()),), "not a snapshot read", "session calls are never batched"),
        ((("eval", ("1",), ()),), "not a snapshot read", "a name off the allow-list"),
        ((("positions_get", (), (("symbol", {"a": 1}),)),), "plain", "a netref argument"),
        ((("positions_get",),), "triples", "a call without args and kwargs"),
        ((("account_info", (), ()),) * (MAX_BATCH_CALLS + 1), "at most", "a batch over the limit"),
    ],
)
def test_only_snapshot_reads_of_plain_data_are_batched(calls: tuple[Any, ...], match: str, description: str) -> None:
    fake = FakeMT5()
    server = serve_bridge(fake, port=0)
    conn = rpyc.connect(HOST, server.port, config={"sync_request_timeout": 5})
    try:
        with pytest.raises(ValueError, match=match):
            conn.root.call_many(calls)
        assert fake.calls == [], description  # refused before anything ran
    finally:
        conn.close()
        server.close()


def test_fetch_records_through_the_bridge_equals_the_terminal_itself(hosted: tuple[FakeMT5, BridgeTerminal]) -> None:
    _, client = hosted
    at = datetime(2026, 11, 21, 12, tzinfo=UTC)
    symbols = (SYMBOL.name, "NOPE")
    request = FetchRequest(login=2, fetched_at=at, deals_from=at - timedelta(hours=1), extra_symbols=symbols)
    remote, local = fetch_records(client, request), fetch_records(cast(MT5Api, FakeMT5()), request)
    skip = {"calls_ms", "specs"}  # the package's SymbolInfo, in its own field order, is rebuilt by name
    fields = [f for f in type(remote).__dataclass_fields__ if f not in skip]
    assert [getattr(remote, f) for f in fields] == [getattr(local, f) for f in fields]
    assert remote.specs == [SYMBOL] and [s.name for s in local.specs] == [SYMBOL.name]
    assert remote.errors == [] and remote.codes == []  # an unknown symbol is no error
    assert astuple(remote.request) == astuple(request)


PositionAsSent = namedtuple("TradePosition", [*reversed(records.TradePosition._fields), "extra"])  # type: ignore[misc]


def _as_sent(position: records.TradePosition, extra: Any = 0) -> Any:
    return PositionAsSent._make([*reversed(position), extra])


def test_a_table_is_rebuilt_by_field_name_whatever_the_senders_order() -> None:
    wire = encode_value(tuple(_as_sent(p) for p in POSITIONS))
    assert decode_value(wire) == POSITIONS
    assert [type(p) for p in decode_value(wire)] == [records.TradePosition] * len(POSITIONS)


@pytest.mark.parametrize(
    ("wire", "match", "description"),
    [
        (("tab", "TradePosition", ("ticket",), ((1,),)), "sent no", "a field the record needs is missing"),
        (("tab", "TradePosition", records.TradePosition._fields, ((1, 2),)), "do not match", "a short row"),
        (("tab", "Nope", ("a",), ((1,),)), "unknown record type", "a record type nobody declared"),
        (("tab", "TradePosition", (1, 2), ((1, 2),)), "tuple of str", "field names that are not text"),
        (("tab", "TradePosition", ("a",), ([1],)), "malformed table rows", "a row that is not a tuple"),
    ],
)
def test_a_malformed_table_is_refused(wire: tuple[Any, ...], match: str, description: str) -> None:
    with pytest.raises(WireError, match=match):
        decode_value(wire)


def test_a_row_with_a_nested_value_is_decoded_field_by_field_and_checked() -> None:
    fields = records.TradePosition._fields
    row = tuple(POSITIONS[0])
    nested = ("tab", "TradePosition", fields, ((*row[:-1], ("seq", ())),))
    assert decode_value(nested)[0].external_id == ()
    netref_like = ("tab", "TradePosition", fields, ((*row[:-1], object()),))
    with pytest.raises(WireError, match="not plain data"):
        decode_value(netref_like)
