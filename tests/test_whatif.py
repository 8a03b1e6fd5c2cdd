"""`mt5recon replay DIR --tolerances FILE`: a recorded period re-reconciled with the fleet's
tolerances and with a file's, each into a throwaway store, and how the breaks would differ.

The recording is the simulated fleet with bot trades slipped by known amounts. The expected
differences are recomputed from the recorded frames alone (bot trade against its broker position,
in pips of the recorded symbol), never from the engine's output; the live store is untouched.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from sim_cycle import run_cycle, sim_fleet_config
from typer.testing import CliRunner

from mt5recon.cli import app
from mt5recon.fleet import FleetConfig
from mt5recon.recordings import ToleranceFile, load_tolerance_file, replay_cycle
from mt5recon.store.lake import Store, StoreConfig
from mt5recon.terminal.recording import Replay, record_cycle
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock, WallClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet
from mt5recon.tolerances import Tolerances
from mt5recon.whatif import diff_breaks

runner = CliRunner()

# (login, symbol, side, slippage in pips: > 0 against the bot, bot recorded the position id)
SLIPPED = (
    (5001, "EURUSD", "buy", 0.5, True),
    (5001, "EURUSD", "sell", 3.5, False),  # matched by its tag, not its position id
    (5001, "XAUUSD", "buy", 20.0, True),  # within the fleet's 30-pip XAUUSD tolerance
    (5002, "USDJPY", "buy", 6.0, True),
    (5002, "EURUSD", "buy", 10.0, True),  # exactly a 10-pip tolerance: within it
    (5003, "EURUSD", "sell", 7.0, True),  # a broker with `.m` symbols
    (5005, "GBPUSD", "sell", 8.0, True),
    (5006, "EURUSD", "buy", -12.0, False),  # favourable, through a bridge that rewrites comments
)
CYCLES = 3
FLEET_TOLERANCES = """
[tolerances.default]
slippage_pips = 5.0

[tolerances.symbols.XAUUSD]
slippage_pips = 30.0
match_window_pips = 500.0
"""


@dataclass(frozen=True)
class Recorded:
    directory: Path
    fleet_file: Path
    fleet: FleetConfig


def _fleet_toml(fleet: FleetConfig) -> str:
    accounts = "".join(
        f'\n[[accounts]]\nlogin = {a.login}\nserver = "{a.server}"\nconnector = {{ kind = "sim" }}\n'
        for a in fleet.accounts
    )
    return f'name = "whatif-test"\n\n[expected_trades]\nkind = "sim"\n{FLEET_TOLERANCES}{accounts}'


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    root = tmp_path_factory.mktemp("whatif")
    clock = SimClock(DEFAULT_START)
    sim = SimFleet.quiet(clock=clock, prepopulate=False)
    fleet_file = root / "fleet.toml"
    fleet_file.write_text(_fleet_toml(sim_fleet_config(sim)))
    from mt5recon.fleet import load_fleet

    fleet = load_fleet(fleet_file)
    for login, symbol, side, pips, position_id in SLIPPED:
        sim.account(login).bot_open(
            symbol, side, 0.1, slippage_pips=pips, sl_pips=0, tp_pips=0, record_position_id=position_id
        )
    for _ in range(CYCLES):
        clock.advance(10)
        run = run_cycle(sim, fleet)
        record_cycle(root / "recording", run.snapshot, run.expected_raw, sim.now())
    use_in_process_fleet(None)
    yield Recorded(root / "recording", fleet_file, fleet)


def _frame(directory: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(sorted((directory / name).glob("*.parquet")))


def slipped_beyond(directory: Path, tolerances: Tolerances) -> set[tuple[int, str]]:
    """(login, trade_id) of every bot trade whose broker position opened more than the tolerance away,
    recomputed from the recorded frames: the position by the bot's position id, else by its tag (the
    trade id at the start of the broker's comment); pips from the recorded symbol's digits and point."""
    keys = ["login", "fetched_at"]
    expected = _frame(directory, "expected_trades").select(*keys, "trade_id", "side", "price", "position_id")
    positions = _frame(directory, "positions").select(
        *keys, "identifier", "price_open", pl.col("symbol").alias("broker_symbol"), "comment"
    )
    by_id = expected.join(positions, left_on=[*keys, "position_id"], right_on=[*keys, "identifier"])
    by_tag = (
        expected.filter(pl.col("position_id").is_null())
        .join(positions, on=keys)
        .filter(pl.col("comment").str.starts_with(pl.col("trade_id")))
    )
    columns = [*keys, "trade_id", "side", "price", "price_open", "broker_symbol"]
    symbols = _frame(directory, "symbols").select(*keys, pl.col("name").alias("broker_symbol"), "digits", "point")
    pairs = pl.concat([by_id.select(columns), by_tag.select(columns)]).join(
        symbols.unique(), on=[*keys, "broker_symbol"]
    )
    found = set()
    for row in pairs.iter_rows(named=True):
        pip = row["point"] * 10 if row["digits"] in (3, 5) else row["point"]
        against_bot = (row["price_open"] - row["price"]) / pip * (1 if row["side"] == "buy" else -1)
        limit = tolerances.for_symbol(row["broker_symbol"].removesuffix(".m")).slippage_pips
        if abs(against_bot) > limit + 1e-6:  # exactly the tolerance is within it
            found.add((row["login"], row["trade_id"]))
    return found


def _table_counts(home: Path) -> dict[str, int]:
    with Store.open(StoreConfig.under(home)) as store:
        tables = [r[0] for r in store.connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        counts = {t: store.connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # type: ignore[index]
        snapshot = store.connection.execute("SELECT max(snapshot_id) FROM ducklake_snapshots('recon')").fetchone()
    return {**counts, "(snapshots)": int(snapshot[0]) if snapshot else 0}


@pytest.fixture(scope="module")
def live_home(tmp_path_factory: pytest.TempPathFactory, recorded: Recorded) -> Path:
    """A live store with the recording's first cycle in it, as the pipeline left it (shared: every test
    that replays checks it is left exactly as it was)."""
    home = tmp_path_factory.mktemp("live")
    recording = Replay(recorded.directory)
    with Store.open(StoreConfig.under(home)) as store:
        replay_cycle(recording, recording.cycles()[0], recorded.fleet, home, store)
    return home


@dataclass(frozen=True)
class WhatIf:
    description: str
    toml: str


WHAT_IFS = [
    WhatIf(
        "tighter slippage: the slips between the new and the old threshold appear, on the same pairs",
        "[tolerances.default]\nslippage_pips = 1.0\n[tolerances.symbols.XAUUSD]\nslippage_pips = 10.0\n"
        "match_window_pips = 500.0\n",
    ),
    WhatIf(
        "looser slippage: the slips up to 10 pips (10.0 exactly is within) disappear, the 12-pip one stays",
        "[tolerances.default]\nslippage_pips = 10.0\n[tolerances.symbols.XAUUSD]\nslippage_pips = 30.0\n"
        "match_window_pips = 500.0\n",
    ),
    WhatIf(
        "a bare section without the XAUUSD override: gold falls back to the default, its 20-pip slip appears",
        "[default]\nslippage_pips = 15.0\n",
    ),
    WhatIf("the fleet's own tolerances: no difference", FLEET_TOLERANCES),
]


def _what_if_file(toml: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tolerances file, and a temp folder of the test's own, so the replays' throwaway stores
    can be seen gone afterwards."""
    file = tmp_path / "what-if.toml"
    file.write_text(toml)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return file


@pytest.mark.parametrize("case", WHAT_IFS, ids=lambda c: c.description)
def test_the_differences_are_exactly_the_recomputed_ones(
    case: WhatIf, recorded: Recorded, live_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _what_if_file(case.toml, tmp_path, monkeypatch)
    before = _table_counts(live_home)

    result = runner.invoke(
        app,
        ["replay", str(recorded.directory), "--tolerances", str(file), "--fleet", str(recorded.fleet_file), "--json"],
        env={"MT5RECON_HOME": str(live_home)},
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    baseline = slipped_beyond(recorded.directory, recorded.fleet.tolerances)
    other_tolerances = load_tolerance_file(file).tolerances
    assert other_tolerances is not None
    what_if = slipped_beyond(recorded.directory, other_tolerances)
    appear = {(r["login"], r["trade_id"]) for r in report["would_appear"]}
    disappear = {(r["login"], r["trade_id"]) for r in report["would_disappear"]}
    assert appear == what_if - baseline
    assert disappear == baseline - what_if
    assert {r["kind"] for r in report["would_appear"] + report["would_disappear"]} <= {"slippage"}
    slippage = [r for r in report["by_kind"] if r["kind"] == "slippage"]
    assert slippage == [
        {"kind": "slippage", "baseline": len(baseline), "what_if": len(what_if), "change": len(what_if) - len(baseline)}
    ]
    assert report["cycles"] == CYCLES
    assert sum(r["would_appear"] for r in report["by_account_symbol"]) == len(appear)
    assert _table_counts(live_home) == before, "the live store is untouched"
    assert list((tmp_path / "tmp").iterdir()) == [], "the throwaway stores are removed"


def test_the_recomputation_finds_every_slip_it_was_given(recorded: Recorded) -> None:
    """The oracle itself: with no tolerance every slipped trade is found, each on its own position."""
    found = slipped_beyond(recorded.directory, Tolerances.model_validate({"default": {"slippage_pips": 0.0}}))
    assert sorted(login for login, _ in found) == sorted(login for login, *_ in SLIPPED)
    at_fleet = slipped_beyond(recorded.directory, recorded.fleet.tolerances)
    assert len(at_fleet) == sum(abs(p) > (30 if s == "XAUUSD" else 5) for _, s, _, p, _ in SLIPPED) == 5


def test_text_report_and_kept_stores(recorded: Recorded, tmp_path: Path, live_home: Path) -> None:
    file = tmp_path / "tight.toml"
    file.write_text(WHAT_IFS[0].toml)
    into = tmp_path / "kept"
    args = ["replay", str(recorded.directory), "--tolerances", str(file), "--fleet", str(recorded.fleet_file)]
    result = runner.invoke(app, [*args, "--into", str(into)], env={"MT5RECON_HOME": str(live_home)})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "tolerances.default.slippage_pips 5.0 -> 1.0" in out
    assert "would appear with the what-if tolerances (2):" in out
    assert "5001:slippage:b5001-000002" in out
    assert f"replayed {CYCLES} cycle(s)" in out and f"stores kept in {into}" in out
    assert out.rstrip().splitlines()[-1].startswith("summary: baseline 5 break(s), what-if 7: 2 would appear")
    for name in ("baseline", "what-if"):
        assert StoreConfig.under(into / name).exists()
    again = runner.invoke(app, [*args, "--into", str(into)], env={"MT5RECON_HOME": str(live_home)})
    assert again.exit_code == 2 and "already holds a store" in again.output


@dataclass(frozen=True)
class Malformed:
    description: str
    toml: str
    message: str  # on stderr, with the field path


MALFORMED = [
    Malformed(
        "a negative threshold",
        "[tolerances.default]\nslippage_pips = -1.0\n",
        "tolerances.default.slippage_pips: Input should be greater than or equal to 0",
    ),
    Malformed(
        "a threshold wider than the match window",
        "[tolerances.default]\nslippage_pips = 150.0\n",
        "match_window_pips (100.0) must be wider than the slippage/SL/TP thresholds",
    ),
    Malformed("a misspelt section", "[tolerances.defualt]\nslippage_pips = 2.0\n", "tolerances.defualt: Extra inputs"),
    Malformed(
        "a word for a number",
        '[tolerances.default]\nslippage_pips = "tight"\n',
        "tolerances.default.slippage_pips: Input should be a valid number",
    ),
    Malformed("not TOML at all", "[tolerances.default\nslippage_pips = 2\n", "not valid TOML"),
    Malformed("an empty file", "", "empty: give a [tolerances.default] section"),
    Malformed(
        "a whole fleet file",
        '[tolerances.default]\nslippage_pips = 2.0\n[[accounts]]\nlogin = 1\nserver = "x"\n',
        "accounts: Extra inputs are not permitted",
    ),
    Malformed(
        "a bad break policy",
        "[breaks]\nconfirm_observations = 0\n",
        "breaks.confirm_observations: Input should be greater than or equal to 1",
    ),
]


@pytest.mark.parametrize("case", MALFORMED, ids=lambda c: c.description)
def test_a_malformed_tolerances_file_is_a_clear_usage_error(
    case: Malformed, recorded: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _what_if_file(case.toml, tmp_path, monkeypatch)
    result = runner.invoke(
        app,
        ["replay", str(recorded.directory), "--tolerances", str(file), "--fleet", str(recorded.fleet_file)],
        env={"MT5RECON_HOME": str(tmp_path / "live")},
    )
    assert result.exit_code == 2, result.output
    assert case.message in result.stderr, result.stderr
    assert f"--tolerances {file}" in result.stderr
    assert list((tmp_path / "tmp").iterdir()) == [], "nothing was replayed"


def test_diff_of_hand_made_breaks_groups_by_kind_account_and_symbol() -> None:
    """The pure diff: opened breaks only, compared by break id, counted per kind and per account/symbol."""

    def breaks(*rows: tuple[str, str | None, bool]) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {
                    "break_id": bid,
                    "login": int(bid.split(":")[0]),
                    "symbol": symbol,
                    "kind": bid.split(":")[1],
                    "cause": "x",
                    "trade_id": bid.split(":")[2],
                    "worst_size_pips": 1.0,
                    "opened_at": DEFAULT_START if opened else None,
                }
                for bid, symbol, opened in rows
            ]
        )

    base = breaks(
        ("1:slippage:a", "EURUSD", True),
        ("1:slippage:b", "EURUSD", True),
        ("2:missing_position:c", "XAUUSD", True),
        ("2:unknown_position:pos9", "EURUSD", False),  # pending: never a break
    )
    other = breaks(
        ("1:slippage:a", "EURUSD", True),
        ("1:slippage:d", "GBPUSD", True),
        ("1:slippage:e", "GBPUSD", True),
        ("3:snapshot_failed:snapshot", None, True),
    )
    diff = diff_breaks(base, other)
    assert diff.by_kind.rows() == [
        ("missing_position", 1, 0, -1),
        ("slippage", 2, 3, 1),
        ("snapshot_failed", 0, 1, 1),
    ]
    assert diff.only_baseline["break_id"].to_list() == ["1:slippage:b", "2:missing_position:c"]
    assert diff.only_what_if["break_id"].to_list() == ["1:slippage:d", "1:slippage:e", "3:snapshot_failed:snapshot"]
    assert diff.by_account_symbol.rows() == [
        (1, "EURUSD", "slippage", 0, 1),
        (1, "GBPUSD", "slippage", 2, 0),
        (2, "XAUUSD", "missing_position", 0, 1),
        (3, None, "snapshot_failed", 1, 0),
    ]
    assert diff.summary() == (
        "baseline 3 break(s), what-if 4: 3 would appear, 2 would disappear "
        "(missing_position -1, slippage +1, snapshot_failed +1)"
    )
    assert diff_breaks(base, base).summary() == "no difference: the same 3 break(s) with either tolerances"


def test_a_file_section_replaces_the_fleets_and_an_omitted_one_keeps_it(recorded: Recorded) -> None:
    from mt5recon.recordings import with_tolerances
    from mt5recon.tolerances import BreakPolicy

    only_breaks = with_tolerances(recorded.fleet, ToleranceFile(breaks=BreakPolicy(confirm_observations=5)))
    assert only_breaks.tolerances == recorded.fleet.tolerances
    assert only_breaks.breaks.confirm_observations == 5


def test_replay_refuses_to_write_into_the_live_store(recorded: Recorded, live_home: Path) -> None:
    before = _table_counts(live_home)
    args = ["replay", str(recorded.directory), "--into", str(live_home), "--fleet", str(recorded.fleet_file)]
    result = runner.invoke(app, args, env={"MT5RECON_HOME": str(live_home)})
    assert result.exit_code == 2
    assert "is the live store" in result.stderr
    assert _table_counts(live_home) == before


def test_record_then_what_if_on_the_demo_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's path: `record` the demo fleet (it hosts the simulated terminals itself), then ask what
    a tighter slippage tolerance would have changed. Tightening slippage moves no match window, so
    only slippage breaks can appear, and none can disappear."""
    from demo_fleet_files import demo_fleet_on_free_ports

    monkeypatch.setenv("MT5RECON_HOME", str(tmp_path / "home"))
    fleet = demo_fleet_on_free_ports(tmp_path / "fleet.toml")
    sim = SimFleet.demo(seed=7, clock=WallClock())  # the fleet `record` hosts, with one trade slipped 3 pips
    slipped = sim.account(5001).bot_open("EURUSD", "buy", 0.1, slippage_pips=3.0, sl_pips=0, tp_pips=0)
    use_in_process_fleet(sim)
    try:
        recorded = runner.invoke(
            app, ["record", str(tmp_path / "rec"), "--cycles", "2", "--every-secs", "0", "--fleet", str(fleet)]
        )
    finally:
        use_in_process_fleet(None)
    assert recorded.exit_code == 0, recorded.output
    assert recorded.stdout.strip().splitlines()[-1] == f"recorded 2 cycle(s) into {tmp_path / 'rec'}"
    tight = tmp_path / "tight.toml"
    tight.write_text(load_fleet_tolerances_with(fleet, slippage_pips=0.5))
    result = runner.invoke(
        app, ["replay", str(tmp_path / "rec"), "--tolerances", str(tight), "--fleet", str(fleet), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["cycles"] == 2
    assert report["would_disappear"] == []
    assert f"5001:slippage:{slipped}" in {r["break_id"] for r in report["would_appear"]}
    assert {r["kind"] for r in report["would_appear"]} == {"slippage"}
    changed = {r["kind"]: r for r in report["by_kind"] if r["change"] != 0}
    assert set(changed) <= {"slippage"}
    assert report["tolerance_changes"] == ["tolerances.default.slippage_pips 5.0 -> 0.5"]


def load_fleet_tolerances_with(fleet_file: Path, **default: float) -> str:
    """The fleet file's own [tolerances] section with some default fields changed, as TOML."""
    from mt5recon.fleet import load_fleet

    tolerances = load_fleet(fleet_file).tolerances.model_dump()
    lines = ["[tolerances.default]", *(f"{k} = {v!r}" for k, v in {**tolerances["default"], **default}.items())]
    for symbol, fields in tolerances["symbols"].items():
        lines += [f"[tolerances.symbols.{symbol}]", *(f"{k} = {v!r}" for k, v in fields.items())]
    return "\n".join(lines) + "\n"
