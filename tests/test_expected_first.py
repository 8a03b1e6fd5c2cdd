"""The bot's trades are validated before the fetch (their text timestamps parsed once a cycle):
the fetch reads how far back deals go and which symbols to quote from the valid rows, and the
cycle's validation takes that result as it is. Nothing the cycle produces may change."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sim_cycle import sim_fleet_config

from mt5recon import pipeline
from mt5recon.fleet import ExpectedTradesSource
from mt5recon.sources import read_expected_trades
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.config import ScenarioRates
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def _text_trades(rows: list[tuple[str, str, str, str, str | None]]) -> pl.DataFrame:
    """A bot's table as a text source gives it: trade_id, login, symbol, opened_at, closed_at."""
    return pl.DataFrame(
        {
            "trade_id": [r[0] for r in rows],
            "login": [r[1] for r in rows],
            "symbol": [r[2] for r in rows],
            "side": ["buy"] * len(rows),
            "volume": ["0.1"] * len(rows),
            "price": ["1.1"] * len(rows),
            "sl": [None] * len(rows),
            "tp": [None] * len(rows),
            "magic": ["7"] * len(rows),
            "position_id": [None] * len(rows),
            "opened_at": [r[3] for r in rows],
            "closed_at": [r[4] for r in rows],
        },
        schema=dict.fromkeys(
            ["trade_id", "login", "symbol", "side", "volume", "price", "sl", "tp", "magic", "position_id"], pl.String
        )
        | {"opened_at": pl.String, "closed_at": pl.String},
    )


# trade_id, login, symbol, opened_at, closed_at
TRADES = [
    ("a", "1", "EURUSD", "2026-11-21T09:00:00Z", None),
    ("b", "1", "GBPUSD", "2026-11-21T08:30:00Z", None),
    ("c", "1", "USDJPY", "2026-11-21T07:00:00Z", "2026-11-21T07:30:00Z"),  # closed: no deals needed back to it
    ("d", "2", "XAUUSD", "2026-11-21T10:15:00+02:00", None),  # 08:15 UTC
    ("e", "2", "EURUSD", "2026-11-21T11:00:00.250Z", None),
    ("f", "3", "EURUSD", "2026-11-21T11:30:00Z", None),
]


@pytest.mark.parametrize(
    ("description", "rows", "earliest", "symbols"),
    [
        ("text times with Z, an offset and a fraction", TRADES, {1: "08:29", 2: "08:14", 3: "11:29"},
         {1: ("EURUSD", "GBPUSD", "USDJPY"), 2: ("EURUSD", "XAUUSD"), 3: ("EURUSD",)}),
        ("an open time nobody can read is quarantined: it moves no window",
         [*TRADES, ("g", "3", "AUDUSD", "last Tuesday", None), ("i", "3", "AUDUSD", "2026-11-21 01:00:00", None)], {1: "08:29", 2: "08:14", 3: "11:29"},
         {1: ("EURUSD", "GBPUSD", "USDJPY"), 2: ("EURUSD", "XAUUSD"), 3: ("EURUSD",)}),
        ("a login nobody can read is quarantined", [*TRADES, ("h", "four", "EURUSD", "2026-11-21T01:00:00Z", None)],
         {1: "08:29", 2: "08:14", 3: "11:29"},
         {1: ("EURUSD", "GBPUSD", "USDJPY"), 2: ("EURUSD", "XAUUSD"), 3: ("EURUSD",)}),
    ],
)  # fmt: skip
def test_the_fetch_reads_the_same_windows_and_symbols_from_the_valid_rows(
    description: str,
    rows: list[tuple[str, str, str, str, str | None]],
    earliest: dict[int, str],
    symbols: dict[int, tuple[str, ...]],
) -> None:
    raw = _text_trades(rows)
    valid = pipeline.validate_expected(raw, now=NOW).valid
    opened = pipeline.earliest_open_by_login(valid)
    assert {login: at.strftime("%H:%M") for login, at in opened.items()} == earliest, description
    assert all(at.tzinfo is not None for at in opened.values()), description
    assert pipeline.expected_symbols_by_login(valid) == symbols, description
    if len(rows) == len(TRADES):  # every row valid: the raw rows say the same
        assert pipeline.earliest_open_by_login(raw) == opened, description


def test_validating_the_trades_first_changes_nothing_the_cycle_produces(tmp_path: Path) -> None:
    """Three cycles of a simulated fleet whose bot writes SQLite (text times), one trade with an
    unreadable open time and one with an unreadable login added: the flow's order (trades
    validated first, the fetch reading their valid rows) gives the snapshot, validated frames,
    quarantine and result of the old order (fetch from the rows as read, then validate all)."""
    sim = SimFleet.demo(seed=4, clock=SimClock(DEFAULT_START), accounts=4, rates=ScenarioRates.zero())
    database = tmp_path / "bot.sqlite"
    config = sim_fleet_config(sim).model_copy(
        update={"expected_trades": ExpectedTradesSource(kind="sqlite", path=str(database))}
    )
    use_in_process_fleet(sim)
    try:
        for _ in range(3):
            sim.clock.advance(10.0)
            at = sim.now()
            sim.write_expected_trades_sqlite(database)
            with sqlite3.connect(database) as connection:
                columns = [row[1] for row in connection.execute("PRAGMA table_info(expected_trades)")]
                first = dict(
                    zip(columns, connection.execute("SELECT * FROM expected_trades LIMIT 1").fetchone(), strict=True)
                )
                for trade_id, change in (("bad-time", {"opened_at": "soon"}), ("bad-login", {"login": "x"})):
                    row = first | {"trade_id": trade_id, **change}
                    marks = ", ".join("?" * len(columns))
                    connection.execute(
                        f"INSERT OR REPLACE INTO expected_trades VALUES ({marks})", [row[c] for c in columns]
                    )
            raw = read_expected_trades(config.expected_trades, tmp_path)
            assert raw.schema["opened_at"] == pl.String, "the bot's times arrive as text"

            old_snapshot, _ = pipeline.fetch_fleet(config, fetched_at=at, open_terminal=open_terminal, expected_raw=raw)
            old = pipeline.validate_cycle(old_snapshot, raw, now=at)
            expected = pipeline.validate_expected(raw, now=at)
            new_snapshot, _ = pipeline.fetch_fleet(
                config, fetched_at=at, open_terminal=open_terminal, expected_raw=expected.valid
            )
            new = pipeline.validate_fetched(new_snapshot, expected, now=at)

            for name, frame in old_snapshot.frames().items():
                assert_frame_equal(new_snapshot.frames()[name], frame)
            assert new.frames.keys() == old.frames.keys()
            for name, frame in old.frames.items():
                assert_frame_equal(new.frames[name], frame)
            assert_frame_equal(new.quarantine, old.quarantine)
            assert new.rows_in == old.rows_in
            assert set(new.quarantine["raw"].str.extract(r'"trade_id":\s*"([^"]+)"').to_list()) >= {
                "bad-time",
                "bad-login",
            }
            old_result = pipeline.reconcile_cycle(old, config, as_of=at)
            new_result = pipeline.reconcile_cycle(new, config, as_of=at)
            assert_frame_equal(new_result.divergences, old_result.divergences)
            assert_frame_equal(new_result.matches, old_result.matches)
    finally:
        use_in_process_fleet(None)
