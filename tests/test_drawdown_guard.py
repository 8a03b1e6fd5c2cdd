"""The drawdown guard as scenario rows: each step is one cycle's equity (and money moved in or
out), the expected alerts of that cycle say which levels were crossed or cleared."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl
import pytest
from builders import NOW, frame
from hypothesis import given, settings
from hypothesis import strategies as st

from mt5recon.guards.drawdown import DrawdownGuardConfig, DrawdownLevels, advance_drawdown, empty_state
from mt5recon.terminal import constants as c

LOGIN = 7


@dataclass(frozen=True)
class Step:
    equity: float
    flows: list[float] = field(default_factory=list)  # deposits (+) / withdrawals (-) since the last step
    fresh: bool = True  # a failed or stale snapshot must not move anything
    after_secs: float = 10
    alerts: list[str] = field(default_factory=list)  # "guard:event" raised/cleared this step


@dataclass(frozen=True)
class Case:
    description: str
    steps: list[Step]
    levels: DrawdownLevels = field(default_factory=DrawdownLevels)


CASES = [
    Case(
        "a fall through warning then critical, then a recovery: one alert per level per episode",
        [
            Step(10_000),
            Step(8_900, alerts=["drawdown_warning:raised"]),
            Step(8_800),
            Step(7_900, alerts=["drawdown_critical:raised"]),
            Step(7_950),
            Step(8_500, alerts=["drawdown_critical:cleared"]),
            Step(9_950, alerts=["drawdown_warning:cleared"]),
            Step(8_900, alerts=["drawdown_warning:raised"]),
        ],
        DrawdownLevels(daily_loss_pct=90),
    ),
    Case(
        "a withdrawal is not a drawdown",
        [Step(10_000), Step(6_000, flows=[-4_000]), Step(6_000)],
    ),
    Case(
        "a deposit is not a new high: the next fall is measured from the moved peak",
        [Step(10_000), Step(15_000, flows=[5_000]), Step(13_400, alerts=["drawdown_warning:raised"])],
        DrawdownLevels(daily_loss_pct=90),
    ),
    Case(
        "credit counts like a deposit",
        [Step(10_000), Step(11_000, flows=[1_000]), Step(11_000)],
    ),
    Case(
        "a failed snapshot during a breach changes nothing",
        [
            Step(10_000),
            Step(7_500, alerts=["drawdown_warning:raised", "drawdown_critical:raised", "daily_loss:raised"]),
            Step(10_000, fresh=False),
            Step(7_500),
        ],
    ),
    Case(
        "the day's loss limit, re-armed by the next trading day",
        [
            Step(10_000),
            Step(9_400, alerts=["daily_loss:raised"]),
            Step(9_400, after_secs=86_400, alerts=["daily_loss:cleared"]),
            Step(8_900, alerts=["daily_loss:raised"]),
        ],
        DrawdownLevels(warning_pct=50, critical_pct=60),
    ),
]


def _deals(flows: list[float], at_ms: int) -> pl.DataFrame:
    rows = [
        {"login": LOGIN, "ticket": at_ms + i, "time_msc": at_ms + i, "type": c.DEAL_TYPE_BALANCE, "profit": amount}
        for i, amount in enumerate(flows)
    ]
    return frame("deals", rows)


@pytest.mark.parametrize("case", CASES, ids=[case.description for case in CASES])
def test_drawdown_scenario(case: Case) -> None:
    config = DrawdownGuardConfig(default=case.levels)
    state, at = empty_state(), NOW
    for number, step in enumerate(case.steps):
        at += timedelta(seconds=step.after_secs)
        accounts = frame("accounts", [{"login": LOGIN, "equity": step.equity, "fetched_at": at}])
        fresh = pl.DataFrame({"login": [LOGIN] if step.fresh else []}, schema={"login": pl.Int64})
        deals = _deals(step.flows, int(at.timestamp() * 1000) - 5_000)
        result = advance_drawdown(state, accounts, deals, fresh, config, at=at)
        got = [f"{g}:{e}" for g, e in result.alerts.select("guard", "event").iter_rows()]
        assert sorted(got) == sorted(step.alerts), f"{case.description}: step {number}: {got}"
        state = result.state
    assert state.height == 1


def test_alert_numbers_and_episode_ids() -> None:
    config = DrawdownGuardConfig(accounts={LOGIN: DrawdownLevels(warning_pct=5, critical_pct=50, daily_loss_pct=50)})
    state = empty_state()
    for equity, secs in ((1_000.0, 0), (940.0, 10)):
        at = NOW + timedelta(seconds=secs)
        accounts = frame("accounts", [{"login": LOGIN, "equity": equity, "fetched_at": at}])
        fresh = pl.DataFrame({"login": [LOGIN]}, schema={"login": pl.Int64})
        result = advance_drawdown(state, accounts, frame("deals", []), fresh, config, at=at)
        state = result.state
    alert = result.alerts.row(0, named=True)
    assert (alert["guard"], alert["peak_equity"], alert["equity"], alert["threshold"]) == (
        "drawdown_warning",
        1_000.0,
        940.0,
        5.0,
    )
    assert alert["value"] == pytest.approx(6.0)
    assert alert["alert_id"].startswith(f"{LOGIN}|drawdown_warning|") and alert["since"] == NOW + timedelta(seconds=10)
    assert "6.0% below the peak" in alert["detail"]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(100, 20_000),  # equity
            st.floats(-5_000, 5_000),  # money in (+) or out (-) since the last step
            st.booleans(),  # fresh snapshot
            st.sampled_from([10, 3_600, 86_400]),  # seconds since the last step
        ),
        min_size=1,
        max_size=25,
    )
)
def test_invariants_alerts_alternate_and_the_peak_holds(steps: list[tuple[float, float, bool, int]]) -> None:
    """Whatever the path: each level alternates raised/cleared starting with raised, the peak is
    never below the equity, drawdown stays within 0-100 %, a failed snapshot moves nothing."""
    config = DrawdownGuardConfig()
    state, at, events = empty_state(), NOW, []
    for equity, flow, fresh_step, secs in steps:
        at += timedelta(seconds=secs)
        accounts = frame("accounts", [{"login": LOGIN, "equity": equity, "fetched_at": at}])
        fresh = pl.DataFrame({"login": [LOGIN] if fresh_step else []}, schema={"login": pl.Int64})
        deals = _deals([flow] if flow else [], int(at.timestamp() * 1000) - 5_000)
        result = advance_drawdown(state, accounts, deals, fresh, config, at=at)
        if not fresh_step:
            assert result.state.equals(state) and result.alerts.height == 0
        events += result.alerts.select("guard", "event").rows()
        state = result.state
        for row in state.iter_rows(named=True):
            assert row["peak_equity"] >= row["equity"] - 1e-6
            assert 0.0 <= row["drawdown_pct"] <= 100.0
    for guard in ("drawdown_warning", "drawdown_critical", "daily_loss"):
        sequence = [event for g, event in events if g == guard]
        assert sequence == ["raised", "cleared"] * (len(sequence) // 2) + ["raised"] * (len(sequence) % 2), sequence
