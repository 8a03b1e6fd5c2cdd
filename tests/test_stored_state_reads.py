"""The flow reads the stored state in two steps (active breaks while the terminals answer, then
the cycle's returning breaks); together they give exactly what one read with every id gives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mt5recon.store.lake import Store, StoreConfig, open_reader
from mt5recon.store.samples import sample_frame
from mt5recon.store.stored_state import Scope, read_stored_state, unseen_break_ids
from tasks.io import load_returning_breaks, load_state

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# break_id, login, status
BREAKS = [
    ("b-open", 1, "open"),
    ("b-pending", 1, "pending"),
    ("b-resolved", 1, "resolved"),
    ("b-dismissed", 1, "dismissed"),
    ("b-other-login", 2, "open"),
    ("b-other-resolved", 2, "resolved"),
]


@pytest.fixture()
def config(tmp_path: Path, extension_dir: Path) -> StoreConfig:
    """A lake holding the breaks above (every other column a sample value)."""
    store_config = StoreConfig.under(tmp_path / "home", extension_dir=str(extension_dir))
    rows = sample_frame("breaks", len(BREAKS), "c-1").with_columns(
        pl.Series("break_id", [b[0] for b in BREAKS]),
        pl.Series("login", [b[1] for b in BREAKS], dtype=pl.Int64),
        pl.Series("status", [b[2] for b in BREAKS]),
    )
    with Store.open(store_config) as store:
        store.commit_cycle("c-1", {"breaks": rows})
    return store_config


@pytest.mark.parametrize(
    ("description", "cycle_ids", "read_later"),
    [
        ("only active breaks seen again: nothing more to read", ["b-open"], []),
        ("a resolved break comes back", ["b-open", "b-resolved"], ["b-resolved"]),
        ("a new break and a dismissed one", ["b-new", "b-dismissed"], ["b-new", "b-dismissed"]),
        ("another login's resolved break id (a shard's neighbour)", ["b-other-resolved"], ["b-other-resolved"]),
    ],
)
def test_two_step_read_equals_one_read(
    description: str, cycle_ids: list[str], read_later: list[str], config: StoreConfig
) -> None:
    first = load_state.fn(config, [1], Scope())
    assert sorted(first.breaks["break_id"]) == ["b-open", "b-pending"], description
    unseen = unseen_break_ids(first, cycle_ids)
    assert unseen == read_later, description
    both = load_returning_breaks.fn(config, first, unseen)
    con = open_reader(config)
    try:
        at_once = read_stored_state(con, [1], cycle_ids, Scope())
    finally:
        con.close()
    assert_frame_equal(both.breaks.sort("break_id"), at_once.breaks.sort("break_id"))
    assert_frame_equal(both.positions, at_once.positions)


def test_a_store_not_created_yet_reads_as_empty(tmp_path: Path, extension_dir: Path) -> None:
    config = StoreConfig.under(tmp_path / "nothing", extension_dir=str(extension_dir))
    first = load_state.fn(config, [1], Scope())
    assert first.breaks.height == 0
    assert load_returning_breaks.fn(config, first, ["b-new"]).breaks.height == 0
