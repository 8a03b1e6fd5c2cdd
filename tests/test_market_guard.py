"""The market guard on inline frames: each scenario is a sequence of cycles (quotes per symbol)
and says which alerts every cycle must write, and nothing else; plus one run on the simulator."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
from builders import NOW, frame, symbols_for
from sim_cycle import run_cycle

from mt5recon.guards.market import (
    ALERT_SCHEMA,
    AT_RISK_SCHEMA,
    STATE_SCHEMA,
    MarketGuardConfig,
    MarketResult,
    SymbolGuard,
    advance_market,
    asset_class,
    empty_state,
)
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

PIPS = {"EURUSD": 0.0001, "USDJPY": 0.01, "XAUUSD": 0.01, "SPOTEUR": 0.0001}
Alert = tuple[str, str, str]  # symbol, guard, event


@dataclass(frozen=True)
class Q:
    """One account's quote of a symbol: mid and spread in pips, `lag` seconds before the cycle."""

    symbol: str
    mid: float
    spread_pips: float = 1.0
    lag: float = 0.0
    login: int = 1


@dataclass(frozen=True)
class Step:
    quotes: list[Q]
    alerts: set[Alert] = field(default_factory=set)
    flagged: dict[str, str] | None = None  # symbol -> reasons after the cycle (None: not checked)
    secs: float = 10.0  # since the previous cycle


@dataclass(frozen=True)
class Scenario:
    description: str
    steps: list[Step]
    config: MarketGuardConfig = field(default_factory=MarketGuardConfig)
    positions: list[dict[str, Any]] = field(default_factory=list)
    at_risk: set[tuple[int, int, str, str]] | None = None  # after the last cycle
    symbols: pl.DataFrame | None = None  # default: builders' EURUSD, USDJPY, XAUUSD specs (no path)


def eur(mid: float, spread_pips: float = 1.0, **kw: Any) -> Q:
    return Q("EURUSD", mid, spread_pips, **kw)


def xau(mid: float, spread_pips: float = 25.0, **kw: Any) -> Q:
    return Q("XAUUSD", mid, spread_pips, **kw)


def steady(n: int, spread_pips: float = 1.0) -> list[Step]:
    return [Step([eur(1.1, spread_pips)]) for _ in range(n)]


SPREAD_CASE = [
    *steady(10),
    Step([eur(1.1, 6.0)], {("EURUSD", "spread", "raised")}, {"EURUSD": "spread"}),
    Step([eur(1.1, 6.0)], flagged={"EURUSD": "spread"}),  # still active: no second alert
    Step([eur(1.1, 4.5)], flagged={"EURUSD": "spread"}),  # under 5x the median but above 80 % of it
    Step([eur(1.1, 3.9)], {("EURUSD", "spread", "cleared")}, {}),
    Step([eur(1.1, 1.0)], flagged={}),
]

SCENARIOS = [
    Scenario("first quote of a symbol never gaps", [Step([eur(1.1), xau(2350.0)], flagged={})]),
    Scenario(
        "3 % EURUSD gap (fx 2 %) raises once and clears on the next normal quote",
        [
            Step([eur(1.1)]),
            Step([eur(1.133)], {("EURUSD", "gap", "raised")}, {"EURUSD": "gap"}),
            Step([eur(1.133)], {("EURUSD", "gap", "cleared")}, {}),
            Step([eur(1.133)], flagged={}),
        ],
    ),
    Scenario(
        "a downward 3 % gap counts as well",
        [Step([eur(1.1)]), Step([eur(1.067)], {("EURUSD", "gap", "raised")})],
    ),
    Scenario(
        "consecutive gapping quotes are one episode: one raise, one clear",
        [
            Step([eur(1.1)]),
            Step([eur(1.133)], {("EURUSD", "gap", "raised")}),
            Step([eur(1.167)], flagged={"EURUSD": "gap"}),
            Step([eur(1.167)], {("EURUSD", "gap", "cleared")}),
        ],
    ),
    Scenario(
        "the same 3 % gap on XAUUSD is under the metal 4 %: no alert",
        [Step([xau(2350.0)]), Step([xau(2420.5)], flagged={})],
    ),
    Scenario(
        "a per-symbol override lowers XAUUSD's threshold to 2 %: the 3 % gap raises",
        [Step([xau(2350.0)]), Step([xau(2420.5)], {("XAUUSD", "gap", "raised")})],
        config=MarketGuardConfig(symbols={"XAUUSD": SymbolGuard(gap_pct=2.0)}),
    ),
    Scenario(
        "a per-symbol override raises EURUSD's threshold to 5 %: the 3 % gap passes",
        [Step([eur(1.1)]), Step([eur(1.133)], flagged={})],
        config=MarketGuardConfig(symbols={"EURUSD": SymbolGuard(gap_pct=5.0)}),
    ),
    Scenario(
        "a class default changed in the config applies (fx 4 %)",
        [Step([eur(1.1)]), Step([eur(1.133)], flagged={})],
        config=MarketGuardConfig(gap_pct_by_class={"fx": 4.0, "other": 5.0}),
    ),
    Scenario(
        "the broker's path decides the class: a 3 % gap on a Forex symbol raises",
        [Step([Q("SPOTEUR", 1.1)]), Step([Q("SPOTEUR", 1.133)], {("SPOTEUR", "gap", "raised")})],
        symbols=frame("symbols", [{"login": 1, "name": "SPOTEUR"}]).with_columns(
            pl.lit("Forex\\Exotics\\SPOTEUR").alias("path")
        ),
    ),
    Scenario(
        "without a path an unrecognised name is class other (5 %): the 3 % gap passes",
        [Step([Q("SPOTEUR", 1.1)]), Step([Q("SPOTEUR", 1.133)], flagged={})],
        symbols=frame("symbols", [{"login": 1, "name": "SPOTEUR"}]),
    ),
    Scenario(
        "a quote older than the last one seen is not compared (no gap from a laggard account)",
        [
            Step([eur(1.1)]),
            Step([eur(1.133, lag=15.0)], flagged={}),
        ],
    ),
    Scenario(
        "the newest quote across accounts is the symbol's quote",
        [
            Step([eur(1.1, login=1), eur(1.1, login=2)]),
            Step([eur(1.1, login=1, lag=1.0), eur(1.133, login=2)], {("EURUSD", "gap", "raised")}),
            Step([eur(1.133, login=1, lag=1.0), eur(1.1, login=2, lag=2.0)], {("EURUSD", "gap", "cleared")}),
        ],
    ),
    Scenario(
        "same-instant quotes of two accounts: a fixed tie-break (highest login), whatever the row order",
        [
            Step([eur(1.1, login=1), eur(1.1, login=2)]),
            Step([eur(1.1, login=1), eur(1.133, login=2)], {("EURUSD", "gap", "raised")}),
        ],
    ),
    Scenario(
        "an older quote from a laggard account neither gaps nor makes the symbol stale",
        [
            Step([eur(1.1, login=1)]),
            Step([eur(1.133, login=2, lag=130.0)], flagged={}),
        ],
    ),
    Scenario(
        "spread 6x the rolling median after 10 samples raises once, clears under the hysteresis",
        SPREAD_CASE,
    ),
    Scenario(
        "the current spread is judged against the median of the previous ones only",
        [Step([eur(1.1, 1.0)]), Step([eur(1.1, 6.0)], {("EURUSD", "spread", "raised")})],
        config=MarketGuardConfig(spread_window=1, min_spread_samples=1),
    ),
    Scenario(
        "a wide spread before 10 samples is not judged against the median",
        [*steady(5), Step([eur(1.1, 6.0)], flagged={})],
    ),
    Scenario(
        "the absolute cap applies from the first quote and clears under 80 % of it",
        [
            Step([eur(1.1, 4.0)], {("EURUSD", "spread", "raised")}, {"EURUSD": "spread"}),
            Step([eur(1.1, 2.5)], flagged={"EURUSD": "spread"}),
            Step([eur(1.1, 2.0)], {("EURUSD", "spread", "cleared")}, {}),
        ],
        config=MarketGuardConfig(symbols={"EURUSD": SymbolGuard(max_spread_pips=3.0)}),
    ),
    Scenario(
        "spread limits are per symbol: XAUUSD's 25 pips are its normal",
        [Step([eur(1.1), xau(2350.0)]) for _ in range(12)],
    ),
    Scenario(
        "a quote older than 120 s raises stale_quote, a fresh one clears it",
        [
            Step([eur(1.1)]),
            Step([eur(1.1, lag=130.0)], {("EURUSD", "stale_quote", "raised")}, {"EURUSD": "stale_quote"}, secs=130),
            Step([eur(1.1, lag=140.0)], flagged={"EURUSD": "stale_quote"}),
            Step([eur(1.1, lag=1.0)], {("EURUSD", "stale_quote", "cleared")}, {}),
        ],
    ),
    Scenario(
        "a gap and a wide spread at once: both raised, both reasons flagged",
        [
            *steady(10),
            Step(
                [eur(1.133, 6.0)],
                {("EURUSD", "gap", "raised"), ("EURUSD", "spread", "raised")},
                {"EURUSD": "gap,spread"},
            ),
        ],
        positions=[{"login": 1, "ticket": 10, "symbol": "EURUSD"}],
        at_risk={(1, 10, "EURUSD", "gap,spread")},
    ),
    Scenario(
        "positions on a flagged symbol are at risk, others (other symbols, other broker names) not",
        [
            Step([eur(1.1), xau(2350.0)]),
            Step([eur(1.133), xau(2350.0)], {("EURUSD", "gap", "raised")}),
        ],
        positions=[
            {"login": 1, "ticket": 10, "symbol": "EURUSD"},
            {"login": 2, "ticket": 20, "symbol": "EURUSD"},
            {"login": 1, "ticket": 11, "symbol": "XAUUSD"},
            {"login": 3, "ticket": 30, "symbol": "EURUSD.m"},
        ],
        at_risk={(1, 10, "EURUSD", "gap"), (2, 20, "EURUSD", "gap")},
    ),
    Scenario(
        "a symbol without a quote this cycle keeps its state: still flagged, then judged again",
        [
            Step([eur(1.1), xau(2350.0)]),
            Step([eur(1.133), xau(2350.0)], {("EURUSD", "gap", "raised")}),
            Step([xau(2350.0)], flagged={"EURUSD": "gap"}, secs=300),
            Step([eur(1.133), xau(2350.0)], {("EURUSD", "gap", "cleared")}, {}),
        ],
        positions=[{"login": 1, "ticket": 10, "symbol": "EURUSD"}],
    ),
]


def _ticks(step: Step, at: datetime) -> pl.DataFrame:
    rows = []
    for q in step.quotes:
        half = q.spread_pips * PIPS[q.symbol] / 2
        when = at - timedelta(seconds=q.lag)
        rows.append(
            {
                "login": q.login,
                "fetched_at": at,
                "symbol": q.symbol,
                "bid": q.mid - half,
                "ask": q.mid + half,
                "time": when.replace(microsecond=0),
                "time_msc": when,
            }
        )
    return frame("ticks", rows)


def _cycles(scenario: Scenario) -> list[tuple[datetime, pl.DataFrame]]:
    at, cycles = NOW, []
    for step in scenario.steps:
        at += timedelta(seconds=step.secs)
        cycles.append((at, _ticks(step, at)))
    return cycles


def _run(
    scenario: Scenario, shuffle: random.Random | None = None
) -> list[tuple[MarketResult, set[Alert], dict[str, str]]]:
    symbols = scenario.symbols if scenario.symbols is not None else symbols_for([1, 2, 3])
    positions = frame("positions", scenario.positions)
    state, out = empty_state(), []
    for at, ticks in _cycles(scenario):
        frames = [state, ticks, symbols, positions]
        if shuffle is not None:
            frames = [f.sample(fraction=1.0, shuffle=True, seed=shuffle.randrange(2**32)) for f in frames]
        result = advance_market(*frames, scenario.config, at=at)
        state = result.state
        alerts = {(r["symbol"], r["guard"], r["event"]) for r in result.alerts.iter_rows(named=True)}
        out.append((result, alerts, dict(result.flagged.iter_rows())))
    return out


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.description for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    results = _run(scenario)
    for n, (step, (result, alerts, flagged)) in enumerate(zip(scenario.steps, results, strict=True), 1):
        where = f"{scenario.description} (cycle {n})"
        assert alerts == step.alerts, f"{where}: alerts {alerts}, expected {step.alerts}"
        assert len(result.alerts) == len(alerts), f"{where}: an alert written twice"
        if step.flagged is not None:
            assert flagged == step.flagged, f"{where}: flagged {flagged}, expected {step.flagged}"
        assert result.state.schema == STATE_SCHEMA, where
        assert result.alerts.schema == ALERT_SCHEMA, where
        assert result.at_risk.schema == AT_RISK_SCHEMA, where
        assert result.state["symbol"].is_unique().all(), f"{where}: one state row per symbol"
    if scenario.at_risk is not None:
        final = results[-1][0].at_risk
        got = {(r["login"], r["ticket"], r["symbol"], r["reasons"]) for r in final.iter_rows(named=True)}
        assert got == scenario.at_risk, f"{scenario.description}: at risk {got}, expected {scenario.at_risk}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.description for s in SCENARIOS])
def test_row_order_does_not_matter(scenario: Scenario) -> None:
    plain = _run(scenario)
    for seed in (1, 2):
        shuffled = _run(scenario, random.Random(seed))
        for n, ((a, _, _), (b, _, _)) in enumerate(zip(plain, shuffled, strict=True), 1):
            for name in ("state", "alerts", "flagged", "at_risk"):
                assert getattr(a, name).equals(getattr(b, name)), (
                    f"{scenario.description} (cycle {n}, seed {seed}): {name} depends on row order"
                )


def test_alert_rows_carry_the_episode() -> None:
    scenario = SCENARIOS[1]  # the 3 % EURUSD gap
    results = _run(scenario)
    raised = results[1][0].alerts.row(0, named=True)
    cleared = results[2][0].alerts.row(0, named=True)
    raised_at = NOW + timedelta(seconds=20)
    assert raised["alert_id"] == "EURUSD|gap|2026-11-20T12:00:20.000000Z"
    assert cleared["alert_id"] == raised["alert_id"], "raised and cleared rows of one episode share its id"
    assert raised["login"] is None, "a market alert belongs to no account"
    assert raised["value"] == pytest.approx(3.0)
    assert raised["threshold"] == 2.0
    assert (raised["since"], raised["at"]) == (raised_at, raised_at)
    assert (cleared["since"], cleared["at"]) == (raised_at, raised_at + timedelta(seconds=10))
    assert cleared["value"] == pytest.approx(0.0)
    assert "EURUSD" in raised["detail"] and "3.0 %" in raised["detail"]
    state = results[1][0].state.row(0, named=True)
    assert (state["gap_active"], state["gap_since"]) == (True, raised_at)
    assert results[2][0].state.row(0, named=True)["gap_since"] is None


def test_spread_alert_reports_the_limit_and_the_rearm_level() -> None:
    results = _run(Scenario("spread", SPREAD_CASE))
    raised = results[10][0].alerts.row(0, named=True)
    cleared = results[13][0].alerts.row(0, named=True)
    assert (raised["value"], raised["threshold"]) == (pytest.approx(6.0), pytest.approx(5.0))
    assert (cleared["value"], cleared["threshold"]) == (pytest.approx(3.9), pytest.approx(4.0))
    window = results[-1][0].state.row(0, named=True)["spreads"]
    assert window[-1] == pytest.approx(1.0) and len(window) == 15, "every new quote's spread, most recent last"


def test_spread_window_keeps_the_most_recent() -> None:
    config = MarketGuardConfig(spread_window=10)
    results = _run(Scenario("window", [*steady(8), *steady(5, spread_pips=2.0)], config=config))
    assert results[-1][0].state.row(0, named=True)["spreads"] == pytest.approx([1.0] * 5 + [2.0] * 5)


def test_symbol_without_quote_keeps_its_state_row() -> None:
    scenario = SCENARIOS[-1]
    results = _run(scenario)
    before = results[1][0].state.filter(pl.col("symbol") == "EURUSD")
    after = results[2][0].state.filter(pl.col("symbol") == "EURUSD")
    assert after.equals(before), "a symbol without a quote is neither judged nor touched"
    assert results[2][0].at_risk["ticket"].to_list() == [10], "its positions stay at risk"


def test_the_same_quote_again_is_not_judged_again() -> None:
    """A frozen quote (market closed, terminal not ticking) carries no new information: the gap
    it showed stays active and its spread is not counted twice."""
    gap = _run(Scenario("gap", [Step([eur(1.1)]), Step([eur(1.133)])]))
    state = gap[-1][0].state
    at = NOW + timedelta(seconds=30)
    again = _ticks(Step([eur(1.133, lag=10.0)]), at)
    result = advance_market(state, again, symbols_for([1]), frame("positions", []), MarketGuardConfig(), at=at)
    assert result.alerts.is_empty()
    row = result.state.row(0, named=True)
    assert row["gap_active"] and len(row["spreads"]) == 2


def test_applying_the_same_cycle_twice_changes_nothing() -> None:
    scenario = SCENARIOS[1]
    (at, ticks) = _cycles(scenario)[1]
    first = _run(Scenario("first", scenario.steps[:2]))[-1][0]
    again = advance_market(first.state, ticks, symbols_for([1]), frame("positions", []), scenario.config, at=at)
    assert again.alerts.is_empty()
    assert again.state.equals(first.state)


@pytest.mark.parametrize(
    ("path", "name", "expected"),
    [
        ("Forex\\Majors\\EURUSD", "EURUSD", "fx"),
        ("Metals\\XAUUSD", "XAUUSD", "metal"),
        ("Indices\\US500", "US500", "index"),
        ("Crypto\\BTCUSD", "BTCUSD", "crypto"),
        ("CFD\\Energies\\WTI", "WTI", "other"),
        (None, "EURUSD.m", "fx"),
        (None, "#GBPJPY", "fx"),
        (None, "XAUUSD", "metal"),
        (None, "XAGUSD.m", "metal"),
        (None, "US500", "index"),
        (None, "GER40", "index"),
        (None, "BTCUSD", "crypto"),
        (None, "WTI", "other"),
    ],
)
def test_asset_class(path: str | None, name: str, expected: str) -> None:
    df = pl.DataFrame({"path": [path], "name": [name]}, schema={"path": pl.String, "name": pl.String})
    got = df.select(asset_class(pl.col("path"), pl.col("name"))).item()
    assert got == expected, f"{path!r} / {name!r}: {got}, expected {expected}"


@pytest.mark.parametrize(
    "fields",
    [{"gap_pct_by_class": {"forex": 2.0}}, {"gap_pct_by_class": {"fx": 0.0}}, {"min_spread_samples": 61}],
)
def test_config_rejects(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MarketGuardConfig.model_validate(fields)


def test_naive_cycle_time_is_refused() -> None:
    with pytest.raises(ValueError):
        advance_market(
            empty_state(),
            frame("ticks", []),
            frame("symbols", []),
            frame("positions", []),
            MarketGuardConfig(),
            at=NOW.replace(tzinfo=None),
        )


def test_simulator_gap_and_spread_blowout() -> None:
    """The real simulator through the real fetch: frozen prices (quiet mode), then a 5 % gap on
    EURUSD and a 10x spread blow-out on GBPUSD. Account 5003 quotes the same market under `.m`
    names, a separate broker symbol with its own alert."""
    sim = SimFleet.quiet(clock=SimClock(DEFAULT_START))
    config = MarketGuardConfig()
    state = empty_state()

    def cycle() -> tuple[MarketResult, set[Alert], pl.DataFrame]:
        nonlocal state
        sim.clock.advance(10)
        snap = run_cycle(sim).snapshot
        result = advance_market(state, snap.ticks, snap.symbols, snap.positions, config, at=sim.now())
        state = result.state
        alerts = {(r["symbol"], r["guard"], r["event"]) for r in result.alerts.iter_rows(named=True)}
        assert len(alerts) == len(result.alerts), "an alert written twice"
        return result, alerts, snap.positions

    for n in range(11):
        result, alerts, _ = cycle()
        assert not alerts, f"normal cycle {n}: {alerts}"
        assert result.flagged.is_empty(), f"normal cycle {n}"
    assert {"EURUSD", "GBPUSD"} <= set(state["symbol"]), "the fetch quotes the positions' symbols"

    sim.gap("EURUSD", 5)
    result, alerts, positions = cycle()
    assert alerts == {("EURUSD", "gap", "raised"), ("EURUSD.m", "gap", "raised")}
    on_eurusd = positions.filter(pl.col("symbol").is_in(["EURUSD", "EURUSD.m"])).sort("login", "ticket")
    assert not on_eurusd.is_empty(), "positions without SL/TP survive the gap"
    assert result.at_risk.select("login", "ticket", "symbol").equals(on_eurusd.select("login", "ticket", "symbol"))
    assert set(result.at_risk["reasons"]) == {"gap"}

    _, alerts, _ = cycle()
    assert alerts == {("EURUSD", "gap", "cleared"), ("EURUSD.m", "gap", "cleared")}, "no gap on the next quote"

    sim.spread_blowout("GBPUSD", 10, seconds=25)
    result, alerts, _ = cycle()
    assert alerts == {("GBPUSD", "spread", "raised"), ("GBPUSD.m", "spread", "raised")}
    gbp = result.alerts.filter(pl.col("symbol") == "GBPUSD").row(0, named=True)
    assert (gbp["value"], gbp["threshold"]) == (pytest.approx(14.0), pytest.approx(7.0)), "1.4-pip median x 5"
    _, alerts, _ = cycle()
    assert not alerts, "still blown out: no second alert"
    result, alerts, _ = cycle()
    assert alerts == {("GBPUSD", "spread", "cleared"), ("GBPUSD.m", "spread", "cleared")}
    assert result.flagged.is_empty()
