"""The report page: header, four chart sections each with the table of its numbers, inline CSS.

The page carries a Content-Security-Policy that allows nothing but its own inline styles: it
fetches nothing, runs nothing, and a hostile string from a broker (a symbol, a comment) stays text.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from mt5recon.report import svg
from mt5recon.report.data import ReportData
from mt5recon.report.period import format_duration, format_time
from mt5recon.report.svg import CRITICAL, PALETTE, WARNING, Bars, Box, Level, Mark, Series, esc

TABLE_ROWS = 20
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif;color:#222;
margin:0 auto;max-width:1000px;padding:16px 20px 40px;background:#fff}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:32px 0 6px;border-bottom:2px solid #0072B2}
h3{font-size:15px;margin:18px 0 4px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}
dl.meta dt{color:#666}dl.meta dd{margin:0}
nav a{margin-right:14px;color:#0072B2}
p.what{color:#444;margin:4px 0 10px;max-width:960px}p.note{color:#8a5a00;margin:4px 0}
svg.chart{display:block;max-width:100%;height:auto;margin:6px 0}
svg.chart text{font-size:11px;fill:#333}svg.chart .axis-label{fill:#666}
svg.chart .no-data{font-size:14px;fill:#999}svg.chart .level-label{font-weight:600}
svg.chart .off-scale{fill:#8a5a00;font-weight:400}
.accounts{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:6px 18px}
figure{margin:8px 0}figcaption{font-weight:600;font-size:13px}
table{border-collapse:collapse;margin:6px 0 4px;font-size:12.5px}
div.table{overflow-x:auto}
th,td{padding:3px 8px;border-bottom:1px solid #e6e6e6;text-align:left;vertical-align:top}td{white-space:nowrap}
th{background:#f3f6f9;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
p.cut{color:#666;font-size:12px;margin:0 0 8px}
section.empty{margin:40px 0;padding:24px;border:1px dashed #bbb;background:#fafafa}
footer{margin-top:36px;color:#888;font-size:12px}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True)
class RenderedReport:
    """The page and how many charts it draws."""

    html: str
    charts: int


@dataclass(frozen=True)
class Column:
    """A table column: header, the frame's column, how its values read, numeric (right-aligned)."""

    title: str
    key: str
    show: Callable[[Any], str] = str
    numeric: bool = False


def _num(decimals: int) -> Callable[[Any], str]:
    def show(value: Any) -> str:
        return "–" if value is None else f"{float(value):,.{decimals}f}"

    return show


def _int(value: Any) -> str:
    return "–" if value is None else f"{int(value):,}"


def _text(value: object) -> str:
    return "–" if value is None or value == "" else str(value)


def _when(value: object) -> str:
    return format_time(value) if isinstance(value, datetime) else _text(value)


def table(frame: pl.DataFrame, columns: Sequence[Column], *, limit: int = TABLE_ROWS, order: str = "") -> str:
    """An HTML table of the frame's first `limit` rows, with a note when rows were cut."""
    head = "".join(f"<th{' class=n' if c.numeric else ''}>{esc(c.title)}</th>" for c in columns)
    body = []
    for row in frame.head(limit).iter_rows(named=True):
        cells = "".join(f"<td{' class=n' if c.numeric else ''}>{esc(c.show(row[c.key]))}</td>" for c in columns)
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(columns)}">none in this period</td></tr>')
    cut = (
        f'<p class="cut">showing {limit:,} of {frame.height:,} rows{", " + esc(order) if order else ""}</p>'
        if frame.height > limit
        else ""
    )
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>{cut}'


def _epoch(value: datetime) -> float:
    return value.timestamp()


def _x_range(data: ReportData) -> tuple[float, float]:
    return _epoch(data.period.since), _epoch(data.period.until)


def _max_gap(times: Sequence[float], bucket_secs: int) -> float:
    """How far apart two points may be and still be joined: a missing bucket (failed snapshots, no
    cycle) is a gap in the line; cycles sparser than the buckets (a slower schedule) are not."""
    spacing = sorted(b - a for a, b in itertools.pairwise(times))
    return 1.5 * max(float(bucket_secs), spacing[len(spacing) // 2] if spacing else 0.0)


def _account_levels(row: dict[str, object]) -> list[Level]:
    levels = []
    for name, key, color in (("warning", "warning_pct", WARNING), ("critical", "critical_pct", CRITICAL)):
        value = row.get(key)
        if isinstance(value, int | float):
            levels.append(Level(name, float(value), color, " %"))
    return levels


def _account_figure(data: ReportData, login: int) -> tuple[str, int]:
    row = data.accounts.filter(pl.col("login") == login).row(0, named=True)
    points = data.equity.filter(pl.col("login") == login)
    times = [_epoch(t) for t in points["at"].to_list()]
    gap = _max_gap(times, data.equity_bucket_secs)
    equity = Series("equity", list(zip(times, points["equity"].to_list(), strict=True)), PALETTE[0], gap)
    drawdown = Series(
        "drawdown %",
        list(zip(times, points["drawdown_pct"].fill_null(0.0).to_list(), strict=True)),
        PALETTE[1],
        gap,
    )
    alerts = data.alerts.filter((pl.col("login") == login) & (pl.col("event") == "raised"))
    marks = [
        Mark(
            _epoch(a["at"]),
            float(a["value"] or 0.0),
            f"guard {a['guard']} raised at {format_time(a['at'])}: {float(a['value'] or 0):.2f} % "
            f"(level {float(a['threshold'] or 0):g} %)",
            CRITICAL if a["guard"] == "drawdown_critical" else WARNING,
        )
        for a in alerts.iter_rows(named=True)
    ]
    currency = _text(row.get("currency"))
    deepest = row.get("max_drawdown_pct")
    caption = f"Account {login} ({currency}): deepest drawdown {_num(2)(deepest)} % at {_when(row.get('worst_at'))}"
    box = Box(470, 170, left=70, top=28, bottom=34)
    equity_svg = svg.line_chart(
        f"equity-{login}",
        f"Equity of account {login}",
        [equity],
        x_range=_x_range(data),
        y_label=f"equity {currency}",
        box=box,
    )
    drawdown_svg = svg.line_chart(
        f"drawdown-{login}",
        f"Drawdown of account {login}",
        [drawdown],
        x_range=_x_range(data),
        y_label="drawdown %",
        levels=_account_levels(row),
        marks=marks,
        y_include=(0.0,),
        box=box,
    )
    return f"<figure><figcaption>{esc(caption)}</figcaption>{equity_svg}{drawdown_svg}</figure>", 2


def _equity_section(data: ReportData) -> tuple[str, int]:
    bucket = format_duration(data.equity_bucket_secs)
    total = data.accounts.height
    shown = len(data.charted_logins)
    figures = [_account_figure(data, login) for login in data.charted_logins]
    if total == 0:
        choice = "No account snapshot succeeded in the period: nothing to chart."
    elif total > shown:
        choice = f"The {shown} accounts with the deepest drawdown are charted, of {total} with snapshots in the period."
    else:
        choice = f"All {total} accounts with snapshots in the period are charted."
    what = (
        "Drawdown: how far the equity is below its running peak (the highest equity stored for the account up to "
        "that moment, history before the period included), in % of that peak. Each point is one "
        f"{esc(bucket)} bucket: its lowest equity and its deepest drawdown. Deposits and withdrawals are not taken "
        "out here (the store keeps no deal history); the drawdown guard does take them out, so its own alerts are "
        "drawn as ▲ at the value the guard measured. Dashed lines: the account's warning and critical levels "
        "from the fleet's <code>[guards.drawdown]</code> (per-account overrides applied)."
    )
    columns = [
        Column("account", "login", _text),
        Column("ccy", "currency", _text),
        Column("snapshots", "snapshots", _int, True),
        Column("first equity", "first_equity", _num(2), True),
        Column("last equity", "last_equity", _num(2), True),
        Column("lowest equity", "min_equity", _num(2), True),
        Column("peak", "peak_equity", _num(2), True),
        Column("deepest drawdown %", "max_drawdown_pct", _num(2), True),
        Column("at (UTC)", "worst_at", _when),
        Column("warning %", "warning_pct", _num(1), True),
        Column("critical %", "critical_pct", _num(1), True),
        Column("guard warnings", "warnings_raised", _int, True),
        Column("guard criticals", "criticals_raised", _int, True),
    ]
    body = (
        f'<section id="equity"><h2>1. Equity and drawdown per account</h2><p class="what">{what}</p>'
        f'<p class="note">{esc(choice)}</p><div class="accounts">{"".join(f for f, _ in figures)}</div>'
        f"<h3>Accounts, deepest drawdown first</h3>"
        f"{table(data.accounts, columns, order='deepest drawdown first')}</section>"
    )
    return body, sum(n for _, n in figures)


def _bin_name(lo: float, hi: float | None) -> str:
    return f"≥ {lo:g}" if hi is None else f"{lo:g} – {hi:g}"


def _fills_part(data: ReportData) -> str:
    fills = data.fills
    bins = [(float(r["lo"]), r["hi"], int(r["positions"])) for r in fills.histogram.iter_rows(named=True)]
    chart = svg.histogram(
        "fill-distance",
        "Distance of fills from the bot's price",
        bins,
        x_label="|broker open price − bot's expected price|, pips",
        y_label="positions",
    )
    share = f"{100 * fills.at_zero / fills.positions:.1f} %" if fills.positions else "–"
    stages = ", ".join(f"{k}: {v:,}" for k, v in fills.by_stage.items()) or "none"
    what = (
        "Every broker position first seen in the period and matched to a bot trade: the distance between the "
        "price it opened at and the price the bot expected, in pips of the symbol (unsigned: the store keeps the "
        "distance of each match, <code>match_price_pips</code>; the direction is known only for breaks, below). "
        "Netting accounts are left out: their position price is an average over fills, not one fill."
    )
    summary = (
        f"{fills.positions:,} positions (matched by {esc(stages)}); {fills.at_zero:,} ({share}) at exactly the "
        f"bot's price; median {_num(2)(fills.median_pips)} pips, 95th percentile {_num(2)(fills.p95_pips)} pips; "
        f"{fills.netting_excluded:,} netting rows left out."
    )
    frame = fills.histogram.with_columns(
        pl.struct("lo", "hi").map_elements(lambda r: _bin_name(r["lo"], r["hi"]), return_dtype=pl.String).alias("bin"),
        (100 * pl.col("positions") / max(1, fills.positions)).alias("share"),
    )
    columns = [Column("pips", "bin"), Column("positions", "positions", _int, True), Column("%", "share", _num(1), True)]
    filled = frame.filter(pl.col("positions") > 0)
    return (
        f'<h3>2a. Distribution: how far fills were from the bot\'s price</h3><p class="what">{what}</p>{chart}'
        f'<p class="note">{summary}</p>{table(filled, columns, limit=max(TABLE_ROWS, filled.height))}'
        '<p class="cut">bins without positions are left out of the table</p>'
    )


def _slippage_part(data: ReportData) -> str:
    frame = data.slippage
    currencies = frame["currency"].unique().drop_nulls().to_list()
    several = len(currencies) > 1
    shown = frame.head(TABLE_ROWS)
    categories = [
        f"{r['symbol']} ({_text(r['currency'])})" if several else _text(r["symbol"])
        for r in shown.iter_rows(named=True)
    ]
    unit = "account currency" if several else (currencies[0] if currencies else "account currency")
    chart = svg.bar_chart(
        "slippage-cost",
        "Slippage cost by symbol",
        categories,
        [
            Bars("adverse (cost)", shown["adverse_money"].fill_null(0.0).to_list(), PALETTE[1]),
            Bars("favourable", shown["favourable_money"].fill_null(0.0).to_list(), PALETTE[2]),
        ],
        y_label=f"money, {unit}",
    )
    what = (
        "Slippage breaks first seen in the period: fills further from the bot's expected price than the symbol's "
        "<code>slippage_pips</code> tolerance (within it a fill is not a break and is not counted here). Adverse: "
        "paid more on a buy or got less on a sell; favourable hangs below zero. Money is the break's "
        "<code>size_money</code> in the account's currency (from the terminal's tick value; a break without it is "
        "counted under 'no money')."
        + (" Accounts in different currencies are shown apart and never added up." if several else "")
    )
    columns = [
        Column("symbol", "symbol", _text),
        Column("ccy", "currency", _text),
        Column("slipped trades", "slipped", _int, True),
        Column("adverse", "adverse", _int, True),
        Column("favourable", "favourable", _int, True),
        Column("adverse money", "adverse_money", _num(2), True),
        Column("favourable money", "favourable_money", _num(2), True),
        Column("net cost", "net_cost", _num(2), True),
        Column("avg pips", "avg_pips", _num(1), True),
        Column("worst pips", "worst_pips", _num(1), True),
        Column("no money", "without_money", _int, True),
    ]
    return (
        f'<h3>2b. Slippage cost by symbol</h3><p class="what">{what}</p>{chart}'
        f"{table(frame, columns, order='highest net cost first')}"
    )


def _breaks_section(data: ReportData) -> str:
    frame = data.breaks
    starts = [_epoch(data.period.since) + b * data.bucket_secs for b in frame["bucket"].to_list()]
    chart = svg.time_columns(
        "breaks-over-time",
        "Breaks opened and resolved over time",
        [
            Bars("opened", [float(v) for v in frame["opened"].to_list()], PALETTE[1]),
            Bars("resolved", [float(v) for v in frame["resolved"].to_list()], PALETTE[2]),
        ],
        starts=starts,
        bucket_secs=data.bucket_secs,
        x_range=_x_range(data),
        y_label="breaks",
    )
    busy = frame.filter((pl.col("opened") > 0) | (pl.col("resolved") > 0)).with_columns(_bucket_start(data))
    what = (
        f"From the audit log (<code>break_events</code>), per {esc(format_duration(data.bucket_secs))}: breaks "
        "opened (re-opened ones included) and resolved. Pending sightings that were never confirmed are not "
        "counted as opened; they are 'dismissed' in the table by kind."
    )
    bucket_columns = [
        Column("bucket start (UTC)", "start", _when),
        Column("opened", "opened", _int, True),
        Column("resolved", "resolved", _int, True),
    ]
    kind_columns = [
        Column("kind", "kind", _text),
        Column("opened", "opened", _int, True),
        Column("resolved", "resolved", _int, True),
        Column("dismissed", "dismissed", _int, True),
        Column("open at the end", "open_at_end", _int, True),
    ]
    return (
        f'<section id="breaks"><h2>3. Breaks opened and resolved</h2><p class="what">{what}</p>{chart}'
        f"<h3>Buckets with breaks opened or resolved</h3>"
        f"{table(busy, bucket_columns, order='earliest first')}"
        f"<h3>By kind</h3>{table(data.break_kinds, kind_columns, order='most opened first')}</section>"
    )


def _bucket_start(data: ReportData) -> pl.Expr:
    """When each row's bucket starts (the tables under the time charts)."""
    return (pl.lit(data.period.since) + pl.duration(seconds=pl.col("bucket") * data.bucket_secs)).alias("start")


def _health_section(data: ReportData) -> str:
    frame = data.health
    times = [_epoch(t) for t in frame["at"].to_list()]
    named = (
        ("terminals polled", "terminals", "#999999"),
        ("with a failed call", "failing", PALETTE[1]),
        ("disconnected from server", "disconnected", PALETTE[3]),
        ("breaker open", "breaker_open", CRITICAL),
        ("breaker half-open", "breaker_half_open", PALETTE[4]),
    )
    gap = _max_gap(times, data.bucket_secs)
    series = [
        Series(name, list(zip(times, [float(v) for v in frame[key].to_list()], strict=True)), color, gap)
        for name, key, color in named
    ]
    polled = int(frame["polls"].sum()) if frame.height else 0
    chart = svg.line_chart(
        "terminal-health",
        "Terminal health over time",
        series if polled else [],
        x_range=_x_range(data),
        y_label="terminals",
        y_include=(0.0,),
        integer=True,
    )
    what = (
        f"From <code>terminal_health</code> (one row per terminal and cycle), per "
        f"{esc(format_duration(data.bucket_secs))}: how many terminals were polled, and how many of them had a "
        "failed snapshot call, reported no connection to their trade server, or had their circuit breaker open "
        "or half-open (an open breaker is not called until its cooldown ends). A stretch without cycles is a "
        "gap in the lines."
    )
    trouble = frame.filter(
        (pl.col("failing") > 0)
        | (pl.col("disconnected") > 0)
        | (pl.col("breaker_open") > 0)
        | (pl.col("breaker_half_open") > 0)
    ).with_columns(_bucket_start(data))
    bucket_columns = [
        Column("bucket start (UTC)", "start", _when),
        Column("polls", "polls", _int, True),
        Column("failed polls", "failed_polls", _int, True),
        Column("terminals", "terminals", _int, True),
        Column("with a failed call", "failing", _int, True),
        Column("disconnected", "disconnected", _int, True),
        Column("breaker open", "breaker_open", _int, True),
        Column("half-open", "breaker_half_open", _int, True),
    ]
    terminal_columns = [
        Column("account", "login", _text),
        Column("polls", "polls", _int, True),
        Column("failed", "failed_polls", _int, True),
        Column("disconnected", "disconnected_polls", _int, True),
        Column("breaker not closed", "breaker_not_closed", _int, True),
        Column("breaker now", "breaker_now", _text),
        Column("errors seen", "error_kinds", _text),
        Column("p95 calls ms", "p95_calls_ms", _num(1), True),
        Column("max data age s", "max_data_age_secs", _num(1), True),
    ]
    return (
        f'<section id="health"><h2>4. Terminal health</h2><p class="what">{what}</p>{chart}'
        f"<h3>Buckets with a troubled terminal</h3>{table(trouble, bucket_columns, order='earliest first')}"
        f"<h3>Per terminal, most failed calls first</h3>"
        f"{table(data.terminals, terminal_columns, order='most failed calls first')}</section>"
    )


def _header(data: ReportData, *, nav: bool = True) -> str:
    c = data.cycles
    span = f" (first {format_time(c.first_at)}, last {format_time(c.last_at)})" if c.first_at and c.last_at else ""
    rows = [
        ("Fleet", data.fleet),
        ("Period", f"{data.period.label()} ({format_duration(int(data.period.seconds))})"),
        ("Generated at", f"{format_time(data.generated_at)} UTC"),
        ("Cycles in period", f"{c.cycles:,}{span}"),
        (
            "Accounts",
            f"{c.accounts:,} accounts; per account and cycle: {c.ok:,} ok, {c.failed:,} failed, {c.stale:,} stale",
        ),
    ]
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    links = (
        '<nav><a href="#equity">equity &amp; drawdown</a><a href="#slippage">slippage</a>'
        '<a href="#breaks">breaks</a><a href="#health">terminal health</a></nav>'
    )
    title = f"<h1>mt5-recon report: {esc(data.fleet)}</h1>"
    return f'<header>{title}<dl class="meta">{items}</dl>{links if nav else ""}</header>'


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>{body}"
        "<footer>Generated by <code>mt5recon report</code> from the store (read-only). Times are UTC. "
        "Hover a bar or a ▲ for its numbers.</footer></body></html>\n"
    )


def _empty(data: ReportData) -> str:
    store = data.store_cycles
    where = (
        f"The store holds {store.cycles:,} cycles, from {format_time(store.first_at)} to "
        f"{format_time(store.last_at)} UTC."
        if store.cycles and store.first_at and store.last_at
        else "The store holds no cycles yet: run `mt5recon cycle` or `mt5recon up` first."
    )
    headline = f"No cycles between {format_time(data.period.since)} and {format_time(data.period.until)} UTC"
    return (
        f'{_header(data, nav=False)}<section class="empty" id="no-cycles"><h2>{esc(headline)}</h2>'
        f"<p>{esc(where)}</p><p>Choose another period with <code>--since</code> / <code>--until</code>.</p></section>"
    )


def render_report(data: ReportData) -> RenderedReport:
    """The whole page for `data`; a period without cycles is a page that says so, not an error."""
    title = f"mt5-recon report: {data.fleet}, {data.period.label()}"
    if data.empty:
        return RenderedReport(_page(title, _empty(data)), 0)
    equity, account_charts = _equity_section(data)
    slippage = '<section id="slippage"><h2>2. Slippage</h2>' + _fills_part(data) + _slippage_part(data) + "</section>"
    body = _header(data) + equity + slippage + _breaks_section(data) + _health_section(data)
    return RenderedReport(_page(title, body), account_charts + 4)
