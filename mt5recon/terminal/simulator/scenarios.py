"""Scenarios happening on their own at `ScenarioRates`, drawn from the fleet's seeded RNG.

Each event is an ordinary knob call, so a random occurrence leaves exactly the evidence the
same knob leaves in a test.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mt5recon.terminal.simulator.account import MANUAL_REASONS, SimAccount
from mt5recon.terminal.simulator.config import ScenarioRates
from mt5recon.terminal.simulator.faults import MALFORMED_KINDS, SNAPSHOT_CALLS

if TYPE_CHECKING:
    from mt5recon.terminal.simulator.fleet import SimFleet

AccountEvent = Callable[[SimAccount, random.Random], object]
SymbolEvent = Callable[["SimFleet", str, random.Random], object]

_VOLUMES = (0.01, 0.05, 0.1, 0.2, 0.5)


def _manual_trade(a: SimAccount, r: random.Random) -> None:
    a.manual_open(r.choice(a.symbols), volume=r.choice(_VOLUMES), reason=r.choice(MANUAL_REASONS))


def _foreign_ea(a: SimAccount, r: random.Random) -> None:
    a.foreign_ea_open(r.choice(a.symbols), volume=r.choice(_VOLUMES), magic=r.choice((777_001, 424_242)))


def _manual_close(a: SimAccount, r: random.Random) -> None:
    open_ids = [tid for tid, t in a.bot.open.items() if t.notice_ms is None and a.bot.position_of(t)]
    if open_ids:
        a.manual_close(r.choice(open_ids), reason=r.choice(MANUAL_REASONS))


def _random_position(a: SimAccount, r: random.Random) -> int | None:
    positions = list(a.book.positions.values())
    return r.choice(positions).ticket if positions else None


def _sltp_edit(a: SimAccount, r: random.Random) -> None:
    ticket = _random_position(a, r)
    if ticket is not None:
        a.edit_sltp(ticket, shift_pips=r.choice((5.0, 10.0, 25.0)))


def _ticket_change(a: SimAccount, r: random.Random) -> None:
    ticket = _random_position(a, r)
    if ticket is not None:
        a.change_ticket(ticket)


def _withdrawal(a: SimAccount, r: random.Random) -> None:
    free = a.book.account_record().margin_free
    amount = round(min(r.uniform(200.0, 2000.0), free * 0.3), -1)
    if amount > 0:
        a.withdraw(amount)


def _drawdown(a: SimAccount, r: random.Random) -> None:
    if a.book.positions:
        a.drawdown(r.uniform(1.0, 4.0), max_move_pct=1.5)  # never a crash of the whole market


ACCOUNT_EVENTS: dict[str, AccountEvent] = {
    "manual_trade_per_hour": _manual_trade,
    "foreign_ea_per_hour": _foreign_ea,
    "manual_close_per_hour": _manual_close,
    "broker_sltp_edit_per_hour": _sltp_edit,
    "ticket_change_per_hour": _ticket_change,
    "deposit_per_hour": lambda a, r: a.deposit(round(r.uniform(500.0, 5000.0), -2)),
    "withdrawal_per_hour": _withdrawal,
    "drawdown_per_hour": _drawdown,
    "stop_out_per_hour": lambda a, r: a.stop_out(1),
    "disconnect_per_hour": lambda a, r: a.disconnect(r.uniform(10.0, 180.0)),
    "timeout_per_hour": lambda a, r: a.fail_timeout(1),
    "none_snapshot_per_hour": lambda a, r: a.fail_snapshot(1, methods={r.choice(sorted(SNAPSHOT_CALLS))}),
    "malformed_per_hour": lambda a, r: a.malform(r.choice(MALFORMED_KINDS), calls=r.randint(1, 3)),
}


def _gap(fleet: SimFleet, symbol: str, r: random.Random) -> None:
    fleet.gap(symbol, r.choice((-1.0, 1.0)) * r.uniform(0.3, 2.0))


def _spread_blowout(fleet: SimFleet, symbol: str, r: random.Random) -> None:
    fleet.spread_blowout(symbol, r.uniform(3.0, 10.0), seconds=r.uniform(10.0, 120.0))


SYMBOL_EVENTS: dict[str, SymbolEvent] = {
    "gap_per_hour": _gap,
    "spread_blowout_per_hour": _spread_blowout,
}


class ScenarioDriver:
    """One uniform draw per account (and per symbol) per second decides if and what happens."""

    def __init__(self, rates: ScenarioRates, rng: random.Random) -> None:
        self._rng = rng
        self._account = self._table(rates, ACCOUNT_EVENTS)
        self._symbol = self._table(rates, SYMBOL_EVENTS)

    @staticmethod
    def _table(rates: ScenarioRates, events: Mapping[str, object]) -> list[tuple[float, str]]:
        table, acc = [], 0.0
        for name in events:
            acc += getattr(rates, name) / 3600.0
            table.append((acc, name))
        return table

    @staticmethod
    def _pick(table: list[tuple[float, str]], u: float) -> str | None:
        if not table or u >= table[-1][0]:
            return None
        for bound, name in table:
            if u < bound:
                return name
        return None

    def step(self, fleet: SimFleet) -> None:
        rng = self._rng
        if self._account and self._account[-1][0] > 0:
            for acct in fleet.accounts():
                name = self._pick(self._account, rng.random())
                if name is not None:
                    ACCOUNT_EVENTS[name](acct, rng)
        if self._symbol and self._symbol[-1][0] > 0:
            for symbol in fleet.market.quotes:
                name = self._pick(self._symbol, rng.random())
                if name is not None:
                    SYMBOL_EVENTS[name](fleet, symbol, rng)
