"""The report's numbers: read-only queries on the store, aggregated in SQL into Polars frames.

Aggregation happens in DuckDB (a week of 10-second cycles is millions of rows; the charts need a
few hundred points). Every value from the user (the period, the accounts) is a bound parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from mt5recon.fleet import FleetConfig
from mt5recon.guards.drawdown import DrawdownGuardConfig
from mt5recon.report.period import Period
from mt5recon.store.lake import StoreConfig, open_reader

# points per chart: a line keeps its shape at 240 points per panel, a column chart stays readable at 96
LINE_BUCKETS = 240
COLUMN_BUCKETS = 96
HISTOGRAM_BINS = 20
# a bucket is `$width` seconds from `$t0` (the period's start, epoch seconds): bound, never spliced;
# a failed poll is one with an error code or kind (an unreachable terminal has only the kind)
_CYCLES_SQL = (
    "SELECT count(DISTINCT cycle_id) AS cycles, count(*) AS account_cycles, count(DISTINCT login) AS accounts, "
    "count(*) FILTER (WHERE status = 'ok') AS ok, count(*) FILTER (WHERE status = 'failed') AS failed, "
    "count(*) FILTER (WHERE status = 'stale') AS stale, min(started_at) AS first_at, max(started_at) AS last_at "
    "FROM cycles WHERE started_at >= $since AND started_at < $until"
)
_STORE_RANGE_SQL = (
    "SELECT count(DISTINCT cycle_id) AS cycles, min(started_at) AS first_at, max(started_at) AS last_at FROM cycles"
)

# equity below the running peak; the peak includes every snapshot stored before the period
_SNAPS = (
    "WITH prior AS (SELECT login, max(equity) AS prior_peak FROM account_snapshots "
    "WHERE account_ok AND equity IS NOT NULL AND fetched_at < $since GROUP BY login), "
    "running AS (SELECT s.login, s.fetched_at, s.currency, s.equity, greatest(coalesce(p.prior_peak, s.equity), "
    "max(s.equity) OVER (PARTITION BY s.login ORDER BY s.fetched_at ROWS UNBOUNDED PRECEDING)) AS peak "
    "FROM account_snapshots s LEFT JOIN prior p ON p.login = s.login "
    "WHERE s.account_ok AND s.equity IS NOT NULL AND s.fetched_at >= $since AND s.fetched_at < $until), "
    "snaps AS (SELECT *, CASE WHEN peak > 0 THEN 100 * (peak - equity) / peak END AS drawdown_pct FROM running) "
)
_ACCOUNTS_SQL = _SNAPS + (
    "SELECT login, arg_max(currency, fetched_at) AS currency, count(*) AS snapshots, "
    "arg_min(equity, fetched_at) AS first_equity, arg_max(equity, fetched_at) AS last_equity, "
    "min(equity) AS min_equity, max(peak) AS peak_equity, max(drawdown_pct) AS max_drawdown_pct, "
    "CASE WHEN max(drawdown_pct) > 0 THEN arg_max(fetched_at, drawdown_pct) END AS worst_at "
    "FROM snaps GROUP BY login"
)
_EQUITY_SQL = _SNAPS + (  # noqa: S608 - constant fragments; values are bound parameters
    "SELECT login, CAST(floor((epoch(fetched_at) - $t0) / $width) AS BIGINT) AS bucket, min(equity) AS equity, "
    "max(drawdown_pct) AS drawdown_pct, count(*) AS snapshots FROM snaps "
    "WHERE list_contains(CAST($logins AS BIGINT[]), login) GROUP BY ALL ORDER BY login, bucket"
)
_ALERTS_SQL = (
    'SELECT login, guard, event, value, threshold, "at" FROM guard_alerts '
    "WHERE guard IN ('drawdown_warning', 'drawdown_critical') "
    'AND "at" >= $since AND "at" < $until ORDER BY "at", login'
)
_FILLS_SQL = (
    "SELECT stage, match_price_pips AS pips FROM position_changes WHERE change = 'opened' "
    "AND trade_id IS NOT NULL AND match_price_pips IS NOT NULL AND changed_at >= $since AND changed_at < $until"
)
_SLIPPAGE_SQL = (
    "WITH ccy AS (SELECT login, arg_max(currency, fetched_at) AS currency FROM account_snapshots "
    "WHERE account_ok AND fetched_at < $until GROUP BY login) "
    "SELECT b.symbol, c.currency, count(*) AS slipped, count(*) FILTER (WHERE b.size_pips > 0) AS adverse, "
    "count(*) FILTER (WHERE b.size_pips < 0) AS favourable, "
    "coalesce(sum(b.size_money) FILTER (WHERE b.size_pips > 0), 0) AS adverse_money, "
    "coalesce(sum(b.size_money) FILTER (WHERE b.size_pips < 0), 0) AS favourable_money, "
    "coalesce(sum(b.size_money), 0) AS net_cost, avg(b.size_pips) AS avg_pips, max(b.size_pips) AS worst_pips, "
    "count(*) FILTER (WHERE b.size_money IS NULL) AS without_money "
    "FROM breaks b LEFT JOIN ccy c ON c.login = b.login "
    "WHERE b.kind = 'slippage' AND b.first_seen_at >= $since AND b.first_seen_at < $until GROUP BY ALL"
)
_BREAK_BUCKETS_SQL = (
    "SELECT CAST(floor((epoch(event_at) - $t0) / $width) AS BIGINT) AS bucket, "
    "count(*) FILTER (WHERE event IN ('opened', 'reopened')) AS opened, "
    "count(*) FILTER (WHERE event = 'resolved') AS resolved "
    "FROM break_events WHERE event_at >= $since AND event_at < $until GROUP BY ALL"
)
_BREAK_KINDS_SQL = (
    "WITH last AS (SELECT break_id, arg_max(kind, event_at) AS kind, arg_max(status, event_at) AS status "
    "FROM break_events WHERE event_at < $until GROUP BY break_id), "
    "moved AS (SELECT kind, count(*) FILTER (WHERE event IN ('opened', 'reopened')) AS opened, "
    "count(*) FILTER (WHERE event = 'resolved') AS resolved, count(*) FILTER (WHERE event = 'dismissed') AS dismissed "
    "FROM break_events WHERE event_at >= $since AND event_at < $until GROUP BY kind), "
    "still AS (SELECT kind, count(*) AS open_at_end FROM last WHERE status = 'open' GROUP BY kind) "
    "SELECT kind, coalesce(m.opened, 0) AS opened, coalesce(m.resolved, 0) AS resolved, "
    "coalesce(m.dismissed, 0) AS dismissed, coalesce(s.open_at_end, 0) AS open_at_end "
    "FROM moved m FULL JOIN still s USING (kind)"
)
_HEALTH_BUCKETS_SQL = (
    "SELECT CAST(floor((epoch(fetched_at) - $t0) / $width) AS BIGINT) AS bucket, count(*) AS polls, "
    "count(*) FILTER (WHERE error_code IS NOT NULL OR error_kind IS NOT NULL) AS failed_polls, "
    "count(DISTINCT login) AS terminals, "
    "count(DISTINCT login) FILTER (WHERE error_code IS NOT NULL OR error_kind IS NOT NULL) AS failing, "
    "count(DISTINCT login) FILTER (WHERE connected = false) AS disconnected, "
    "count(DISTINCT login) FILTER (WHERE breaker_state = 'open') AS breaker_open, "
    "count(DISTINCT login) FILTER (WHERE breaker_state = 'half_open') AS breaker_half_open "
    "FROM terminal_health WHERE fetched_at >= $since AND fetched_at < $until GROUP BY ALL"
)
_TERMINALS_SQL = (
    "SELECT login, count(*) AS polls, "
    "count(*) FILTER (WHERE error_code IS NOT NULL OR error_kind IS NOT NULL) AS failed_polls, "
    "count(*) FILTER (WHERE connected = false) AS disconnected_polls, "
    "count(*) FILTER (WHERE breaker_state IS DISTINCT FROM 'closed') AS breaker_not_closed, "
    "arg_max(breaker_state, fetched_at) AS breaker_now, "
    "string_agg(DISTINCT error_kind, ', ' ORDER BY error_kind) AS error_kinds, "
    "quantile_cont(calls_ms, 0.95) AS p95_calls_ms, max(data_age_secs) AS max_data_age_secs "
    "FROM terminal_health WHERE fetched_at >= $since AND fetched_at < $until GROUP BY login"
)


@dataclass(frozen=True)
class CycleCounts:
    """How many cycles ran in the period, and how the accounts in them fared."""

    cycles: int
    account_cycles: int
    accounts: int
    ok: int
    failed: int
    stale: int
    first_at: datetime | None
    last_at: datetime | None


@dataclass(frozen=True)
class Fills:
    """|broker − bot price| in pips of each matched position first seen in the period."""

    histogram: pl.DataFrame  # lo, hi, positions (the last bin may be open-ended: `overflow`)
    positions: int
    at_zero: int  # filled exactly at the bot's price
    netting_excluded: int  # netting rows: an average over fills, not one fill's price
    by_stage: dict[str, int]
    median_pips: float | None
    p95_pips: float | None


@dataclass(frozen=True)
class ReportData:
    """Everything the page and the daily summary show, for one period."""

    fleet: str
    period: Period
    generated_at: datetime
    cycles: CycleCounts
    store_cycles: CycleCounts  # the whole store: says where the data is when the period has none
    accounts: pl.DataFrame  # per account, worst drawdown first, with its alert levels
    charted_logins: list[int]  # the worst accounts that get a chart each
    equity_bucket_secs: int
    equity: pl.DataFrame  # login, bucket, at, equity (lowest in bucket), drawdown_pct (deepest), snapshots
    alerts: pl.DataFrame  # drawdown alerts raised or cleared in the period
    fills: Fills
    slippage: pl.DataFrame  # per symbol and account currency, worst cost first
    bucket_secs: int
    breaks: pl.DataFrame  # bucket, at, opened, resolved (every bucket, zeros included)
    break_kinds: pl.DataFrame  # kind, opened, resolved, dismissed, open_at_end
    health: pl.DataFrame  # buckets with polls: bucket, at, polls, failed_polls, terminals, failing, ...
    terminals: pl.DataFrame  # per terminal, most troubled first

    @property
    def empty(self) -> bool:
        return self.cycles.cycles == 0


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> pl.DataFrame:
    # only the parameters the statement names: DuckDB refuses unused ones
    used = {name: value for name, value in params.items() if f"${name}" in sql}
    return con.execute(sql, used).pl()


def _counts(row: dict[str, Any] | None) -> CycleCounts:
    row = row or {}
    return CycleCounts(
        cycles=int(row.get("cycles") or 0),
        account_cycles=int(row.get("account_cycles") or 0),
        accounts=int(row.get("accounts") or 0),
        ok=int(row.get("ok") or 0),
        failed=int(row.get("failed") or 0),
        stale=int(row.get("stale") or 0),
        first_at=row.get("first_at"),
        last_at=row.get("last_at"),
    )


def _with_time(frame: pl.DataFrame, period: Period, width: int) -> pl.DataFrame:
    """`at`: the middle of each bucket (clipped to the period), where a chart draws its value."""
    start = pl.lit(period.since).cast(pl.Datetime("us", "UTC"))
    middle = start + pl.duration(seconds=pl.col("bucket") * width + width / 2)
    end = pl.lit(period.until).cast(pl.Datetime("us", "UTC"))
    return frame.with_columns(pl.min_horizontal(middle, end).alias("at"))


def _all_buckets(frame: pl.DataFrame, period: Period, width: int, columns: list[str]) -> pl.DataFrame:
    """Every bucket of the period, zeros where nothing happened (a gap is a quiet hour, not a missing one)."""
    count = max(1, math.ceil(period.seconds / width))
    buckets = pl.DataFrame({"bucket": pl.int_range(0, count, eager=True, dtype=pl.Int64)})
    joined = buckets.join(frame.with_columns(pl.col("bucket").cast(pl.Int64)), on="bucket", how="left")
    return _with_time(joined.with_columns(pl.col(columns).fill_null(0).cast(pl.Int64)), period, width)


def _nice_step(span: float, bins: int) -> float:
    raw = span / max(1, bins)
    magnitude = 10 ** math.floor(math.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw))


def histogram_bins(values: pl.Series, bins: int = HISTOGRAM_BINS) -> pl.DataFrame:
    """Equal bins from 0 on round edges up to the 99th percentile; the rare larger values share an
    open-ended last bin rather than stretching the axis until every bar is one pixel wide."""
    schema = {"lo": pl.Float64, "hi": pl.Float64, "positions": pl.Int64, "overflow": pl.Boolean}
    clean = values.drop_nulls().cast(pl.Float64)
    if clean.len() == 0:
        return pl.DataFrame(schema=schema)
    top = float(clean.max())  # type: ignore[arg-type]
    p99 = float(clean.quantile(0.99, "higher") or 0.0) if clean.len() >= 100 else top
    cap = p99 if p99 > 0 else top  # mostly exact fills: show the spread of the few that slipped
    step = _nice_step(cap, bins) if cap > 0 else 1.0
    edges = math.floor(cap / step) + 1  # the bin holding `cap`
    index = (clean / step).floor().cast(pl.Int64).clip(0, edges).alias("bin")
    counts = index.to_frame().group_by("bin").len("positions")
    rows = pl.DataFrame({"bin": pl.int_range(0, edges + (1 if top >= edges * step else 0), eager=True)})
    return (
        rows.join(counts, on="bin", how="left")
        .with_columns(
            (pl.col("bin") * step).cast(pl.Float64).alias("lo"),
            pl.when(pl.col("bin") == edges).then(None).otherwise((pl.col("bin") + 1) * step).alias("hi"),
            pl.col("positions").fill_null(0).cast(pl.Int64),
            (pl.col("bin") == edges).alias("overflow"),
        )
        .select(list(schema))
        .cast(schema)  # type: ignore[arg-type]
    )


def _fills(raw: pl.DataFrame) -> Fills:
    netting = raw.filter(pl.col("stage") == "netting")
    fills = raw.filter(pl.col("stage") != "netting")
    pips = fills["pips"]
    by_stage = dict(fills.group_by("stage").len().sort("stage").iter_rows())
    return Fills(
        histogram=histogram_bins(pips),
        positions=fills.height,
        at_zero=int((pips.abs() < 1e-9).sum()),
        netting_excluded=netting.height,
        by_stage={str(k): int(v) for k, v in by_stage.items()},
        median_pips=float(pips.median()) if fills.height else None,  # type: ignore[arg-type]
        p95_pips=float(pips.quantile(0.95) or 0.0) if fills.height else None,
    )


def _accounts(
    con: duckdb.DuckDBPyConnection, params: dict[str, Any], levels: DrawdownGuardConfig, alerts: pl.DataFrame
) -> pl.DataFrame:
    """Per account: equity, peak and deepest drawdown in the period, its alert levels and the
    guard's own alerts; deepest first."""
    accounts = _frame(con, _ACCOUNTS_SQL, params)
    raised = (
        alerts.filter(pl.col("event") == "raised")
        .group_by("login")
        .agg(
            (pl.col("guard") == "drawdown_warning").sum().alias("warnings_raised"),
            (pl.col("guard") == "drawdown_critical").sum().alias("criticals_raised"),
        )
    )
    limits = levels.levels_frame(accounts["login"].to_list()).select(
        "login", pl.col("warning_pct_limit").alias("warning_pct"), pl.col("critical_pct_limit").alias("critical_pct")
    )
    return (
        accounts.join(limits, on="login", how="left")
        .join(raised, on="login", how="left")
        .with_columns(pl.col("warnings_raised", "criticals_raised").fill_null(0).cast(pl.Int64))
        .sort(["max_drawdown_pct", "login"], descending=[True, False], nulls_last=True)
    )


def load_report(
    con: duckdb.DuckDBPyConnection,
    period: Period,
    *,
    fleet: str,
    levels: DrawdownGuardConfig,
    worst_accounts: int = 6,
    generated_at: datetime | None = None,
) -> ReportData:
    """Read everything the report shows for `period`; `worst_accounts` get a chart each."""
    generated_at = generated_at or datetime.now(UTC)
    bucket_secs = period.bucket_secs(COLUMN_BUCKETS)
    equity_secs = period.bucket_secs(LINE_BUCKETS)
    base: dict[str, Any] = {"since": period.since, "until": period.until, "t0": period.since.timestamp()}
    params = {**base, "width": bucket_secs}
    cycles = _counts(_frame(con, _CYCLES_SQL, params).row(0, named=True))
    store_cycles = _counts(_frame(con, _STORE_RANGE_SQL, params).row(0, named=True))
    alerts = _frame(con, _ALERTS_SQL, params)
    accounts = _accounts(con, params, levels, alerts)
    charted = accounts.head(max(0, worst_accounts))["login"].to_list()
    equity = _frame(con, _EQUITY_SQL, {**base, "width": equity_secs, "logins": charted})
    breaks = _frame(con, _BREAK_BUCKETS_SQL, params)
    # buckets without a cycle stay out: no poll is not a healthy (or a dead) terminal
    health = _with_time(_frame(con, _HEALTH_BUCKETS_SQL, params).sort("bucket"), period, bucket_secs)
    return ReportData(
        fleet=fleet,
        period=period,
        generated_at=generated_at,
        cycles=cycles,
        store_cycles=store_cycles,
        accounts=accounts,
        charted_logins=[int(login) for login in charted],
        equity_bucket_secs=equity_secs,
        equity=_with_time(equity, period, equity_secs),
        alerts=alerts,
        fills=_fills(_frame(con, _FILLS_SQL, params)),
        slippage=_frame(con, _SLIPPAGE_SQL, params).sort(["net_cost", "symbol"], descending=[True, False]),
        bucket_secs=bucket_secs,
        breaks=_all_buckets(breaks, period, bucket_secs, ["opened", "resolved"]),
        break_kinds=_frame(con, _BREAK_KINDS_SQL, params).sort(["opened", "kind"], descending=[True, False]),
        health=health,
        terminals=_frame(con, _TERMINALS_SQL, params).sort(
            ["failed_polls", "breaker_not_closed", "disconnected_polls", "login"],
            descending=[True, True, True, False],
        ),
    )


def read_report(
    config: StoreConfig, fleet: FleetConfig, period: Period, *, worst_accounts: int = 6, generated_at: datetime
) -> ReportData:
    """Open the store read-only (never blocking the writer), load the report, close it."""
    if not config.exists():
        raise FileNotFoundError("the store has not been created yet")
    con = open_reader(config)
    try:
        return load_report(
            con,
            period,
            fleet=fleet.name,
            levels=fleet.guards.drawdown,
            worst_accounts=worst_accounts,
            generated_at=generated_at,
        )
    finally:
        con.close()


def last_day(now: datetime) -> Period:
    """The daily summary's window: the 24 hours up to `now`."""
    return Period(now - timedelta(days=1), now)
