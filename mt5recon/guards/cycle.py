"""All guards of one cycle, from the validated frames and the stored guard state (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import polars as pl

from mt5recon import frames
from mt5recon.guards.config import GuardConfig
from mt5recon.guards.drawdown import ALERT_COLUMNS, DrawdownResult, advance_drawdown
from mt5recon.guards.market import MarketResult, advance_market
from mt5recon.guards.protect import ProtectionPlan, plan_protection

# what a protective decision is called in the alert log
_DECISION_EVENTS = {"warn": "announced", "close": "closing", "cancel": "cancelled"}


@dataclass(frozen=True)
class GuardState:
    """The guards' current state as stored before the cycle."""

    drawdown: pl.DataFrame
    market: pl.DataFrame
    protect_pending: pl.DataFrame


@dataclass(frozen=True)
class GuardUpdate:
    drawdown: DrawdownResult
    market: MarketResult
    protection: ProtectionPlan
    alerts: pl.DataFrame  # ALERT_COLUMNS: every guard's alerts of this cycle
    at: datetime  # the cycle's time the state rows were stamped with
    scope: str = ""  # the fleet or shard whose market state this is


def advance_guards(
    stored: GuardState,
    *,
    accounts: pl.DataFrame,
    deals: pl.DataFrame,
    ticks: pl.DataFrame,
    symbols: pl.DataFrame,
    positions: pl.DataFrame,
    fresh_logins: pl.DataFrame,
    config: GuardConfig,
    server_offsets: dict[int, int],
    at: datetime,
    scope: str = "",
) -> GuardUpdate:
    """Drawdown and market guards on this cycle's frames, then the protective plan. Only fresh,
    complete snapshots (`fresh_logins`) move an account's drawdown or trigger protection."""
    drawdown = advance_drawdown(
        stored.drawdown, accounts, deals, fresh_logins, config.drawdown, at=at, server_offsets=server_offsets
    )
    market = advance_market(stored.market, ticks, symbols, positions, config.market, at=at)
    if scope:  # shards watch the same symbols apart: their episodes are their own
        market = replace(market, alerts=market.alerts.with_columns(pl.format("{}|{}", pl.lit(scope), "alert_id")))
    protection = plan_protection(stored.protect_pending, drawdown.state, fresh_logins, config.protect, at=at)
    alerts = pl.concat([drawdown.alerts, _as_alerts(market.alerts), _protection_alerts(protection, at)], how="vertical")
    return GuardUpdate(drawdown, market, protection, alerts, at, scope)


def _as_alerts(frame: pl.DataFrame) -> pl.DataFrame:
    """Any guard's alert rows in the common columns (missing ones null)."""
    return frame.select(
        [(pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c) for c, t in ALERT_COLUMNS.items()]
    )


def _protection_alerts(plan: ProtectionPlan, at: datetime) -> pl.DataFrame:
    stamp = pl.lit(at).cast(frames.UTC_US)
    event = pl.col("decision").replace_strict(_DECISION_EVENTS, default=pl.col("decision"))
    event = (
        pl.when((pl.col("decision") == "close") & (pl.col("mode") == "dry_run"))
        .then(pl.lit("dry_run"))
        .otherwise(event)
    )
    rows = plan.decisions.select(
        pl.concat_str(
            [
                pl.col("login").cast(pl.String),
                pl.lit("protective_close"),
                event,
                stamp.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
            ],
            separator="|",
        ).alias("alert_id"),
        "login",
        pl.lit("protective_close").alias("guard"),
        event.alias("event"),
        pl.col("detail"),
        stamp.alias("since"),
        stamp.alias("at"),
    )
    return _as_alerts(rows)


def changed_rows(state: pl.DataFrame, at: datetime) -> pl.DataFrame:
    """The state rows this cycle touched (the store rewrites only those)."""
    return state.filter(pl.col("updated_at") == pl.lit(at).cast(frames.UTC_US))


def scoped_market_rows(update: GuardUpdate) -> pl.DataFrame:
    """This cycle's market state rows keyed for the store: scope|symbol."""
    return changed_rows(update.market.state, update.at).select(
        pl.format("{}|{}", pl.lit(update.scope), "symbol").alias("state_key"),
        pl.lit(update.scope).alias("scope"),
        pl.all(),
    )
