"""`mt5recon status` on a store written by real cycles of the simulated fleet (sharded, then
checked against the store itself), its JSON, and the answer on an empty store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sim_lake import SimLake, invoke, pin_clock, share_extensions
from typer.testing import CliRunner

from mt5recon.cli import app
from mt5recon.store.lake import Store, StoreConfig
from mt5recon.terminal.breaker import BreakerPolicy
from mt5recon.terminal.sim_host import use_in_process_fleet

runner = CliRunner()
NO_CYCLES = "no cycles yet: run `mt5recon up` or `mt5recon cycle`"


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
