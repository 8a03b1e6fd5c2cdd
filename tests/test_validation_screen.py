"""The one-query screen stands in for Pandera only on frames Pandera passes, and the split it
gives is exactly Pandera's."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any
from unittest import mock

import polars as pl
import pytest
from builders import NOW, frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandera.errors import SchemaError, SchemaErrors
from sim_cycle import run_cycle

from mt5recon import frames
from mt5recon.terminal.simulator import DEFAULT_START, SimClock, SimFleet
from mt5recon.validation import validate_frame
from mt5recon.validation_screen import is_clean
from schemas import MODELS

NAMES = sorted(MODELS)


def _odd_values(dtype: pl.DataType) -> list[Any]:
    """Values at and beyond the edges the models check, per column type."""
    if dtype.is_integer():
        return [None, -1, 0, 1, 2, 7, 10**12 if dtype == pl.Int64 else 2**31 - 1]
    if dtype.is_float():
        return [None, math.nan, math.inf, -1.0, 0.0, 1e-12, 1.5, 150.0]
    if isinstance(dtype, pl.Datetime):
        return [None, NOW, NOW - timedelta(days=400), NOW + timedelta(hours=1)]
    if dtype == pl.Boolean:
        return [None, True, False]
    return [None, "", "buy", "sell", "EURUSD", "x"]


@pytest.fixture(scope="module")
def sim_frames() -> dict[str, pl.DataFrame]:
    """Every frame of one cycle on the quiet simulated fleet, as validation let it through."""
    run = run_cycle(SimFleet.quiet(clock=SimClock(DEFAULT_START), bot_active=True))
    return {name: data.head(6) for name, data in run.validated.frames.items()}


def _rows(name: str, base_frame: pl.DataFrame) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Rows of frame `name`: real rows of the simulator with any column swapped for an odd value,
    logins and tickets drawn from few values (a duplicate is a check too)."""
    base = base_frame.to_dicts() or [{}]
    schema = frames.ALL_FRAMES[name]
    keys = {"login": st.integers(1, 2), "ticket": st.integers(1, 3), "trade_id": st.sampled_from(["a", "b", "c"])}
    odd = {c: st.sampled_from(_odd_values(dtype)) for c, dtype in schema.items() if c not in keys}
    changes = st.fixed_dictionaries({}, optional={**keys, **odd})
    row = st.tuples(st.sampled_from(base), changes).map(lambda pair: {**pair[0], **pair[1]})
    return st.lists(row, max_size=8)


def _pandera_passes(name: str, data: pl.DataFrame) -> bool:
    try:
        MODELS[name].validate(data, lazy=True)
    except (SchemaError, SchemaErrors):
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_a_clean_frame_is_proven_clean_in_one_query(name: str, sim_frames: dict[str, pl.DataFrame]) -> None:
    clean = sim_frames[name]
    assert _pandera_passes(name, clean), f"{name}: the simulator's validated rows should be valid"
    assert is_clean(name, clean), f"{name}: a frame Pandera passes should pass the screen"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_screen_never_passes_what_pandera_fails_and_splits_rows_as_pandera_alone(
    name: str, sim_frames: dict[str, pl.DataFrame], data: st.DataObject
) -> None:
    rows = data.draw(_rows(name, sim_frames[name]))
    candidate = frame(name, rows)
    if is_clean(name, candidate):
        assert _pandera_passes(name, candidate), f"{name}: screen passed rows Pandera fails: {rows}"
    screened = validate_frame(name, candidate, now=NOW)
    with mock.patch("mt5recon.validation.is_clean", return_value=False):
        by_pandera = validate_frame(name, candidate, now=NOW)
    assert screened.valid.equals(by_pandera.valid), f"{name}: {rows}"
    assert screened.quarantined.equals(by_pandera.quarantined), f"{name}: {rows}"
    assert screened.valid.height + screened.quarantined.height == candidate.height, name
