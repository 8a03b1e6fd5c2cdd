"""The break lifecycle over sequences of cycles: scenario rows (each with a description) and
hypothesis properties (idempotent replay, order independence, only legal transitions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from builders import NOW
from hypothesis import given, settings
from hypothesis import strategies as st

from mt5recon import frames
from mt5recon.recon import divergences as dv
from mt5recon.recon import lifecycle
from mt5recon.recon.entry_deals import ENTRY_DEAL_STAGE
from mt5recon.tolerances import BreakPolicy

LOGIN = 1


def divergence(kind: str, identity: str, **values: Any) -> dict[str, Any]:
    return {"break_id": f"{LOGIN}:{kind}:{identity}", "login": LOGIN, "kind": kind, **values}


def found_frame(rows: list[dict[str, Any]], at: Any) -> pl.DataFrame:
    full = [{"detected_at": at, **row} for row in rows]
    return pl.DataFrame(full, schema=dv.SCHEMA, strict=False) if full else dv.empty()


def observed_frame(reconciled: bool = True, deals_ok: bool = True, logins: tuple[int, ...] = (LOGIN,)) -> pl.DataFrame:
    return pl.DataFrame(
        {"login": list(logins), "reconciled": [reconciled] * len(logins), "deals_ok": [deals_ok] * len(logins)},
        schema={"login": pl.Int64, "reconciled": pl.Boolean, "deals_ok": pl.Boolean},
    )


@dataclass(frozen=True)
class Cycle:
    found: list[dict[str, Any]] = field(default_factory=list)
    reconciled: bool = True
    deals_ok: bool = True


def run(cycles: list[Cycle], policy: BreakPolicy | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Advance an empty state through `cycles` 10 s apart; returns (final state, all events)."""
    state = pl.DataFrame(schema=lifecycle.STATE_SCHEMA)
    events = []
    for number, cycle in enumerate(cycles):
        at = NOW + timedelta(seconds=10 * number)
        update = lifecycle.advance(
            state,
            found_frame(cycle.found, at),
            observed=observed_frame(cycle.reconciled, cycle.deals_ok),
            at=at,
            policy=policy,
        )
        state = lifecycle.merged(state, update)
        events.append(update.events)
    return state, pl.concat(events) if events else pl.DataFrame(schema=lifecycle.EVENT_SCHEMA)


SLIP = divergence(dv.SLIPPAGE, "t1", cause="adverse", size_pips=8.0, expected=1.1, actual=1.1008)
UNKNOWN = divergence(dv.UNKNOWN_POSITION, "pos11", cause="manual", actual=0.1)
MISSING = divergence(dv.MISSING_POSITION, "t2", cause="closed_by_sl", expected=0.1)
MISSING_NO_DEALS = {**MISSING, "cause": "unknown_deals_unavailable"}
NET_SLIP = divergence(dv.SLIPPAGE, "n1", cause="adverse", size_pips=7.0, stage=ENTRY_DEAL_STAGE)
SNAPSHOT = divergence(dv.SNAPSHOT_FAILED, "snapshot", cause="positions_get")
FAILED = Cycle(reconciled=False)


@dataclass(frozen=True)
class Scenario:
    description: str
    cycles: list[Cycle]
    events: dict[str, list[str]]  # break_id -> its events in order
    status: dict[str, str]
    policy: BreakPolicy = field(default_factory=BreakPolicy)
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)  # break_id -> expected state values


SCENARIOS = [
    Scenario(
        "one hour of the same slippage is one break and one event, not 360 rows",
        [Cycle([SLIP])] * 360,
        {SLIP["break_id"]: ["opened"]},
        {SLIP["break_id"]: "open"},
        columns={SLIP["break_id"]: {"occurrences": 360, "age_secs": 3590.0, "episodes": 1}},
    ),
    Scenario(
        "an unknown position seen once is observed, then dismissed: never an open break",
        [Cycle([UNKNOWN]), Cycle()],
        {UNKNOWN["break_id"]: ["observed", "dismissed"]},
        {UNKNOWN["break_id"]: "dismissed"},
    ),
    Scenario(
        "an unknown position seen on two consecutive snapshots opens",
        [Cycle([UNKNOWN]), Cycle([UNKNOWN])],
        {UNKNOWN["break_id"]: ["observed", "opened"]},
        {UNKNOWN["break_id"]: "open"},
    ),
    Scenario(
        "a failed snapshot between two sightings neither counts nor resets the confirmation",
        [Cycle([UNKNOWN]), FAILED, Cycle([UNKNOWN])],
        {UNKNOWN["break_id"]: ["observed", "opened"]},
        {UNKNOWN["break_id"]: "open"},
        columns={UNKNOWN["break_id"]: {"observations": 2}},
    ),
    Scenario(
        "three observations when the policy asks for three",
        [Cycle([MISSING]), Cycle([MISSING]), Cycle([MISSING])],
        {MISSING["break_id"]: ["observed", "opened"]},
        {MISSING["break_id"]: "open"},
        policy=BreakPolicy(confirm_observations=3),
        columns={MISSING["break_id"]: {"observations": 3}},
    ),
    Scenario(
        "an open missing break survives failed snapshots: a failure is not a flat account",
        [Cycle([MISSING]), Cycle([MISSING]), FAILED, FAILED, FAILED],
        {MISSING["break_id"]: ["observed", "opened"]},
        {MISSING["break_id"]: "open"},
    ),
    Scenario(
        "a break that clears is resolved with its age, and reopens under the same id",
        [Cycle([SLIP]), Cycle([SLIP]), Cycle(), Cycle([SLIP])],
        {SLIP["break_id"]: ["opened", "resolved", "reopened"]},
        {SLIP["break_id"]: "open"},
        columns={SLIP["break_id"]: {"episodes": 2, "occurrences": 3}},
    ),
    Scenario(
        "a cycle without deals keeps the known closing cause: no flip-flopping updates",
        [Cycle([MISSING]), Cycle([MISSING]), Cycle([MISSING_NO_DEALS], deals_ok=False), Cycle([MISSING])],
        {MISSING["break_id"]: ["observed", "opened"]},
        {MISSING["break_id"]: "open"},
        columns={MISSING["break_id"]: {"cause": "closed_by_sl"}},
    ),
    Scenario(
        "a changed value is an update event; the worst size is kept",
        [Cycle([SLIP]), Cycle([{**SLIP, "actual": 1.1012, "size_pips": 12.0}]), Cycle([{**SLIP, "size_pips": 9.0}])],
        {SLIP["break_id"]: ["opened", "updated", "updated"]},
        {SLIP["break_id"]: "open"},
        columns={SLIP["break_id"]: {"worst_size_pips": 12.0, "size_pips": 9.0}},
    ),
    Scenario(
        "slippage read from deals is not resolved by a cycle whose deals call failed",
        [Cycle([NET_SLIP]), Cycle(deals_ok=False), Cycle([NET_SLIP])],
        {NET_SLIP["break_id"]: ["opened"]},
        {NET_SLIP["break_id"]: "open"},
    ),
    Scenario(
        "a failed snapshot is itself a break, opened at once and resolved when the terminal is back",
        [Cycle([SNAPSHOT], reconciled=False), Cycle([SNAPSHOT], reconciled=False), Cycle()],
        {SNAPSHOT["break_id"]: ["opened", "resolved"]},
        {SNAPSHOT["break_id"]: "resolved"},
        columns={SNAPSHOT["break_id"]: {"age_secs": 20.0}},
    ),
]


@pytest.mark.parametrize("case", SCENARIOS, ids=lambda s: s.description)
def test_lifecycle_scenario(case: Scenario) -> None:
    state, events = run(case.cycles, case.policy)
    for break_id, expected in case.events.items():
        got = events.filter(pl.col("break_id") == break_id)["event"].to_list()
        assert got == expected, f"{case.description}: events of {break_id}: {got}"
    assert set(events["break_id"]) <= set(case.events), f"{case.description}: unexpected events {events}"
    statuses = dict(state.select("break_id", "status").iter_rows())
    assert statuses == case.status, f"{case.description}: statuses {statuses}"
    for break_id, values in case.columns.items():
        row = state.filter(pl.col("break_id") == break_id).row(0, named=True)
        for column, value in values.items():
            assert row[column] == value, f"{case.description}: {column} = {row[column]}, expected {value}"


def test_event_ids_are_unique_and_deterministic() -> None:
    cycles = [Cycle([SLIP, UNKNOWN]), Cycle([UNKNOWN]), Cycle([SLIP])]
    _, first = run(cycles)
    _, second = run(cycles)
    assert first["event_id"].n_unique() == first.height
    assert first.equals(second)


# ---- properties --------------------------------------------------------------------------

_POOL = [SLIP, UNKNOWN, MISSING, NET_SLIP, SNAPSHOT, divergence(dv.SL_MISMATCH, "t3", cause="drift", size_pips=15.0)]
_cycles = st.lists(
    st.tuples(st.sets(st.integers(0, len(_POOL) - 1)), st.booleans(), st.booleans()), min_size=1, max_size=12
)
_LEGAL = {
    None: {"observed", "opened"},
    "pending": {"opened", "dismissed"},
    "open": {"updated", "resolved"},
    "resolved": {"reopened", "observed"},
    "dismissed": {"observed", "opened"},
}


def _as_cycles(spec: list[tuple[set[int], bool, bool]]) -> list[Cycle]:
    return [Cycle([_POOL[i] for i in sorted(chosen)], reconciled, deals) for chosen, reconciled, deals in spec]


@settings(max_examples=60, deadline=None)
@given(_cycles)
def test_applying_the_same_cycle_twice_changes_nothing(spec: list[tuple[set[int], bool, bool]]) -> None:
    cycles = _as_cycles(spec)
    state, _ = run(cycles)
    last = cycles[-1]
    at = NOW + timedelta(seconds=10 * (len(cycles) - 1))
    again = lifecycle.advance(
        state, found_frame(last.found, at), observed=observed_frame(last.reconciled, last.deals_ok), at=at
    )
    assert again.state.height == 0 and again.events.height == 0, "a replayed cycle changed the breaks"


@settings(max_examples=60, deadline=None)
@given(_cycles, st.randoms(use_true_random=False))
def test_results_do_not_depend_on_row_order(spec: list[tuple[set[int], bool, bool]], rng: Any) -> None:
    cycles = _as_cycles(spec)
    shuffled = [Cycle(rng.sample(c.found, len(c.found)), c.reconciled, c.deals_ok) for c in cycles]
    assert run(cycles)[0].equals(run(shuffled)[0])
    assert run(cycles)[1].equals(run(shuffled)[1])


@settings(max_examples=60, deadline=None)
@given(_cycles)
def test_only_legal_transitions_and_status_follows_events(spec: list[tuple[set[int], bool, bool]]) -> None:
    state, events = run(_as_cycles(spec))
    for break_id, group in events.group_by("break_id", maintain_order=True):
        status: str | None = None
        for row in group.iter_rows(named=True):
            assert row["event"] in _LEGAL[status], f"{break_id}: {row['event']} after {status}"
            assert row["previous_status"] == status
            status = row["status"]
        stored = state.filter(pl.col("break_id") == break_id[0])["status"].item()
        assert stored == status, f"{break_id}: stored {stored}, last event says {status}"


def test_state_columns_are_the_store_table_columns() -> None:
    from mt5recon.store.tables import BREAK_EVENTS, BREAKS

    assert list(lifecycle.STATE_SCHEMA) == [c for c in BREAKS if c != "cycle_id"]
    assert list(lifecycle.EVENT_SCHEMA) == [c for c in BREAK_EVENTS if c != "cycle_id"]
    assert lifecycle.STATE_SCHEMA["opened_at"] == frames.UTC_US
