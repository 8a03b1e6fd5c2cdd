"""Reconciliation scenarios on inline frames: each row says what the broker and the bot hold
and which divergences (kind, cause) must come out, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pytest
from builders import NOW, frame, symbols_for

from mt5recon.recon.engine import reconcile
from mt5recon.tolerances import Tolerances


@dataclass(frozen=True)
class Scenario:
    description: str
    positions: list[dict[str, Any]]
    expected: list[dict[str, Any]]
    divergences: set[tuple[str, str | None]]
    deals: list[dict[str, Any]] = field(default_factory=list)
    margin_mode: int = 2
    stages: dict[str, str] = field(default_factory=dict)  # trade_id -> matching stage
    account: dict[str, Any] = field(default_factory=dict)


BOT = {"magic": 777, "reason": 3}
SCENARIOS = [
    Scenario(
        "exact fill by identity: no divergence",
        [{"ticket": 10, **BOT}],
        [{"trade_id": "t1", "position_id": 10}],
        set(),
        stages={"t1": "identity"},
    ),
    Scenario(
        "3-pip slip is under the 5-pip threshold: matched, no divergence",
        [{"ticket": 10, "price_open": 1.10030, **BOT}],
        [{"trade_id": "t1"}],
        set(),
        stages={"t1": "fuzzy"},
    ),
    Scenario(
        "adverse 8-pip slip on a buy, matched fuzzily, never unknown+missing",
        [{"ticket": 10, "price_open": 1.10080, **BOT}],
        [{"trade_id": "t1"}],
        {("slippage", "adverse")},
        stages={"t1": "fuzzy"},
    ),
    Scenario(
        "favourable 8-pip slip on a sell",
        [{"ticket": 10, "type": 1, "price_open": 1.10080, **BOT}],
        [{"trade_id": "t1", "side": "sell"}],
        {("slippage", "favourable")},
    ),
    Scenario(
        "50 % partial fill still matches",
        [{"ticket": 10, "volume": 0.05, **BOT}],
        [{"trade_id": "t1"}],
        {("volume_mismatch", "partial_fill")},
    ),
    Scenario(
        "over-fill", [{"ticket": 10, "volume": 0.2, **BOT}], [{"trade_id": "t1"}], {("volume_mismatch", "over_fill")}
    ),
    Scenario(
        "tag in the comment, truncated by the broker, wins over a closer fuzzy candidate",
        [{"ticket": 10, "comment": "bot-trade-0001-with-a-long", **BOT}, {"ticket": 11, "price_open": 1.10000, **BOT}],
        [{"trade_id": "bot-trade-0001-with-a-long-suffix-beyond-31", "price": 1.1}],
        {("unknown_position", "bot_untracked")},
        stages={"bot-trade-0001-with-a-long-suffix-beyond-31": "tag"},
    ),
    Scenario(
        "SL drifted 15 pips at the broker",
        [{"ticket": 10, "sl": 1.09850, **BOT}],
        [{"trade_id": "t1", "position_id": 10, "sl": 1.09700}],
        {("sl_mismatch", "drift")},
    ),
    Scenario(
        "SL set by the bot but missing at the broker (0.0 means not set)",
        [{"ticket": 10, "sl": 0.0, **BOT}],
        [{"trade_id": "t1", "position_id": 10, "sl": 1.09700}],
        {("sl_mismatch", "missing_at_broker")},
    ),
    Scenario(
        "TP drifted",
        [{"ticket": 10, "tp": 1.10500, **BOT}],
        [{"trade_id": "t1", "position_id": 10, "tp": 1.10200}],
        {("tp_mismatch", "drift")},
    ),
    Scenario(
        "TP within 10 pips: no divergence",
        [{"ticket": 10, "tp": 1.10250, **BOT}],
        [{"trade_id": "t1", "position_id": 10, "tp": 1.10200}],
        set(),
    ),
    Scenario(
        "manual trade (magic 0, reason client) is unknown/manual",
        [{"ticket": 10, "magic": 0, "reason": 0}],
        [],
        {("unknown_position", "manual")},
    ),
    Scenario(
        "another EA's trade is unknown/other_ea",
        [{"ticket": 10, "magic": 4242, "reason": 3}],
        [],
        {("unknown_position", "other_ea")},
    ),
    Scenario(
        "a manual trade never pairs with a bot trade at the same price",
        [{"ticket": 10, "magic": 0, "reason": 0}],
        [{"trade_id": "t1"}],
        {("unknown_position", "manual"), ("missing_position", "never_filled")},
    ),
    Scenario(
        "missing: closed by SL (exit deal reason 4)",
        [],
        [{"trade_id": "t1", "position_id": 99}],
        {("missing_position", "closed_by_sl")},
        deals=[
            {"ticket": 1, "entry": 0, "position_id": 99},
            {"ticket": 2, "entry": 1, "type": 1, "position_id": 99, "reason": 4},
        ],
    ),
    Scenario(
        "missing: closed by TP, position found through the tagged entry deal",
        [],
        [{"trade_id": "t-000001"}],
        {("missing_position", "closed_by_tp")},
        deals=[
            {"ticket": 1, "entry": 0, "position_id": 98, "comment": "t-000001"},
            {"ticket": 2, "entry": 1, "type": 1, "position_id": 98, "reason": 5},
        ],
    ),
    Scenario(
        "missing: stop-out",
        [],
        [{"trade_id": "t1", "position_id": 97}],
        {("missing_position", "stop_out")},
        deals=[{"ticket": 2, "entry": 1, "type": 1, "position_id": 97, "reason": 6}],
    ),
    Scenario(
        "missing: closed manually from mobile",
        [],
        [{"trade_id": "t1", "position_id": 96}],
        {("missing_position", "closed_manually")},
        deals=[{"ticket": 2, "entry": 1, "type": 1, "position_id": 96, "reason": 1, "magic": 0}],
    ),
    Scenario(
        "missing: no entry deal at all means never filled",
        [],
        [{"trade_id": "t1"}],
        {("missing_position", "never_filled")},
    ),
    Scenario(
        "a trade opened inside the grace window is not missing yet", [], [{"trade_id": "t1", "opened_at": NOW}], set()
    ),
    Scenario(
        "a failed positions call is not a flat account: nothing missing",
        [],
        [{"trade_id": "t1", "position_id": 5}],
        set(),
        account={"positions_ok": False},
    ),
    Scenario(
        "broker suffix EURUSD.m maps to the bot's EURUSD",
        [{"ticket": 10, "symbol": "EURUSD.m", **BOT}],
        [{"trade_id": "t1"}],
        set(),
        stages={"t1": "fuzzy"},
    ),
    Scenario(
        "netting: two bot buys against one averaged broker position",
        [{"ticket": 10, "volume": 0.2, **BOT}],
        [{"trade_id": "n1"}, {"trade_id": "n2"}],
        set(),
        margin_mode=0,
        stages={"n1": "netting", "n2": "netting"},
    ),
    Scenario(
        "netting: broker holds less than the bot's net volume",
        [{"ticket": 10, "volume": 0.1, **BOT}],
        [{"trade_id": "n1"}, {"trade_id": "n2"}],
        {("volume_mismatch", "partial_fill")},
        margin_mode=0,
    ),
    Scenario(
        "netting: broker flat, bot long, last exit by TP",
        [],
        [{"trade_id": "n1"}],
        {("missing_position", "closed_by_tp")},
        margin_mode=0,
        deals=[{"ticket": 2, "entry": 1, "type": 1, "position_id": 50, "reason": 5}],
    ),
    Scenario(
        "netting: slippage measured on the trade's own entry deal",
        [{"ticket": 10, "volume": 0.1, "price_open": 1.1008, **BOT}],
        [{"trade_id": "n-000001"}],
        {("slippage", "adverse")},
        margin_mode=0,
        deals=[{"ticket": 1, "entry": 0, "position_id": 10, "price": 1.1008, "comment": "n-000001"}],
    ),
]


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda s: s.description)
def test_scenario(case: Scenario) -> None:
    accounts = frame("accounts", [{"login": 1, "margin_mode": case.margin_mode, **case.account}])
    result = reconcile(
        accounts=accounts,
        positions=frame("positions", [{"login": 1, **p} for p in case.positions]),
        deals=frame("deals", [{"login": 1, **d} for d in case.deals]),
        symbols=symbols_for([1], ["EURUSD", "EURUSD.m"]),
        expected_trades=frame("expected_trades", [{"login": 1, **e} for e in case.expected]),
        tolerances=Tolerances(),
    )
    found = set(result.divergences.select("kind", "cause").iter_rows())
    assert found == case.divergences, f"{case.description}: got {sorted(found)}"
    stages = dict(result.matches.select("trade_id", "stage").iter_rows())
    for trade_id, stage in case.stages.items():
        assert stages.get(trade_id) == stage, f"{case.description}: {trade_id} matched by {stages.get(trade_id)}"


def test_break_ids_are_deterministic_and_readable() -> None:
    kwargs: dict[str, Any] = {
        "accounts": frame("accounts", [{"login": 7}]),
        "positions": frame("positions", [{"login": 7, "ticket": 10, "price_open": 1.1008, **BOT}]),
        "deals": frame("deals", []),
        "symbols": symbols_for([7], ["EURUSD"]),
        "expected_trades": frame("expected_trades", [{"login": 7, "trade_id": "t1"}]),
        "tolerances": Tolerances(),
    }
    first, second = reconcile(**kwargs), reconcile(**kwargs)
    assert first.divergences["break_id"].to_list() == ["7:slippage:t1"]
    assert first.divergences.equals(second.divergences)


def test_slippage_money_in_account_currency() -> None:
    result = reconcile(
        accounts=frame("accounts", [{"login": 1}]),
        positions=frame("positions", [{"login": 1, "ticket": 10, "price_open": 1.1010, "volume": 0.5, **BOT}]),
        deals=frame("deals", []),
        symbols=symbols_for([1], ["EURUSD"]),
        expected_trades=frame("expected_trades", [{"login": 1, "trade_id": "t1", "volume": 0.5}]),
        tolerances=Tolerances(),
    )
    row = result.divergences.filter(pl.col("kind") == "slippage").row(0, named=True)
    assert row["size_pips"] == pytest.approx(10.0)
    assert row["size_money"] == pytest.approx(10 * 0.0001 * 0.5 * 100_000)  # 50 USD


def test_per_symbol_tolerance_override() -> None:
    tolerances = Tolerances(symbols={"EURUSD": {"slippage_pips": 20.0}})
    result = reconcile(
        accounts=frame("accounts", [{"login": 1}]),
        positions=frame("positions", [{"login": 1, "ticket": 10, "price_open": 1.1010, **BOT}]),
        deals=frame("deals", []),
        symbols=symbols_for([1], ["EURUSD"]),
        expected_trades=frame("expected_trades", [{"login": 1, "trade_id": "t1"}]),
        tolerances=tolerances,
    )
    assert result.divergences.height == 0, "a 10-pip slip is within the EURUSD override of 20 pips"


def test_match_window_must_be_wider_than_thresholds() -> None:
    with pytest.raises(ValueError, match="wider"):
        Tolerances(default={"slippage_pips": 50.0, "match_window_pips": 20.0})  # type: ignore[arg-type]
