"""The simulated fleet behaves like the MetaTrader5 module: conventions, contract, determinism."""

from __future__ import annotations

import math
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from mt5recon import frames
from mt5recon.terminal import constants as c
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.records import (
    AccountInfo,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradePosition,
)
from mt5recon.terminal.simulator import DEFAULT_START, SimClock, SimFleet, WallClock

START = DEFAULT_START


def demo(seed: int = 7, **kw: object) -> tuple[SimFleet, SimClock]:
    clock = SimClock(START)
    return SimFleet.demo(seed=seed, clock=clock, **kw), clock  # type: ignore[arg-type]


def quiet(**kw: object) -> tuple[SimFleet, SimClock]:
    clock = SimClock(START)
    return SimFleet.quiet(clock=clock, **kw), clock  # type: ignore[arg-type]


def snapshot(fleet: SimFleet) -> tuple[object, ...]:
    accounts = tuple((a.info(), a.positions(), a.orders(), a.deals()) for a in fleet.accounts())
    return (*accounts, fleet.expected_trades().rows())


# -- the fleet ---------------------------------------------------------------------------------


def test_demo_fleet_shape() -> None:
    fleet, _ = demo()
    assert fleet.logins == list(range(5001, 5011))
    modes = [fleet.account(login).info().margin_mode for login in fleet.logins]
    assert modes.count(c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING) == 7
    assert modes.count(c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING) == 3
    assert 150 <= fleet.open_positions() <= 600
    assert "EURUSD.m" in fleet.account(5003).symbols
    assert "EURUSD" not in fleet.account(5003).symbols
    netting = fleet.account(5004)
    symbols = [p.symbol for p in netting.positions()]
    assert len(symbols) == len(set(symbols)), "netting holds one position per symbol"


def test_same_seed_same_world_regardless_of_call_pattern() -> None:
    one, clock_one = demo(seed=11)
    two, clock_two = demo(seed=11)
    assert snapshot(one) == snapshot(two)
    clock_one.advance(1800)
    one.sync()
    term = two.terminal(5001, connect=True)
    for _ in range(180):  # polling in between changes nothing in the world
        clock_two.advance(10)
        term.positions_get()
        term.history_deals_get(0, 2**31)
    assert snapshot(one) == snapshot(two)
    other, clock_other = demo(seed=12)
    clock_other.advance(1800)
    assert snapshot(other) != snapshot(one)


def test_world_moves_with_the_clock_only() -> None:
    fleet, clock = demo()
    term = fleet.terminal(5001, connect=True)
    tick = term.symbol_info_tick("EURUSD")
    assert term.symbol_info_tick("EURUSD") == tick
    clock.advance(5)
    assert term.symbol_info_tick("EURUSD") != tick


def test_wall_clock_fleet_runs_live() -> None:
    fleet = SimFleet.demo(clock=WallClock(), accounts=2)
    term = fleet.terminal(5001, connect=True)
    tick = term.symbol_info_tick("EURUSD")
    assert tick is not None
    assert abs(tick.time - datetime.now(UTC).timestamp()) < 5


def test_performance() -> None:
    fleet, clock = demo()
    started = time.perf_counter()
    for _ in range(60):
        clock.advance(1)
        fleet.sync()
    per_step = (time.perf_counter() - started) / 60
    assert per_step < 0.010
    started = time.perf_counter()
    clock.advance(3600)
    fleet.sync()
    assert time.perf_counter() - started < 3.0


# -- API conventions -----------------------------------------------------------------------------


def test_terminal_satisfies_the_protocol() -> None:
    fleet, _ = quiet()
    assert isinstance(fleet.terminal(5001), MT5Api)


def test_calls_before_initialize_fail_like_the_module() -> None:
    fleet, _ = quiet()
    term = fleet.terminal(5001, connect=False)
    assert term.positions_get() is None
    assert term.last_error()[0] == c.RES_E_INTERNAL_FAIL_INIT
    assert term.account_info() is None
    assert term.order_send({"action": c.TRADE_ACTION_DEAL}) is None
    assert term.login(5001) is False
    assert term.initialize(login=5001, password="secret", server="SimBroker-Demo") is True
    assert term.last_error() == (1, "Success")
    assert isinstance(term.account_info(), AccountInfo)
    term.shutdown()
    assert term.positions_get() is None
    assert term.last_error()[0] == c.RES_E_INTERNAL_FAIL_INIT
    assert term.initialize() is True  # remembers its account
    assert term.account_info().login == 5001  # type: ignore[union-attr]


def test_factory_terminal_is_attached_and_fresh() -> None:
    fleet, _ = quiet()
    one, two = fleet.terminal(5002), fleet.terminal(5002)
    assert one is not two
    assert one.account_info().login == 5002  # type: ignore[union-attr]
    assert one.last_error() == (1, "Success")
    with pytest.raises(KeyError):
        fleet.terminal(4242)


def test_initialize_validates_credentials() -> None:
    fleet, _ = quiet()
    term = fleet.terminal()
    assert term.initialize() is False
    assert term.last_error()[0] == c.RES_E_AUTH_FAILED
    assert term.initialize(login=9999, password="x") is False
    assert term.last_error()[0] == c.RES_E_AUTH_FAILED
    assert term.initialize(login=5001, password="") is False
    assert term.initialize(login=5001, password="x", server="Elsewhere-Live") is False
    assert term.initialize(login=5009, password="x", server="FXOther-Live") is True
    assert term.login(5002, password="x") is True
    assert term.account_info().login == 5002  # type: ignore[union-attr]


def test_records_are_the_package_named_tuples() -> None:
    fleet, _ = demo()
    term = fleet.terminal(5001, connect=True)
    positions = term.positions_get()
    assert positions and all(type(p) is TradePosition for p in positions)
    deals = term.history_deals_get(0, 2**31)
    assert deals and all(type(d) is TradeDeal for d in deals)
    assert type(term.terminal_info()) is TerminalInfo
    assert type(term.symbol_info("EURUSD")) is SymbolInfo
    assert type(term.symbol_info_tick("EURUSD")) is Tick
    p = positions[0]
    assert p.identifier and p.ticket and p.symbol and p.time_msc // 1000 == p.time
    assert p.price_current == (
        term.symbol_info_tick(p.symbol).bid
        if p.type == 0
        # type: ignore[union-attr]
        else term.symbol_info_tick(p.symbol).ask
    )  # type: ignore[union-attr]


def test_empty_tuple_is_not_a_failure() -> None:
    fleet, _ = quiet(prepopulate=False)
    term = fleet.terminal(5001, connect=True)
    assert term.positions_get() == ()
    assert term.orders_get() == ()
    assert term.last_error() == (1, "Success")
    fleet.account(5001).fail_snapshot(1)
    assert term.positions_get() is None
    assert term.last_error()[0] == c.RES_E_FAIL
    assert term.positions_get() == ()


def test_positions_filters() -> None:
    fleet, _ = demo()
    term = fleet.terminal(5001, connect=True)
    everything = term.positions_get()
    assert everything
    eur = term.positions_get(symbol="EURUSD")
    assert eur and {p.symbol for p in eur} == {"EURUSD"}
    usd = term.positions_get(group="*USD*,!XAU*")
    assert usd is not None and {p.symbol for p in usd} <= {"EURUSD", "GBPUSD", "USDJPY"}
    assert term.positions_get(ticket=everything[3].ticket) == (everything[3],)
    assert term.positions_get(ticket=1) == ()
    assert term.positions_get(symbol="NOPE") == ()


def test_account_info_arithmetic() -> None:
    fleet, _ = demo()
    info = fleet.terminal(5001, connect=True).account_info()
    assert info is not None
    assert info.equity == pytest.approx(info.balance + info.credit + info.profit, abs=0.02)
    assert info.margin_level == pytest.approx(info.equity / info.margin * 100, rel=1e-3)
    assert info.margin_free == pytest.approx(info.equity - info.margin, abs=0.02)
    assert info.margin_so_so == 50.0 and info.margin_so_mode == c.ACCOUNT_STOPOUT_MODE_PERCENT
    total = sum(p.profit for p in fleet.terminal(5001, connect=True).positions_get() or ())
    assert info.profit == pytest.approx(total, abs=0.05 * len(fleet.account(5001).positions()))


def test_symbol_specs() -> None:
    fleet, _ = quiet()
    term = fleet.terminal(5001, connect=True)
    expected = {
        "EURUSD": (5, 0.00001, 100_000.0),
        "GBPUSD": (5, 0.00001, 100_000.0),
        "USDJPY": (3, 0.001, 100_000.0),
        "XAUUSD": (2, 0.01, 100.0),
        "US500": (2, 0.01, 1.0),
    }
    for name, (digits, point, contract) in expected.items():
        info = term.symbol_info(name)
        assert info is not None and info.name == name
        assert (info.digits, info.point, info.trade_contract_size) == (digits, pytest.approx(point), contract)
        assert info.volume_min == 0.01 and info.volume_step == 0.01
        assert info.ask > info.bid
    assert term.symbol_info("NOPE") is None
    assert term.last_error()[0] == c.RES_E_NOT_FOUND
    assert term.symbol_info_tick("NOPE") is None
    renamed = fleet.terminal(5003, connect=True)
    assert renamed.symbol_info("EURUSD") is None
    assert renamed.symbol_info("EURUSD.m").digits == 5  # type: ignore[union-attr]


def test_server_offset_applies_to_every_time() -> None:
    utc, _ = quiet(prepopulate=False)
    gmt2, _ = quiet(prepopulate=False, server_offset_secs=7200)
    rows = []
    for fleet in (utc, gmt2):
        fleet.account(5001).bot_open("EURUSD", "buy", 0.1, sl_pips=0, tp_pips=0)
        fleet.account(5001).bot_limit("EURUSD", "buy", 0.1)
        term = fleet.terminal(5001, connect=True)
        rows.append(
            (
                term.positions_get()[0],
                term.orders_get()[0],  # type: ignore[index]
                term.history_deals_get(0, 2**31)[-1],
                term.symbol_info_tick("EURUSD"),
            )
        )  # type: ignore[index]
    (p0, o0, d0, t0), (p2, o2, d2, t2) = rows
    assert p0.time == START.timestamp()
    assert p2.time - p0.time == 7200 and p2.time_msc - p0.time_msc == 7_200_000
    assert p2.time_update - p0.time_update == 7200
    assert o2.time_setup - o0.time_setup == 7200
    assert d2.time - d0.time == 7200 and d2.time_msc - d0.time_msc == 7_200_000
    assert t0 is not None and t2 is not None and t2.time - t0.time == 7200
    # the date bounds are compared in the server's clock, like the real terminal
    term = gmt2.terminal(5001, connect=True)
    assert term.history_deals_get(START, START + timedelta(minutes=1)) == ()
    server_now = START + timedelta(hours=2)
    assert len(term.history_deals_get(server_now, server_now + timedelta(minutes=1)) or ()) == 1


def test_history_deals_get_variants() -> None:
    fleet, clock = demo()
    clock.advance(600)
    term = fleet.terminal(5001, connect=True)
    everything = term.history_deals_get(datetime(2020, 1, 1, tzinfo=UTC), clock.now() + timedelta(days=1))
    assert everything
    assert everything == term.history_deals_get(0, int(clock.now().timestamp()) + 86_400)
    assert everything == term.history_deals_get(
        datetime(2020, 1, 1), clock.now().replace(tzinfo=None) + timedelta(days=1)
    )
    assert everything[0].type == c.DEAL_TYPE_BALANCE and everything[0].profit == 50_000.0
    assert [d.time_msc for d in everything] == sorted(d.time_msc for d in everything)
    recent = term.history_deals_get(clock.now() - timedelta(minutes=5), clock.now())
    assert recent is not None and all(d.time >= clock.now().timestamp() - 300 for d in recent)
    trade = next(d for d in everything if d.position_id)
    by_position = term.history_deals_get(position=trade.position_id)
    assert by_position and {d.position_id for d in by_position} == {trade.position_id}
    assert term.history_deals_get(ticket=trade.order) == tuple(d for d in everything if d.order == trade.order)
    assert term.history_deals_get() is None
    assert term.last_error()[0] == c.RES_E_INVALID_PARAMS


def test_order_send_open_modify_close() -> None:
    fleet, clock = quiet(prepopulate=False)
    term = fleet.terminal(5001, connect=True)
    tick = term.symbol_info_tick("EURUSD")
    assert tick is not None
    opened = term.order_send(
        {
            "action": c.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.3,
            "type": c.ORDER_TYPE_BUY,
            "price": tick.ask,
            "deviation": 10,
            "magic": 42,
            "comment": "api",
            "type_filling": c.ORDER_FILLING_IOC,
        }
    )
    assert isinstance(opened, OrderSendResult) and opened.retcode == c.TRADE_RETCODE_DONE
    assert opened.price == tick.ask and opened.volume == 0.3 and opened.request.magic == 42
    (pos,) = term.positions_get()  # type: ignore[misc]
    assert (pos.ticket, pos.identifier, pos.magic, pos.reason) == (
        opened.order,
        opened.order,
        42,
        c.POSITION_REASON_EXPERT,
    )
    sltp = term.order_send({"action": c.TRADE_ACTION_SLTP, "position": pos.ticket, "sl": 1.08, "tp": 1.09})
    assert sltp is not None and sltp.retcode == c.TRADE_RETCODE_DONE
    assert term.positions_get()[0][11:13] == (1.08, 1.09)  # type: ignore[index]
    bad = term.order_send({"action": c.TRADE_ACTION_SLTP, "position": pos.ticket, "sl": 1.2})
    assert bad is not None and bad.retcode != c.TRADE_RETCODE_DONE
    clock.advance(60)
    partial = term.order_send(
        {
            "action": c.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": c.ORDER_TYPE_SELL,
            "position": pos.ticket,
        }
    )
    assert partial is not None and partial.retcode == c.TRADE_RETCODE_DONE
    assert term.positions_get()[0].volume == 0.2  # type: ignore[index]
    closed = term.order_send(
        {
            "action": c.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.2,
            "type": c.ORDER_TYPE_SELL,
            "position": pos.ticket,
            "magic": 42,
        }
    )
    assert closed is not None and closed.retcode == c.TRADE_RETCODE_DONE
    assert term.positions_get() == ()
    deals = term.history_deals_get(position=pos.identifier)
    assert deals is not None
    assert [(d.entry, d.type, d.reason, d.volume) for d in deals] == [
        (c.DEAL_ENTRY_IN, c.DEAL_TYPE_BUY, c.DEAL_REASON_EXPERT, 0.3),
        (c.DEAL_ENTRY_OUT, c.DEAL_TYPE_SELL, c.DEAL_REASON_EXPERT, 0.1),
        (c.DEAL_ENTRY_OUT, c.DEAL_TYPE_SELL, c.DEAL_REASON_EXPERT, 0.2),
    ]
    assert deals[-1].order == closed.order and deals[-1].ticket == closed.deal
    assert deals[-1].profit == pytest.approx((tick.bid - tick.ask) * 0.2 * 100_000, abs=0.01)


def test_order_send_rejections() -> None:
    fleet, _ = quiet(prepopulate=False)
    term = fleet.terminal(5001, connect=True)

    def send(**request: object) -> int:
        result = term.order_send({"action": c.TRADE_ACTION_DEAL, "symbol": "EURUSD", "type": 0, **request})
        assert result is not None
        return result.retcode

    assert send(volume=0.0) == c.TRADE_RETCODE_INVALID_VOLUME
    assert send(volume=0.015) == c.TRADE_RETCODE_INVALID_VOLUME
    assert send(volume=0.1, symbol="NOPE") == c.TRADE_RETCODE_INVALID
    assert send(volume=0.1, position=123) == c.TRADE_RETCODE_POSITION_CLOSED
    assert send(volume=100.0) == 10019  # TRADE_RETCODE_NO_MONEY: 100 lots need ~108k of margin
    assert term.positions_get() == ()
    assert term.order_send({"volume": 0.1}) is None
    assert term.last_error()[0] == c.RES_E_INVALID_PARAMS
    assert term.order_send({"action": 1, "bogus": 1}) is None


def test_pending_orders_place_and_remove() -> None:
    fleet, _ = quiet(prepopulate=False)
    term = fleet.terminal(5001, connect=True)
    tick = term.symbol_info_tick("EURUSD")
    assert tick is not None
    placed = term.order_send(
        {
            "action": c.TRADE_ACTION_PENDING,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": c.ORDER_TYPE_BUY_LIMIT,
            "price": round(tick.ask - 0.002, 5),
        }
    )
    assert placed is not None and placed.retcode == c.TRADE_RETCODE_DONE
    (order,) = term.orders_get()  # type: ignore[misc]
    assert order.ticket == placed.order and order.type == c.ORDER_TYPE_BUY_LIMIT
    assert order.state == c.ORDER_STATE_PLACED
    wrong = term.order_send(
        {
            "action": c.TRADE_ACTION_PENDING,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": c.ORDER_TYPE_BUY_LIMIT,
            "price": tick.ask + 0.01,
        }
    )
    assert wrong is not None and wrong.retcode != c.TRADE_RETCODE_DONE
    removed = term.order_send({"action": c.TRADE_ACTION_REMOVE, "order": order.ticket})
    assert removed is not None and removed.retcode == c.TRADE_RETCODE_DONE
    assert term.orders_get() == ()


# -- the expected-trades contract ------------------------------------------------------------------


def test_expected_trades_contract() -> None:
    fleet, clock = demo()
    clock.advance(1800)
    expected = fleet.expected_trades()
    assert expected.schema == frames.EXPECTED_TRADES
    assert expected.height > 300
    assert expected.select("login", "trade_id").is_duplicated().sum() == 0
    assert expected["trade_id"].str.len_chars().max() <= 31  # type: ignore[operator]
    assert all(re.fullmatch(r"b\d{4}-\d{6}", t) for t in expected["trade_id"])
    assert set(expected["side"]) == {"buy", "sell"}
    assert expected["position_id"].null_count() > 0
    assert expected["position_id"].null_count() < expected.height / 3
    assert expected["sl"].null_count() > 0 and expected["tp"].null_count() > 0
    assert expected.filter(pl.col("closed_at").is_null()).height > 100
    assert expected.filter(pl.col("closed_at").is_not_null()).height > 100
    assert set(expected.filter(pl.col("login") == 5003)["symbol"]) <= {"EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US500"}
    assert fleet.expected_trades(5001).equals(expected.filter(pl.col("login") == 5001))


def test_expected_trades_match_broker_positions_by_identifier_and_tag() -> None:
    fleet, _clock = demo(rates=None)
    acct = fleet.account(5001)
    open_rows = fleet.expected_trades(5001).filter(pl.col("closed_at").is_null())
    positions = {p.identifier: p for p in acct.positions()}
    recorded = open_rows.filter(pl.col("position_id").is_not_null())
    assert recorded.height > 10
    for row in recorded.iter_rows(named=True):
        pos = positions[row["position_id"]]
        assert pos.comment == row["trade_id"] and pos.magic == row["magic"]
        assert pos.volume == row["volume"] and pos.price_open == row["price"]
        assert pos.sl == (row["sl"] or 0.0) and pos.tp == (row["tp"] or 0.0)
    tags = {p.comment for p in positions.values()}
    assert set(open_rows.filter(pl.col("position_id").is_null())["trade_id"]) <= tags


def test_expected_trades_sqlite_upsert(tmp_path: Path) -> None:
    fleet, clock = demo(accounts=3)
    db = tmp_path / "bot.sqlite"
    written = fleet.write_expected_trades_sqlite(db)
    assert written == fleet.expected_trades().height
    clock.advance(1200)
    fleet.write_expected_trades_sqlite(db)
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT trade_id, login, opened_at, closed_at, sl, position_id FROM expected_trades"
        ).fetchall()
    frame = fleet.expected_trades()
    assert len(rows) == frame.height
    by_key = {(r[1], r[0]): r for r in rows}
    for row in frame.iter_rows(named=True):
        stored = by_key[(row["login"], row["trade_id"])]
        assert datetime.fromisoformat(stored[2]) == row["opened_at"]
        assert stored[2].endswith("+00:00")
        assert (None if stored[3] is None else datetime.fromisoformat(stored[3])) == row["closed_at"]
        assert stored[4] == row["sl"] and stored[5] == row["position_id"]


def test_bot_trades_over_time_and_notices_late() -> None:
    fleet, clock = demo(rates=None)
    before = fleet.expected_trades(5002).height
    clock.advance(3600)
    after = fleet.expected_trades(5002)
    assert after.height > before + 20  # the bot keeps trading
    closed = after.filter(pl.col("closed_at").is_not_null())
    assert closed.height > 20
    assert (closed["closed_at"] > closed["opened_at"]).all()
    # every deal of the bot carries its magic and reason EXPERT on entry
    deals = [d for d in fleet.account(5002).deals() if d.magic == fleet.account(5002).spec.bot_magic]
    assert deals and all(
        d.reason in (c.DEAL_REASON_EXPERT, c.DEAL_REASON_SL, c.DEAL_REASON_TP, c.DEAL_REASON_SO) for d in deals
    )
    assert any(d.reason in (c.DEAL_REASON_SL, c.DEAL_REASON_TP) for d in deals), "price hits SL/TP by itself"


def test_pip_size_of_prices_is_consistent() -> None:
    fleet, _ = quiet()
    for p in fleet.account(5001).positions():
        digits = {"EURUSD": 5, "GBPUSD": 5, "USDJPY": 3, "XAUUSD": 2, "US500": 2}[p.symbol]
        assert round(p.price_open, digits) == p.price_open
        assert not math.isnan(p.price_open) and p.volume > 0
