"""`mt5recon status`: every account of the latest cycle of each scope, as one frame and one dict.

A sharded fleet commits one cycle per shard (its own scope, `<fleet>-shard<i>of<n>`), so "the
latest cycle" is looked up per scope; an account seen in several scopes (the fleet was re-sharded)
is shown once, from the newest. Accounts the fleet file declares but no latest cycle holds, and
accounts with open breaks but no latest cycle, are shown as `missing`: an operator must see a
terminal that silently dropped out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

import duckdb
import polars as pl

from mt5recon import frames
from mt5recon.recon.divergences import KINDS

HEALTH_STATES = ("connected", "failed", "stale", "missing")
BREAKER_STATES = ("closed", "half_open", "open")
DRAWDOWN_LEVELS = ("ok", "warning", "critical")

# the scope is the cycle id without its `:<scheduled time>` suffix (see pipeline.cycle_id_for)
_LATEST_SQL = """
WITH scoped AS (
    SELECT regexp_replace(cycle_id, ':[^:]*$', '') AS scope, cycle_id, login, started_at, status, error
    FROM cycles
),
latest_cycle AS (
    SELECT scope, arg_max(cycle_id, started_at) AS cycle_id, max(started_at) AS started_at
    FROM scoped GROUP BY scope
),
latest AS (
    SELECT s.* FROM scoped s JOIN latest_cycle l ON s.scope = l.scope AND s.cycle_id = l.cycle_id
    QUALIFY row_number() OVER (PARTITION BY s.login ORDER BY s.started_at DESC, s.cycle_id DESC) = 1
),
last_good AS (
    SELECT login, max(started_at) AS last_good_at, arg_max(cycle_id, started_at) AS good_cycle_id
    FROM cycles WHERE status = 'ok' AND login IN (SELECT login FROM latest) GROUP BY login
)
SELECT latest.login, latest.scope, latest.cycle_id, latest.started_at AS cycle_at, latest.status, latest.error,
    h.error_kind, h.breaker_state, g.last_good_at, a.equity, a.currency,
    d.drawdown_pct, d.warning_since, d.critical_since
FROM latest
LEFT JOIN terminal_health h ON h.cycle_id = latest.cycle_id AND h.login = latest.login
LEFT JOIN last_good g ON g.login = latest.login
LEFT JOIN account_snapshots a ON a.cycle_id = g.good_cycle_id AND a.login = latest.login
LEFT JOIN drawdown_state d ON d.login = latest.login
ORDER BY latest.login
"""
_LATEST_SCHEMA = pl.Schema(
    {
        "login": pl.Int64(),
        "scope": pl.String(),
        "cycle_id": pl.String(),
        "cycle_at": frames.UTC_US,
        "status": pl.String(),
        "error": pl.String(),
        "error_kind": pl.String(),
        "breaker_state": pl.String(),
        "last_good_at": frames.UTC_US,
        "equity": pl.Float64(),
        "currency": pl.String(),
        "drawdown_pct": pl.Float64(),
        "warning_since": frames.UTC_US,
        "critical_since": frames.UTC_US,
    }
)
_OPEN_BREAKS_SQL = "SELECT login, kind, count(*) AS open FROM breaks WHERE status = 'open' GROUP BY login, kind"
_OPEN_SCHEMA = pl.Schema({"login": pl.Int64(), "kind": pl.String(), "open": pl.Int64()})


class Totals(TypedDict):
    """The totals row, as `--json` prints it (every key always present)."""

    accounts: int
    health: dict[str, int]  # per HEALTH_STATES
    breakers: dict[str, int]  # per BREAKER_STATES
    oldest_data_age_secs: float | None
    equity: dict[str, float]  # per currency: sums across currencies mean nothing
    max_drawdown_pct: float | None
    open_breaks: dict[str, int]  # per kind
    open_breaks_total: int


@dataclass(frozen=True)
class FleetStatus:
    """The fleet at `at`: one row per account (`accounts`), the latest cycle of each scope (`cycles`),
    and the break kinds counted (`kinds`: one `open:<kind>` column each in `accounts`)."""

    at: datetime
    cycles: pl.DataFrame
    accounts: pl.DataFrame
    kinds: tuple[str, ...]

    def totals(self) -> Totals:
        """The fleet's totals: counts per health and breaker state, equity per currency, breaks per kind."""
        frame = self.accounts
        equity = (
            frame.filter(pl.col("currency").is_not_null() & pl.col("equity").is_not_null())
            .group_by("currency")
            .agg(pl.col("equity").sum())
            .sort("currency")
        )
        ages = frame["data_age_secs"].drop_nulls()
        drawdowns = frame["drawdown_pct"].drop_nulls()
        return Totals(
            accounts=frame.height,
            health={state: _count(frame, "health", state) for state in HEALTH_STATES},
            breakers={state: _count(frame, "breaker_state", state) for state in BREAKER_STATES},
            oldest_data_age_secs=_number(ages.max()) if ages.len() else None,
            equity={row[0]: round(row[1], 2) for row in equity.iter_rows()},
            max_drawdown_pct=_number(drawdowns.max()) if drawdowns.len() else None,
            open_breaks={kind: int(frame[open_column(kind)].sum()) for kind in self.kinds},
            open_breaks_total=int(frame["open_breaks"].sum()),
        )

    def as_dict(self) -> dict[str, object]:
        """The same data as the table, as plain JSON-ready values with stable keys (times: ISO 8601 UTC)."""
        accounts = [
            {
                "login": row["login"],
                "scope": row["scope"],
                "cycle_id": row["cycle_id"],
                "health": row["health"],
                "error_kind": row["error_kind"],
                "error": row["error"],
                "breaker_state": row["breaker_state"],
                "last_good_at": _iso(row["last_good_at"]),
                "data_age_secs": row["data_age_secs"],
                "equity": row["equity"],
                "currency": row["currency"],
                "drawdown_pct": row["drawdown_pct"],
                "drawdown_level": row["drawdown_level"],
                "open_breaks": {kind: row[open_column(kind)] for kind in self.kinds},
                "open_breaks_total": row["open_breaks"],
            }
            for row in self.accounts.iter_rows(named=True)
        ]
        cycles = [
            {"scope": row["scope"], "cycle_id": row["cycle_id"], "started_at": _iso(row["started_at"])}
            for row in self.cycles.iter_rows(named=True)
        ]
        return {"at": _iso(self.at), "cycles": cycles, "accounts": accounts, "totals": self.totals()}


def open_column(kind: str) -> str:
    """The `accounts` column counting one kind's open breaks."""
    return f"open:{kind}"


def read_status(con: duckdb.DuckDBPyConnection, *, now: datetime, fleet_logins: Iterable[int] = ()) -> FleetStatus:
    """Query the store (read-only) and assemble the fleet's status at `now`."""
    latest = con.execute(_LATEST_SQL).pl().cast(dict(_LATEST_SCHEMA))  # type: ignore[arg-type]
    open_breaks = con.execute(_OPEN_BREAKS_SQL).pl().cast(dict(_OPEN_SCHEMA))  # type: ignore[arg-type]
    return assemble(latest, open_breaks, now=now, fleet_logins=fleet_logins)


def assemble(
    latest: pl.DataFrame, open_breaks: pl.DataFrame, *, now: datetime, fleet_logins: Iterable[int] = ()
) -> FleetStatus:
    """One row per account from the latest rows and the open break counts (pure: `now` is given)."""
    kinds = tuple(KINDS) + tuple(sorted(set(open_breaks["kind"].to_list()) - set(KINDS)))
    known = set(latest["login"].to_list())
    absent = sorted((set(fleet_logins) | set(open_breaks["login"].to_list())) - known)
    missing = pl.DataFrame({"login": absent}, schema={"login": pl.Int64}).join(latest.clear(), on="login", how="left")
    counts = _pivot_counts(open_breaks, kinds)
    accounts = (
        pl.concat([latest, missing.select(latest.columns)], how="vertical")
        .join(counts, on="login", how="left")
        .with_columns(pl.col(open_column(kind)).fill_null(0) for kind in kinds)
        .with_columns(
            pl.sum_horizontal(open_column(kind) for kind in kinds).alias("open_breaks"),
            _health().alias("health"),
            ((pl.lit(now) - pl.col("last_good_at")).dt.total_milliseconds() / 1000.0).alias("data_age_secs"),
            _drawdown_level().alias("drawdown_level"),
        )
        .sort("login")
    )
    cycles = (
        latest.group_by("scope", "cycle_id")
        .agg(pl.col("cycle_at").max().alias("started_at"))
        .sort("scope")
        .select("scope", "cycle_id", "started_at")
    )
    return FleetStatus(at=now, cycles=cycles, accounts=accounts, kinds=kinds)


def _pivot_counts(open_breaks: pl.DataFrame, kinds: tuple[str, ...]) -> pl.DataFrame:
    """login, then `open:<kind>` per kind (0 where the account has none of that kind)."""
    return open_breaks.group_by("login").agg(
        pl.col("open").filter(pl.col("kind") == kind).sum().alias(open_column(kind)) for kind in kinds
    )


def _health() -> pl.Expr:
    """connected (reconciled), failed (a snapshot call failed), stale (too old or cut off from its
    server), missing (in no latest cycle)."""
    status = pl.col("status")
    return (
        pl.when(status.is_null())
        .then(pl.lit("missing"))
        .when(status == "ok")
        .then(pl.lit("connected"))
        .otherwise(status)
    )


def _drawdown_level() -> pl.Expr:
    return (
        pl.when(pl.col("critical_since").is_not_null())
        .then(pl.lit("critical"))
        .when(pl.col("warning_since").is_not_null())
        .then(pl.lit("warning"))
        .when(pl.col("drawdown_pct").is_not_null())
        .then(pl.lit("ok"))
    )


def _count(frame: pl.DataFrame, column: str, value: str) -> int:
    return frame.filter(pl.col(column) == value).height


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
