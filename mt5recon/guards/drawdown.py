"""Drawdown against the equity peak and the day's loss, per account, kept between cycles.

The peak (high-water mark) moves with money in and out: a deposit, withdrawal or credit
(balance-type deals) shifts the peak by its amount, so a withdrawal is not a drawdown and a
deposit is not a new high. Each level (warning, critical, daily loss) raises one alert when it
is crossed and one when it clears (with `rearm_pct` of hysteresis); nothing in between. Only
fresh, complete snapshots move the state: a failed or stale one leaves it as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from mt5recon import frames
from mt5recon.terminal import constants as c

# deal types that move money in or out of the account rather than trade results
FLOW_TYPES = (c.DEAL_TYPE_BALANCE, c.DEAL_TYPE_CREDIT, c.DEAL_TYPE_BONUS, c.DEAL_TYPE_CORRECTION)
LEVELS = ("warning", "critical", "daily_loss")


class DrawdownLevels(BaseModel):
    """Alert levels in percent of the peak (drawdown) or of the day's starting equity (daily loss)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    warning_pct: float = Field(default=10.0, gt=0)
    critical_pct: float = Field(default=20.0, gt=0)
    daily_loss_pct: float = Field(default=5.0, gt=0)
    rearm_pct: float = Field(default=1.0, ge=0, description="a level clears this far below it")


class DrawdownGuardConfig(BaseModel):
    """Levels for every account, with per-account overrides (by login)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: DrawdownLevels = DrawdownLevels()
    accounts: dict[int, DrawdownLevels] = Field(default_factory=dict)

    def levels_frame(self, logins: list[int]) -> pl.DataFrame:
        """login + `<level>_limit` columns (named apart from the state's measured values)."""
        rows = [
            {
                "login": login,
                **{f"{k}_limit": v for k, v in self.accounts.get(login, self.default).model_dump().items()},
            }
            for login in logins
        ]
        schema = {"login": pl.Int64, **{f"{k}_limit": pl.Float64 for k in DrawdownLevels.model_fields}}
        return pl.DataFrame(rows, schema=schema)


STATE_SCHEMA = pl.Schema(
    {
        "login": pl.Int64(),
        "equity": pl.Float64(),
        "peak_equity": pl.Float64(),
        "peak_at": frames.UTC_US,
        "drawdown_pct": pl.Float64(),
        "flows_seen_until": frames.UTC_MS,  # balance-type deals up to here are in the peak
        "day": pl.Date(),  # the broker's trading day
        "day_start_equity": pl.Float64(),
        "day_flows": pl.Float64(),
        "daily_loss_pct": pl.Float64(),
        "warning_since": frames.UTC_US,  # null: not in breach
        "critical_since": frames.UTC_US,
        "daily_loss_since": frames.UTC_US,
        "updated_at": frames.UTC_US,
    }
)

ALERT_COLUMNS = pl.Schema(
    {
        "alert_id": pl.String(),
        "login": pl.Int64(),
        "symbol": pl.String(),
        "guard": pl.String(),
        "event": pl.String(),
        "value": pl.Float64(),
        "threshold": pl.Float64(),
        "detail": pl.String(),
        "since": frames.UTC_US,
        "at": frames.UTC_US,
        "peak_equity": pl.Float64(),
        "equity": pl.Float64(),
    }
)


@dataclass(frozen=True)
class DrawdownResult:
    state: pl.DataFrame  # STATE_SCHEMA: every account ever seen, the fresh ones advanced
    alerts: pl.DataFrame  # ALERT_COLUMNS: levels crossed or cleared this cycle


def empty_state() -> pl.DataFrame:
    return pl.DataFrame(schema=STATE_SCHEMA)


def _new_flows(deals: pl.DataFrame, previous: pl.DataFrame) -> pl.DataFrame:
    """login, flow (money in minus out since the last cycle), flows_until (newest flow deal seen)."""
    moves = deals.filter(pl.col("type").is_in(list(FLOW_TYPES))).select(
        "login", pl.col("time_msc").alias("time"), "profit"
    )
    seen = moves.join(previous.select("login", "flows_seen_until"), on="login", how="left")
    fresh = pl.col("flows_seen_until").is_not_null() & (pl.col("time") > pl.col("flows_seen_until"))
    return seen.group_by("login").agg(
        pl.col("profit").filter(fresh).sum().alias("flow"), pl.col("time").max().alias("flows_until")
    )


def _level(value: str, threshold: str, since: str, rearm: str, at: pl.Expr) -> pl.Expr:
    """The level's episode start after this cycle: set when crossed, kept while above, cleared
    once the value is `rearm` below the threshold."""
    was = pl.col(since).is_not_null()
    now = (
        pl.when(was)
        .then(pl.col(value) > pl.col(threshold) - pl.col(rearm))
        .otherwise(pl.col(value) >= pl.col(threshold))
    )
    return pl.when(now & ~was).then(at).when(now).then(pl.col(since)).otherwise(None).alias(since)


def advance_drawdown(
    state: pl.DataFrame,
    accounts: pl.DataFrame,
    deals: pl.DataFrame,
    fresh_logins: pl.DataFrame,
    config: DrawdownGuardConfig,
    *,
    at: datetime,
    server_offsets: dict[int, int] | None = None,
) -> DrawdownResult:
    """Advance each fresh account's peak, day and levels by this cycle's snapshot."""
    offsets = pl.DataFrame(
        {"login": list((server_offsets or {}).keys()), "offset_secs": list((server_offsets or {}).values())},
        schema={"login": pl.Int64, "offset_secs": pl.Int64},
    )
    good = (
        accounts.join(fresh_logins.select("login"), on="login", how="semi")
        .filter(pl.col("equity").is_not_null())
        .select("login", "fetched_at", "equity")
        .unique("login", keep="last")
    )
    previous = state.join(good.select("login"), on="login", how="semi")
    levels = config.levels_frame(good["login"].to_list())
    stamp = pl.lit(at).cast(frames.UTC_US)
    flows = _new_flows(deals.join(good.select("login"), on="login", how="semi"), previous)
    work = (
        good.join(previous.drop("equity"), on="login", how="left")
        .join(flows, on="login", how="left")
        .join(levels, on="login", how="left")
        .join(offsets, on="login", how="left")
        .with_columns(pl.col("flow").fill_null(0.0), pl.col("offset_secs").fill_null(0))
    )
    # each level's episode before this cycle (a new day's re-arm of the daily limit clears it)
    before = work.select("login", *[pl.col(f"{level}_since").alias(f"{level}_before") for level in LEVELS])
    first = pl.col("peak_equity").is_null()
    carried_peak = pl.when(first).then(pl.col("equity")).otherwise(pl.col("peak_equity") + pl.col("flow"))
    day = (pl.col("fetched_at") + pl.duration(seconds=pl.col("offset_secs"))).dt.date()
    new_day = pl.col("day").is_null() | (pl.col("day") != pl.col("today"))
    work = work.with_columns(carried_peak.alias("carried_peak"), day.alias("today")).with_columns(
        pl.max_horizontal("carried_peak", "equity").alias("peak_equity_new"),
        pl.when(first | (pl.col("equity") >= pl.col("carried_peak")))
        .then(stamp)
        .otherwise(pl.col("peak_at"))
        .alias("peak_at_new"),
        # every flow up to this fetch is in this equity: only later ones will move the peak
        pl.max_horizontal("flows_seen_until", "flows_until", pl.col("fetched_at").cast(frames.UTC_MS)).alias(
            "flows_seen_new"
        ),
        pl.when(new_day).then(pl.col("equity")).otherwise(pl.col("day_start_equity")).alias("day_start_new"),
        pl.when(new_day).then(0.0).otherwise(pl.col("day_flows") + pl.col("flow")).alias("day_flows_new"),
        # a new trading day re-arms the daily limit
        pl.when(new_day).then(None).otherwise(pl.col("daily_loss_since")).alias("daily_loss_since"),
        new_day.alias("is_new_day"),
    )
    daily_base = pl.col("day_start_new") + pl.col("day_flows_new")
    work = work.with_columns(
        pl.when(pl.col("peak_equity_new") > 0)
        .then((pl.col("peak_equity_new") - pl.col("equity")) / pl.col("peak_equity_new") * 100)
        .otherwise(0.0)
        .clip(lower_bound=0.0)
        .alias("drawdown_pct"),
        pl.when(daily_base > 0)
        .then((daily_base - pl.col("equity")) / daily_base * 100)
        .otherwise(0.0)
        .clip(lower_bound=0.0)
        .alias("daily_loss_pct_value"),
    )
    work = work.with_columns(
        _level("drawdown_pct", "warning_pct_limit", "warning_since", "rearm_pct_limit", stamp),
        _level("drawdown_pct", "critical_pct_limit", "critical_since", "rearm_pct_limit", stamp),
        _level("daily_loss_pct_value", "daily_loss_pct_limit", "daily_loss_since", "rearm_pct_limit", stamp),
    )
    advanced = work.select(
        "login",
        "equity",
        pl.col("peak_equity_new").alias("peak_equity"),
        pl.col("peak_at_new").alias("peak_at"),
        "drawdown_pct",
        pl.col("flows_seen_new").alias("flows_seen_until"),
        pl.col("today").alias("day"),
        pl.col("day_start_new").alias("day_start_equity"),
        pl.col("day_flows_new").alias("day_flows"),
        pl.col("daily_loss_pct_value").alias("daily_loss_pct"),
        "warning_since",
        "critical_since",
        "daily_loss_since",
        stamp.alias("updated_at"),
    ).cast(dict(STATE_SCHEMA))  # type: ignore[arg-type]
    untouched = state.join(good.select("login"), on="login", how="anti")
    new_state = pl.concat([untouched.cast(dict(STATE_SCHEMA)), advanced], how="vertical").sort("login")  # type: ignore[arg-type]
    return DrawdownResult(state=new_state, alerts=_alerts(work.join(before, on="login"), stamp))


def _alerts(work: pl.DataFrame, stamp: pl.Expr) -> pl.DataFrame:
    """One row per level crossed (raised) or cleared this cycle, with its numbers."""
    parts = []
    for level, value, threshold in (
        ("warning", "drawdown_pct", "warning_pct_limit"),
        ("critical", "drawdown_pct", "critical_pct_limit"),
        ("daily_loss", "daily_loss_pct_value", "daily_loss_pct_limit"),
    ):
        since, before = pl.col(f"{level}_since"), pl.col(f"{level}_before")
        raised = since.is_not_null() & before.is_null()
        cleared = since.is_null() & before.is_not_null()
        episode = pl.coalesce(before, since)
        guard = "daily_loss" if level == "daily_loss" else f"drawdown_{level}"
        base = "day's start" if level == "daily_loss" else "peak"
        parts.append(
            work.filter(raised | cleared).select(
                pl.concat_str(
                    [pl.col("login").cast(pl.String), pl.lit(guard), episode.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")],
                    separator="|",
                ).alias("alert_id"),
                "login",
                pl.lit(None, pl.String).alias("symbol"),
                pl.lit(guard).alias("guard"),
                pl.when(raised).then(pl.lit("raised")).otherwise(pl.lit("cleared")).alias("event"),
                pl.col(value).alias("value"),
                pl.col(threshold).alias("threshold"),
                pl.format(
                    "{}: {}% below the {} (limit {}%), equity {}, peak {} since {}",
                    pl.lit(guard),
                    pl.col(value).round(2),
                    pl.lit(base),
                    pl.col(threshold),
                    pl.col("equity").round(2),
                    pl.col("peak_equity_new").round(2),
                    pl.col("peak_at_new").dt.strftime("%Y-%m-%d %H:%M:%S"),
                ).alias("detail"),
                episode.alias("since"),
                stamp.alias("at"),
                pl.col("peak_equity_new").alias("peak_equity"),
                "equity",
            )
        )
    return pl.concat(parts, how="vertical").cast(dict(ALERT_COLUMNS)).sort("login", "guard")  # type: ignore[arg-type]
