"""Every scenario knob leaves the broker-side evidence a real broker would leave."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta

import polars as pl
import pytest

from mt5recon.terminal import constants as c
from mt5recon.terminal.records import TradeDeal
from mt5recon.terminal.simulator import (
    DEFAULT_START,
    MALFORMED_KINDS,
    UNKNOWN_SYMBOL,
    ScenarioRates,
    SimAccount,
    SimClock,
    SimFleet,
    SimTerminal,
)

START = DEFAULT_START


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START)


@pytest.fixture
def fleet(clock: SimClock) -> SimFleet:
    """Calm: no random scenarios, idle bots, frozen prices, nothing open."""
    return SimFleet.quiet(clock=clock, prepopulate=False)


@pytest.fixture
def acct(fleet: SimFleet) -> SimAccount:
    return fleet.account(5001)


@pytest.fixture
def term(fleet: SimFleet) -> SimTerminal:
    return fleet.terminal(5001, connect=True)


def expected_row(fleet: SimFleet, trade_id: str) -> dict[str, object]:
    return fleet.expected_trades().filter(pl.col("trade_id") == trade_id).row(0, named=True)


def exit_deal(term: SimTerminal, identifier: int) -> TradeDeal:
    deals = term.history_deals_get(position=identifier)
    assert deals
    return deals[-1]


# -- the bot's entries ---------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "pips"), [("buy", 3.0), ("sell", 3.0), ("buy", -2.5)])
def test_entry_slippage(fleet: SimFleet, acct: SimAccount, side: str, pips: float) -> None:
    trade_id = acct.bot_open("EURUSD", side, 0.2, slippage_pips=pips, record_position_id=True)
    row = expected_row(fleet, trade_id)
    pos = acct.position(trade_id)
    assert pos is not None
    sign = 1 if side == "buy" else -1
    assert pos.price_open == pytest.approx(row["price"] + sign * pips * 0.0001)  # type: ignore[operator]
    assert pos.identifier == row["position_id"] and pos.comment == trade_id


def test_slippage_on_a_three_digit_quote(fleet: SimFleet, acct: SimAccount) -> None:
    trade_id = acct.bot_open("USDJPY", "sell", 0.1, slippage_pips=4)
    pos = acct.position(trade_id)
    assert pos is not None
    assert pos.price_open == pytest.approx(expected_row(fleet, trade_id)["price"] - 0.04)  # type: ignore[operator]


def test_partial_fill(fleet: SimFleet, acct: SimAccount, term: SimTerminal) -> None:
    trade_id = acct.bot_open("GBPUSD", "buy", 1.0, fill_ratio=0.5)
    pos = acct.position(trade_id)
    assert pos is not None and pos.volume == 0.5
    assert expected_row(fleet, trade_id)["volume"] == 1.0
    (deal,) = term.history_deals_get(position=pos.identifier)  # type: ignore[misc]
    assert deal.volume == 0.5 and deal.entry == c.DEAL_ENTRY_IN


def test_bot_sl_tp_none_and_position_id_not_recorded(fleet: SimFleet, acct: SimAccount) -> None:
    trade_id = acct.bot_open("EURUSD", "buy", 0.1, sl_pips=0, tp_pips=0, record_position_id=False)
    row = expected_row(fleet, trade_id)
    assert row["sl"] is None and row["tp"] is None and row["position_id"] is None
    pos = acct.position(trade_id)
    assert pos is not None and (pos.sl, pos.tp) == (0.0, 0.0)
    other = acct.bot_open("EURUSD", "sell", 0.1, sl_pips=20, tp_pips=40)
    row = expected_row(fleet, other)
    assert row["sl"] == pytest.approx(row["price"] + 0.002)  # type: ignore[operator]
    assert row["tp"] == pytest.approx(row["price"] - 0.004)  # type: ignore[operator]


def test_bot_close_is_expert(fleet: SimFleet, clock: SimClock, acct: SimAccount, term: SimTerminal) -> None:
    trade_id = acct.bot_open("XAUUSD", "buy", 0.1)
    pos = acct.position(trade_id)
    assert pos is not None
    clock.advance(120)
    acct.bot_close(trade_id)
    assert term.positions_get() == ()
    deal = exit_deal(term, pos.identifier)
    assert (deal.entry, deal.reason, deal.magic) == (c.DEAL_ENTRY_OUT, c.DEAL_REASON_EXPERT, acct.spec.bot_magic)
    assert expected_row(fleet, trade_id)["closed_at"] == START + timedelta(seconds=120)


def test_bot_closes_by_itself_after_its_hold_time(fleet: SimFleet, clock: SimClock, acct: SimAccount) -> None:
    acct.bot_active = True
    trade_id = acct.bot_open("EURUSD", "buy", 0.1, hold_secs=300)
    clock.advance(299)
    assert expected_row(fleet, trade_id)["closed_at"] is None
    clock.advance(1)
    assert expected_row(fleet, trade_id)["closed_at"] == START + timedelta(seconds=300)
    assert acct.position(trade_id) is None


def test_bot_limit_order_fills_from_price(
    fleet: SimFleet, clock: SimClock, acct: SimAccount, term: SimTerminal
) -> None:
    ticket = acct.bot_limit("EURUSD", "buy", 0.1, distance_pips=10)
    (order,) = term.orders_get()  # type: ignore[misc]
    assert order.ticket == ticket and order.type == c.ORDER_TYPE_BUY_LIMIT and order.comment.startswith("b5001-")
    assert fleet.expected_trades(5001).height == 0  # written only once filled
    fleet.set_price("EURUSD", order.price_open - 0.0005)
    clock.advance(1)
    assert term.orders_get() == ()
    (pos,) = term.positions_get()  # type: ignore[misc]
    assert pos.identifier == ticket and pos.price_open == order.price_open
    row = expected_row(fleet, order.comment)
    assert row["price"] == order.price_open and row["closed_at"] is None


def test_unfilled_limit_order_is_cancelled_by_the_bot(clock: SimClock, acct: SimAccount, term: SimTerminal) -> None:
    acct.bot_limit("EURUSD", "sell", 0.1, distance_pips=30, expiry_secs=60)
    assert len(term.orders_get() or ()) == 1
    clock.advance(61)
    assert term.orders_get() == ()
    assert term.history_deals_get(START, START + timedelta(hours=1)) == ()


# -- other traders on the account ------------------------------------------------------------------


@pytest.mark.parametrize("reason", [c.DEAL_REASON_CLIENT, c.DEAL_REASON_MOBILE, c.DEAL_REASON_WEB])
def test_manual_trade(acct: SimAccount, term: SimTerminal, reason: int) -> None:
    ticket = acct.manual_open("EURUSD", "sell", 0.3, reason=reason)
    (pos,) = term.positions_get()  # type: ignore[misc]
    assert (pos.ticket, pos.magic, pos.reason, pos.type) == (ticket, 0, reason, c.POSITION_TYPE_SELL)
    (deal,) = term.history_deals_get(position=pos.identifier)  # type: ignore[misc]
    assert (deal.magic, deal.reason) == (0, reason)


def test_foreign_ea_trade(acct: SimAccount, term: SimTerminal) -> None:
    acct.foreign_ea_open("XAUUSD", "buy", 0.05, magic=424242, comment="grid#7")
    (pos,) = term.positions_get()  # type: ignore[misc]
    assert (pos.magic, pos.reason, pos.comment) == (424242, c.POSITION_REASON_EXPERT, "grid#7")


def test_manual_close_of_a_bot_trade_is_noticed_late(
    fleet: SimFleet, clock: SimClock, acct: SimAccount, term: SimTerminal
) -> None:
    acct.set_notice_delay(45)
    trade_id = acct.bot_open("EURUSD", "buy", 0.1)
    pos = acct.position(trade_id)
    assert pos is not None
    clock.advance(10)
    acct.manual_close(trade_id, reason=c.DEAL_REASON_MOBILE)
    assert term.positions_get() == ()
    deal = exit_deal(term, pos.identifier)
    assert (deal.reason, deal.magic, deal.entry) == (c.DEAL_REASON_MOBILE, 0, c.DEAL_ENTRY_OUT)
    clock.advance(44)
    assert expected_row(fleet, trade_id)["closed_at"] is None  # the position is missing for a while
    clock.advance(1)
    assert expected_row(fleet, trade_id)["closed_at"] == START + timedelta(seconds=55)


# -- the broker closes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("close", "reason", "tag"), [("close_by_sl", c.DEAL_REASON_SL, "sl"), ("close_by_tp", c.DEAL_REASON_TP, "tp")]
)
def test_broker_close_by_level(
    fleet: SimFleet, clock: SimClock, acct: SimAccount, term: SimTerminal, close: str, reason: int, tag: str
) -> None:
    acct.set_notice_delay(30)
    trade_id = acct.bot_open("EURUSD", "buy", 0.1, sl_pips=20, tp_pips=30)
    pos = acct.position(trade_id)
    assert pos is not None
    getattr(acct, close)(trade_id)
    assert term.positions_get() == ()
    deal = exit_deal(term, pos.identifier)
    level = pos.sl if reason == c.DEAL_REASON_SL else pos.tp
    assert (deal.reason, deal.entry, deal.price, deal.magic) == (reason, c.DEAL_ENTRY_OUT, level, pos.magic)
    assert deal.comment == f"[{tag} {level:.5f}]"
    assert (deal.profit < 0) == (reason == c.DEAL_REASON_SL)
    clock.advance(30)
    assert expected_row(fleet, trade_id)["closed_at"] is not None


def test_sl_and_tp_hit_from_price_movement(
    fleet: SimFleet, clock: SimClock, acct: SimAccount, term: SimTerminal
) -> None:
    buy = acct.bot_open("EURUSD", "buy", 0.1, sl_pips=10, tp_pips=0)
    sell = acct.bot_open("EURUSD", "sell", 0.1, sl_pips=0, tp_pips=10)
    buy_pos, sell_pos = acct.position(buy), acct.position(sell)
    assert buy_pos is not None and sell_pos is not None
    fleet.set_price("EURUSD", buy_pos.sl - 0.0002)
    clock.advance(1)
    assert term.positions_get() == ()
    buy_exit, sell_exit = exit_deal(term, buy_pos.identifier), exit_deal(term, sell_pos.identifier)
    assert buy_exit.reason == c.DEAL_REASON_SL and buy_exit.price <= buy_pos.sl
    assert sell_exit.reason == c.DEAL_REASON_TP
    tick = term.symbol_info_tick("EURUSD")
    assert tick is not None and buy_exit.price == tick.bid and sell_exit.price == tick.ask


def test_gap_fills_stops_at_the_gapped_price(
    fleet: SimFleet, clock: SimClock, acct: SimAccount, term: SimTerminal
) -> None:
    trade_id = acct.bot_open("XAUUSD", "sell", 0.1, sl_pips=500)
    pos = acct.position(trade_id)
    assert pos is not None
    before = term.symbol_info_tick("XAUUSD")
    fleet.gap("XAUUSD", 2.0)
    after = term.symbol_info_tick("XAUUSD")
    assert before is not None and after is not None
    assert after.bid == pytest.approx(before.bid * 1.02, rel=1e-4)
    assert fleet.terminal(5002, connect=True).symbol_info_tick("XAUUSD") == after  # one market
    clock.advance(1)
    deal = exit_deal(term, pos.identifier)
    assert deal.reason == c.DEAL_REASON_SL and deal.price > pos.sl


def test_forced_stop_out_closes_the_biggest_loser(fleet: SimFleet, acct: SimAccount, term: SimTerminal) -> None:
    acct.manual_open("EURUSD", "buy", 1.0)
    fleet.set_price("EURUSD", 1.0800)
    acct.manual_open("EURUSD", "buy", 1.0)
    (deal,) = acct.stop_out(1)
    rest = term.positions_get()
    assert rest is not None and len(rest) == 1 and rest[0].price_open == pytest.approx(1.08005)
    so = next(d for d in acct.deals() if d.ticket == deal)
    assert so.reason == c.DEAL_REASON_SO and so.comment.startswith("[so ") and so.profit < 0


def test_stop_out_from_margin_level(fleet: SimFleet, clock: SimClock, acct: SimAccount, term: SimTerminal) -> None:
    acct.manual_open("EURUSD", "buy", 30.0)
    acct.manual_open("USDJPY", "buy", 1.0)
    info = term.account_info()
    assert info is not None and info.margin_level > 100
    fleet.gap("EURUSD", -1.5)
    info = term.account_info()
    assert info is not None and info.margin_level < info.margin_so_so
    clock.advance(1)
    reasons = [d.reason for d in term.history_deals_get(0, 2**31) or () if d.entry == c.DEAL_ENTRY_OUT]
    assert reasons and set(reasons) == {c.DEAL_REASON_SO}
    info = term.account_info()
    assert info is not None and (info.margin == 0 or info.margin_level >= info.margin_so_so)


# -- broker-side edits -------------------------------------------------------------------------------


def test_broker_sltp_edit_the_bot_did_not_make(fleet: SimFleet, acct: SimAccount, term: SimTerminal) -> None:
    trade_id = acct.bot_open("EURUSD", "buy", 0.1, sl_pips=20, tp_pips=20)
    deals_before = term.history_deals_get(0, 2**31)
    sl, _ = acct.edit_sltp(trade_id)
    row = expected_row(fleet, trade_id)
    pos = acct.position(trade_id)
    assert pos is not None and pos.sl == sl and sl == pytest.approx(row["sl"] - 0.001)  # type: ignore[operator]
    assert pos.tp == row["tp"]
    assert term.history_deals_get(0, 2**31) == deals_before  # no deal for an edit
    acct.edit_sltp(trade_id, tp=0.0)
    assert acct.position(trade_id).tp == 0.0  # type: ignore[union-attr]


def test_ticket_change_keeps_the_identifier(clock: SimClock, acct: SimAccount, term: SimTerminal) -> None:
    trade_id = acct.bot_open("EURUSD", "buy", 0.1)
    pos = acct.position(trade_id)
    assert pos is not None
    clock.advance(5)
    new_ticket = acct.change_ticket(pos.ticket)
    assert new_ticket != pos.ticket
    assert term.positions_get(ticket=pos.ticket) == ()
    (moved,) = term.positions_get(ticket=new_ticket)  # type: ignore[misc]
    assert moved.identifier == pos.identifier and moved.time_update > moved.time
    closed = term.order_send(
        {
            "action": c.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": c.ORDER_TYPE_SELL,
            "position": new_ticket,
        }
    )
    assert closed is not None and closed.retcode == c.TRADE_RETCODE_DONE
    assert {d.position_id for d in term.history_deals_get(position=pos.identifier) or ()} == {pos.identifier}


def test_comment_truncation_and_rewrite(fleet: SimFleet, acct: SimAccount) -> None:
    acct.set_comment_policy(max_len=8)
    cut = acct.bot_open("EURUSD", "buy", 0.1)
    assert acct.position(cut).comment == cut[:8]  # type: ignore[union-attr]
    acct.set_comment_policy(template="ref:{comment}")
    rewritten = acct.bot_open("EURUSD", "buy", 0.1)
    assert acct.position(rewritten).comment == f"ref:{rewritten}"  # type: ignore[union-attr]
    assert all(len(p.comment) <= 31 for p in fleet.account(5006).positions())


def test_demo_bridge_account_rewrites_comments(clock: SimClock) -> None:
    fleet = SimFleet.quiet(clock=clock)
    comments = [p.comment for p in fleet.account(5006).positions()]
    assert comments and all(cm.endswith(" via bridge") and cm.startswith("b5006-") for cm in comments)


# -- money -----------------------------------------------------------------------------------------


def test_deposit_withdrawal_and_credit(acct: SimAccount, term: SimTerminal) -> None:
    balance = term.account_info().balance  # type: ignore[union-attr]
    acct.deposit(2500.0)
    acct.withdraw(1000.0)
    acct.add_credit(300.0)
    info = term.account_info()
    assert info is not None and info.balance == balance + 1500.0 and info.credit == 300.0
    money = [d for d in term.history_deals_get(0, 2**31) or () if not d.symbol]
    assert [(d.type, d.profit) for d in money][-3:] == [
        (c.DEAL_TYPE_BALANCE, 2500.0),
        (c.DEAL_TYPE_BALANCE, -1000.0),
        (c.DEAL_TYPE_CREDIT, 300.0),
    ]
    assert all(d.position_id == 0 and d.entry == c.DEAL_ENTRY_IN for d in money)


@pytest.mark.parametrize("pct", [2.0, 10.0])
def test_equity_drawdown(clock: SimClock, pct: float) -> None:
    fleet = SimFleet.quiet(clock=clock)
    term = fleet.terminal(5002, connect=True)
    before = term.account_info()
    symbol = fleet.account(5002).drawdown(pct)
    after = term.account_info()
    assert before is not None and after is not None and symbol in fleet.account(5002).symbols
    assert after.balance == before.balance
    assert after.equity == pytest.approx(before.equity * (1 - pct / 100), rel=0.02)


def test_drawdown_needs_exposure(acct: SimAccount) -> None:
    with pytest.raises(ValueError, match="exposure"):
        acct.drawdown(5.0)


def test_spread_blowout(fleet: SimFleet, clock: SimClock, term: SimTerminal) -> None:
    normal = term.symbol_info("EURUSD").spread  # type: ignore[union-attr]
    fleet.spread_blowout("EURUSD", 8.0, seconds=30)
    wide = term.symbol_info_tick("EURUSD")
    assert wide is not None and round((wide.ask - wide.bid) / 0.00001) == normal * 8
    clock.advance(29)
    assert term.symbol_info("EURUSD").spread == normal * 8  # type: ignore[union-attr]
    clock.advance(1)
    assert term.symbol_info("EURUSD").spread == normal  # type: ignore[union-attr]
    fleet.spread_blowout("EURUSD.m", 3.0)  # broker names work; until cleared
    clock.advance(600)
    assert term.symbol_info("EURUSD").spread == normal * 3  # type: ignore[union-attr]
    fleet.clear_spread()
    assert term.symbol_info("EURUSD").spread == normal  # type: ignore[union-attr]


# -- netting ----------------------------------------------------------------------------------------


def test_netting_average_reduce_reverse_close(fleet: SimFleet, clock: SimClock) -> None:
    acct = fleet.account(5004)
    term = fleet.terminal(5004, connect=True)
    assert term.account_info().margin_mode == c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING  # type: ignore[union-attr]
    a = acct.bot_open("EURUSD", "buy", 0.1)
    fleet.set_price("EURUSD", 1.0900)
    clock.advance(1)
    b = acct.bot_open("EURUSD", "buy", 0.3)
    (pos,) = term.positions_get()  # type: ignore[misc]
    assert pos.volume == 0.4
    assert pos.price_open == pytest.approx((1.08505 * 0.1 + 1.09005 * 0.3) / 0.4)
    identifier, first_ticket = pos.identifier, pos.ticket
    rows = fleet.expected_trades(5004)
    assert set(rows["position_id"].drop_nulls()) <= {identifier}
    acct.bot_close(a)  # reduce: an opposite fill of 0.1
    assert term.positions_get()[0].volume == 0.3  # type: ignore[index]
    acct.manual_open("EURUSD", "sell", 0.5)  # reverse
    (rev,) = term.positions_get()  # type: ignore[misc]
    assert (rev.type, rev.volume, rev.identifier) == (c.POSITION_TYPE_SELL, 0.2, identifier)
    assert rev.ticket != first_ticket
    acct.manual_open("EURUSD", "buy", 0.2)  # close
    assert term.positions_get() == ()
    deals = term.history_deals_get(position=identifier)
    assert deals is not None
    assert [(d.entry, d.volume) for d in deals] == [
        (c.DEAL_ENTRY_IN, 0.1),
        (c.DEAL_ENTRY_IN, 0.3),
        (c.DEAL_ENTRY_OUT, 0.1),
        (c.DEAL_ENTRY_INOUT, 0.5),
        (c.DEAL_ENTRY_OUT, 0.2),
    ]
    assert deals[3].ticket and deals[3].order == rev.ticket
    assert expected_row(fleet, b)["closed_at"] is None  # the bot still believes in b


def test_netting_broker_close_is_noticed_for_all_trades_on_the_symbol(fleet: SimFleet, clock: SimClock) -> None:
    acct = fleet.account(5004)
    acct.set_notice_delay(20)
    trades = [acct.bot_open("EURUSD", "buy", 0.1), acct.bot_open("EURUSD", "buy", 0.2)]
    acct.close_by_sl(trades[0])
    assert acct.positions() == ()
    clock.advance(20)
    assert all(expected_row(fleet, t)["closed_at"] is not None for t in trades)


# -- terminal failures -------------------------------------------------------------------------------


def test_disconnect(clock: SimClock, acct: SimAccount, term: SimTerminal) -> None:
    acct.disconnect(seconds=30)
    assert term.positions_get() is None
    assert term.last_error()[0] == c.RES_E_INTERNAL_FAIL_CONNECT
    assert term.account_info() is None and term.order_send({"action": 1}) is None
    info = term.terminal_info()
    assert info is not None and info.connected is False
    assert term.initialize(login=5001) is False
    clock.advance(30)
    assert term.terminal_info().connected is True  # type: ignore[union-attr]
    assert term.positions_get() == ()
    acct.disconnect()
    clock.advance(3600)
    assert term.positions_get() is None
    acct.reconnect()
    assert term.positions_get() == ()


def test_timeout_one_shot_with_simulated_delay(clock: SimClock, acct: SimAccount, term: SimTerminal) -> None:
    acct.fail_timeout(1, delay_secs=7.5)
    assert term.positions_get() is None
    assert term.last_error()[0] == c.RES_E_INTERNAL_FAIL_TIMEOUT
    assert clock.now() == START + timedelta(seconds=7.5)
    assert term.positions_get() == ()


def test_timeout_persistent_on_chosen_calls(acct: SimAccount, term: SimTerminal) -> None:
    acct.fail_timeout(None, methods={"history_deals_get"})
    for _ in range(3):
        assert term.history_deals_get(0, 2**31) is None
    assert term.positions_get() == ()
    acct.clear_faults()
    assert term.history_deals_get(0, 2**31)


def test_auth_failure(fleet: SimFleet, acct: SimAccount) -> None:
    term = fleet.terminal(5001, connect=False)
    acct.fail_auth(2)
    assert term.initialize(login=5001, password="x") is False
    assert term.last_error()[0] == c.RES_E_AUTH_FAILED
    assert term.initialize(login=5001, password="x") is False
    assert term.initialize(login=5001, password="x") is True
    acct.fail_auth(None)
    assert term.login(5001, password="x") is False
    assert term.last_error()[0] == c.RES_E_AUTH_FAILED


@pytest.mark.parametrize("method", ["positions_get", "orders_get", "history_deals_get"])
def test_none_snapshot_per_call(acct: SimAccount, term: SimTerminal, method: str) -> None:
    acct.fail_snapshot(2, methods={method})
    calls: dict[str, Callable[[], object]] = {
        "positions_get": term.positions_get,
        "orders_get": term.orders_get,
        "history_deals_get": lambda: term.history_deals_get(0, 2**31),
    }
    for name, call in calls.items():
        if name != method:
            assert call() is not None
    assert calls[method]() is None and term.last_error()[0] == c.RES_E_FAIL
    assert calls[method]() is None
    assert calls[method]() is not None


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_rows(clock: SimClock, kind: str) -> None:
    fleet = SimFleet.quiet(clock=clock)
    term = fleet.terminal(5001, connect=True)
    clean = term.positions_get()
    assert clean and len(clean) > 2
    fleet.account(5001).malform(kind, calls=2)
    for _ in range(2):
        bad = term.positions_get()
        assert bad is not None
        if kind == "nan_price_open":
            assert math.isnan(bad[0].price_open)
        elif kind == "negative_volume":
            assert bad[-1].volume < 0
        elif kind == "duplicate_ticket":
            assert len({p.ticket for p in bad}) == len(bad) - 1
        else:
            assert bad[-1].symbol == UNKNOWN_SYMBOL and len(bad) == len(clean) + 1
            assert term.symbol_info(UNKNOWN_SYMBOL) is None
    assert term.positions_get() == clean


# -- random scenarios --------------------------------------------------------------------------------


def test_rates_zero_and_default() -> None:
    zero = ScenarioRates.zero()
    assert all(getattr(zero, f.name) == 0.0 for f in fields(ScenarioRates))
    assert all(getattr(ScenarioRates(), f.name) > 0.0 for f in fields(ScenarioRates))
    with pytest.raises(AttributeError):
        zero.gap_per_hour = 1.0  # type: ignore[misc]


def test_random_scenarios_leave_every_kind_of_evidence() -> None:
    boosted = ScenarioRates(**{f.name: getattr(ScenarioRates(), f.name) * 15 for f in fields(ScenarioRates)})
    clock = SimClock(START)
    fleet = SimFleet.demo(seed=3, clock=clock, rates=boosted)
    terms = {login: fleet.terminal(login, connect=True) for login in fleet.logins}
    errors: set[int] = set()
    malformed = 0
    for _ in range(120):  # two hours, polled every minute
        clock.advance(60)
        for term in terms.values():
            rows = term.positions_get()
            if rows is None:
                errors.add(term.last_error()[0])
            elif any(math.isnan(p.price_open) or p.volume < 0 or p.symbol == UNKNOWN_SYMBOL for p in rows):
                malformed += 1
    deals = [d for a in fleet.accounts() for d in a.deals() if d.time_msc >= START.timestamp() * 1000]
    reasons = {d.reason for d in deals if d.entry != c.DEAL_ENTRY_IN}
    assert {
        c.DEAL_REASON_CLIENT,
        c.DEAL_REASON_MOBILE,
        c.DEAL_REASON_WEB,
        c.DEAL_REASON_EXPERT,
        c.DEAL_REASON_SL,
        c.DEAL_REASON_TP,
        c.DEAL_REASON_SO,
    } <= reasons
    assert any(d.type == c.DEAL_TYPE_BALANCE and d.profit > 0 for d in deals)
    assert any(d.type == c.DEAL_TYPE_BALANCE and d.profit < 0 for d in deals)
    assert any(d.magic not in (0, 100_000 + a.login) for a in fleet.accounts() for d in a.deals())
    assert {c.RES_E_INTERNAL_FAIL_CONNECT, c.RES_E_FAIL, c.RES_E_INTERNAL_FAIL_TIMEOUT} <= errors
    assert malformed > 0
    expected = fleet.expected_trades()
    positions = {p.identifier: p for a in fleet.accounts() for p in a.positions()}
    slipped = [
        r
        for r in expected.filter(pl.col("closed_at").is_null() & pl.col("position_id").is_not_null()).iter_rows(
            named=True
        )
        if r["position_id"] in positions
        and fleet.account(r["login"]).spec.hedging
        and positions[r["position_id"]].price_open != r["price"]
    ]
    assert slipped, "some entries filled away from the requested price"
