"""`mt5recon`: run the pipeline locally, one cycle, record/replay, and query the store read-only."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from mt5recon.cli_options import FleetOption, HomeOption, settings_for

app = typer.Typer(help="MetaTrader 5 reconciliation: broker truth vs. what the bot expects.", no_args_is_help=True)
sim_app = typer.Typer(help="The simulated MT5 terminal fleet.", no_args_is_help=True)
bridge_app = typer.Typer(help="The RPyC bridge in front of a terminal.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(bridge_app, name="bridge")


@contextmanager
def _bridge_ports_free() -> Iterator[None]:
    """A simulated fleet's bridge port held by another program is the user's to fix: say which, exit 2."""
    from mt5recon.terminal.sim_host import BridgePortBusy

    try:
        yield
    except BridgePortBusy as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@app.command()
def up(fleet: FleetOption = None, home: HomeOption = None) -> None:
    """Run the 10-second reconciliation: local Prefect server + UI on 127.0.0.1:4200, until Ctrl-C."""
    from mt5recon.local import run_local

    try:
        with _bridge_ports_free():
            run_local(settings_for(fleet, home))
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command()
def cycle(fleet: FleetOption = None, home: HomeOption = None) -> None:
    """Run one reconciliation cycle now (a Prefect server is used if one is configured, else an ephemeral one)."""
    settings = settings_for(fleet, home)
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

    with _bridge_ports_free(), hosted_fleet(load_fleet(settings.fleet), settings.resolved_home()):
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

    os.environ.setdefault("PREFECT_API_URL", prefect_env(settings_for(home=home))["PREFECT_API_URL"])
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

    settings = settings_for(fleet, home)
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

    settings = settings_for(fleet, home)
    with _bridge_ports_free(), recordings.progress_bar("recording") as progress:
        done = recordings.record(
            settings,
            directory,
            cycles=cycles,
            every_secs=every_secs,
            progress=progress,
            note=lambda message: typer.echo(message, err=True),
        )
    typer.echo(f"recorded {done} cycle(s) into {directory}")


@app.command()
def replay(
    directory: Annotated[Path, typer.Argument(help="a recording made by `mt5recon record`")],
    into: Annotated[
        Path | None,
        typer.Option(
            help="home folder of the store the replay writes, never the live one (default .mt5recon-replay); "
            "with --tolerances: keep both stores there (baseline/, what-if/) instead of removing them"
        ),
    ] = None,
    tolerances: Annotated[
        Path | None,
        typer.Option(
            help="what-if: a TOML file with a fleet's [tolerances] section (and optionally [breaks]); "
            "the recording is replayed with the fleet's and with these, and the breaks compared",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the result as JSON (progress on stderr)")] = False,
    fleet: FleetOption = None,
) -> None:
    """Re-reconcile a recording into a separate store; with --tolerances, show how the breaks would
    have differed under other tolerances (both replays in throwaway stores)."""
    import json

    from mt5recon import recordings, whatif

    settings = settings_for(fleet, None)
    try:
        overrides = recordings.load_tolerance_file(tolerances) if tolerances is not None else None
    except recordings.ToleranceFileError as error:
        typer.echo(f"error: --tolerances {error.path}: {len(error.problems)} problem(s)", err=True)
        for problem in error.problems:
            typer.echo(f"  {problem}", err=True)
        typer.echo("  the file holds a fleet file's [tolerances.default] / [tolerances.symbols.*] sections", err=True)
        raise typer.Exit(2) from error
    try:
        if overrides is None:
            target = into or Path(".mt5recon-replay")
            with recordings.progress_bar("replaying", stderr=json_output) as progress:
                results = recordings.replay(settings, directory, into=target, progress=progress)
            new = sum(not r.duplicate for r in results)
            if json_output:
                typer.echo(json.dumps({"cycles": len(results), "new": new, "into": str(target)}))
            else:
                typer.echo(
                    f"replayed {len(results)} cycle(s) into {target} ({new} new, {len(results) - new} already there)"
                )
            return
        with recordings.progress_bar("what-if", stderr=json_output) as progress:
            run = recordings.what_if(settings, directory, overrides, into=into, progress=progress)
    except (recordings.ReplayTargetError, FileNotFoundError) as error:  # the target, or not a recording
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    diff = whatif.diff_breaks(run.baseline_breaks, run.what_if_breaks)
    changes = whatif.tolerance_changes(
        run.baseline_fleet.tolerances, run.what_if_fleet.tolerances, run.baseline_fleet.breaks, run.what_if_fleet.breaks
    )
    kept = f"stores kept in {run.kept_in}" if run.kept_in is not None else "throwaway stores removed"
    done = f"replayed {run.cycles} cycle(s) of {directory} twice (fleet's tolerances, what-if); {kept}"
    if json_output:
        report = {"recording": str(directory), "cycles": run.cycles, "tolerance_changes": changes, **diff.as_dict()}
        typer.echo(json.dumps(report, indent=2, default=str))
        typer.echo(done, err=True)
        return
    typer.echo(whatif.format_text(diff, changes))
    typer.echo(done)
    typer.echo(f"summary: {diff.summary()}")


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

    frame = run_read_only(settings_for(None, home).store_config(), query, _params(param or []))
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

    settings = settings_for(None, home)
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

    config = settings_for(None, home).store_config()
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

    settings = settings_for(fleet, home)
    with _bridge_ports_free(), hosted_fleet(load_fleet(settings.fleet), settings.resolved_home()) as host:
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


def _register_views() -> None:
    """Operator views live in their own modules (heavy imports stay inside their commands)."""
    from mt5recon.cli_doctor import register as register_doctor
    from mt5recon.cli_report import register as register_report
    from mt5recon.cli_views import register as register_views

    register_views(app)
    register_report(app)
    register_doctor(app)


_register_views()

if __name__ == "__main__":
    app()
