"""A calm simulated fleet must reconcile clean: what the bots believe is what the brokers hold.

No scenario fires in `SimFleet.quiet` (ScenarioRates.zero), so every divergence the real
pipeline (terminal API -> pandera validation -> reconciliation) finds there is a simulator
bug, not a finding. The netting tests pin down what a correct bot records on an account that
holds one averaged position per symbol.
"""

from __future__ import annotations

from collections import defaultdict

import polars as pl
import pytest
from sim_cycle import CycleRun, run_cycle

from mt5recon.terminal import constants as c
from mt5recon.terminal.simulator import DEFAULT_START, SimAccount, SimClock, SimFleet

NETTING_LOGINS = (5004, 5008, 5010)
_EPS = 1e-6


def _signed(side_or_type: object, volume: float) -> float:
    buy = side_or_type in ("buy", c.POSITION_TYPE_BUY)
    return volume if buy else -volume


def expected_net(fleet: SimFleet, login: int) -> dict[str, float]:
    """The bot's open trades (the expected-trades contract), net signed lots per broker symbol."""
    suffix = fleet.account(login).spec.symbol_suffix
    net: dict[str, float] = defaultdict(float)
    rows = fleet.expected_trades(login).filter(pl.col("closed_at").is_null())
    for row in rows.iter_rows(named=True):
        net[row["symbol"] + suffix] += _signed(row["side"], row["volume"])
    return net


def broker_net(acct: SimAccount) -> dict[str, float]:
    net: dict[str, float] = defaultdict(float)
    for p in acct.positions():
        net[p.symbol] += _signed(p.type, p.volume)
    return net


def net_mismatches(fleet: SimFleet) -> list[tuple[int, str, float, float]]:
    bad = []
    for acct in fleet.accounts():
        want, have = expected_net(fleet, acct.login), broker_net(acct)
        for symbol in sorted(set(want) | set(have)):
            if abs(want[symbol] - have[symbol]) > _EPS:
                bad.append((acct.login, symbol, round(want[symbol], 2), round(have[symbol], 2)))
    return bad


def hedging_pairing_errors(fleet: SimFleet) -> list[tuple[int, str]]:
    """Every open bot trade of a hedging account is exactly one broker position, and back."""
    bad = []
    for acct in fleet.accounts():
        if not acct.spec.hedging:
            continue
        positions = {p.identifier: p for p in acct.positions()}
        open_trades = list(acct.bot.open.values())
        identifiers = [t.identifier for t in open_trades]
        if len(identifiers) != len(set(identifiers)):
            bad.append((acct.login, "two open trades on one position"))
        if set(identifiers) != set(positions):
            bad.append(
                (
                    acct.login,
                    f"trades without position or positions without trade: {sorted(set(identifiers) ^ set(positions))}",
                )
            )
        for t in open_trades:
            p = positions.get(t.identifier)
            if p is not None and (
                abs(p.volume - t.volume) > _EPS
                or p.price_open != t.price
                or _signed(p.type, 1.0) != _signed(t.side, 1.0)
            ):
                bad.append((acct.login, f"{t.trade_id} differs from its position {p.identifier}"))
            if t.position_id is not None and t.position_id != t.identifier:
                bad.append((acct.login, f"{t.trade_id} recorded a wrong position id"))
    return bad


def entry_fill_errors(fleet: SimFleet) -> list[str]:
    """Calm fleet, no slippage: every open bot trade's entry deal filled its request exactly."""
    bad = []
    for acct in fleet.accounts():
        first: dict[str, tuple[float, float]] = {}
        for d in acct.deals():
            if d.magic == acct.spec.bot_magic and d.comment not in first:
                first[d.comment] = (d.price, d.volume)
        for t in acct.bot.open.values():
            price, volume = first[acct.book.broker_comment(t.trade_id)]
            if price != t.price or abs(volume - t.volume) > _EPS:
                bad.append(f"{t.trade_id}: asked {t.volume}@{t.price}, filled {volume}@{price}")
    return bad


def assert_clean(run: CycleRun, fleet: SimFleet) -> None:
    found = run.result.divergences
    assert found.is_empty(), found.select("login", "kind", "cause", "trade_id", "expected", "actual").rows()
    assert run.validated.quarantine.is_empty(), run.validated.quarantine
    assert not run.snapshot.errors
    flags = run.snapshot.accounts.select("account_ok", "positions_ok", "orders_ok", "deals_ok")
    assert flags.height == len(fleet.logins) and all(all(col) for col in flags.iter_columns())
    stats = run.result.account_stats
    assert sorted(stats["login"]) == sorted(fleet.logins), "every account reconcilable"
    hedging = stats.filter(~pl.col("login").is_in(NETTING_LOGINS))
    # hedging: every open bot trade matched to its own position, nothing left over
    assert (hedging["matched"] == hedging["positions"]).all()
    assert (hedging["matched"] == hedging["expected_open"]).all()


# -- the whole pipeline on a calm fleet ------------------------------------------------------------


def test_quiet_fleet_reconciles_with_zero_divergences() -> None:
    fleet = SimFleet.quiet()
    run = run_cycle(fleet)
    assert_clean(run, fleet)
    assert net_mismatches(fleet) == []
    assert hedging_pairing_errors(fleet) == []
    assert entry_fill_errors(fleet) == []
    # the netting accounts do hold something, so the check above is not vacuous
    assert all(broker_net(fleet.account(login)) for login in NETTING_LOGINS)


def test_quiet_active_fleet_stays_clean_for_an_hour() -> None:
    clock = SimClock(DEFAULT_START)
    fleet = SimFleet.quiet(clock=clock, bot_active=True, volatility=0.0)
    trades_before = fleet.expected_trades().height
    for step in range(60):
        clock.advance(60)
        if step % 6 == 5:
            assert_clean(run_cycle(fleet), fleet)
    trades = fleet.expected_trades()
    assert trades.height > trades_before + 200, "the bots did trade"
    assert trades.filter(pl.col("closed_at") > pl.lit(DEFAULT_START)).height > 50, "and closed trades"
    assert entry_fill_errors(fleet) == []


def test_quiet_active_fleet_bot_net_equals_broker_net_every_minute() -> None:
    clock = SimClock(DEFAULT_START)
    fleet = SimFleet.quiet(clock=clock, bot_active=True)
    for minute in range(60):
        clock.advance(60)
        assert net_mismatches(fleet) == [], f"minute {minute + 1}"
        assert hedging_pairing_errors(fleet) == [], f"minute {minute + 1}"


def test_moving_market_only_shows_stops_the_bot_has_not_noticed_yet() -> None:
    """With prices moving, SL/TP hits close hedging positions behind the bot's back: until it
    notices, they are missing with the stop as cause, and nothing else diverges."""
    clock = SimClock(DEFAULT_START)
    fleet = SimFleet.quiet(seed=1, clock=clock, bot_active=True, volatility=1.0)
    for step in range(60):
        clock.advance(60)
        if step % 6 == 5:
            found = run_cycle(fleet).result.divergences
            assert found.filter(
                (pl.col("kind") != "missing_position") | ~pl.col("cause").is_in(["closed_by_sl", "closed_by_tp"])
            ).is_empty(), found.rows()
            assert found.filter(pl.col("login").is_in(NETTING_LOGINS)).is_empty()
    # the bot's view catches up: let every pending notice land, then all is clean again
    for acct in fleet.accounts():
        acct.bot_active = False
    clock.advance(120)
    assert_clean(run_cycle(fleet), fleet)


# -- what a netting bot records ----------------------------------------------------------------------


@pytest.fixture
def clock() -> SimClock:
    return SimClock(DEFAULT_START)


@pytest.fixture
def fleet(clock: SimClock) -> SimFleet:
    return SimFleet.quiet(clock=clock, prepopulate=False)


def _open_ids(fleet: SimFleet, login: int) -> set[str]:
    return set(fleet.expected_trades(login).filter(pl.col("closed_at").is_null())["trade_id"])


@pytest.mark.parametrize("login", NETTING_LOGINS)
def test_netting_closing_a_trade_another_trade_flattened(fleet: SimFleet, clock: SimClock, login: int) -> None:
    acct = fleet.account(login)
    x = acct.bot_open("US500", "buy", 0.12)
    clock.advance(60)
    y = acct.bot_open("US500", "sell", 0.12)  # a new intent of its own: the broker is flat
    assert acct.positions() == ()
    assert _open_ids(fleet, login) == {x, y}
    clock.advance(60)
    acct.bot_close(x)  # the bot undoes exactly what x added: it is now short y's 0.12
    assert _open_ids(fleet, login) == {y}
    (pos,) = acct.positions()
    assert (pos.type, pos.volume) == (c.POSITION_TYPE_SELL, 0.12)
    deals = [d for d in acct.deals() if d.symbol == "US500"]
    assert [(d.comment, d.entry) for d in deals] == [(x, c.DEAL_ENTRY_IN), (y, c.DEAL_ENTRY_OUT), (x, c.DEAL_ENTRY_IN)]
    assert net_mismatches(fleet) == []
    acct.bot_close(y)
    assert acct.positions() == () and _open_ids(fleet, login) == set()
    assert_clean(run_cycle(fleet), fleet)


def test_netting_reduce_then_close_the_bigger_trade_reverses(fleet: SimFleet, clock: SimClock) -> None:
    acct = fleet.account(5004)
    x = acct.bot_open("EURUSD", "buy", 0.2)
    y = acct.bot_open("EURUSD", "sell", 0.06)  # a reduction: both intents stay open
    z = acct.bot_open("EURUSD", "buy", 0.04)
    (pos,) = acct.positions()
    assert pos.volume == pytest.approx(0.18) and _open_ids(fleet, 5004) == {x, y, z}
    acct.bot_close(x)  # sells 0.2 against a long 0.18: reversal to short 0.02 = y + z
    (pos,) = acct.positions()
    assert (pos.type, pos.volume) == (c.POSITION_TYPE_SELL, 0.02)
    assert _open_ids(fleet, 5004) == {y, z}
    assert net_mismatches(fleet) == []
    clock.advance(60)
    assert_clean(run_cycle(fleet), fleet)


def test_netting_bot_limit_fill_against_its_own_position_is_its_own_action(fleet: SimFleet, clock: SimClock) -> None:
    acct = fleet.account(5008)
    x = acct.bot_open("EURUSD", "buy", 0.1)
    acct.bot_limit("EURUSD", "sell", 0.1, distance_pips=5)
    fleet.set_price("EURUSD", 1.0860)  # the sell limit fills and flattens the account
    clock.advance(1)
    assert acct.positions() == ()
    clock.advance(600)  # long past any notice delay: the bot did not take that for a broker close
    open_ids = _open_ids(fleet, 5008)
    assert x in open_ids and len(open_ids) == 2
    assert net_mismatches(fleet) == []


def test_netting_close_after_an_unnoticed_broker_close_leaves_the_new_position(
    fleet: SimFleet, clock: SimClock
) -> None:
    acct = fleet.account(5010)
    acct.set_notice_delay(60)
    x = acct.bot_open("XAUUSD", "buy", 0.1)
    acct.close_by_sl(x)  # the broker closes the symbol behind the bot's back
    clock.advance(5)
    z = acct.bot_open("XAUUSD", "buy", 0.3)  # before it noticed, the bot opens anew
    acct.bot_close(x)  # x's exposure is already gone: nothing is sent
    (pos,) = acct.positions()
    assert (pos.type, pos.volume) == (c.POSITION_TYPE_BUY, 0.3)
    assert _open_ids(fleet, 5010) == {z}
    clock.advance(120)
    assert _open_ids(fleet, 5010) == {z} and net_mismatches(fleet) == []
