"""`mt5recon`: run the pipeline locally, one cycle, record/replay, and query the store read-only."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from mt5recon.settings import Settings

app = typer.Typer(help="MetaTrader 5 reconciliation: broker truth vs. what the bot expects.", no_args_is_help=True)
sim_app = typer.Typer(help="The simulated MT5 terminal fleet.", no_args_is_help=True)
bridge_app = typer.Typer(help="The RPyC bridge in front of a terminal.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(bridge_app, name="bridge")

FleetOption = Annotated[
    Path | None, typer.Option("--fleet", help="fleet TOML (default: $MT5RECON_FLEET or the demo fleet)")
]
HomeOption = Annotated[Path | None, typer.Option("--home", help="data folder (default: $MT5RECON_HOME or ./.mt5recon)")]


def _settings(fleet: Path | None = None, home: Path | None = None) -> Settings:
    overrides: dict[str, object] = {}
    if fleet is not None:
        overrides["fleet"] = fleet
    if home is not None:
        overrides["home"] = home
    return Settings(**overrides)  # type: ignore[arg-type]


@app.command()
def up(fleet: FleetOption = None, home: HomeOption = None) -> None:
    """Run the 10-second reconciliation: local Prefect server + UI on 127.0.0.1:4200, until Ctrl-C."""
    from mt5recon.local import run_local

    try:
        run_local(_settings(fleet, home))
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command()
def cycle(fleet: FleetOption = None, home: HomeOption = None) -> None:
    """Run one reconciliation cycle now (a Prefect server is used if one is configured, else an ephemeral one)."""
    settings = _settings(fleet, home)
    os.environ["MT5RECON_HOME"] = str(settings.resolved_home())
    # without a server Prefect starts an ephemeral one; its first start migrates a fresh database
    os.environ.setdefault("PREFECT_HOME", str(settings.resolved_home() / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if fleet is not None:
        os.environ["MT5RECON_FLEET"] = str(fleet.resolve())
    from flows.reconcile import reconcile_fleet
    from mt5recon.fleet import load_fleet
    from mt5recon.terminal.sim_host import hosted_fleet

    with hosted_fleet(load_fleet(settings.fleet), settings.resolved_home()):
        summary = asyncio.run(reconcile_fleet())
    typer.echo(_format_summary(summary) if isinstance(summary, dict) else f"cycle not run: {summary.message}")


@app.command()
def alerts(
    webhook_url: Annotated[str, typer.Option(help="where notifications are POSTed as JSON {subject, body}")],
    silence_secs: Annotated[int, typer.Option(help="notify when no cycle completed for this long")] = 60,
    home: HomeOption = None,
) -> None:
    """Install the example automations: notify on every break opened/resolved, and when cycles stop.
    Runs against $PREFECT_API_URL, else the local server of `up`."""
    from mt5recon.alerting import install_automations
    from mt5recon.local import prefect_env

    os.environ.setdefault("PREFECT_API_URL", prefect_env(_settings(home=home))["PREFECT_API_URL"])
    installed = install_automations(webhook_url, silence_secs=silence_secs)
    for name, automation_id in installed.automation_ids.items():
        typer.echo(f"automation {name!r}: {automation_id}")
    typer.echo(f"notifications go through block 'custom-webhook/mt5recon-alerts' ({installed.block_id})")


@app.command()
def housekeeping(fleet: FleetOption = None, home: HomeOption = None) -> None:
    """Run store housekeeping now: retention, compaction, snapshot expiry (the `hourly` deployment schedules it)."""
    from datetime import UTC, datetime

    from mt5recon.fleet import load_fleet
    from mt5recon.store.housekeeping import run_housekeeping

    settings = _settings(fleet, home)
    stats = run_housekeeping(settings.store_config(), load_fleet(settings.fleet).housekeeping, now=datetime.now(UTC))
    typer.echo(stats.markdown())


def _format_summary(summary: dict[str, object]) -> str:
    return " ".join(f"{k}={v}" for k, v in summary.items())


@app.command()
def record(
    directory: Annotated[Path, typer.Argument(help="where to write the recording")],
    cycles: Annotated[int, typer.Option(min=1, help="how many snapshots")] = 6,
    every_secs: Annotated[float, typer.Option(min=0.0, help="seconds between snapshots")] = 10.0,
    fleet: FleetOption = None,
    home: HomeOption = None,
) -> None:
    """Record live snapshots (and the bot's expected trades) in the recorded-snapshot format."""
    from mt5recon import recordings

    settings = _settings(fleet, home)
    done = recordings.record(settings, directory, cycles=cycles, every_secs=every_secs, progress=typer.echo)
    typer.echo(f"recorded {done} cycle(s) into {directory}")


@app.command()
def replay(
    directory: Annotated[Path, typer.Argument(help="a recording made by `mt5recon record`")],
    into: Annotated[Path, typer.Option(help="home folder of the store the replay writes (never the live one)")] = Path(
        ".mt5recon-replay"
    ),
    fleet: FleetOption = None,
) -> None:
    """Re-reconcile a recording (e.g. with other tolerances) into a separate store."""
    from mt5recon import recordings

    settings = _settings(fleet, None)
    results = recordings.replay(settings, directory, into=into, progress=typer.echo)
    typer.echo(f"replayed {len(results)} cycle(s) into {into}")


@app.command()
def sql(
    query: Annotated[
        str, typer.Argument(help='a read-only query, e.g. "SELECT * FROM divergences WHERE login = $login"')
    ],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value, bound as $name")] = None,
    out: Annotated[Path | None, typer.Option(help="write .csv or .parquet instead of printing")] = None,
    home: HomeOption = None,
) -> None:
    """Query the store read-only; parameters are bound, never spliced into the SQL."""
    from mt5recon.store.query import run_read_only

    frame = run_read_only(_settings(None, home).store_config(), query, _params(param or []))
    if out is None:
        import polars as pl

        with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=200):
            typer.echo(frame)
    elif out.suffix == ".parquet":
        frame.write_parquet(out)
    else:
        frame.write_csv(out)


def _params(pairs: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected name=value, got {pair!r}")
        parsed[name] = value
    return parsed


@app.command()
def analyst(home: HomeOption = None) -> None:
    """Print the exact commands that open the store read-only (DuckDB CLI and Python/Polars)."""
    from mt5recon.store.lake import analyst_attach_sql

    settings = _settings(None, home)
    config = settings.store_config()
    typer.echo("-- DuckDB CLI 1.5.5 (`mt5recon duckdb` opens it like this), paste:\n" + analyst_attach_sql(config))
    snippet = [
        "# Python / Polars:",
        "from mt5recon.store.lake import StoreConfig, open_reader",
        f"con = open_reader(StoreConfig.under({str(settings.resolved_home())!r}))",
        "con.sql('SELECT * FROM cycles ORDER BY started_at DESC LIMIT 10').pl()",
    ]
    typer.echo("\n" + "\n".join(snippet))


@app.command()
def duckdb(
    home: HomeOption = None,
    command: Annotated[str | None, typer.Option("-c", "--command", help="run this SQL and exit")] = None,
) -> None:
    """Open the DuckDB CLI (same version as the store) with the store attached read-only."""
    import shutil

    from mt5recon.store.lake import analyst_attach_sql

    config = _settings(None, home).store_config()
    beside_python = Path(sys.executable).with_name("duckdb")
    cli = str(beside_python) if beside_python.exists() else shutil.which("duckdb")
    if cli is None:
        typer.echo("the duckdb CLI is missing: install the project, it depends on duckdb-cli", err=True)
        raise typer.Exit(1)
    args = [cli, "-cmd", analyst_attach_sql(config)] + (["-c", command] if command else [])
    os.execv(cli, args)


@sim_app.command("serve")
def sim_serve(fleet: FleetOption = None, home: HomeOption = None) -> None:
    """Host the simulated fleet behind its bridge ports until Ctrl-C (what `up` does for you)."""
    from mt5recon.fleet import load_fleet
    from mt5recon.terminal.sim_host import hosted_fleet

    settings = _settings(fleet, home)
    with hosted_fleet(load_fleet(settings.fleet), settings.resolved_home()) as host:
        typer.echo(f"simulated fleet on {host.describe()}; Ctrl-C stops")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            typer.echo("stopped")


@bridge_app.command("serve")
def bridge_serve(
    host: Annotated[str, typer.Option(help="bind address: loopback or a private tunnel only")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 18812,
    call_timeout: Annotated[float, typer.Option(help="seconds one MT5 call may block before it is cut off")] = 10.0,
) -> None:
    """On the terminal's (Windows/Wine) side: serve the official MetaTrader5 module over RPyC,
    its session kept logged in between cycles; SIGTERM or Ctrl-C shuts it down cleanly."""
    from mt5recon.terminal.bridge import main

    raise typer.Exit(main(["--host", host, "--port", str(port), "--call-timeout", str(call_timeout)]))


if __name__ == "__main__":
    app()
