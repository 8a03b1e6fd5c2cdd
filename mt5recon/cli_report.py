"""`mt5recon report`: one self-contained HTML report with charts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mt5recon.cli_options import FleetOption, HomeOption


def report(
    since: Annotated[
        str, typer.Option(help="start: a duration back from now (90m, 24h, 7d, 2w) or an ISO time (UTC if no zone)")
    ] = "24h",
    until: Annotated[str | None, typer.Option(help="end, same forms as --since (default: now)")] = None,
    out: Annotated[Path, typer.Option(help="the HTML file to write")] = Path("report.html"),
    accounts: Annotated[
        int, typer.Option(min=1, max=100, help="chart this many accounts, those with the deepest drawdown")
    ] = 6,
    fleet: FleetOption = None,
    home: HomeOption = None,
) -> None:
    """Write one HTML file (opens offline: inline CSS and SVG, no script) with equity and drawdown per
    account, slippage, breaks opened/resolved and terminal health over the period, each chart with
    the table of its numbers."""
    from datetime import UTC, datetime

    from mt5recon.cli_options import settings_for
    from mt5recon.fleet import load_fleet
    from mt5recon.report.data import read_report
    from mt5recon.report.html import render_report
    from mt5recon.report.period import Period, format_time, parse_when

    now = datetime.now(UTC)
    try:
        period = Period(parse_when(since, now), parse_when(until, now) if until else now)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    settings = settings_for(fleet, home)
    try:
        data = read_report(
            settings.store_config(), load_fleet(settings.fleet), period, worst_accounts=accounts, generated_at=now
        )
    except FileNotFoundError:
        typer.echo(f"no store under {settings.resolved_home()}: run `mt5recon cycle` or `mt5recon up` first", err=True)
        raise typer.Exit(1) from None
    page = render_report(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page.html, encoding="utf-8")
    size = out.stat().st_size
    what = (
        f"no cycles between {format_time(period.since)} and {format_time(period.until)} UTC"
        if data.empty
        else f"{page.charts} charts, {data.cycles.cycles:,} cycles, {period.label()}"
    )
    typer.echo(f"wrote {out} ({size:,} bytes): {what}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `mt5recon` app."""
    app.command("report")(report)
