"""A snapshot's reads cross to a terminal's worker process as one batch: one pipe round trip
instead of one per call, the same answers and errors as the calls one by one, through the
session and through a bridge host serving that session (the production terminal-host layout)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fake_mt5_module as fake
import pytest

from mt5recon.terminal import constants as c
from mt5recon.terminal.bridge import BridgeTerminal, serve_bridge
from mt5recon.terminal.records import Tick
from mt5recon.terminal.session import SessionTerminal
from mt5recon.terminal.worker import ProcessTerminal

MODULE = fake.__name__
SHORT_CALL_SECS = 1.0
HOST = "127.0.0.1"
READS: list[tuple[str, tuple[Any, ...]]] = [
    ("account_info", ()),
    ("positions_get", ()),
    ("orders_get", ()),
    ("history_deals_get", (1_700_000_000, 1_700_000_600)),
    ("symbol_info", ("EURUSD",)),
    ("terminal_info", ()),
]


class CountedWorker(ProcessTerminal):
    """A worker that counts its pipe round trips (the batching claim itself)."""

    def __init__(self) -> None:
        super().__init__(MODULE, call_timeout_secs=SHORT_CALL_SECS)
        self.round_trips = 0

    def _round_trip(self, message: object, label: str, timeout_secs: float) -> object:
        self.round_trips += 1
        return super()._round_trip(message, label, timeout_secs)


@pytest.fixture
def worker() -> Iterator[CountedWorker]:
    terminal = CountedWorker()
    yield terminal
    terminal.close()


def _one_by_one(api: Any, calls: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[Any, tuple[int, str]]]:
    answers = []
    for name, args in calls:
        result = getattr(api, name)(*args)
        answers.append((result, api.last_error()))
    return answers


def _values(answers: list[tuple[Any, tuple[int, str]]]) -> list[tuple[Any, int]]:
    """Results and error codes (the messages of a not-logged-in module name no call)."""
    return [(result, error[0]) for result, error in answers]


def test_a_batch_is_one_round_trip_with_the_answers_of_the_calls_one_by_one(worker: CountedWorker) -> None:
    assert worker.initialize(login=7001, server=fake.SERVER)
    worker.round_trips = 0
    batched = worker.read_many(READS)
    assert worker.round_trips == 1, "six reads in one round trip"
    single = _one_by_one(worker, READS)
    assert worker.round_trips == 1 + len(READS)
    assert _values(batched) == _values(single)
    assert all(result is not None for result, _ in batched)
    assert worker.last_error()[0] == c.RES_S_OK


def test_calls_before_a_login_fail_in_a_batch_as_they_do_one_by_one(worker: CountedWorker) -> None:
    batched = worker.read_many(READS)
    single = _one_by_one(worker, READS)
    assert _values(batched) == _values(single)
    assert all(result is None and code == c.RES_E_INTERNAL_FAIL_INIT for result, code in _values(batched))


def test_a_batch_with_a_blocked_call_stops_the_worker_and_fails_every_call(worker: CountedWorker) -> None:
    assert worker.initialize(login=7001, server=fake.SERVER)
    first_pid = worker.pid
    answers = worker.read_many([("account_info", ()), ("symbol_info_tick", (fake.HANG,))])
    assert [result for result, _ in answers] == [None, None]
    assert {error[0] for _, error in answers} == {c.RES_E_INTERNAL_FAIL_TIMEOUT}, answers
    assert "2 s" in answers[0][1][1], "the batch's deadline is its calls' deadlines added up"
    assert worker.pid is None, "the blocked worker was stopped"
    assert worker.initialize(login=7001, server=fake.SERVER) and worker.pid not in (None, first_pid)


def test_a_batch_holding_a_trade_is_refused_whole_and_the_worker_lives_on(worker: CountedWorker) -> None:
    assert worker.initialize(login=7001, server=fake.SERVER)
    pid = worker.pid
    answers = worker.read_many([("account_info", ()), ("order_send", ({"action": 1},))])
    assert [result for result, _ in answers] == [None, None]
    assert all(error[0] == c.RES_E_INTERNAL_FAIL and "refused" in error[1] for _, error in answers), answers
    assert worker.pid == pid and worker.account_info() is not None


def test_a_session_over_a_worker_batches_and_answers_as_one_by_one() -> None:
    counted = CountedWorker()
    session = SessionTerminal(lambda: counted)
    try:
        assert session.read_many(READS) == [(None, session.last_error())] * len(READS), "not initialized yet"
        assert counted.round_trips == 0, "nothing crosses before a session exists"
        assert session.initialize(login=7001, server=fake.SERVER)
        before = counted.round_trips
        batched = session.read_many(READS)
        assert counted.round_trips == before + 1
        assert _values(batched) == _values(_one_by_one(session, READS))
    finally:
        session.close()


class _Scripted:
    """A terminal object with a batch entry point whose answers are given: the session's
    handling of them is what is tested."""

    def __init__(self, answers: list[tuple[Any, tuple[int, str]]]) -> None:
        self.answers = answers
        self.shut = False

    def initialize(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def account_info(self) -> Any:
        return object()

    def last_error(self) -> tuple[int, str]:
        return (c.RES_S_OK, "Success")

    def read_many(self, calls: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[Any, tuple[int, str]]]:
        return list(self.answers)

    def shutdown(self) -> None:
        self.shut = True


@pytest.mark.parametrize(
    ("description", "answers", "expected_codes", "dropped"),
    [
        (
            "a call that loses the session: it is dropped and the calls after it are not initialized",
            [("a", (1, "Success")), (None, (c.RES_E_INTERNAL_FAIL_TIMEOUT, "ipc timeout")), ("c", (1, "Success"))],
            [1, c.RES_E_INTERNAL_FAIL_TIMEOUT, c.RES_E_INTERNAL_FAIL_INIT],
            True,
        ),
        (
            "a call that fails on its own (unknown symbol): the session stays, later calls answer",
            [(None, (c.RES_E_NOT_FOUND, "no such symbol")), ("b", (1, "Success"))],
            [c.RES_E_NOT_FOUND, 1],
            False,
        ),
    ],
)
def test_a_session_reads_a_batch_as_it_would_the_calls_one_by_one(
    description: str, answers: list[tuple[Any, tuple[int, str]]], expected_codes: list[int], dropped: bool
) -> None:
    scripted = _Scripted(answers)
    session = SessionTerminal(lambda: scripted)  # type: ignore[arg-type, return-value]
    assert session.initialize(login=1)
    got = session.read_many([(f"call{i}", ()) for i in range(len(answers))])
    assert [error[0] for _, error in got] == expected_codes, description
    assert (not session.live) is dropped and scripted.shut is dropped, description
    assert session.last_error()[0] == expected_codes[-1], description


def test_a_bridge_host_serving_a_worker_session_crosses_the_pipe_once_per_batch() -> None:
    counted = CountedWorker()
    session = SessionTerminal(lambda: counted)
    server = serve_bridge(session, HOST, 0)
    try:
        with BridgeTerminal(HOST, server.port, connect_timeout_secs=2.0, call_timeout_secs=5.0) as client:
            assert client.initialize(login=7001, server=fake.SERVER)
            before = counted.round_trips
            batched = client.read_many([*READS, ("symbol_info_tick", ("EURUSD",))])
            assert counted.round_trips == before + 1, "the host asks its worker once for the whole batch"
            assert isinstance(batched[-1][0], Tick)
            assert _values(batched[:-1]) == _values(_one_by_one(client, READS))
    finally:
        server.close()
        session.close()
