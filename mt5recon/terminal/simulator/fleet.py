"""The simulated fleet: one market, many accounts with their bots, advanced by a clock.

The world is time-driven: every call first steps it, one simulated second at a time, up to
`clock.now()`. With a `SimClock` a run is a pure function of the seed and of the instants
the clock was advanced to; with a `WallClock` it runs live.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from mt5recon.terminal import constants as c
from mt5recon.terminal.simulator._sync import synced
from mt5recon.terminal.simulator.account import SimAccount
from mt5recon.terminal.simulator.book import AccountSpec, Book, Tickets
from mt5recon.terminal.simulator.bot import Bot, Event
from mt5recon.terminal.simulator.clock import Clock, SimClock, WallClock
from mt5recon.terminal.simulator.config import BotConfig, ScenarioRates
from mt5recon.terminal.simulator.expected import expected_frame, write_sqlite
from mt5recon.terminal.simulator.market import Market
from mt5recon.terminal.simulator.scenarios import ScenarioDriver

if TYPE_CHECKING:
    from mt5recon.terminal.simulator.terminal import SimTerminal

DEFAULT_START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
ALL_SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US500")
_BALANCES = (50_000.0, 25_000.0, 100_000.0, 10_000.0, 75_000.0, 40_000.0, 60_000.0, 20_000.0, 150_000.0, 30_000.0)


def demo_accounts(n: int = 10, first_login: int = 5001) -> list[AccountSpec]:
    """Mixed accounts: 3 in 10 netting, one broker with `.m` names, one bridge rewriting comments."""
    specs = []
    for i in range(n):
        k = i % 10
        netting = k in (3, 7, 9)
        other_broker = k >= 8
        specs.append(
            AccountSpec(
                login=first_login + i,
                server="FXOther-Live" if other_broker else "SimBroker-Demo",
                company="FXOther Markets Ltd" if other_broker else "SimBroker Ltd",
                trade_mode=c.ACCOUNT_TRADE_MODE_REAL if other_broker else c.ACCOUNT_TRADE_MODE_DEMO,
                margin_mode=c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING if netting else c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
                balance=_BALANCES[k],
                leverage=30 if k == 4 else 100,
                symbol_suffix=".m" if k == 2 else "",
                bot_symbols=("EURUSD", "XAUUSD", "US500") if netting else ALL_SYMBOLS,
                comment_template="{comment} via bridge" if k == 5 else "{comment}",
            )
        )
    return specs


class SimFleet:
    """One market, many accounts and their bots; every call first steps the world to the clock."""

    def __init__(
        self,
        specs: Sequence[AccountSpec],
        *,
        seed: int = 7,
        clock: Clock | None = None,
        rates: ScenarioRates | None = None,
        bot: BotConfig | None = None,
        server_offset_secs: int = 0,
        volatility: float = 1.0,
        prepopulate: bool = True,
        max_catchup_secs: float | None = None,
    ) -> None:
        self.clock: Clock = clock if clock is not None else WallClock()
        self.seed = seed
        self.server_offset_secs = server_offset_secs
        self.rates = rates if rates is not None else ScenarioRates()
        self.bot_config = bot if bot is not None else BotConfig()
        self.lock = threading.RLock()
        # a live fleet that was not asked for a while resumes instead of replaying hours
        self.max_catchup_secs = (
            max_catchup_secs
            if max_catchup_secs is not None
            else (3600.0 if isinstance(self.clock, WallClock) else None)
        )
        self._t = math.floor(self.clock.now().timestamp())
        self._stepping = False
        self.knob_rng = random.Random(seed * 7919 + 2)
        self.market = Market(random.Random(seed * 7919 + 1), self._t, volatility)
        self.tickets = Tickets()
        self._accounts: dict[int, SimAccount] = {}
        for i, spec in enumerate(specs):
            if spec.login in self._accounts:
                raise ValueError(f"duplicate login {spec.login}")
            quotes = {name + spec.symbol_suffix: q for name, q in self.market.quotes.items()}
            book = Book(spec, quotes, self.tickets)
            bot_ = Bot(spec, book, self.bot_config, self.rates, random.Random(seed * 7919 + 100 + i))
            self._accounts[spec.login] = SimAccount(self, spec, book, bot_)
        self._scenarios = ScenarioDriver(self.rates, random.Random(seed * 7919 + 3))
        self._open_history(prepopulate)

    @property
    def fleet(self) -> SimFleet:
        return self

    # -- factories ---------------------------------------------------------------------------------
    @classmethod
    def demo(
        cls,
        seed: int = 7,
        clock: Clock | None = None,
        accounts: int = 10,
        *,
        rates: ScenarioRates | None = None,
        server_offset_secs: int = 0,
        volatility: float = 1.0,
    ) -> SimFleet:
        """The embedded default: 10 mixed accounts, a few hundred open positions, every scenario
        now and then. Without a clock it runs live on the wall clock."""
        return cls(
            demo_accounts(accounts),
            seed=seed,
            clock=clock,
            rates=rates,
            server_offset_secs=server_offset_secs,
            volatility=volatility,
        )

    @classmethod
    def quiet(
        cls,
        seed: int = 7,
        clock: Clock | None = None,
        accounts: int = 10,
        *,
        bot_active: bool = False,
        prepopulate: bool = True,
        volatility: float = 0.0,
        server_offset_secs: int = 0,
    ) -> SimFleet:
        """A calm fleet for tests: no random scenarios, an idle bot, frozen prices by default;
        turn exactly the knob under test. Without a clock it starts at a fixed SimClock."""
        return cls(
            demo_accounts(accounts),
            seed=seed,
            clock=clock or SimClock(DEFAULT_START),
            rates=ScenarioRates.zero(),
            bot=replace(BotConfig(), active=bot_active),
            server_offset_secs=server_offset_secs,
            volatility=volatility,
            prepopulate=prepopulate,
        )

    def _open_history(self, prepopulate: bool) -> None:
        """Initial deposits a month back; with prepopulate, the bots' last hour of trading."""
        t0 = self._t
        for acct in self._accounts.values():
            acct.book.balance_op(acct.spec.balance, (t0 - 30 * 86_400) * 1000, "Initial deposit")
            if acct.spec.credit:
                acct.book.balance_op(acct.spec.credit, (t0 - 30 * 86_400) * 1000, "Credit", c.DEAL_TYPE_CREDIT)
        if not prepopulate:
            return
        # all accounts' events in time order, so server-wide tickets grow with time
        queues: list[list[tuple[int, int, int, Callable[[], None]]]] = []
        for acct in self._accounts.values():
            count = self.bot_config.backfill_hedging if acct.spec.hedging else self.bot_config.backfill_netting
            events: list[Event] = acct.bot.backfill(t0, count)
            queues.append(sorted((ms, acct.login, k, action) for ms, k, action in events))
        for *_, action in heapq.merge(*queues):
            action()

    # -- time --------------------------------------------------------------------------------------
    def sync(self) -> None:
        """Step the world second by second up to the clock (a no-op while already stepping)."""
        with self.lock:
            if self._stepping:
                return
            target = math.floor(self.clock.now().timestamp())
            if target <= self._t:
                return
            if self.max_catchup_secs is not None and target - self._t > self.max_catchup_secs:
                self._t = target - int(self.max_catchup_secs)
            self._stepping = True
            try:
                while self._t < target:
                    self._t += 1
                    self._step(self._t)
            finally:
                self._stepping = False

    def _step(self, t: int) -> None:
        self.market.step(t)
        t_ms = t * 1000
        for acct in self._accounts.values():
            book = acct.book
            book.check_triggers()
            book.check_stop_out(t_ms)
            acct.bot.step(t)
        self._scenarios.step(self)

    def now(self) -> datetime:
        return self.clock.now()

    def now_s(self) -> float:
        return self.clock.now().timestamp()

    def event_ms(self) -> int:
        """When a knob's event happens: the current step, or now between steps."""
        if self._stepping:
            return self._t * 1000
        return max(self._t * 1000, int(self.clock.now().timestamp() * 1000))

    @property
    def world_time(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=self._t)

    # -- accounts ----------------------------------------------------------------------------------
    @property
    def logins(self) -> list[int]:
        return list(self._accounts)

    def accounts(self) -> Iterator[SimAccount]:
        return iter(list(self._accounts.values()))

    def account(self, login: int) -> SimAccount:
        try:
            return self._accounts[login]
        except KeyError:
            raise KeyError(f"no simulated account {login}") from None

    def has_account(self, login: int) -> bool:
        return login in self._accounts

    def terminal(self, login: int | None = None, *, connect: bool = True) -> SimTerminal:
        """A fresh terminal for `login`, already attached as after initialize(login=...) (no fault
        is consumed). connect=False gives one that fails every call until initialize()."""
        from mt5recon.terminal.simulator.terminal import SimTerminal

        term = SimTerminal(self, login)
        if connect and login is not None:
            self.account(login)  # unknown logins fail here, loudly
            term.attach()
        return term

    @synced
    def open_positions(self) -> int:
        return sum(len(a.book.positions) for a in self._accounts.values())

    # -- the bots' beliefs ---------------------------------------------------------------------------
    @synced
    def expected_trades(self, login: int | None = None) -> pl.DataFrame:
        """Every bot trade (schema frames.EXPECTED_TRADES), all accounts or one."""
        accts = [self.account(login)] if login is not None else list(self._accounts.values())
        return expected_frame(t for a in accts for t in a.bot.trades.values())

    @synced
    def write_expected_trades_sqlite(self, path: str | Path) -> int:
        """Upsert the bots' trades into table `expected_trades` of a SQLite file."""
        return write_sqlite((t for a in self._accounts.values() for t in a.bot.trades.values()), path)

    # -- market knobs (every account sees them) --------------------------------------------------------
    def _market_name(self, symbol: str) -> str:
        if symbol in self.market.quotes:
            return symbol
        for acct in self._accounts.values():
            q = acct.book.quotes.get(symbol)
            if q is not None:
                return q.spec.name
        raise KeyError(f"unknown symbol {symbol!r}")

    @synced
    def gap(self, symbol: str, pct: float) -> float:
        """The mid jumps by pct % at once (stops then fill at the gapped price); returns the new mid."""
        name = self._market_name(symbol)
        q = self.market.quotes[name]
        self.market.set_mid(name, q.mid * (1.0 + pct / 100.0), self.event_ms())
        return q.mid

    @synced
    def set_price(self, symbol: str, mid: float) -> None:
        self.market.set_mid(self._market_name(symbol), mid, self.event_ms())

    @synced
    def spread_blowout(self, symbol: str, multiplier: float, seconds: float | None = None) -> None:
        """The spread widens `multiplier` times, for `seconds` or until clear_spread()."""
        until = None if seconds is None else self._t + max(1, math.ceil(seconds))
        self.market.blow_spread(self._market_name(symbol), multiplier, until)

    @synced
    def clear_spread(self, symbol: str | None = None) -> None:
        names = [self._market_name(symbol)] if symbol else list(self.market.quotes)
        for name in names:
            self.market.blow_spread(name, 1.0, None)

    def clear_faults(self) -> None:
        for acct in self._accounts.values():
            acct.clear_faults()
