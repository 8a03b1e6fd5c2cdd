"""Protective close: off by default; when enabled for an account, a critical drawdown is first
announced, re-checked after a grace period, and only then are the account's positions closed.

Planning is pure (`plan_protection`): it reads the drawdown state after this cycle and the
pending announcements, and says per account what to do now:

- `warn`:   critical breach on a fresh snapshot, nothing pending -> announce, start the grace;
- `close`:  still critical on a fresh snapshot once the grace has passed -> close (`dry_run`
            mode records the requests it would send instead);
- `cancel`: recovered inside the grace -> the announcement is withdrawn.

A failed or stale snapshot decides nothing: the pending announcement waits for a fresh one.
One close per breach: the account is re-armed when the critical level clears.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from mt5recon import frames
from mt5recon.terminal import constants as c
from mt5recon.terminal.api import MT5Api

CLOSE_COMMENT = "mt5recon protective close"


class ProtectConfig(BaseModel):
    """Which accounts may be closed, how, and after what grace."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["off", "dry_run", "enabled"] = "off"
    accounts: tuple[int, ...] = Field(default=(), description="logins it applies to (none by default)")
    grace_secs: float = Field(default=10.0, ge=0, description="between the announcement and the close")
    deviation_points: int = Field(default=20, ge=0, description="accepted slippage of the close, in points")
    magic: int = Field(default=0, description="magic number on the close orders")


PENDING_SCHEMA = pl.Schema(
    {
        "login": pl.Int64(),
        "announced_at": frames.UTC_US,
        "breach_since": frames.UTC_US,  # the critical episode it belongs to
        "acted_at": frames.UTC_US,  # null until closed (or dry-run recorded)
    }
)
ACTION_SCHEMA = pl.Schema(
    {
        "at": frames.UTC_US,
        "login": pl.Int64(),
        "mode": pl.String(),  # dry_run: recorded, not sent
        "ticket": pl.Int64(),
        "symbol": pl.String(),
        "volume": pl.Float64(),
        "request": pl.String(),  # the order_send request as JSON
        "retcode": pl.Int64(),  # the trade server's answer (null in dry-run or when none came)
        "result_comment": pl.String(),
        "deal": pl.Int64(),
        "error": pl.String(),  # last_error() when order_send returned None, or why nothing was sent
    }
)
DECISIONS_SCHEMA = pl.Schema({"login": pl.Int64(), "decision": pl.String(), "mode": pl.String(), "detail": pl.String()})


@dataclass(frozen=True)
class ProtectionPlan:
    pending: pl.DataFrame  # PENDING_SCHEMA after this cycle
    decisions: pl.DataFrame  # DECISIONS_SCHEMA: what to do now


def empty_pending() -> pl.DataFrame:
    return pl.DataFrame(schema=PENDING_SCHEMA)


def plan_protection(
    pending: pl.DataFrame,
    drawdown_state: pl.DataFrame,
    fresh_logins: pl.DataFrame,
    config: ProtectConfig,
    *,
    at: datetime,
) -> ProtectionPlan:
    """Decide this cycle's protective steps (see the module docstring)."""
    if config.mode == "off" or not config.accounts:
        return ProtectionPlan(pending.clear(), pl.DataFrame(schema=DECISIONS_SCHEMA))
    covered = pl.DataFrame({"login": list(config.accounts)}, schema={"login": pl.Int64})
    stamp = pl.lit(at).cast(frames.UTC_US)
    fresh = fresh_logins.select("login").with_columns(pl.lit(True).alias("fresh"))
    work = (
        covered.join(drawdown_state.select("login", "critical_since", "drawdown_pct"), on="login", how="left")
        .join(pending, on="login", how="left")
        .join(fresh, on="login", how="left")
        .with_columns(pl.col("fresh").fill_null(False))
    )
    critical = pl.col("critical_since").is_not_null()
    waiting = pl.col("announced_at").is_not_null() & pl.col("acted_at").is_null()
    grace_over = stamp - pl.col("announced_at") >= pl.duration(milliseconds=int(config.grace_secs * 1000))
    decision = (
        pl.when(~pl.col("fresh"))
        .then(None)
        .when(critical & pl.col("announced_at").is_null())
        .then(pl.lit("warn"))
        .when(critical & waiting & grace_over)
        .then(pl.lit("close"))
        .when(~critical & waiting)
        .then(pl.lit("cancel"))
    )
    work = work.with_columns(decision.alias("decision"))
    kept = work.with_columns(
        pl.when(pl.col("decision") == "warn").then(stamp).otherwise(pl.col("announced_at")).alias("announced_at"),
        pl.when(pl.col("decision") == "warn")
        .then(pl.col("critical_since"))
        .otherwise(pl.col("breach_since"))
        .alias("breach_since"),
        pl.when(pl.col("decision") == "close").then(stamp).otherwise(pl.col("acted_at")).alias("acted_at"),
    ).filter(
        # an announcement lives until it is cancelled, or (after the close) until the breach clears
        pl.col("announced_at").is_not_null()
        & (pl.col("decision").fill_null("") != "cancel")
        & (critical | ~pl.col("fresh") | pl.col("acted_at").is_null())
    )
    detail = pl.format(
        "drawdown {}% from the peak: {}",
        pl.col("drawdown_pct").round(2),
        pl.when(pl.col("decision") == "warn")
        .then(pl.lit(f"positions will be closed in {config.grace_secs:g} s unless it recovers"))
        .when(pl.col("decision") == "close")
        .then(pl.lit("still critical after the grace: closing every position"))
        .otherwise(pl.lit("recovered inside the grace: close cancelled")),
    )
    decisions = work.filter(pl.col("decision").is_not_null()).select(
        "login", "decision", pl.lit(config.mode).alias("mode"), detail.alias("detail")
    )
    return ProtectionPlan(
        pending=kept.select(list(PENDING_SCHEMA)).cast(dict(PENDING_SCHEMA)).sort("login"),  # type: ignore[arg-type]
        decisions=decisions.cast(dict(DECISIONS_SCHEMA)).sort("login"),  # type: ignore[arg-type]
    )


def close_requests(positions: pl.DataFrame, ticks: pl.DataFrame, config: ProtectConfig) -> list[dict[str, Any]]:
    """MT5 close requests for these positions: an opposite market deal on the position's ticket,
    at the current bid (closing a buy) or ask (closing a sell)."""
    quotes = ticks.sort("time_msc").unique(["login", "symbol"], keep="last").select("login", "symbol", "bid", "ask")
    rows = positions.join(quotes, on=["login", "symbol"], how="left").sort("login", "ticket")
    requests = []
    for row in rows.iter_rows(named=True):
        closing_buy = row["type"] == c.POSITION_TYPE_BUY
        requests.append(
            {
                "action": c.TRADE_ACTION_DEAL,
                "symbol": row["symbol"],
                "volume": float(row["volume"]),
                "type": c.ORDER_TYPE_SELL if closing_buy else c.ORDER_TYPE_BUY,
                "position": int(row["ticket"]),
                "price": float((row["bid"] if closing_buy else row["ask"]) or 0.0),
                "deviation": config.deviation_points,
                "magic": config.magic,
                "comment": CLOSE_COMMENT,
                "type_time": c.ORDER_TIME_GTC,
                "type_filling": c.ORDER_FILLING_IOC,
            }
        )
    return requests


def execute_closes(
    decisions: pl.DataFrame,
    positions: pl.DataFrame,
    ticks: pl.DataFrame,
    config: ProtectConfig,
    terminal_for: Callable[[int], MT5Api],
    *,
    at: datetime,
) -> pl.DataFrame:
    """Carry out this cycle's `close` decisions: send each request (mode `enabled`) or record it
    (`dry_run`); every request and its result lands in one ACTION_SCHEMA row."""
    closing = decisions.filter(pl.col("decision") == "close")
    rows: list[dict[str, Any]] = []
    for login, mode in closing.select("login", "mode").iter_rows():
        requests = close_requests(positions.filter(pl.col("login") == login), ticks, config)
        api = None
        error = None
        if mode == "enabled" and requests:
            try:
                api = terminal_for(login)
            except Exception as exc:  # the terminal is gone: nothing sent, and the record says why
                error = f"terminal unavailable: {exc}"
        for request in requests:
            row = {
                "at": at,
                "login": login,
                "mode": mode,
                "ticket": request["position"],
                "symbol": request["symbol"],
                "volume": request["volume"],
                "request": json.dumps(request, sort_keys=True),
                "error": error,
            }
            if api is not None:
                row |= _send(api, request)
            rows.append(row)
    return pl.DataFrame(rows, schema=ACTION_SCHEMA) if rows else pl.DataFrame(schema=ACTION_SCHEMA)


def _send(api: MT5Api, request: dict[str, Any]) -> dict[str, Any]:
    """order_send and what came back: the retcode, or last_error() when there was no answer."""
    result = api.order_send(request)
    if result is None:
        code, message = api.last_error()
        return {"error": f"order_send returned None: {code} {message}"}
    return {"retcode": int(result.retcode), "result_comment": str(result.comment), "deal": int(result.deal)}
