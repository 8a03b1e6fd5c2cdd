"""Reconciliation scenarios on inline frames: each row says what the broker and the bot hold
and which divergences (kind, cause) must come out, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from builders import NOW, frame, symbols_for

from mt5recon import frames
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
    symbol_map: dict[str, str] = field(default_factory=dict)
    as_of_secs: float | None = None  # the cycle's time, seconds after the snapshot (stale check)
    health: dict[str, Any] | None = None  # the terminal's health row (connected, data_age_secs)


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
        "a failed positions call is not a flat account: nothing missing, the failure reported",
        [],
        [{"trade_id": "t1", "position_id": 5}],
        {("snapshot_failed", "positions_get")},
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
    Scenario(
        "SL set at the broker though the bot set none",
        [{"ticket": 10, "sl": 1.09500, **BOT}],
        [{"trade_id": "t1", "position_id": 10}],
        {("sl_mismatch", "unexpected_at_broker")},
    ),
    Scenario(
        "TP set by the bot but missing at the broker",
        [{"ticket": 10, "tp": 0.0, **BOT}],
        [{"trade_id": "t1", "position_id": 10, "tp": 1.10500}],
        {("tp_mismatch", "missing_at_broker")},
    ),
    Scenario(
        "missing: closed by the bot itself (reason expert, the bot's magic)",
        [],
        [{"trade_id": "t1", "position_id": 95}],
        {("missing_position", "closed_by_bot")},
        deals=[{"ticket": 2, "entry": 1, "type": 1, "position_id": 95, "reason": 3, "magic": 777}],
    ),
    Scenario(
        "missing: closed by another EA (reason expert, a foreign magic)",
        [],
        [{"trade_id": "t1", "position_id": 94}],
        {("missing_position", "closed_by_other_ea")},
        deals=[{"ticket": 2, "entry": 1, "type": 1, "position_id": 94, "reason": 3, "magic": 4242}],
    ),
    Scenario(
        "missing: filled (entry deal seen) but no exit deal in the history window",
        [],
        [{"trade_id": "t1", "position_id": 93}],
        {("missing_position", "unknown")},
        deals=[{"ticket": 1, "entry": 0, "position_id": 93}],
    ),
    Scenario(
        "missing while the deals call failed: the cause is unavailable, and the failure is reported",
        [],
        [{"trade_id": "t1", "position_id": 92}],
        {("missing_position", "unknown_deals_unavailable"), ("snapshot_failed", "history_deals_get")},
        account={"deals_ok": False},
    ),
    Scenario(
        "a failed account_info call: nothing reconciled, every failed call named",
        [],
        [{"trade_id": "t1", "position_id": 5}],
        {("snapshot_failed", "account_info,positions_get,orders_get,history_deals_get")},
        account={"account_ok": False, "positions_ok": False, "orders_ok": False, "deals_ok": False},
    ),
    Scenario(
        "a snapshot older than the stale limit is reported stale and not read as flat",
        [],
        [{"trade_id": "t1", "position_id": 5}],
        {("snapshot_stale", "data_age_exceeded")},
        as_of_secs=45,
    ),
    Scenario(
        "a terminal cut off from its server answers from its cache: stale, never read as flat",
        [],
        [{"trade_id": "t1", "position_id": 5}],
        {("snapshot_stale", "terminal_disconnected")},
        health={"connected": False, "data_age_secs": 1.0},
    ),
    Scenario(
        "a terminal whose newest quote is older than the data limit is stale",
        [],
        [{"trade_id": "t1", "position_id": 5}],
        {("snapshot_stale", "quotes_too_old")},
        health={"connected": True, "data_age_secs": 301.0},
    ),
    Scenario(
        "a connected terminal with fresh quotes is reconciled",
        [{"ticket": 5, **BOT}],
        [{"trade_id": "t1", "position_id": 5}],
        set(),
        health={"connected": True, "data_age_secs": 2.0},
    ),
    Scenario(
        "a fresh snapshot within the stale limit is reconciled",
        [{"ticket": 5, **BOT}],
        [{"trade_id": "t1", "position_id": 5}],
        set(),
        as_of_secs=5,
    ),
    Scenario(
        "a position the bot closed a moment ago is not unknown (grace after the bot's last action)",
        [{"ticket": 10, **BOT}],
        [{"trade_id": "t1", "position_id": 10, "closed_at": NOW - timedelta(seconds=3)}],
        set(),
    ),
    Scenario(
        "after the grace window the same leftover position is the bot's own, untracked",
        [{"ticket": 10, **BOT}],
        [{"trade_id": "t1", "position_id": 10, "closed_at": NOW - timedelta(seconds=60)}],
        {("unknown_position", "bot_untracked")},
    ),
    Scenario(
        "#EURUSD and EURUSDpro are the bot's EURUSD",
        [{"ticket": 10, "symbol": "#EURUSD", **BOT}, {"ticket": 11, "symbol": "EURUSDpro", "type": 1, **BOT}],
        [{"trade_id": "t1"}, {"trade_id": "t2", "side": "sell"}],
        set(),
        stages={"t1": "fuzzy", "t2": "fuzzy"},
    ),
    Scenario(
        "a symbol map entry joins names the default rules cannot (GER40.cash is the bot's DE40)",
        [{"ticket": 10, "symbol": "GER40.cash", **BOT}],
        [{"trade_id": "t1", "symbol": "DE40"}],
        set(),
        stages={"t1": "fuzzy"},
        symbol_map={"GER40.cash": "DE40"},
    ),
    Scenario(
        "a position opened moments ago, not yet recorded by the bot, is not unknown yet",
        [{"ticket": 10, "magic": 0, "reason": 0, "time": NOW - timedelta(seconds=5)}],
        [],
        set(),
    ),
    Scenario(
        "netting: favourable entry on the trade's own deal",
        [{"ticket": 10, "volume": 0.1, "price_open": 1.0992, **BOT}],
        [{"trade_id": "n-000002"}],
        {("slippage", "favourable")},
        margin_mode=0,
        deals=[{"ticket": 1, "entry": 0, "position_id": 10, "price": 1.0992, "comment": "n-000002"}],
    ),
    Scenario(
        "netting: no tagged entry deal, so the average price is compared (exchange mode 1)",
        [{"ticket": 10, "volume": 0.2, "price_open": 1.1010, **BOT}],
        [{"trade_id": "n1", "price": 1.1000}, {"trade_id": "n2", "price": 1.1000}],
        {("slippage", "adverse")},
        margin_mode=1,
        stages={"n1": "netting", "n2": "netting"},
    ),
    Scenario(
        "netting: broker holds more than the bot's net volume",
        [{"ticket": 10, "volume": 0.3, **BOT}],
        [{"trade_id": "n1"}],
        {("volume_mismatch", "over_fill")},
        margin_mode=0,
    ),
    Scenario(
        "netting: broker short where the bot is long",
        [{"ticket": 10, "volume": 0.1, "type": 1, **BOT}],
        [{"trade_id": "n1"}],
        {("volume_mismatch", "opposite_side")},
        margin_mode=0,
    ),
    Scenario(
        "netting: the bot's trades agree on an SL the broker's position lacks",
        [{"ticket": 10, "volume": 0.2, "sl": 0.0, **BOT}],
        [{"trade_id": "n1", "sl": 1.0950}, {"trade_id": "n2", "sl": 1.0950}],
        {("sl_mismatch", "missing_at_broker")},
        margin_mode=0,
    ),
    Scenario(
        "netting: TP drifted on the netted position",
        [{"ticket": 10, "volume": 0.1, "tp": 1.1100, **BOT}],
        [{"trade_id": "n1", "tp": 1.1050}],
        {("tp_mismatch", "drift")},
        margin_mode=0,
    ),
    Scenario(
        "netting: trades with different SLs have no single level to compare",
        [{"ticket": 10, "volume": 0.2, "sl": 1.0900, **BOT}],
        [{"trade_id": "n1", "sl": 1.0950}, {"trade_id": "n2", "sl": 1.0940}],
        set(),
        margin_mode=0,
    ),
    Scenario(
        "netting: a manual position on a symbol the bot does not trade",
        [{"ticket": 10, "magic": 0, "reason": 1}],
        [],
        {("unknown_position", "manual")},
        margin_mode=0,
    ),
    Scenario(
        "netting: another EA's position",
        [{"ticket": 10, "magic": 4242, "reason": 3}],
        [],
        {("unknown_position", "other_ea")},
        margin_mode=0,
    ),
    Scenario(
        "netting: the bot's own magic on a symbol it believes flat",
        [{"ticket": 10, **BOT}],
        [{"trade_id": "n1", "closed_at": NOW - timedelta(minutes=5)}],
        {("unknown_position", "bot_untracked")},
        margin_mode=0,
    ),
    Scenario(
        "netting: the bot closed the symbol a moment ago, the broker still shows it (grace)",
        [{"ticket": 10, **BOT}],
        [{"trade_id": "n1", "closed_at": NOW - timedelta(seconds=2)}],
        set(),
        margin_mode=0,
    ),
    Scenario(
        "netting: broker flat, last exit a stop-out",
        [],
        [{"trade_id": "n1"}],
        {("missing_position", "stop_out")},
        margin_mode=0,
        deals=[{"ticket": 2, "entry": 1, "type": 1, "position_id": 50, "reason": 6}],
    ),
    Scenario(
        "netting: broker flat, closed manually from the web terminal",
        [],
        [{"trade_id": "n1"}],
        {("missing_position", "closed_manually")},
        margin_mode=0,
        deals=[{"ticket": 2, "entry": 1, "type": 1, "position_id": 50, "reason": 2, "magic": 0}],
    ),
    Scenario(
        "netting: broker flat and no deal on the symbol: never filled",
        [],
        [{"trade_id": "n1"}],
        {("missing_position", "never_filled")},
        margin_mode=0,
    ),
    Scenario(
        "missing: closed for another reason (a split, reason 9)",
        [],
        [{"trade_id": "t1", "position_id": 91}],
        {("missing_position", "closed_other")},
        deals=[{"ticket": 2, "entry": 1, "type": 1, "position_id": 91, "reason": 9}],
    ),
    Scenario(
        "netting: broker flat, the bot's own EA closed it",
        [],
        [{"trade_id": "n1"}],
        {("missing_position", "closed_by_bot")},
        margin_mode=0,
        deals=[{"ticket": 2, "entry": 1, "type": 1, "position_id": 50, "reason": 3, "magic": 777}],
    ),
    Scenario(
        "netting: broker flat, another EA closed it",
        [],
        [{"trade_id": "n1"}],
        {("missing_position", "closed_by_other_ea")},
        margin_mode=0,
        deals=[{"ticket": 2, "entry": 1, "type": 1, "position_id": 50, "reason": 3, "magic": 4242}],
    ),
    Scenario(
        "netting: broker flat while the deals call failed",
        [],
        [{"trade_id": "n1"}],
        {("missing_position", "unknown_deals_unavailable"), ("snapshot_failed", "history_deals_get")},
        margin_mode=0,
        account={"deals_ok": False},
    ),
    Scenario(
        "netting: SL drifted on the netted position",
        [{"ticket": 10, "volume": 0.1, "sl": 1.0930, **BOT}],
        [{"trade_id": "n1", "sl": 1.0950}],
        {("sl_mismatch", "drift")},
        margin_mode=0,
    ),
    Scenario(
        "netting: a TP at the broker the bot never set",
        [{"ticket": 10, "volume": 0.1, "tp": 1.1100, **BOT}],
        [{"trade_id": "n1"}],
        {("tp_mismatch", "unexpected_at_broker")},
        margin_mode=0,
    ),
    Scenario(
        "netting: a stale snapshot is reported and not reconciled",
        [],
        [{"trade_id": "n1"}],
        {("snapshot_stale", "data_age_exceeded")},
        margin_mode=0,
        as_of_secs=120,
    ),
    Scenario(
        "netting: a failed positions call is reported, never read as flat",
        [],
        [{"trade_id": "n1"}],
        {("snapshot_failed", "positions_get")},
        margin_mode=0,
        account={"positions_ok": False},
    ),
]


def _health_row(values: dict[str, Any]) -> pl.DataFrame:
    row = {column: None for column in frames.HEALTH} | {"login": 1, "fetched_at": NOW} | values
    return pl.DataFrame([row], schema=frames.HEALTH)


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda s: s.description)
def test_scenario(case: Scenario) -> None:
    accounts = frame("accounts", [{"login": 1, "margin_mode": case.margin_mode, **case.account}])
    result = reconcile(
        accounts=accounts,
        positions=frame("positions", [{"login": 1, **p} for p in case.positions]),
        deals=frame("deals", [{"login": 1, **d} for d in case.deals]),
        symbols=symbols_for([1], ["EURUSD", "EURUSD.m", "#EURUSD", "EURUSDpro", "GER40.cash", "DE40"]),
        expected_trades=frame("expected_trades", [{"login": 1, **e} for e in case.expected]),
        tolerances=Tolerances(),
        symbol_map=case.symbol_map,
        as_of=None if case.as_of_secs is None else NOW + timedelta(seconds=case.as_of_secs),
        health=None if case.health is None else _health_row(case.health),
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


@pytest.mark.parametrize(
    ("description", "spec", "money"),
    [
        ("JPY-quoted pair: converted by the terminal's tick value (USD per tick)", {}, 10 * 10 * 0.6667 * 1.0),
        ("no tick value and a foreign profit currency: no guessed FX", {"trade_tick_value": None}, None),
    ],
)
def test_slippage_money_converted_to_the_account_currency(
    description: str, spec: dict[str, Any], money: float | None
) -> None:
    symbols = symbols_for([1], ["USDJPY"]).with_columns(
        *[pl.lit(v, dtype=pl.Float64).alias(k) for k, v in spec.items()]
    )
    result = reconcile(
        accounts=frame("accounts", [{"login": 1}]),
        positions=frame(
            "positions",
            [{"login": 1, "ticket": 10, "symbol": "USDJPY", "price_open": 150.100, "volume": 1.0, **BOT}],
        ),
        deals=frame("deals", []),
        symbols=symbols,
        expected_trades=frame(
            "expected_trades", [{"login": 1, "trade_id": "t1", "symbol": "USDJPY", "price": 150.0, "volume": 1.0}]
        ),
        tolerances=Tolerances(),
    )
    row = result.divergences.filter(pl.col("kind") == "slippage").row(0, named=True)
    assert row["size_pips"] == pytest.approx(10.0), description
    assert row["size_money"] == (pytest.approx(money) if money is not None else None), description


def test_the_scenario_table_covers_every_kind_on_both_account_modes_and_every_cause() -> None:
    from mt5recon.recon import divergences as dv

    seen: dict[str, set[str]] = {}
    modes: dict[str, set[str]] = {}
    for case in SCENARIOS:
        mode = "netting" if case.margin_mode in (0, 1) else "hedging"
        for kind, cause in case.divergences:
            seen.setdefault(kind, set()).update((cause or "").split(","))
            modes.setdefault(kind, set()).add(mode)
    for kind, causes in dv.CAUSES.items():
        assert modes.get(kind) == {"hedging", "netting"}, f"{kind} is not covered on both modes: {modes.get(kind)}"
        assert set(causes) <= seen[kind], f"{kind}: causes never exercised {set(causes) - seen[kind]}"
