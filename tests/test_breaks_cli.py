"""`mt5recon breaks` on a store written by real cycles of the simulated fleet: every filter narrows
to exactly what the store holds (checked against the store itself), sorting, limits, JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sim_lake import SimLake, pin_clock
from typer.testing import CliRunner

from mt5recon.cli import app
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.tolerances import BreakPolicy

runner = CliRunner()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, extension_dir: Path) -> Iterator[SimLake]:
    """Three cycles 10 s apart (a break opens at its first sighting here):
    cycle 1: 5001 two manual trades (GBPUSD stays, USDJPY is closed before cycle 2), 5002 a 12-pip slip;
    cycle 2: 5003 a 30-pip slip, 5004 loses its terminal;
    cycle 3: 5002 an 8-pip favourable fill."""
    home = tmp_path_factory.mktemp("breaks")
    lake = SimLake.quiet(home, extension_dir, accounts=4, breaks=BreakPolicy(confirm_observations=1))
    sim = lake.sim
    sim.account(5001).manual_open("GBPUSD", "sell", 0.2)
    closed_later = sim.account(5001).manual_open("USDJPY", "buy", 0.3)
    sim.account(5002).bot_open("EURUSD", "buy", 0.1, slippage_pips=12.0)
    lake.clock.advance(30)  # past the grace window of a fresh position
    lake.run(1)
    sim.account(5003).bot_open("EURUSD", "buy", 0.1, slippage_pips=30.0)
    sim.account(5004).disconnect()
    sim.account(5001).manual_close(closed_later)
    lake.run(1)
    sim.account(5002).bot_open("EURUSD", "sell", 0.1, slippage_pips=-8.0)
    lake.run(1)
    yield lake
    use_in_process_fleet(None)


@pytest.fixture
def now(lake: SimLake, monkeypatch: pytest.MonkeyPatch) -> datetime:
    at = lake.sim.now()
    pin_clock(monkeypatch, at)
    return at


@pytest.fixture(scope="module")
def stored(lake: SimLake) -> pl.DataFrame:
    """Every break the store holds, with its age at the pinned clock, computed here independently."""
    frame = lake.query("SELECT * FROM breaks")
    at = lake.sim.now()
    return frame.with_columns(
        (pl.coalesce("resolved_at", pl.lit(at)) - pl.col("first_seen_at")).dt.total_seconds().alias("age")
    )


def breaks_json(lake: SimLake, *args: str) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["breaks", "--json", "--home", str(lake.home), *args])
    assert result.exit_code == 0, result.output
    parsed: list[dict[str, Any]] = json.loads(result.stdout)
    return parsed


def test_the_scenario_left_every_kind_of_break(stored: pl.DataFrame) -> None:
    """The filters below are only meaningful if the store holds this mix."""
    summary = stored.group_by("kind", "status").len().sort("kind", "status")
    assert dict(zip(summary["kind"] + "/" + summary["status"], summary["len"], strict=True)) == {
        "slippage/open": 3,
        "snapshot_failed/open": 1,
        "unknown_position/open": 1,
        "unknown_position/resolved": 1,
    }
    assert sorted(set(stored["age"].to_list())) == [10, 20, 30]
    assert set(stored["symbol"].drop_nulls()) == {"EURUSD", "EURUSD.m", "GBPUSD", "USDJPY"}, "5003's broker adds .m"


@dataclass(frozen=True)
class FilterCase:
    description: str
    args: tuple[str, ...]
    expected: pl.Expr  # over the store's breaks (with `age`)


OPEN = pl.col("status") == "open"
FILTER_CASES = [
    FilterCase("default: the open breaks", (), OPEN),
    FilterCase("--all adds the resolved", ("--all",), pl.lit(True)),
    FilterCase("one account", ("--account", "5002"), OPEN & (pl.col("login") == 5002)),
    FilterCase(
        "two accounts (repeatable)",
        ("--account", "5001", "--account", "5004"),
        OPEN & pl.col("login").is_in([5001, 5004]),
    ),
    FilterCase("one kind", ("--kind", "slippage"), OPEN & (pl.col("kind") == "slippage")),
    FilterCase(
        "two kinds (repeatable), with the resolved",
        ("--all", "--kind", "unknown_position", "--kind", "snapshot_failed"),
        pl.col("kind").is_in(["unknown_position", "snapshot_failed"]),
    ),
    FilterCase(
        "a symbol finds its instrument under every broker's name",
        ("--symbol", "EURUSD"),
        OPEN & pl.col("symbol").is_in(["EURUSD", "EURUSD.m"]),
    ),
    FilterCase(
        "a broker's name finds the instrument too",
        ("--all", "--symbol", "EURUSD.m"),
        pl.col("symbol").is_in(["EURUSD", "EURUSD.m"]),
    ),
    FilterCase("another instrument", ("--all", "--symbol", "USDJPY"), pl.col("symbol") == "USDJPY"),
    FilterCase("older than 25 s", ("--older-than", "25"), OPEN & (pl.col("age") > 25)),
    FilterCase("newer than 15 s, with the resolved", ("--all", "--newer-than", "15"), pl.col("age") < 15),
    FilterCase(
        "an age window and an account",
        ("--older-than", "15", "--newer-than", "25", "--account", "5003"),
        OPEN & pl.col("age").is_between(15, 25, closed="none") & (pl.col("login") == 5003),
    ),
    FilterCase("a quote in a value is a value, not SQL", ("--symbol", "EURUSD' OR '1'='1"), pl.lit(False)),
]


@pytest.mark.parametrize("case", FILTER_CASES, ids=lambda c: c.description)
def test_filters_narrow_to_what_the_store_holds(
    lake: SimLake, stored: pl.DataFrame, now: datetime, case: FilterCase
) -> None:
    shown = breaks_json(lake, *case.args)
    expected = stored.filter(case.expected)
    assert sorted(b["break_id"] for b in shown) == sorted(expected["break_id"]), case.description
    if case.description.startswith("default"):
        assert len(shown) == 5, "the scenario's open breaks"


@dataclass(frozen=True)
class SortCase:
    description: str
    args: tuple[str, ...]
    order: list[pl.Expr]
    descending: list[bool]
    limit: int | None = None


SIZE = [pl.col("size_money").abs().is_null(), pl.col("size_money").abs(), pl.col("age"), pl.col("break_id")]
AGE = [pl.col("age"), pl.col("break_id")]
SORT_CASES = [
    SortCase("by age: oldest first (the default)", (), AGE, [True, False]),
    SortCase("by size: biggest money first, unsized last", ("--sort", "size"), SIZE, [False, True, True, False]),
    SortCase("by size, the top two", ("--sort", "size", "--limit", "2"), SIZE, [False, True, True, False], 2),
    SortCase("by age with the resolved, the top three", ("--all", "--limit", "3"), AGE, [True, False], 3),
]


@pytest.mark.parametrize("case", SORT_CASES, ids=lambda c: c.description)
def test_sorting_and_limit(lake: SimLake, stored: pl.DataFrame, now: datetime, case: SortCase) -> None:
    shown = breaks_json(lake, *case.args)
    pool = stored if "--all" in case.args else stored.filter(OPEN)
    expected = pool.sort(case.order, descending=case.descending)["break_id"].to_list()
    assert [b["break_id"] for b in shown] == expected[: case.limit], case.description


def test_size_is_the_money_magnitude(lake: SimLake, now: datetime) -> None:
    sizes = [b["size_money"] for b in breaks_json(lake, "--sort", "size", "--kind", "slippage")]
    assert [abs(s) for s in sizes] == sorted((abs(s) for s in sizes), reverse=True)
    assert any(s < 0 for s in sizes), "a favourable fill has a negative size and sorts by its magnitude"


def test_json_rows_carry_the_break(lake: SimLake, stored: pl.DataFrame, now: datetime) -> None:
    shown = {b["break_id"]: b for b in breaks_json(lake, "--all")}
    for row in stored.iter_rows(named=True):
        got = shown[row["break_id"]]
        for key in ("login", "kind", "status", "cause", "symbol", "size_money"):
            assert got[key] == row[key], f"{row['break_id']}: {key}"
        assert got["age_secs"] == row["age"], row["break_id"]
        assert datetime.fromisoformat(got["first_seen_at"]) == row["first_seen_at"], row["break_id"]


def test_the_table_lists_the_breaks(lake: SimLake, stored: pl.DataFrame, now: datetime) -> None:
    result = runner.invoke(app, ["breaks", "--home", str(lake.home), "--sort", "size"])
    assert result.exit_code == 0, result.output
    assert "5 open breaks, by size" in result.stdout, result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 5, result.stdout
    assert "30.00" in rows[0] and "slippage" in rows[0], "the biggest slip first"
    assert "snapshot_failed" in result.stdout and "unknown_position" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--kind", "bogus"), "unknown break kind"),
        (("--sort", "price"), "--sort"),
        (("--limit", "0"), "--limit"),
    ],
    ids=["unknown kind", "unknown sort", "zero limit"],
)
def test_bad_options_are_refused(lake: SimLake, args: tuple[str, ...], message: str) -> None:
    result = runner.invoke(app, ["breaks", "--home", str(lake.home), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output


def test_nothing_matching_is_not_an_error(lake: SimLake, now: datetime) -> None:
    result = runner.invoke(app, ["breaks", "--home", str(lake.home), "--account", "4242"])
    assert result.exit_code == 0 and "no open breaks match" in result.stdout, result.output
    assert breaks_json(lake, "--account", "4242") == []
