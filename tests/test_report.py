"""`mt5recon report` on a store written by real cycles of the simulated fleet (drawdowns through
the alert levels, slippage both ways, a terminal cut off until its breaker opens, stops hit):
each chart's numbers against the store, the tables, the empty period, hostile strings, and the
page drawn by headless Chromium (screenshot not blank, no console error, nothing fetched)."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from report_cycles import StoreCycles, fleet_toml
from typer.testing import CliRunner

from mt5recon.cli import app
from mt5recon.fleet import load_fleet
from mt5recon.report.data import histogram_bins, read_report
from mt5recon.report.period import Period, parse_when
from mt5recon.report.summary import summary_markdown
from mt5recon.store.lake import Store, StoreConfig, open_reader
from mt5recon.store.samples import sample_frame
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

runner = CliRunner()
FLEET = "reporttest"
CHARTED = 3
OVERRIDE = "[guards.drawdown.accounts.5002]\nwarning_pct = 2.0\ncritical_pct = 4.0\ndaily_loss_pct = 50.0\n"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>\'&|pipe'


@dataclass(frozen=True)
class Lake:
    home: Path
    fleet_file: Path
    since: datetime
    until: datetime

    def args(self, out: Path, *extra: str) -> list[str]:
        return [
            "report",
            "--home",
            str(self.home),
            "--fleet",
            str(self.fleet_file),
            "--since",
            self.since.isoformat(),
            "--until",
            self.until.isoformat(),
            "--out",
            str(out),
            *extra,
        ]

    def frame(self, sql: str) -> pl.DataFrame:
        """A query on the whole store (the period covers all of it)."""
        con = open_reader(StoreConfig.under(self.home))
        try:
            return con.execute(sql).pl()
        finally:
            con.close()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    """About a dozen cycles 10 s apart, with something for every chart to show."""
    home = tmp_path_factory.mktemp("report-store")
    clock = SimClock(DEFAULT_START)
    sim = SimFleet.quiet(clock=clock, accounts=6)  # twice the charted ones: the worst are chosen
    fleet_file = home / "fleet.toml"
    fleet_file.write_text(fleet_toml(sim, FLEET, overrides=OVERRIDE))
    with Store.open(StoreConfig.under(home)) as store:
        cycles = StoreCycles(sim, clock, load_fleet(fleet_file), store)
        cycles.run(2)
        sim.account(5001).drawdown(4, max_move_pct=5)  # through warning (3 %); stops fire on other accounts
        cycles.run(2)
        sim.account(5001).drawdown(4, max_move_pct=5)  # through critical (6 %)
        sim.account(5003).bot_open("EURUSD", "buy", 0.5, slippage_pips=8)  # adverse
        sim.account(5005).bot_open("GBPUSD", "sell", 0.3, slippage_pips=-7)  # favourable
        sim.account(5002).disconnect(seconds=45)  # failed calls, then its breaker opens
        cycles.run(8)
    use_in_process_fleet(None)
    yield Lake(home, fleet_file, DEFAULT_START - timedelta(seconds=5), clock.now() + timedelta(seconds=5))


# -- reading the page back ----------------------------------------------------------------------------


@dataclass
class Chart:
    id: str
    series: dict[str, dict[str, str]] = field(default_factory=dict)
    levels: dict[str, float] = field(default_factory=dict)
    marks: int = 0


class Page(HTMLParser):
    """The charts (series, levels, alert marks) and tables (header + rows of cell text) of a report."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.charts: dict[str, Chart] = {}
        self.tables: list[list[list[str]]] = []
        self._chart: Chart | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "svg" and "data-chart" in a:
            self._chart = self.charts.setdefault(a["data-chart"], Chart(a["data-chart"]))
        elif tag == "g" and self._chart is not None and "data-series" in a:
            self._chart.series[a["data-series"]] = a
        elif tag == "g" and self._chart is not None and "data-level" in a:
            self._chart.levels[a["data-level"]] = float(a["data-value"])
        elif tag == "path" and self._chart is not None and a.get("class") == "mark":
            self._chart.marks += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def table(self, first_header: str, second_header: str) -> dict[str, dict[str, str]]:
        """The table whose headers start with these two, as {first cell: {header: cell}}."""
        for rows in self.tables:
            header = rows[0]
            if header[:2] == [first_header, second_header]:
                return {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
        raise AssertionError(f"no table starting with {first_header!r}, {second_header!r}")


def _report(lake: Lake, out: Path, *extra: str) -> tuple[str, str]:
    result = runner.invoke(app, lake.args(out, *extra))
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8"), result.output.strip().splitlines()[-1]


def _count(value: str) -> int:
    return int(value.replace(",", ""))


# -- the report against the store ---------------------------------------------------------------------


def test_header_and_last_line_say_what_was_written(lake: Lake, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    text, last = _report(lake, out, "--accounts", str(CHARTED))
    cycles = lake.frame("SELECT count(DISTINCT cycle_id) AS n FROM cycles")["n"][0]
    charts = text.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"')
    assert charts == 2 * CHARTED + 4
    assert last == (
        f"wrote {out} ({out.stat().st_size:,} bytes): {charts} charts, {cycles} cycles, "
        f"{Period(lake.since, lake.until).label()}"
    )
    header = html.unescape(text.split("</header>")[0])
    assert f"<dt>Fleet</dt><dd>{FLEET}</dd>" in header
    assert f"<dt>Cycles in period</dt><dd>{cycles} (first " in header
    assert "<dt>Generated at</dt>" in header and "<dt>Period</dt><dd>" in header


def test_the_worst_accounts_by_drawdown_get_the_charts(lake: Lake, tmp_path: Path) -> None:
    text, _ = _report(lake, tmp_path / "r.html", "--accounts", str(CHARTED))
    page = Page(text)
    snapshots = lake.frame(
        "SELECT login, fetched_at, equity FROM account_snapshots WHERE account_ok ORDER BY login, fetched_at"
    )
    # drawdown from the running peak, recomputed here row by row
    deepest: dict[int, float] = {}
    for (key,), rows in snapshots.group_by("login"):
        peak, worst = 0.0, 0.0
        for equity in rows["equity"].to_list():
            peak = max(peak, equity)
            worst = max(worst, 100 * (peak - equity) / peak)
        deepest[int(str(key))] = worst
    worst_first = sorted(deepest, key=lambda login: (-deepest[login], login))
    charted = [chart_id.removeprefix("drawdown-") for chart_id in page.charts if chart_id.startswith("drawdown-")]
    assert charted == [str(login) for login in worst_first[:CHARTED]]
    assert f"The {CHARTED} accounts with the deepest drawdown are charted, of {len(deepest)}" in text
    accounts = page.table("account", "ccy")
    assert list(accounts) == [str(login) for login in worst_first]  # every account in the table, worst first
    for login, value in deepest.items():
        assert accounts[str(login)]["deepest drawdown %"] == f"{value:,.2f}"
    # the levels come from the fleet's guards, the per-account override applied
    assert accounts["5002"]["warning %"] == "2.0" and accounts["5002"]["critical %"] == "4.0"
    assert accounts["5001"]["warning %"] == "3.0" and accounts["5001"]["critical %"] == "6.0"


def test_drawdown_chart_points_levels_and_guard_alerts_match_the_store(lake: Lake, tmp_path: Path) -> None:
    text, _ = _report(lake, tmp_path / "r.html", "--accounts", "10")
    page = Page(text)
    chart = page.charts["drawdown-5001"]
    snapshots = lake.frame("SELECT count(*) AS n FROM account_snapshots WHERE login = 5001 AND account_ok")["n"][0]
    assert chart.series["drawdown %"]["data-points"] == str(snapshots)  # 10-second buckets: one point each
    assert page.charts["equity-5001"].series["equity"]["data-points"] == str(snapshots)
    assert chart.levels == {"warning": 3.0, "critical": 6.0}
    alerts = lake.frame(
        "SELECT login, count(*) AS n FROM guard_alerts WHERE event = 'raised' "
        "AND guard IN ('drawdown_warning', 'drawdown_critical') GROUP BY login"
    )
    assert alerts.filter(pl.col("login") == 5001)["n"].to_list() == [2]  # the scenario: warning, then critical
    for login, raised in alerts.iter_rows():
        assert page.charts[f"drawdown-{login}"].marks == raised
        accounts = page.table("account", "ccy")[str(login)]
        assert _count(accounts["guard warnings"]) + _count(accounts["guard criticals"]) == raised


def test_slippage_charts_match_the_breaks_and_position_changes(lake: Lake, tmp_path: Path) -> None:
    text, _ = _report(lake, tmp_path / "r.html")
    page = Page(text)
    slipped = lake.frame("SELECT symbol, size_pips, size_money FROM breaks WHERE kind = 'slippage' ORDER BY symbol")
    assert slipped["symbol"].to_list() == ["EURUSD.m", "GBPUSD"]  # the scenario's two fills
    assert slipped["size_money"].to_list() == pytest.approx([40.0, -21.0])
    cost = page.charts["slippage-cost"].series
    assert float(cost["adverse (cost)"]["data-total"]) == pytest.approx(40.0)
    assert float(cost["favourable"]["data-total"]) == pytest.approx(-21.0)
    rows = page.table("symbol", "ccy")
    assert rows["EURUSD.m"]["net cost"] == "40.00" and rows["EURUSD.m"]["avg pips"] == "8.0"
    assert rows["GBPUSD"]["net cost"] == "-21.00" and rows["GBPUSD"]["favourable"] == "1"
    fills = lake.frame(
        "SELECT count(*) AS n FROM position_changes WHERE change = 'opened' AND trade_id IS NOT NULL "
        "AND match_price_pips IS NOT NULL AND stage <> 'netting'"
    )["n"][0]
    assert page.charts["fill-distance"].series["positions"]["data-total"] == str(fills)
    bins = page.table("pips", "positions")
    assert sum(_count(row["positions"]) for row in bins.values()) == fills
    assert "at exactly the bot's price" in text and "match_price_pips" in text  # says what is measured


def test_breaks_chart_counts_the_audit_log(lake: Lake, tmp_path: Path) -> None:
    text, _ = _report(lake, tmp_path / "r.html")
    page = Page(text)
    events = lake.frame("SELECT event, count(*) AS n FROM break_events GROUP BY event")
    counts = dict(events.iter_rows())
    opened, resolved = counts.get("opened", 0) + counts.get("reopened", 0), counts.get("resolved", 0)
    assert opened > 0 and resolved > 0
    series = page.charts["breaks-over-time"].series
    assert series["opened"]["data-total"] == str(opened)
    assert series["resolved"]["data-total"] == str(resolved)
    kinds = page.table("kind", "opened")
    assert sum(_count(row["opened"]) for row in kinds.values()) == opened
    assert kinds["slippage"]["open at the end"] == "2"
    assert kinds["snapshot_failed"]["opened"] == "1" and kinds["snapshot_failed"]["resolved"] == "1"
    buckets = page.table("bucket start (UTC)", "opened")
    assert sum(_count(row["opened"]) for row in buckets.values()) == opened


def test_terminal_health_shows_the_failed_calls_and_the_open_breaker(lake: Lake, tmp_path: Path) -> None:
    text, _ = _report(lake, tmp_path / "r.html")
    page = Page(text)
    health = lake.frame(
        "SELECT count(*) AS polls, count(*) FILTER (WHERE error_kind IS NOT NULL) AS failed, "
        "count(*) FILTER (WHERE breaker_state = 'open') AS open, count(DISTINCT cycle_id) AS cycles "
        "FROM terminal_health WHERE login = 5002"
    ).row(0, named=True)
    assert health["failed"] >= 3 and health["open"] >= 1  # the scenario: cut off, then its breaker opened
    terminal = page.table("account", "polls")["5002"]
    assert _count(terminal["failed"]) == health["failed"]
    assert _count(terminal["breaker not closed"]) == health["open"]
    assert "not_connected" in terminal["errors seen"]
    chart = page.charts["terminal-health"]
    assert set(chart.series) >= {"terminals polled", "with a failed call", "breaker open"}
    assert chart.series["with a failed call"]["data-points"] == str(health["cycles"])  # one bucket per cycle
    troubled = page.table("bucket start (UTC)", "polls")
    assert sum(_count(row["breaker open"]) for row in troubled.values()) == health["open"]


def test_no_cycles_in_the_period_is_a_page_that_says_so(lake: Lake, tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    args = ["report", "--home", str(lake.home), "--fleet", str(lake.fleet_file), "--out", str(out)]
    result = runner.invoke(app, [*args, "--since", "2020-01-01", "--until", "2020-01-02T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("no cycles between 2020-01-01 00:00 and 2020-01-02 00:00 UTC")
    text = html.unescape(out.read_text(encoding="utf-8"))
    assert "No cycles between 2020-01-01 00:00 and 2020-01-02 00:00 UTC" in text
    first = DEFAULT_START.strftime("%Y-%m-%d %H:%M")
    assert re.search(rf"The store holds \d+ cycles, from {first} to ", text)
    assert 'class="chart"' not in text


def test_since_takes_durations_and_iso_times() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_when("90m", now) == now - timedelta(minutes=90)
    assert parse_when("24h", now) == now - timedelta(hours=24)
    assert parse_when("7d", now) == now - timedelta(days=7)
    assert parse_when("now", now) == now
    assert parse_when("2026-11-20T08:00", now) == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)  # no zone: UTC
    assert parse_when("2026-11-20T10:00+02:00", now) == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_when("yesterday", now)
    assert Period(now - timedelta(days=7), now).bucket_secs(96) == 7200  # a week: 2-hour columns
    assert Period(now - timedelta(minutes=5), now).bucket_secs(96) == 10  # never finer than a cycle


def test_a_bad_period_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--home", str(tmp_path), "--since", "soon"])
    assert result.exit_code == 2 and "neither a duration" in result.output
    result = runner.invoke(app, ["report", "--home", str(tmp_path), "--since", "1h", "--until", "2h"])
    assert result.exit_code == 2 and "the period is empty" in result.output
    result = runner.invoke(app, ["report", "--home", str(tmp_path / "nothing-here")])
    assert result.exit_code == 1 and "no store under" in result.output


def test_histogram_bins_keep_the_tail_in_an_open_bin() -> None:
    values = pl.Series([0.0] * 150 + [0.4, 1.2, 3.7] + [250.0])
    bins = histogram_bins(values)
    assert int(bins["positions"].sum()) == values.len()
    assert bins["overflow"].to_list()[-1] and 3.7 < bins["lo"].to_list()[-1] < 250.0
    assert bins["positions"].to_list()[-1] == 1  # the one 250-pip outlier, not a 250-pip axis
    assert bins.filter(pl.col("lo") == 0.0)["positions"].to_list() == [150]


# -- hostile strings ------------------------------------------------------------------------------------


def _hostile_store(home: Path) -> Path:
    """One cycle whose broker-provided strings (symbol, currency, error kind) are markup."""
    at = DEFAULT_START
    cycle_id = "hostile:1"

    def one(table: str, **values: Any) -> pl.DataFrame:
        row = sample_frame(table, 1, cycle_id)
        return row.with_columns([pl.lit(v, dtype=row.schema[k]).alias(k) for k, v in values.items()])

    frames = {
        "cycles": one("cycles", login=7, started_at=at, finished_at=at, status="ok"),
        "account_snapshots": one(
            "account_snapshots", login=7, fetched_at=at, account_ok=True, equity=1000.0, currency=HOSTILE
        ),
        "breaks": one(
            "breaks",
            break_id="7:slippage:t1",
            login=7,
            kind="slippage",
            status="open",
            symbol=HOSTILE,
            size_pips=6.0,
            size_money=12.5,
            first_seen_at=at,
        ),
        "break_events": one("break_events", login=7, kind=HOSTILE, event="opened", event_at=at, status="open"),
        "terminal_health": one(
            "terminal_health", login=7, fetched_at=at, error_code=-10004, error_kind=HOSTILE, breaker_state=HOSTILE
        ),
    }
    with Store.open(StoreConfig.under(home)) as store:
        store.commit_cycle(cycle_id, frames)
    fleet_file = home / "hostile.toml"
    fleet_file.write_text(
        f'name = {json.dumps(HOSTILE)}\n[expected_trades]\nkind = "sim"\n'
        '[[accounts]]\nlogin = 7\nserver = "x"\nconnector = { kind = "sim" }\n'
    )
    return fleet_file


@pytest.fixture(scope="module")
def hostile_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("hostile")
    _hostile_store(home)
    return home


def _hostile_report(home: Path, tmp_path: Path) -> Path:
    fleet_file = home / "hostile.toml"
    out = tmp_path / "hostile.html"
    since, until = (
        (DEFAULT_START - timedelta(minutes=1)).isoformat(),
        (DEFAULT_START + timedelta(minutes=1)).isoformat(),
    )
    args = ["report", "--home", str(home), "--fleet", str(fleet_file), "--since", since, "--until", until]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_hostile_strings_from_the_broker_stay_text(hostile_home: Path, tmp_path: Path) -> None:
    text = _hostile_report(hostile_home, tmp_path).read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "<img" not in text.lower()
    escaped = html.escape(HOSTILE, quote=True)
    assert text.count(escaped) >= 5  # fleet name (title, heading, header), symbol, currency, kind, error
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    page = Page(text)
    assert HOSTILE in page.table("symbol", "ccy")  # shown as the text it is
    assert page.charts["slippage-cost"].series["adverse (cost)"]["data-total"] == "12.5"


def test_hostile_strings_stay_text_in_the_daily_markdown(hostile_home: Path) -> None:
    fleet = load_fleet(hostile_home / "hostile.toml")
    period = Period(DEFAULT_START - timedelta(minutes=1), DEFAULT_START + timedelta(minutes=1))
    data = read_report(StoreConfig.under(hostile_home), fleet, period, generated_at=DEFAULT_START)
    markdown = summary_markdown(data)
    assert "<script" not in markdown and "<img" not in markdown
    assert "&lt;script&gt;" in markdown and "\\|pipe" in markdown  # no HTML, no extra column


# -- in a real browser ----------------------------------------------------------------------------------


@dataclass
class Png:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def count(self, inked: Any) -> int:
        c = self.channels
        return sum(1 for row in self.rows for i in range(0, len(row), c) if inked(row[i], row[i + 1], row[i + 2]))


def decode_png(data: bytes) -> Png:
    """An 8-bit RGB(A), non-interlaced PNG (what Chromium writes): chunks, inflate, unfilter."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, [], 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
    raw, stride, c = zlib.decompress(b"".join(idat)), width * channels, channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        method, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if method == 1:  # Sub
            for i in range(c, stride):
                line[i] = (line[i] + line[i - c]) & 0xFF
        elif method == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif method == 3:  # Average
            for i in range(stride):
                line[i] = (line[i] + (((line[i - c] if i >= c else 0) + prev[i]) >> 1)) & 0xFF
        elif method == 4:  # Paeth
            for i in range(stride):
                left, up, corner = (line[i - c], prev[i], prev[i - c]) if i >= c else (0, prev[i], 0)
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return Png(width, height, channels, rows)


def _not_white(r: int, g: int, b: int) -> bool:
    return min(r, g, b) < 235


def _coloured(r: int, g: int, b: int) -> bool:
    """A series colour, not the greys of axes, grid and text."""
    return max(r, g, b) - min(r, g, b) > 80


@dataclass
class Rendered:
    problems: list[str]  # console errors and warnings, exceptions, dialogs, failed or blocked loads
    requests: list[str]
    scripts: int
    charts: list[dict[str, Any]]
    top: bytes  # a screenshot of the top of the page
    chart_shots: dict[str, bytes]  # one per chart, clipped to it


class DevTools:
    """The few DevTools-protocol calls the test needs, over the websocket Chromium opens."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.last_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.tasks: set[asyncio.Future[dict[str, Any]]] = set()

    async def listen(self) -> None:
        async for text in self.socket:
            message = json.loads(text)
            if "id" in message:
                future = self.pending.pop(message["id"])
                if "error" in message:
                    future.set_exception(RuntimeError(str(message["error"])))
                else:
                    future.set_result(message.get("result", {}))
                continue
            self.events.append(message)
            if message["method"] == "Page.javascriptDialogOpening":  # an injected alert(): noted, dismissed
                dismiss = self.call("Page.handleJavaScriptDialog", message.get("sessionId"), accept=False)
                self.tasks.add(asyncio.ensure_future(dismiss))
            waiter = self.waiting.pop(message["method"], None)
            if waiter is not None:
                waiter.set_result(message.get("params", {}))

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.last_id] = future
        message = {"id": self.last_id, "method": method, "params": params}
        await self.socket.send(json.dumps(message | ({"sessionId": session} if session else {})))
        return await future

    def next_event(self, method: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[method] = future
        return future

    def problems(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
                found.append(f"log {params['entry'].get('source')}: {params['entry'].get('text')}")
            elif method == "Page.javascriptDialogOpening":
                found.append(f"dialog: {params.get('message')}")
            elif method == "Network.loadingFailed":
                found.append(f"load failed: {params.get('errorText')} {params.get('blockedReason', '')}")
        return found


_LAYOUT_JS = """JSON.stringify({scripts: document.scripts.length,
charts: [...document.querySelectorAll('svg.chart')].map(s => { const r = s.getBoundingClientRect();
  return {id: s.dataset.chart, x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height,
          drawn: s.querySelectorAll('g.series polyline, g.series rect, g.series circle, path.mark').length}; })})"""


async def _render(chromium: str, page: Path, timeout: float = 60.0) -> Rendered:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        process = await asyncio.create_subprocess_exec(
            chromium,
            "--headless=new",
            "--no-sandbox",  # the test may run as root (containers)
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            return await _drive(process, page, timeout)
        finally:
            if process.returncode is None:
                process.terminate()
            await process.wait()


async def _drive(process: asyncio.subprocess.Process, page: Path, timeout: float) -> Rendered:
    import websockets

    assert process.stderr is not None
    endpoint = ""
    while not endpoint:  # Chromium prints its DevTools address on stderr once it listens
        line = (await asyncio.wait_for(process.stderr.readline(), timeout)).decode(errors="replace")
        if not line:
            raise RuntimeError("chromium exited before its DevTools endpoint was up")
        endpoint = line.split("DevTools listening on ", 1)[1].strip() if "DevTools listening on " in line else ""
    drain = asyncio.create_task(_drain(process.stderr))
    async with websockets.connect(endpoint, max_size=None) as socket:
        tools = DevTools(socket)
        listener = asyncio.create_task(tools.listen())
        target = await tools.call("Target.createTarget", url="about:blank")
        session = (await tools.call("Target.attachToTarget", targetId=target["targetId"], flatten=True))["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            await tools.call(f"{domain}.enable", session)
        await tools.call(
            "Emulation.setDeviceMetricsOverride", session, width=1040, height=900, deviceScaleFactor=1, mobile=False
        )
        loaded = tools.next_event("Page.loadEventFired")
        await tools.call("Page.navigate", session, url=page.resolve().as_uri())
        await asyncio.wait_for(loaded, timeout)
        layout = json.loads(
            (await tools.call("Runtime.evaluate", session, expression=_LAYOUT_JS, returnByValue=True))["result"][
                "value"
            ]
        )

        async def shot(x: float, y: float, width: float, height: float) -> bytes:
            clip = {"x": x, "y": y, "width": width, "height": height, "scale": 1}
            answer = await tools.call(
                "Page.captureScreenshot", session, format="png", clip=clip, captureBeyondViewport=True
            )
            return base64.b64decode(answer["data"])

        top = await shot(0, 0, 1040, 600)
        shots = {c["id"]: await shot(c["x"], c["y"], c["width"], c["height"]) for c in layout["charts"]}
        await tools.call("Runtime.evaluate", session, expression="0")  # whatever painting logged has arrived
        listener.cancel()
        requests = [e["params"]["request"]["url"] for e in tools.events if e["method"] == "Network.requestWillBeSent"]
        rendered = Rendered(tools.problems(), requests, layout["scripts"], layout["charts"], top, shots)
    drain.cancel()
    return rendered


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("headless Chromium is not installed: `apt-get install chromium` (Debian/Ubuntu) to run this test")
    return found


def test_the_page_draws_its_charts_in_headless_chromium(chromium: str, lake: Lake, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    _report(lake, out, "--accounts", str(CHARTED))
    rendered = asyncio.run(_render(chromium, out))
    assert rendered.problems == []
    assert rendered.requests == [out.resolve().as_uri()]  # nothing fetched: no CDN, no font, no image
    assert rendered.scripts == 0
    ids = [chart["id"] for chart in rendered.charts]
    assert len(ids) == 2 * CHARTED + 4 and {"slippage-cost", "breaks-over-time", "terminal-health"} <= set(ids)
    top = decode_png(rendered.top)
    assert top.count(_not_white) > 0.02 * top.width * top.height  # the header and the first charts
    for chart in rendered.charts:
        assert chart["width"] > 300 and chart["height"] > 100 and chart["drawn"] > 0, chart
        png = decode_png(rendered.chart_shots[chart["id"]])
        assert png.count(_not_white) > 0.01 * png.width * png.height, f"{chart['id']} is blank"
        assert png.count(_coloured) > 20, f"{chart['id']} shows axes but no data"


def test_hostile_strings_run_nothing_in_the_browser(chromium: str, hostile_home: Path, tmp_path: Path) -> None:
    rendered = asyncio.run(_render(chromium, _hostile_report(hostile_home, tmp_path)))
    assert rendered.problems == [] and rendered.scripts == 0
    assert rendered.requests == [(tmp_path / "hostile.html").resolve().as_uri()]
