"""Each simulator scenario, run through the real pipeline steps (terminal API -> frames ->
Pandera -> engine), shows up as the right divergence kind, and nothing else changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pytest
from sim_cycle import CycleRun, run_cycle

from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

HEDGING = 5001
NETTING = 5004
Act = Callable[[SimFleet, Any], object]


@dataclass(frozen=True)
class SimCase:
    description: str
    act: Act
    new_divergences: set[tuple[str, str | None]]
    login: int = HEDGING
    account_failed: bool = False
    quarantined_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _open(**kwargs: Any) -> Act:
    defaults = {"symbol": "EURUSD", "side": "buy", "volume": 0.1, "record_position_id": False}
    return lambda sim, acct: acct.bot_open(**{**defaults, **kwargs})


def _open_then(then: Callable[[Any, str], object], **kwargs: Any) -> Act:
    def act(sim: SimFleet, acct: Any) -> None:
        trade_id = _open(**kwargs)(sim, acct)
        sim.clock.advance(20)
        then(acct, str(trade_id))

    return act


CASES = [
    SimCase("entry slippage 8 pips against the bot", _open(slippage_pips=8), {("slippage", "adverse")}),
    SimCase("favourable slippage 8 pips", _open(slippage_pips=-8), {("slippage", "favourable")}),
    SimCase("partial fill 50 %", _open(fill_ratio=0.5), {("volume_mismatch", "partial_fill")}),
    SimCase(
        "slippage and partial fill on one trade stay one matched pair",
        _open(slippage_pips=7, fill_ratio=0.5),
        {("slippage", "adverse"), ("volume_mismatch", "partial_fill")},
    ),
    SimCase(
        "manual trade from the desktop (magic 0)",
        lambda sim, a: a.manual_open("GBPUSD", "sell", 0.2),
        {("unknown_position", "manual")},
    ),
    SimCase(
        "another EA's trade", lambda sim, a: a.foreign_ea_open("GBPUSD", "buy", 0.3), {("unknown_position", "other_ea")}
    ),
    SimCase(
        "broker closes by stop loss",
        _open_then(lambda a, t: a.close_by_sl(t), sl_pips=20),
        {("missing_position", "closed_by_sl")},
    ),
    SimCase(
        "broker closes by take profit",
        _open_then(lambda a, t: a.close_by_tp(t), tp_pips=20),
        {("missing_position", "closed_by_tp")},
    ),
    SimCase(
        "manual close from mobile",
        _open_then(lambda a, t: a.manual_close(t, reason=1)),
        {("missing_position", "closed_manually")},
    ),
    SimCase(
        "SL moved at the broker, not by the bot",
        _open_then(lambda a, t: a.edit_sltp(t, sl=None, shift_pips=15), sl_pips=30, tp_pips=0),
        {("sl_mismatch", "drift")},
    ),
    SimCase(
        "TP moved 25 pips at the broker",
        _open_then(lambda a, t: a.edit_sltp(t, tp=a.position(t).tp + 0.0025), sl_pips=0, tp_pips=40),
        {("tp_mismatch", "drift")},
    ),
    SimCase("deposit: money moves, positions do not", lambda sim, a: a.deposit(5_000), set()),
    SimCase("withdrawal", lambda sim, a: a.withdraw(1_000), set()),
    SimCase(
        "a None positions snapshot opens no missing break",
        lambda sim, a: a.fail_snapshot(calls=None, methods={"positions_get"}),
        {("snapshot_failed", "positions_get")},
        account_failed=True,
    ),
    SimCase(
        "disconnected terminal",
        lambda sim, a: a.disconnect(),
        {("snapshot_failed", "account_info,positions_get,orders_get,history_deals_get")},
        account_failed=True,
    ),
    SimCase(
        "IPC timeout",
        lambda sim, a: a.fail_timeout(calls=None),
        {("snapshot_failed", "account_info,positions_get,orders_get,history_deals_get")},
        account_failed=True,
    ),
    SimCase(
        "authorization failure",
        lambda sim, a: a.fail_auth(calls=None),
        {("snapshot_failed", "account_info,positions_get,orders_get,history_deals_get")},
        account_failed=True,
    ),
    SimCase(
        "NaN entry price is quarantined",
        lambda sim, a: a.malform("nan_price_open"),
        set(),
        quarantined_reason="price_open",
    ),
    SimCase(
        "negative volume is quarantined",
        lambda sim, a: a.malform("negative_volume"),
        set(),
        quarantined_reason="volume",
    ),
    SimCase(
        "duplicate ticket is quarantined",
        lambda sim, a: a.malform("duplicate_ticket"),
        set(),
        quarantined_reason="unique_ticket_per_login",
    ),
    SimCase(
        "position on an unknown symbol is quarantined",
        lambda sim, a: a.malform("unknown_symbol"),
        set(),
        quarantined_reason="unknown symbol",
    ),
]


def _breaks(run: CycleRun, login: int) -> dict[str, tuple[str, str | None]]:
    rows = run.divergences(login).select("break_id", "kind", "cause").iter_rows()
    return {break_id: (kind, cause) for break_id, kind, cause in rows}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.description)
def test_simulator_scenario(case: SimCase) -> None:
    clock = SimClock(DEFAULT_START)
    sim = SimFleet.quiet(clock=clock)
    account = sim.account(case.login)
    account.set_notice_delay(3600)  # the bot has not noticed broker-side closes yet
    before = run_cycle(sim)
    case.act(sim, account)
    clock.advance(30)  # past the grace window
    after = run_cycle(sim)

    new = {v for k, v in _breaks(after, case.login).items() if k not in _breaks(before, case.login)}
    assert new == case.new_divergences, f"{case.description}: new divergences {sorted(new)}"
    failed = after.snapshot.accounts.filter(~(pl.col("account_ok") & pl.col("positions_ok")))["login"].to_list()
    assert failed == ([case.login] if case.account_failed else []), f"{case.description}: failed accounts {failed}"
    others = {login for login in sim.logins if login != case.login}
    assert set(after.result.account_stats["login"].to_list()) >= others, f"{case.description}: others reconciled"

    quarantine = after.validated.quarantine
    if case.quarantined_reason:
        assert quarantine.height >= 1, case.description
        assert quarantine["reason"].str.contains(case.quarantined_reason, literal=True).any(), (
            f"{case.description}: {quarantine['reason'].to_list()}"
        )
    else:
        assert quarantine.height == 0, f"{case.description}: {quarantine['reason'].to_list()}"
    for name, rows_in in after.validated.rows_in.items():
        stored = after.validated.frames[name].height
        dropped = quarantine.filter(pl.col("frame") == name).height
        assert rows_in == stored + dropped, f"{case.description}: {name} rows in {rows_in} != {stored} + {dropped}"
