"""The break lifecycle: a divergence with identity is a break, observed, opened (after confirmation
for accusing kinds), updated while it lasts, resolved when it clears. Pure and vectorized.

One call advances the stored state by one cycle and returns the rows it changed plus the
append-only audit events of every transition:

    observed   first sighting of an accusing kind (missing/unknown), awaiting confirmation
    opened     the break is confirmed (at once for the other kinds)
    reopened   a resolved break came back (same deterministic id)
    updated    an open break's cause, expected or actual value changed
    resolved   an open break cleared on a snapshot that could have shown it
    dismissed  a pending sighting cleared before it was confirmed

A failed or stale snapshot never counts as an observation: breaks of an account that could not
be observed stay as they are (no confirmation, no resolution). Applying the same cycle twice
changes nothing (rows already advanced to this cycle's time are left alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from mt5recon import frames
from mt5recon.recon import divergences as dv
from mt5recon.recon.entry_deals import ENTRY_DEAL_STAGE
from mt5recon.store.tables import BREAK_EVENTS, BREAKS
from mt5recon.tolerances import BreakPolicy

STATE_SCHEMA = pl.Schema({k: v for k, v in BREAKS.items() if k != "cycle_id"})
EVENT_SCHEMA = pl.Schema({k: v for k, v in BREAK_EVENTS.items() if k != "cycle_id"})
_SNAPSHOT_KINDS = [dv.SNAPSHOT_FAILED, dv.SNAPSHOT_STALE]
_VALUES = ("trade_id", "ticket", "identifier", "symbol", "stage", "expected", "actual", "size_pips", "size_money")
_CAUSE_UNAVAILABLE = "unknown_deals_unavailable"


@dataclass(frozen=True)
class BreakUpdate:
    state: pl.DataFrame  # changed break rows (STATE_SCHEMA): write them over the stored ones by break_id
    events: pl.DataFrame  # new audit events (EVENT_SCHEMA)


def _current(found: pl.DataFrame) -> pl.DataFrame:
    """This cycle's divergences, one per break id, columns prefixed `c_`."""
    unique = found.sort("break_id", "detected_at").unique("break_id", keep="first", maintain_order=True)
    return unique.select("break_id", *[pl.col(c).alias(f"c_{c}") for c in unique.columns if c != "break_id"])


def _evaluated(observed: pl.DataFrame) -> pl.Expr:
    """Could this cycle have shown the break? Snapshot kinds: the account was fetched at all;
    deal-evidenced slippage: the deals call succeeded; everything else: the account was reconciled."""
    return (
        pl.when(pl.col("kind").is_in(_SNAPSHOT_KINDS))
        .then(pl.col("seen").fill_null(False))
        .when(pl.col("stage") == ENTRY_DEAL_STAGE)
        .then(pl.col("reconciled").fill_null(False) & pl.col("deals_ok").fill_null(False))
        .otherwise(pl.col("reconciled").fill_null(False))
    )


def _worst(current: str, worst: str) -> pl.Expr:
    keep_old = pl.col(worst).is_not_null() & (
        pl.col(current).is_null() | (pl.col(worst).abs() >= pl.col(current).abs())
    )
    return (
        pl.when(pl.col("new_episode"))
        .then(pl.col(current))
        .when(keep_old)
        .then(pl.col(worst))
        .otherwise(pl.col(current))
    )


def advance(
    state: pl.DataFrame,
    found: pl.DataFrame,
    *,
    observed: pl.DataFrame,
    at: datetime,
    policy: BreakPolicy | None = None,
) -> BreakUpdate:
    """Advance `state` (stored breaks) by one cycle at `at` with this cycle's divergences `found`.

    `observed`: login, reconciled, deals_ok for every account the cycle fetched (reconciled is
    false for a failed or stale snapshot).
    """
    policy = policy or BreakPolicy()
    now = pl.lit(at).cast(frames.UTC_US)
    joined = (
        state.cast(dict(STATE_SCHEMA))  # type: ignore[arg-type]
        .join(_current(found), on="break_id", how="full", coalesce=True)
        .with_columns(
            pl.coalesce("login", "c_login").alias("login"),
            pl.coalesce("kind", "c_kind").alias("kind"),
            pl.coalesce("c_stage", "stage").alias("stage"),
        )
        .join(observed.select("login", "reconciled", "deals_ok", pl.lit(True).alias("seen")), on="login", how="left")
    )
    present = pl.col("c_kind").is_not_null()
    prior = pl.col("status")
    fresh = pl.col("updated_at").is_null() | (pl.col("updated_at") < now)
    needed = pl.when(pl.col("kind").is_in(list(dv.CONFIRMED_KINDS))).then(policy.confirm_observations).otherwise(1)
    marked = joined.with_columns(
        present.alias("present"),
        (present & (prior.is_null() | prior.is_in(["resolved", "dismissed"]))).alias("new_episode"),
        (~present & _evaluated(observed) & prior.is_in(["pending", "open"])).alias("clearing"),
        fresh.alias("fresh"),
    ).filter(pl.col("fresh") & (pl.col("present") | pl.col("clearing")))
    counted = marked.with_columns(
        pl.when(pl.col("new_episode"))
        .then(1)
        .when(pl.col("present"))
        .then(pl.col("observations") + 1)
        .otherwise(pl.col("observations"))
        .cast(pl.Int64)
        .alias("observations_new"),
    )
    status = (
        pl.when(pl.col("present") & (pl.col("observations_new") >= needed))
        .then(pl.lit("open"))
        .when(pl.col("present"))
        .then(pl.lit("pending"))
        .when(prior == "open")
        .then(pl.lit("resolved"))
        .otherwise(pl.lit("dismissed"))
    )
    staged = counted.with_columns(status.alias("status_new"))
    opening = (pl.col("status_new") == "open") & (prior.is_null() | (prior != "open"))
    event = (
        pl.when(opening & (prior == "resolved") & pl.col("new_episode"))
        .then(pl.lit("reopened"))
        .when(opening)
        .then(pl.lit("opened"))
        .when(pl.col("new_episode"))
        .then(pl.lit("observed"))
        .when(pl.col("clearing"))
        .then(pl.col("status_new"))
        .when(
            (prior == "open")
            & (
                pl.col("cause").ne_missing(pl.col("cause_new"))
                | pl.col("expected").ne_missing(pl.col("c_expected"))
                | pl.col("actual").ne_missing(pl.col("c_actual"))
            )
        )
        .then(pl.lit("updated"))
    )
    # a cycle whose deals call failed cannot tell why a position closed: keep the cause already known
    cause_new = (
        pl.when(~pl.col("present"))
        .then(pl.col("cause"))
        .when((pl.col("c_cause") == _CAUSE_UNAVAILABLE) & pl.col("cause").is_not_null() & ~pl.col("new_episode"))
        .then(pl.col("cause"))
        .otherwise(pl.col("c_cause"))
    )
    advanced = staged.with_columns(cause_new.alias("cause_new")).with_columns(
        event.alias("event"),
        opening.alias("opening"),
        pl.when(pl.col("new_episode")).then(now).otherwise(pl.col("first_seen_at")).alias("first_seen_at_new"),
    )
    new_state = advanced.select(
        "break_id",
        "login",
        "kind",
        pl.col("status_new").alias("status"),
        pl.col("cause_new").alias("cause"),
        *[
            pl.when(pl.col("present")).then(pl.col(f"c_{c}")).otherwise(pl.col(c)).alias(c)
            for c in _VALUES
            if c != "stage"
        ],
        "stage",
        _worst("c_size_pips", "worst_size_pips").alias("worst_size_pips"),
        _worst("c_size_money", "worst_size_money").alias("worst_size_money"),
        pl.col("first_seen_at_new").alias("first_seen_at"),
        pl.when(pl.col("opening"))
        .then(now)
        .when(pl.col("new_episode"))
        .then(None)
        .otherwise(pl.col("opened_at"))
        .alias("opened_at"),
        pl.when(pl.col("present")).then(now).otherwise(pl.col("last_seen_at")).alias("last_seen_at"),
        pl.when(pl.col("clearing")).then(now).alias("resolved_at"),
        now.alias("updated_at"),
        ((now - pl.col("first_seen_at_new")).dt.total_milliseconds() / 1000.0).alias("age_secs"),
        pl.col("observations_new").alias("observations"),
        (pl.col("occurrences").fill_null(0) + pl.col("present").cast(pl.Int64)).alias("occurrences"),
        (pl.col("episodes").fill_null(0) + pl.col("opening").cast(pl.Int64)).alias("episodes"),
        "event",
        pl.col("status").alias("previous_status"),
        pl.col("cause").alias("previous_cause"),
    )
    events = new_state.filter(pl.col("event").is_not_null()).select(
        pl.concat_str(
            [pl.col("break_id"), pl.col("event"), now.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")], separator="|"
        ).alias("event_id"),
        "break_id",
        "login",
        "kind",
        "event",
        now.alias("event_at"),
        "status",
        "previous_status",
        "cause",
        "previous_cause",
        "symbol",
        "trade_id",
        "expected",
        "actual",
        "size_pips",
        "size_money",
        "occurrences",
        "age_secs",
    )
    return BreakUpdate(
        state=new_state.select(list(STATE_SCHEMA)).cast(dict(STATE_SCHEMA)).sort("break_id"),  # type: ignore[arg-type]
        events=events.cast(dict(EVENT_SCHEMA)).sort("break_id"),  # type: ignore[arg-type]
    )


def merged(state: pl.DataFrame, update: BreakUpdate) -> pl.DataFrame:
    """The state after the update (what the store holds once the cycle commits)."""
    kept = state.join(update.state.select("break_id"), on="break_id", how="anti")
    return pl.concat([kept.cast(dict(STATE_SCHEMA)), update.state], how="vertical").sort("break_id")  # type: ignore[arg-type]
