"""Every `mt5recon` subcommand answers --help; `sql` is read-only and binds its parameters."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from builders import frame
from typer.main import get_command
from typer.testing import CliRunner

from mt5recon.cli import app
from mt5recon.store.lake import Store, StoreConfig

runner = CliRunner()


def _command_paths() -> list[list[str]]:
    root = get_command(app)
    paths: list[list[str]] = [[]]
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        paths.append([name])
        for sub in getattr(command, "commands", {}):
            paths.append([name, sub])
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "mt5recon")
def test_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_top_level_help_lists_subcommands() -> None:
    output = runner.invoke(app, ["--help"]).output
    for name in ("up", "cycle", "record", "replay", "sql", "analyst", "sim", "bridge"):
        assert name in output


@pytest.fixture
def store_home(tmp_path: Path) -> Path:
    accounts = frame("accounts", [{"login": 1}, {"login": 2}])
    with Store.open(StoreConfig.under(tmp_path)) as store:
        store.commit_cycle("c1", {"account_snapshots": accounts.select(pl.lit("c1").alias("cycle_id"), pl.all())})
    return tmp_path


def test_sql_binds_parameters(store_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = runner.invoke(
        app,
        [
            "sql",
            "SELECT login FROM account_snapshots WHERE login = $login",
            "--param",
            "login=2",
            "--home",
            str(store_home),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert pl.read_csv(out)["login"].to_list() == [2]


@pytest.mark.parametrize(
    "statement", ["DELETE FROM account_snapshots", "SELECT 1; DROP TABLE cycles", "CREATE TABLE x (a INT)"]
)
def test_sql_refuses_anything_but_one_select(store_home: Path, statement: str) -> None:
    result = runner.invoke(app, ["sql", statement, "--home", str(store_home)])
    assert result.exit_code != 0
    with Store.open(StoreConfig.under(store_home)) as store:
        assert store.connection.execute("SELECT count(*) FROM account_snapshots").fetchone() == (2,)
