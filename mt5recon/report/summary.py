"""The report's tables as markdown, for the daily Prefect artifact, and when that artifact is due.

Pure: no Prefect here. The housekeeping flow runs hourly; it asks the server when it last
published and calls `daily_report_due`, so one report appears per UTC day, whichever run is first.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from mt5recon.report.data import ReportData
from mt5recon.report.period import format_duration, format_time

MARKDOWN_ROWS = 10
_KEY_CHARS = re.compile(r"[^a-z0-9]+")


def daily_report_key(fleet: str) -> str:
    """`daily-report-<fleet>`: one artifact series per fleet on a shared server (Prefect keys are
    lowercase letters, digits and dashes only)."""
    slug = _KEY_CHARS.sub("-", fleet.lower()).strip("-") or "fleet"
    return f"daily-report-{slug}"


def daily_report_due(last_published: datetime | None, now: datetime) -> bool:
    """Due on the first run of each UTC day: never published, or last published on an earlier UTC
    date (which also covers 'older than 24 h'). Anchored to the date, not to a 24-hour age, so the
    report does not creep an hour later each day behind a slightly early hourly run."""
    if last_published is None:
        return True
    return last_published.astimezone(UTC).date() < now.astimezone(UTC).date()


def _cell(value: object) -> str:
    """A markdown table cell: no HTML, no column break, no line break."""
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return str(value)  # logins among them: no thousands separator
    text = html.escape(str(value), quote=False).replace("|", "\\|")
    return " ".join(text.split()) or "–"


def markdown_table(frame: pl.DataFrame, columns: Sequence[tuple[str, str]], *, limit: int = MARKDOWN_ROWS) -> str:
    """(header, column) pairs; the first `limit` rows, and a line saying how many were left out."""
    if frame.height == 0:
        return "_none in this period_\n"
    lines = [
        "| " + " | ".join(title for title, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in frame.head(limit).iter_rows(named=True):
        lines.append("| " + " | ".join(_cell(row[key]) for _, key in columns) + " |")
    if frame.height > limit:
        lines.append(f"\n_showing {limit} of {frame.height:,} rows_")
    return "\n".join(lines) + "\n"


def summary_markdown(data: ReportData) -> str:
    """The report's header and the tables under its charts, as markdown."""
    c = data.cycles
    head = (
        f"### Report: {_cell(data.fleet)}\n\n"
        f"Period {data.period.label()} ({format_duration(int(data.period.seconds))}), "
        f"generated at {format_time(data.generated_at)} UTC. "
    )
    if data.empty:
        store = data.store_cycles
        where = (
            f"The store holds {store.cycles:,} cycles, from {_cell(store.first_at)} to {_cell(store.last_at)} UTC."
            if store.cycles
            else "The store holds no cycles yet."
        )
        return (
            head + f"\n\n**No cycles between {_cell(data.period.since)} and {_cell(data.period.until)} UTC.** {where}\n"
        )
    fills = data.fills
    exact = f"{100 * fills.at_zero / fills.positions:.1f} %" if fills.positions else "–"
    terminals = data.terminals.filter(
        (pl.col("failed_polls") > 0) | (pl.col("disconnected_polls") > 0) | (pl.col("breaker_not_closed") > 0)
    )
    return (
        head + f"**{c.cycles:,} cycles** ({c.accounts:,} accounts; per account and cycle {c.ok:,} ok, "
        f"{c.failed:,} failed, {c.stale:,} stale).\n\n"
        "#### Accounts, deepest drawdown first\n\n"
        "Drawdown from the running equity peak (deposits and withdrawals not taken out); levels from the "
        "fleet's guards; guard alerts raised in the period.\n\n"
        + markdown_table(
            data.accounts,
            [
                ("account", "login"),
                ("ccy", "currency"),
                ("last equity", "last_equity"),
                ("peak", "peak_equity"),
                ("deepest drawdown %", "max_drawdown_pct"),
                ("at (UTC)", "worst_at"),
                ("warning %", "warning_pct"),
                ("critical %", "critical_pct"),
                ("warnings", "warnings_raised"),
                ("criticals", "criticals_raised"),
            ],
        )
        + "\n#### Slippage cost by symbol\n\nSlippage breaks first seen in the period (beyond the symbol's "
        f"tolerance), money in the account's currency. Fill distance: {fills.positions:,} matched positions, "
        f"{fills.at_zero:,} ({exact}) at exactly the bot's price, median {_cell(fills.median_pips)} pips, "
        f"95th percentile {_cell(fills.p95_pips)} pips.\n\n"
        + markdown_table(
            data.slippage,
            [
                ("symbol", "symbol"),
                ("ccy", "currency"),
                ("slipped", "slipped"),
                ("adverse money", "adverse_money"),
                ("favourable money", "favourable_money"),
                ("net cost", "net_cost"),
                ("avg pips", "avg_pips"),
            ],
        )
        + "\n#### Breaks by kind\n\n"
        + markdown_table(
            data.break_kinds,
            [
                ("kind", "kind"),
                ("opened", "opened"),
                ("resolved", "resolved"),
                ("dismissed", "dismissed"),
                ("open at the end", "open_at_end"),
            ],
        )
        + "\n#### Terminals with a failed call, a lost server connection or a breaker not closed\n\n"
        + markdown_table(
            terminals,
            [
                ("account", "login"),
                ("polls", "polls"),
                ("failed", "failed_polls"),
                ("disconnected", "disconnected_polls"),
                ("breaker not closed", "breaker_not_closed"),
                ("breaker now", "breaker_now"),
                ("errors seen", "error_kinds"),
            ],
        )
        + "\nThe full report with charts: `mt5recon report --since 24h`.\n"
    )
