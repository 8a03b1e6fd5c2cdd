"""Positions and bot trades as change histories: scenario rows over two cycles (each with a
description), plus the invariants (a replayed cycle changes nothing; a failed fetch closes nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from builders import NOW, frame
from hypothesis import given, settings
from hypothesis import strategies as st

from mt5recon import history
from mt5recon.store.stored_state import POSITIONS_SCHEMA, TRADES_SCHEMA

LATER = NOW + timedelta(seconds=10)
NO_MATCHES = pl.DataFrame(
    schema={
        "login": pl.Int64,
        "ticket": pl.Int64,
        "trade_id": pl.String,
        "stage": pl.String,
        "price_diff_pips": pl.Float64,
        "volume_ratio": pl.Float64,
    }
)
NO_QUARANTINE = pl.DataFrame(schema={"login": pl.Int64, "identifier": pl.Int64})


def logins(*values: int) -> pl.DataFrame:
    return pl.DataFrame({"login": list(values)}, schema={"login": pl.Int64})


def apply(state: pl.DataFrame, change: history.ChangeSet, key: str) -> pl.DataFrame:
    """What the current-state table holds after the commit."""
    kept = state.join(change.upserts.select(key), on=key, how="anti").join(change.deletes, on=key, how="anti")
    return pl.concat([kept, change.upserts], how="vertical").sort(key)


def positions_cycle(
    state: pl.DataFrame, rows: list[dict[str, Any]], at: Any, **options: Any
) -> tuple[pl.DataFrame, history.ChangeSet]:
    change = history.track_positions(
        state,
        frame("positions", [{"login": 1, "fetched_at": at, **r} for r in rows]),
        options.get("matches", NO_MATCHES),
        reconciled=options.get("reconciled", logins(1)),
        quarantined=options.get("quarantined", NO_QUARANTINE),
        at=at,
    )
    return apply(state, change, "position_key"), change


@dataclass(frozen=True)
class Case:
    description: str
    first: list[dict[str, Any]]
    second: list[dict[str, Any]]
    changes: list[tuple[str, str | None]]  # (change, changed_fields) of the second cycle
    options: dict[str, Any] = field(default_factory=dict)
    open_after: int = 1


POSITION = {"ticket": 10, "identifier": 10, "volume": 0.1, "sl": 1.09, "tp": 1.11}
CASES = [
    Case("nothing changed: no history row", [POSITION], [POSITION], []),
    Case("SL moved", [POSITION], [{**POSITION, "sl": 1.095}], [("changed", "sl")]),
    Case("partly closed", [POSITION], [{**POSITION, "volume": 0.05}], [("changed", "volume")]),
    Case(
        "the broker re-ticketed the position (identifier stays)",
        [POSITION],
        [{**POSITION, "ticket": 77}],
        [("changed", "ticket")],
    ),
    Case("closed: a row with the last known values", [POSITION], [], [("closed", None)], open_after=0),
    Case(
        "a failed fetch closes nothing",
        [POSITION],
        [],
        [],
        options={"reconciled": logins()},
    ),
    Case(
        "a row quarantined this cycle is not taken for closed",
        [POSITION],
        [],
        [],
        options={"quarantined": pl.DataFrame({"login": [1], "identifier": [10]})},
    ),
    Case(
        "the bot trade matched to it is recorded when it changes",
        [POSITION],
        [POSITION],
        [("changed", "trade_id,stage")],
        options={
            "matches": pl.DataFrame(
                {
                    "login": [1],
                    "ticket": [10],
                    "trade_id": ["t1"],
                    "stage": ["tag"],
                    "price_diff_pips": [0.4],
                    "volume_ratio": [1.0],
                },
                schema=NO_MATCHES.schema,
            )
        },
    ),
    Case(
        "a new position next to an unchanged one",
        [POSITION],
        [POSITION, {**POSITION, "ticket": 11, "identifier": 11}],
        [("opened", None)],
        open_after=2,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.description)
def test_position_history(case: Case) -> None:
    state, first = positions_cycle(pl.DataFrame(schema=POSITIONS_SCHEMA), case.first, NOW)
    assert first.changes["change"].to_list() == ["opened"] * len(case.first), case.description
    state, second = positions_cycle(state, case.second, LATER, **case.options)
    got = list(second.changes.select("change", "changed_fields").iter_rows())
    assert got == case.changes, f"{case.description}: {got}"
    assert state.height == case.open_after, f"{case.description}: {state.height} open"


def test_a_closed_row_keeps_its_last_values_and_first_seen_time_survives_changes() -> None:
    state, _ = positions_cycle(pl.DataFrame(schema=POSITIONS_SCHEMA), [POSITION], NOW)
    state, _ = positions_cycle(state, [{**POSITION, "sl": 1.095}], LATER)
    assert state["first_seen_at"].to_list() == [NOW]
    assert state["changed_at"].to_list() == [LATER]
    _, closed = positions_cycle(state, [], LATER + timedelta(seconds=10))
    row = closed.changes.row(0, named=True)
    assert (row["change"], row["login"], row["identifier"], row["sl"]) == ("closed", 1, 10, 1.095)
    assert closed.deletes["position_key"].to_list() == ["1:10"]


_rows = st.lists(
    st.fixed_dictionaries(
        {"identifier": st.integers(1, 6), "volume": st.sampled_from([0.1, 0.2]), "sl": st.sampled_from([0.0, 1.09])}
    ),
    max_size=6,
    unique_by=lambda r: r["identifier"],
)


@settings(max_examples=60, deadline=None)
@given(_rows, _rows)
def test_replaying_a_cycle_changes_nothing_and_state_equals_what_was_seen(
    first: list[dict[str, Any]], second: list[dict[str, Any]]
) -> None:
    rows = [[{**r, "ticket": r["identifier"]} for r in cycle] for cycle in (first, second)]
    state, _ = positions_cycle(pl.DataFrame(schema=POSITIONS_SCHEMA), rows[0], NOW)
    state, _ = positions_cycle(state, rows[1], LATER)
    _, again = positions_cycle(state, rows[1], LATER + timedelta(seconds=10))
    assert again.changes.height == 0 and again.deletes.height == 0, "the same positions again changed something"
    assert sorted(state["identifier"].to_list()) == sorted(r["identifier"] for r in rows[1])


def trades_cycle(state: pl.DataFrame, rows: list[dict[str, Any]], at: Any, quarantine: pl.DataFrame | None = None):  # type: ignore[no-untyped-def]
    change = history.track_trades(
        state,
        frame("expected_trades", [{"login": 1, **r} for r in rows]),
        quarantine=quarantine if quarantine is not None else frame_quarantine([]),
        at=at,
    )
    return apply(state, change, "trade_key"), change


def frame_quarantine(raws: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"frame": ["expected_trades"] * len(raws), "raw": raws}, schema={"frame": pl.String, "raw": pl.String}
    )


def test_bot_trades_appear_change_and_are_removed() -> None:
    state, first = trades_cycle(pl.DataFrame(schema=TRADES_SCHEMA), [{"trade_id": "t1"}, {"trade_id": "t2"}], NOW)
    assert first.changes["change"].to_list() == ["appeared", "appeared"]
    state, second = trades_cycle(state, [{"trade_id": "t1", "closed_at": NOW}], LATER)
    assert list(second.changes.select("trade_key", "change", "changed_fields").iter_rows()) == [
        ("1:t1", "changed", "closed_at"),
        ("1:t2", "removed", None),
    ]
    quarantined = frame_quarantine(['{"login": "1", "trade_id": "t1", "volume": "abc"}'])
    _, third = trades_cycle(state, [], LATER + timedelta(seconds=10), quarantined)
    assert third.changes.height == 0, "a bot trade whose row went bad this cycle is not removed"
