"""Malformed rows are quarantined with their reason and raw values; nothing is dropped silently."""

from __future__ import annotations

import json
import math
from typing import Any

import polars as pl
import pytest
from builders import NOW, frame, symbols_for
from hypothesis import given, settings
from hypothesis import strategies as st

from mt5recon import frames
from mt5recon.validation import quarantine_unknown_symbols, validate_frame

CASES: list[tuple[str, str, dict[str, Any], str]] = [
    # description, frame, bad field values, expected words in the reason
    ("NaN entry price", "positions", {"price_open": math.nan}, "price_open"),
    ("negative volume", "positions", {"volume": -0.1}, "volume"),
    ("position type out of range", "positions", {"type": 7}, "type"),
    ("negative stop loss", "positions", {"sl": -1.0}, "sl"),
    ("empty symbol", "positions", {"symbol": ""}, "symbol"),
    ("deal entry out of range", "deals", {"entry": 9}, "entry"),
    ("crossed quote", "ticks", {"bid": 1.2, "ask": 1.1}, "not_crossed"),
    ("symbol without point", "symbols", {"point": 0.0}, "point"),
    ("expected side neither buy nor sell", "expected_trades", {"side": "long"}, "side"),
    (
        "expected closes before it opens",
        "expected_trades",
        {"closed_at": NOW.replace(year=2020)},
        "closes_after_opening",
    ),
]


def _good_row(name: str) -> dict[str, Any]:
    base: dict[str, Any] = {
        "login": 1,
        "ticket": 1,
        "symbol": "EURUSD",
        "name": "EURUSD",
        "trade_id": "t1",
        "position_id": 1,
    }
    return base


@pytest.mark.parametrize(("description", "name", "bad", "reason"), CASES, ids=[c[0] for c in CASES])
def test_malformed_row_is_quarantined_with_reason(
    description: str, name: str, bad: dict[str, Any], reason: str
) -> None:
    rows = [_good_row(name), {**_good_row(name), "ticket": 2, "trade_id": "t2", **bad}]
    validated = validate_frame(name, frame(name, rows), now=NOW)
    assert validated.valid.height == 1, description
    quarantined = validated.quarantined.row(0, named=True)
    assert quarantined["row_index"] == 1, description
    assert reason in quarantined["reason"], f"{description}: {quarantined['reason']}"
    assert json.loads(quarantined["raw"])["login"] == 1, f"{description}: raw values kept"


def test_duplicate_ticket_keeps_the_first_and_quarantines_the_copy() -> None:
    positions = frame(
        "positions", [{"login": 1, "ticket": 5}, {"login": 1, "ticket": 5, "volume": 0.3}, {"login": 2, "ticket": 5}]
    )
    validated = validate_frame("positions", positions, now=NOW)
    assert validated.valid.height == 2
    assert validated.quarantined["row_index"].to_list() == [1]
    assert "unique_ticket_per_login" in validated.quarantined["reason"][0]


def test_unknown_symbol_is_quarantined() -> None:
    positions = frame("positions", [{"login": 1, "ticket": 1}, {"login": 1, "ticket": 2, "symbol": "XAGEUR.old"}])
    validated = quarantine_unknown_symbols(
        "positions",
        validate_frame("positions", positions, now=NOW),
        symbols_for([1], ["EURUSD"]),
        column="symbol",
        now=NOW,
    )
    assert validated.valid["ticket"].to_list() == [1]
    assert "unknown symbol (XAGEUR.old)" in validated.quarantined["reason"][0]


def test_text_source_values_are_cast_or_quarantined_with_the_raw_text() -> None:
    """A CSV from the bot: everything is text; what does not parse is quarantined, not dropped."""
    text = pl.DataFrame(
        {
            "trade_id": ["a", "b"],
            "login": ["1", "one"],
            "symbol": ["EURUSD", "EURUSD"],
            "side": ["buy", "sell"],
            "volume": ["0.1", "0.2"],
            "price": ["1.1", "1.2"],
            "sl": ["", "1.0"],
            "tp": [None, None],
            "magic": ["7", "7"],
            "position_id": [None, None],
            "opened_at": ["2026-11-20T11:00:00Z", "2026-11-20T11:00:00Z"],
            "closed_at": [None, None],
        }
    )
    validated = validate_frame("expected_trades", text, now=NOW)
    assert validated.valid["trade_id"].to_list() == ["a"]
    assert validated.valid.schema == frames.EXPECTED_TRADES
    assert "login: cannot read 'one'" in validated.quarantined["reason"][0]


def test_missing_column_quarantines_every_row_with_the_reason() -> None:
    validated = validate_frame(
        "expected_trades", frame("expected_trades", [{"trade_id": "a", "login": 1}]).drop("side"), now=NOW
    )
    assert validated.valid.height == 0
    assert validated.quarantined["reason"].to_list() == ["missing column(s): side"]


_position_rows = st.lists(
    st.fixed_dictionaries(
        {
            "login": st.integers(min_value=-1, max_value=3),
            "ticket": st.integers(min_value=-1, max_value=6),
            "type": st.integers(min_value=-1, max_value=2),
            "volume": st.one_of(st.floats(allow_nan=True, allow_infinity=False, width=32), st.none()),
            "price_open": st.one_of(st.floats(allow_nan=True, width=32), st.none()),
            "sl": st.one_of(st.floats(min_value=-1, max_value=2), st.just(math.nan)),
            "symbol": st.sampled_from(["EURUSD", "", "XAGEUR.old"]),
        }
    ),
    max_size=30,
)


@settings(max_examples=25, deadline=None)
@given(_position_rows)
def test_rows_in_equal_rows_valid_plus_quarantined(rows: list[dict[str, Any]]) -> None:
    positions = frame("positions", rows)
    validated = quarantine_unknown_symbols(
        "positions",
        validate_frame("positions", positions, now=NOW),
        symbols_for([1, 2, 3], ["EURUSD"]),
        column="symbol",
        now=NOW,
    )
    assert validated.valid.height + validated.quarantined.height == positions.height
    assert validated.quarantined["row_index"].n_unique() == validated.quarantined.height, "a row is quarantined once"
    assert validated.quarantined.filter(pl.col("reason").is_null() | (pl.col("reason") == "")).height == 0
