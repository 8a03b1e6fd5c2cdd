"""`mt5recon status` on a store written by real cycles of the simulated fleet (sharded, then
checked against the store itself), its JSON, and the answer on an empty store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sim_cycle import sim_fleet_config
from typer.testing import CliRunner, Result

from mt5recon import pipeline
from mt5recon.cli import app
from mt5recon.fleet import FleetConfig
from mt5recon.sharding import shard_expected_trades, shard_fleet, shard_scope
from mt5recon.sources import read_expected_trades
from mt5recon.store.lake import Store, StoreConfig, open_reader
from mt5recon.store.stored_state import read_stored_state
from mt5recon.terminal.breaker import Breaker, BreakerPolicy
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

runner = CliRunner()
NO_CYCLES = "no cycles yet: run `mt5recon up` or `mt5recon cycle`"


@dataclass
class SimLake:
    """Cycles of a simulated fleet committed into a store under `home` by the flow's own steps
    (fetch with circuit breakers, validate, reconcile, advance state, commit), without Prefect, on
    the simulator's clock: 10 s per cycle, no sleeping."""

    home: Path
    sim: SimFleet
    clock: SimClock
    fleet: FleetConfig
    book: dict[int, Breaker] = field(default_factory=dict)

    @classmethod
    def quiet(
        cls,
        home: Path,
        extension_dir: Path,
        accounts: int,
        shards: tuple[int, ...] | None = None,
        **fleet_settings: object,
    ) -> SimLake:
        """A calm fleet of `accounts`; `shards` pins each account (in login order) to a shard;
        `fleet_settings` replace fields of the fleet config (e.g. a quicker breaker). The store's
        extension folder is the session's (installing the extensions costs seconds per store)."""
        clock = SimClock(DEFAULT_START)
        sim = SimFleet.quiet(clock=clock, accounts=accounts, prepopulate=False)
        fleet = sim_fleet_config(sim).model_copy(update=fleet_settings)
        if shards is not None:
            pinned = tuple(a.model_copy(update={"shard": s}) for a, s in zip(fleet.accounts, shards, strict=True))
            fleet = fleet.model_copy(update={"accounts": pinned})
        share_extensions(home, extension_dir)
        return cls(home, sim, clock, fleet)

    @property
    def config(self) -> StoreConfig:
        return StoreConfig.under(self.home)

    def run(self, count: int = 1, shards: int = 1) -> None:
        """`count` cycles, each one per shard at the same scheduled time, 10 s apart."""
        with Store.open(self.config) as store:
            for _ in range(count):
                for shard in range(shards):
                    self._commit(store, shard, shards)
                self.clock.advance(10)

    def _commit(self, store: Store, shard: int, shards: int) -> None:
        part, scope = shard_fleet(self.fleet, shard, shards), shard_scope(self.fleet, shard, shards)
        at = self.sim.now()
        use_in_process_fleet(self.sim)
        expected = shard_expected_trades(read_expected_trades(part.expected_trades, self.home), scope)
        snapshot, _ = pipeline.fetch_fleet(
            part, fetched_at=at, open_terminal=open_terminal, expected_raw=expected, book=self.book
        )
        self.book = pipeline.advance_breakers(self.book, snapshot, part, at=at)
        snapshot = replace(snapshot, health=pipeline.with_breaker_states(snapshot.health, self.book, at))
        validated = pipeline.validate_cycle(snapshot, expected, now=at)
        result = pipeline.reconcile_cycle(validated, part, as_of=at)
        stored = read_stored_state(store.connection, *pipeline.break_state_keys(part, result), scope)
        state = pipeline.advance_state(stored, validated, result, part, at=at)
        cycle_id = pipeline.cycle_id_for(part.name, at)
        tables = pipeline.cycle_tables(
            cycle_id=cycle_id,
            started_at=at,
            finished_at=at,
            snapshot=snapshot,
            validated=validated,
            result=result,
            state=state,
            fetch_ms=0.0,
            reconcile_ms=0.0,
        )
        store.commit_cycle(cycle_id, tables, pipeline.state_deletes(state))

    def query(self, sql: str) -> pl.DataFrame:
        """Read the store independently of the views under test."""
        con = open_reader(self.config)
        try:
            return con.execute(sql).pl()
        finally:
            con.close()

    def fleet_file(self, extra_logins: tuple[int, ...] = ()) -> Path:
        """The fleet as a TOML file for `--fleet` (plus accounts that never ran)."""
        lines = [f'name = "{self.fleet.name}"', 'expected_trades = { kind = "sim" }']
        for login in [a.login for a in self.fleet.accounts] + list(extra_logins):
            lines += ["[[accounts]]", f"login = {login}", 'server = "SimBroker-Demo"', 'connector = { kind = "sim" }']
        path = self.home / "fleet.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


def share_extensions(home: Path, extension_dir: Path) -> None:
    """Point the store's extension folder under `home` (where the CLI looks) at the session's."""
    (home / "store").mkdir(parents=True, exist_ok=True)
    (home / "store" / "extensions").symlink_to(extension_dir, target_is_directory=True)


def pin_clock(monkeypatch: pytest.MonkeyPatch, at: datetime) -> None:
    """Ages are measured at the simulator's time, not the wall clock's."""
    monkeypatch.setattr("mt5recon.views.utc_now", lambda: at)


def invoke(*args: str) -> Result:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory, extension_dir: Path) -> Iterator[SimLake]:
    """Four accounts: one unsharded cycle, then two cycles of the fleet split over two shards
    (5001, 5003 | 5002, 5004). 5001 gets a manual trade (unknown position), 5002 a slipped fill,
    5003 loses its terminal after the first cycle (failed snapshots until its breaker opens, after
    two here), 5004 stays clean."""
    home = tmp_path_factory.mktemp("status")
    quick_breaker = BreakerPolicy(failure_threshold=2)
    lake = SimLake.quiet(home, extension_dir, accounts=4, shards=(0, 1, 0, 1), breaker=quick_breaker)
    lake.run(1)  # scope "test", before the fleet was sharded
    lake.sim.account(5003).disconnect()
    lake.sim.account(5001).manual_open("GBPUSD", "sell", 0.2)
    lake.sim.account(5002).bot_open("EURUSD", "buy", 0.1, slippage_pips=12.0)
    lake.clock.advance(30)  # past the grace window of a fresh position
    lake.run(2, shards=2)
    yield lake
    use_in_process_fleet(None)


@pytest.fixture(scope="module")
def status_json(sharded: SimLake) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        pin_clock(monkeypatch, sharded.sim.now())
        out = invoke("status", "--json", "--home", str(sharded.home), "--fleet", str(sharded.fleet_file()))
    parsed: dict[str, Any] = json.loads(out.stdout)
    return parsed


def test_every_account_of_every_shard_appears_once(sharded: SimLake, status_json: dict[str, Any]) -> None:
    logins = [a["login"] for a in status_json["accounts"]]
    assert logins == [5001, 5002, 5003, 5004], "each account once, though it also ran in the unsharded scope"
    scopes = {a["login"]: a["scope"] for a in status_json["accounts"]}
    assert scopes == {5001: "test-shard0of2", 5003: "test-shard0of2", 5002: "test-shard1of2", 5004: "test-shard1of2"}
    latest = sharded.query(
        "SELECT regexp_replace(cycle_id, ':[^:]*$', '') AS scope, max(cycle_id) AS cycle_id FROM cycles "
        "WHERE cycle_id LIKE 'test-shard%' GROUP BY ALL ORDER BY scope"
    )
    assert [(c["scope"], c["cycle_id"]) for c in status_json["cycles"]] == list(latest.iter_rows())
    assert status_json["totals"]["accounts"] == 4


def test_open_break_counts_are_the_stores(sharded: SimLake, status_json: dict[str, Any]) -> None:
    stored = sharded.query("SELECT login, kind, count(*) AS n FROM breaks WHERE status = 'open' GROUP BY ALL")
    expected = {(row[0], row[1]): row[2] for row in stored.iter_rows()}
    shown = {(a["login"], kind): n for a in status_json["accounts"] for kind, n in a["open_breaks"].items() if n}
    assert shown == expected
    assert {k for k, _ in expected.items()} >= {
        (5001, "unknown_position"),
        (5002, "slippage"),
        (5003, "snapshot_failed"),
    }
    totals = status_json["totals"]
    assert totals["open_breaks_total"] == stored["n"].sum()
    assert set(totals["open_breaks"]) >= {"slippage", "unknown_position", "snapshot_failed", "missing_position"}
    by_kind = stored.group_by("kind").agg(pl.col("n").sum())
    assert {k: n for k, n in totals["open_breaks"].items() if n} == dict(by_kind.iter_rows())


@dataclass(frozen=True)
class AccountCase:
    description: str
    login: int
    health: str
    breaker_state: str
    # seconds between the account's last good snapshot and the last cycle
    behind_last_cycle_secs: float


ACCOUNT_CASES = [
    AccountCase("a manual trade is a break, not a terminal problem", 5001, "connected", "closed", 0.0),
    AccountCase("a slipped fill is a break, not a terminal problem", 5002, "connected", "closed", 0.0),
    AccountCase("a lost terminal fails, then its breaker opens", 5003, "failed", "open", 50.0),
    AccountCase("a clean account", 5004, "connected", "closed", 0.0),
]


@pytest.mark.parametrize("case", ACCOUNT_CASES, ids=lambda c: c.description)
def test_health_breaker_and_data_age(sharded: SimLake, status_json: dict[str, Any], case: AccountCase) -> None:
    account = next(a for a in status_json["accounts"] if a["login"] == case.login)
    assert account["health"] == case.health, case.description
    assert account["breaker_state"] == case.breaker_state, case.description
    # the clock is pinned 10 s after the last cycle (the helper advances after each one)
    assert account["data_age_secs"] == pytest.approx(10.0 + case.behind_last_cycle_secs), case.description
    equity = sharded.query(
        f"SELECT equity FROM account_snapshots WHERE login = {case.login} AND account_ok "
        "ORDER BY fetched_at DESC LIMIT 1"
    ).item()
    assert account["equity"] == pytest.approx(equity), f"{case.description}: equity of the last good snapshot"
    assert account["currency"] == "USD" and account["drawdown_level"] == "ok", case.description


def test_the_table_shows_every_account_and_the_totals(sharded: SimLake, monkeypatch: pytest.MonkeyPatch) -> None:
    pin_clock(monkeypatch, sharded.sim.now())
    out = invoke("status", "--home", str(sharded.home), "--fleet", str(sharded.fleet_file())).stdout
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ ")}
    for login in ("5001", "5002", "5003", "5004"):
        assert login in rows, f"account {login} missing from:\n{out}"
    assert "failed" in rows["5003"] and "open" in rows["5003"], out
    assert "total" in rows and "3 connected, 1 failed" in rows["total"], out
    assert "test-shard0of2" in out and "test-shard1of2" in out, "two scopes: the scope column and caption"
    assert "\x1b[" not in out, "no colour codes when the output is not a terminal"


def test_a_fleet_account_in_no_cycle_is_missing(sharded: SimLake, monkeypatch: pytest.MonkeyPatch) -> None:
    pin_clock(monkeypatch, sharded.sim.now())
    fleet = sharded.fleet_file(extra_logins=(5999,))
    out = invoke("status", "--json", "--home", str(sharded.home), "--fleet", str(fleet)).stdout
    account = json.loads(out)["accounts"][-1]
    assert account["login"] == 5999 and account["health"] == "missing" and account["data_age_secs"] is None


@pytest.mark.parametrize("migrated", [False, True], ids=["no store at all", "a store that never committed a cycle"])
def test_an_empty_store_says_so_and_exits_1(tmp_path: Path, extension_dir: Path, migrated: bool) -> None:
    if migrated:
        share_extensions(tmp_path, extension_dir)
        Store.open(StoreConfig.under(tmp_path)).close()
    for args in (["status"], ["status", "--json"], ["breaks"]):
        result = runner.invoke(app, [*args, "--home", str(tmp_path)])
        assert result.exit_code == 1, result.output
        assert NO_CYCLES in result.output, result.output
    assert migrated or not (tmp_path / "store").exists(), "a reader never creates the store"
    assert not result.stdout, "nothing on stdout for a script to mistake for data"
