"""`mt5recon status` and `mt5recon breaks`: the fleet now, and its open breaks.

Both read the store read-only (never blocking the pipeline); polars, DuckDB and rich are imported
inside the commands, so `mt5recon --help` stays fast.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer

from mt5recon.cli_options import FleetOption, HomeOption, JsonOption


def status(fleet: FleetOption = None, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """One screen of the fleet now: per account its terminal health, breaker, data age (since its
    last good snapshot), equity, drawdown and open breaks by kind, plus totals."""
    from mt5recon import views
    from mt5recon.cli_options import settings_for
    from mt5recon.fleet import load_fleet
    from mt5recon.views.source import reader
    from mt5recon.views.status import read_status

    settings = settings_for(fleet, home)
    fleet_config = load_fleet(settings.fleet)
    try:
        with reader(settings.store_config()) as con:
            fleet_status = read_status(
                con, now=views.utc_now(), fleet_logins=[account.login for account in fleet_config.accounts]
            )
    except views.NoCycles as empty:
        typer.echo(str(empty), err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(fleet_status.as_dict(), indent=2))
        return
    from mt5recon.views.render import console, status_table

    console().print(status_table(fleet_status, stale_after_secs=fleet_config.breaks.stale_after_secs))


def breaks(
    show_all: Annotated[bool, typer.Option("--all", help="include resolved, dismissed and pending breaks")] = False,
    account: Annotated[
        list[int] | None, typer.Option("--account", metavar="LOGIN", help="only this login (repeatable)")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            metavar="KIND",
            help="only this break kind, e.g. slippage, unknown_position (repeatable; a wrong one lists them)",
        ),
    ] = None,
    symbol: Annotated[
        str | None,
        typer.Option("--symbol", metavar="SYM", help="only this symbol or the same instrument (EURUSD finds EURUSD.m)"),
    ] = None,
    older_than: Annotated[
        float | None, typer.Option("--older-than", min=0.0, help="only breaks older than SECS", metavar="SECS")
    ] = None,
    newer_than: Annotated[
        float | None, typer.Option("--newer-than", min=0.0, help="only breaks newer than SECS", metavar="SECS")
    ] = None,
    sort: Annotated[
        Literal["size", "age"], typer.Option("--sort", help="size: |size_money| first; age: oldest first")
    ] = "age",
    limit: Annotated[int | None, typer.Option("--limit", min=1, metavar="N", help="at most N breaks")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """The open breaks (all of them with --all), filtered and sorted; filters are bound parameters."""
    from mt5recon import views
    from mt5recon.cli_options import settings_for
    from mt5recon.views.breaks import BreakFilters, as_records, read_breaks
    from mt5recon.views.source import reader

    try:
        filters = BreakFilters(
            include_resolved=show_all,
            logins=tuple(account or ()),
            kinds=tuple(kind or ()),
            symbol=symbol,
            older_than_secs=older_than,
            newer_than_secs=newer_than,
            sort=sort,
            limit=limit,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    try:
        with reader(settings_for(None, home).store_config()) as con:
            frame = read_breaks(con, filters, now=views.utc_now())
    except views.NoCycles as empty:
        typer.echo(str(empty), err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(as_records(frame), indent=2))
        return
    if frame.height == 0:
        typer.echo("no breaks match" if show_all else "no open breaks match")
        return
    from mt5recon.views.render import breaks_table, console

    which = "breaks" if show_all else "open breaks"
    console().print(breaks_table(frame, title=f"{frame.height} {which}, by {sort}"))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `mt5recon` app."""
    app.command("status")(status)
    app.command("breaks")(breaks)
