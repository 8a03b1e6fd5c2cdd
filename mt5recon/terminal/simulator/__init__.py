"""The simulated MT5 terminal fleet: the product's embedded default and everybody's test double.

fleet = SimFleet.demo(seed=7, clock=SimClock(start))   # or SimFleet.quiet(...) for tests
mt5 = fleet.terminal(5001)                             # attached, as after initialize(login=5001)
mt5.initialize(login=5001, password="x", server="SimBroker-Demo")   # optional, as for real
mt5.positions_get()                                    # like the MetaTrader5 module
fleet.account(5001).close_by_sl("b5001-000012")        # scenario knobs
fleet.expected_trades()                                # what the bots believe
"""

from mt5recon.terminal.simulator.account import SimAccount
from mt5recon.terminal.simulator.book import AccountSpec
from mt5recon.terminal.simulator.bot import BotTrade
from mt5recon.terminal.simulator.clock import Clock, SimClock, WallClock
from mt5recon.terminal.simulator.config import BotConfig, ScenarioRates
from mt5recon.terminal.simulator.faults import MALFORMED_KINDS, UNKNOWN_SYMBOL
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet, demo_accounts
from mt5recon.terminal.simulator.market import SPECS, SymbolSpec, pip_size
from mt5recon.terminal.simulator.terminal import SimTerminal

__all__ = [
    "DEFAULT_START",
    "MALFORMED_KINDS",
    "SPECS",
    "UNKNOWN_SYMBOL",
    "AccountSpec",
    "BotConfig",
    "BotTrade",
    "Clock",
    "ScenarioRates",
    "SimAccount",
    "SimClock",
    "SimFleet",
    "SimTerminal",
    "SymbolSpec",
    "WallClock",
    "demo_accounts",
    "pip_size",
]
