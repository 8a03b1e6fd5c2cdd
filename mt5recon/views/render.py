"""Rich tables for the operator views: red where something failed or is critical, yellow where it
needs a look, plain otherwise (no colour at all when the output is not a terminal)."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from mt5recon.views.status import FleetStatus, open_column

_HEALTH_STYLE = {"connected": "green", "failed": "bold red", "stale": "yellow", "missing": "bold red"}
_BREAKER_STYLE = {"closed": "", "half_open": "yellow", "open": "bold red"}
_DRAWDOWN_STYLE = {"ok": "", "warning": "yellow", "critical": "bold red"}
# kinds that mean the account could not be reconciled at all
_SEVERE_KINDS = {"snapshot_failed", "snapshot_stale", "missing_position"}


def duration(secs: float | None) -> str:
    """12s, 4m05s, 3h02m, 2d04h: short enough for a table cell."""
    if secs is None:
        return "never"
    whole = round(secs)
    sign, whole = ("-", -whole) if whole < 0 else ("", whole)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{sign}{days}d{hours:02d}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m{seconds:02d}s"
    return f"{sign}{seconds}s"


def _money(value: float | None, currency: str | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" + (f" {currency}" if currency else "")


def _utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"


def _header(kind: str) -> str:
    return kind.replace("_", "\n", 1)


def status_table(status: FleetStatus, *, stale_after_secs: float) -> Table:
    """One row per account and a totals row; break columns only for kinds that have open breaks."""
    frame, totals = status.accounts, status.totals()
    shown_kinds = [kind for kind, count in totals["open_breaks"].items() if count]
    several_scopes = status.cycles.height > 1
    scopes = ", ".join(f"{row[0]} @ {_utc(row[1])}" for row in status.cycles.select("scope", "started_at").iter_rows())
    table = Table(
        title=f"fleet status at {_utc(status.at)}",
        caption=f"latest cycle{'s' if several_scopes else ''}: {scopes}",
        show_footer=True,
    )
    oldest, worst = totals["oldest_data_age_secs"], totals["max_drawdown_pct"]
    table.add_column("login", footer="total", justify="right")
    if several_scopes:
        table.add_column("scope", footer=f"{status.cycles.height} scopes")
    table.add_column("health", footer=_counts(totals["health"]))
    table.add_column("breaker", footer=_counts(totals["breakers"]))
    table.add_column("data age", justify="right", footer="-" if oldest is None else f"max {duration(oldest)}")
    equity = "\n".join(_money(value, currency) for currency, value in totals["equity"].items())
    table.add_column("equity", justify="right", footer=equity or "-")
    table.add_column("drawdown", justify="right", footer="-" if worst is None else f"max {worst:.2f}%")
    for kind in shown_kinds:
        table.add_column(_header(kind), justify="right", footer=str(totals["open_breaks"][kind]))
    table.add_column("open\nbreaks", justify="right", footer=str(totals["open_breaks_total"]))
    for row in frame.iter_rows(named=True):
        cells: list[str | Text] = [str(row["login"])]
        if several_scopes:
            cells.append(row["scope"] or "-")
        cells += [
            _health_cell(row),
            Text(row["breaker_state"] or "-", style=_BREAKER_STYLE.get(row["breaker_state"] or "", "")),
            _age_cell(row["data_age_secs"], stale_after_secs),
            _money(row["equity"], row["currency"]),
            _drawdown_cell(row["drawdown_pct"], row["drawdown_level"]),
        ]
        for kind in shown_kinds:
            count = int(row[open_column(kind)])
            style = ("bold red" if kind in _SEVERE_KINDS else "yellow") if count else "dim"
            cells.append(Text(str(count), style=style))
        cells.append(Text(str(row["open_breaks"]), style="yellow" if row["open_breaks"] else "dim"))
        table.add_row(*cells)
    return table


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in counts.items() if n)


def _health_cell(row: dict[str, object]) -> Text:
    health = str(row["health"])
    kind = row["error_kind"]
    label = f"{health} ({kind})" if kind and health != "connected" else health
    return Text(label, style=_HEALTH_STYLE.get(health, ""))


def _age_cell(secs: float | None, stale_after_secs: float) -> Text:
    if secs is None:
        return Text("never", style="bold red")
    return Text(duration(secs), style="yellow" if secs > stale_after_secs else "")


def _drawdown_cell(pct: float | None, level: str | None) -> Text:
    if pct is None:
        return Text("-")
    return Text(f"{pct:.2f}%", style=_DRAWDOWN_STYLE.get(level or "", ""))


def breaks_table(frame: pl.DataFrame, *, title: str) -> Table:
    """One row per break: who, what, how big, how old."""
    table = Table(title=title)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("login", "right"),
        ("kind", "left"),
        ("status", "left"),
        ("cause", "left"),
        ("symbol", "left"),
        ("trade / ticket", "left"),
        ("expected", "right"),
        ("actual", "right"),
        ("pips", "right"),
        ("money", "right"),
        ("age", "right"),
        ("first seen", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for row in frame.iter_rows(named=True):
        reference = row["trade_id"] or (str(row["ticket"]) if row["ticket"] is not None else "-")
        table.add_row(
            str(row["login"]),
            Text(row["kind"], style="bold red" if row["kind"] in _SEVERE_KINDS else ""),
            Text(row["status"], style="yellow" if row["status"] == "open" else "dim"),
            row["cause"] or "-",
            row["symbol"] or "-",
            reference,
            _number(row["expected"]),
            _number(row["actual"]),
            _number(row["size_pips"], 1),
            _money(row["size_money"]),
            duration(row["age_secs"]),
            _utc(row["first_seen_at"]),
        )
    return table


def _number(value: float | None, decimals: int | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.{decimals}f}" if decimals is not None else f"{value:.10g}"


def console() -> Console:
    """stdout; colour only on a terminal, and a table never squeezed below 120 columns."""
    out = Console()
    if not out.is_terminal:
        out = Console(width=max(out.width, 160))
    return out
