"""`mt5recon doctor`: what is wrong with this installation, and how to fix it."""

from __future__ import annotations

from typing import Annotated

import typer

from mt5recon.cli_options import FleetOption, HomeOption


def doctor(
    fleet: FleetOption = None,
    home: HomeOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the checks as JSON")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="seconds each terminal may take to connect and answer")] = 5.0,
    lock_wait: Annotated[
        float, typer.Option(min=0.0, help="seconds the store's writer lock may stay held before it counts as stuck")
    ] = 5.0,
) -> None:
    """Check the config, each terminal's login, the store and Prefect: OK / WARN / FAIL, each
    with how to fix it. Exit code 1 when any check FAILs."""
    from mt5recon.doctor import exit_code, format_json, format_text, run_doctor

    results = run_doctor(fleet=fleet, home=home, terminal_timeout_secs=timeout, lock_wait_secs=lock_wait)
    typer.echo(format_json(results) if json_output else format_text(results))
    raise typer.Exit(exit_code(results))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `mt5recon` app."""
    app.command("doctor")(doctor)
