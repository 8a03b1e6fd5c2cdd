"""Change histories instead of full copies: compare what a cycle sees with the stored current state.

A position (or a bot trade) gets a history row when it appears, when a tracked field changes, and
when it disappears; the current-state table holds its latest version. Only accounts whose snapshot
succeeded are compared, so a failed fetch never closes anything, and a row quarantined this cycle
is not taken for gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from mt5recon import frames
from mt5recon.login_ranges import in_range, login_ranges
from mt5recon.store import tables

_PREVIOUS = "prev_"
LOGINS_PER_PASS = 2_500
"""Logins diffed at a time: the full join of a pass holds both versions of its rows, so a large
fleet is diffed a range of logins at a time (the same rows as one pass, a bounded working set)."""


@dataclass(frozen=True)
class Tracked:
    """What is tracked: its key, the fields whose change is recorded, the names of the three
    changes, and the history and current-state tables it goes to."""

    key: str
    fields: tuple[str, ...]
    kinds: tuple[str, str, str]  # appears, changes, disappears
    change_schema: pl.Schema
    state_schema: pl.Schema


POSITIONS = Tracked(
    key="position_key",
    fields=("ticket", "volume", "sl", "tp", "type", "price_open", "trade_id", "stage"),
    kinds=("opened", "changed", "closed"),
    change_schema=tables.POSITION_CHANGES,
    state_schema=tables.CURRENT_POSITIONS,
)
TRADES = Tracked(
    key="trade_key",
    fields=("volume", "price", "sl", "tp", "position_id", "closed_at", "symbol", "side", "magic"),
    kinds=("appeared", "changed", "removed"),
    change_schema=tables.EXPECTED_TRADE_CHANGES,
    state_schema=tables.CURRENT_EXPECTED_TRADES,
)


@dataclass(frozen=True)
class ChangeSet:
    changes: pl.DataFrame  # history rows (the *_changes table, without cycle_id)
    upserts: pl.DataFrame  # new versions for the current-state table (without cycle_id)
    deletes: pl.DataFrame  # keys to remove from the current-state table


def _without_cycle(schema: pl.Schema) -> pl.Schema:
    return pl.Schema({k: v for k, v in schema.items() if k != "cycle_id"})


def track(
    what: Tracked,
    previous: pl.DataFrame,
    current: pl.DataFrame,
    *,
    scope: pl.DataFrame,
    protected: pl.DataFrame,
    at: datetime,
) -> ChangeSet:
    """Diff `current` against `previous` (both keyed by `what.key`) for the logins in `scope`.

    `protected`: keys that must not be closed this cycle (their row was quarantined).
    """
    key, fields = what.key, what.fields
    change_schema, state_schema = what.change_schema, what.state_schema
    opened, changed, closed = what.kinds
    now = pl.lit(at).cast(frames.UTC_US)
    change_cols, state_cols = _without_cycle(change_schema), _without_cycle(state_schema)
    before = previous.join(scope.select("login").unique(), on="login", how="semi")
    seen = current.join(scope.select("login").unique(), on="login", how="semi")
    prior = before.select(pl.col(key), pl.exclude(key).name.prefix(_PREVIOUS))
    joined = seen.with_columns(pl.lit(True).alias("_now")).join(prior, on=key, how="full", coalesce=True)
    differs = [pl.col(f).ne_missing(pl.col(_PREVIOUS + f)) for f in fields]
    changed_fields = pl.concat_str(
        [pl.when(d).then(pl.lit(f)) for f, d in zip(fields, differs, strict=True)], separator=",", ignore_nulls=True
    )
    was_there = pl.col(_PREVIOUS + "login").is_not_null()
    is_there = pl.col("_now").fill_null(False)
    marked = joined.with_columns(
        pl.when(is_there & ~was_there)
        .then(pl.lit(opened))
        .when(is_there & pl.any_horizontal(differs))
        .then(pl.lit(changed))
        .when(~is_there & was_there)
        .then(pl.lit(closed))
        .alias("change"),
        pl.when(is_there & was_there).then(changed_fields).alias("changed_fields"),
        now.alias("changed_at"),
    ).join(protected.select(key).with_columns(pl.lit(True).alias("_protected")), on=key, how="left")
    marked = marked.filter(
        pl.col("change").is_not_null() & ~((pl.col("change") == closed) & pl.col("_protected").fill_null(False))
    )
    gone = pl.col("change") == closed
    # a closed row keeps its last known values; the others carry what was seen now
    values = [
        pl.when(gone).then(pl.col(_PREVIOUS + c)).otherwise(pl.col(c)).alias(c)
        if _PREVIOUS + c in marked.columns and c in marked.columns
        else (pl.col(c) if c in marked.columns else pl.lit(None)).alias(c)
        for c in change_cols
        if c not in ("change", "changed_fields", "changed_at", key)
    ]
    changes = marked.select(pl.col("change"), pl.col("changed_fields"), pl.col("changed_at"), pl.col(key), *values)
    kept = marked.filter(~gone).with_columns(pl.coalesce(_PREVIOUS + "first_seen_at", now).alias("first_seen_at"))
    upserts = kept.select([(pl.col(c) if c in kept.columns else pl.lit(None)).alias(c) for c in state_cols])
    return ChangeSet(
        changes=changes.select(list(change_cols)).cast(dict(change_cols)).sort(key),  # type: ignore[arg-type]
        upserts=upserts.cast(dict(state_cols)).sort(key),  # type: ignore[arg-type]
        deletes=marked.filter(gone).select(key).sort(key),
    )


def _in_passes(
    what: Tracked, scope: pl.DataFrame, one_pass: Callable[[int, int], ChangeSet], logins_per_pass: int
) -> ChangeSet:
    """`one_pass(first, last)` over consecutive login ranges of `scope`, joined and sorted as one
    pass sorts its rows."""
    ranges = login_ranges(scope, logins_per_pass) or [(0, -1)]  # no login: one empty pass
    parts = [one_pass(first, last) for first, last in ranges]
    if len(parts) == 1:
        return parts[0]
    return ChangeSet(
        changes=pl.concat([p.changes for p in parts], how="vertical").sort(what.key),
        upserts=pl.concat([p.upserts for p in parts], how="vertical").sort(what.key),
        deletes=pl.concat([p.deletes for p in parts], how="vertical").sort(what.key),
    )


def positions_now(positions: pl.DataFrame, matches: pl.DataFrame) -> pl.DataFrame:
    """Validated positions keyed by login:identifier, with the bot trade(s) matched to each."""
    # a position is almost always one bot trade's: only tickets with several go through the
    # per-group join (a string join per group cost ~0.1 s at 100,000 positions)
    ordered = matches.sort("login", "ticket", "trade_id")  # first = smallest trade id, as joined
    several = pl.len().over("login", "ticket") > 1
    columns = ["login", "ticket", "trade_id", "stage", "price_diff_pips", "volume_ratio"]
    shared = (
        ordered.filter(several)
        .group_by("login", "ticket", maintain_order=True)
        .agg(pl.col("trade_id").str.join(","), pl.exclude("trade_id").first())
        .select(columns)
    )
    matched = pl.concat([ordered.filter(~several).select(columns), shared], how="vertical").rename(
        {"price_diff_pips": "match_price_pips", "volume_ratio": "match_volume_ratio"}
    )
    return positions.join(matched, on=["login", "ticket"], how="left").with_columns(
        pl.format("{}:{}", pl.col("login"), pl.col("identifier")).alias("position_key")
    )


def trades_now(expected: pl.DataFrame) -> pl.DataFrame:
    """Validated expected trades keyed by login:trade_id."""
    return expected.with_columns(pl.format("{}:{}", pl.col("login"), pl.col("trade_id")).alias("trade_key"))


def track_positions(
    previous: pl.DataFrame,
    positions: pl.DataFrame,
    matches: pl.DataFrame,
    *,
    reconciled: pl.DataFrame,
    quarantined: pl.DataFrame,
    at: datetime,
    logins_per_pass: int = LOGINS_PER_PASS,
) -> ChangeSet:
    """Position history for accounts reconciled this cycle; `quarantined`: login, identifier."""
    protected = quarantined.drop_nulls().select(
        pl.format("{}:{}", pl.col("login"), pl.col("identifier")).alias("position_key")
    )

    def one_pass(first: int, last: int) -> ChangeSet:
        return track(
            POSITIONS,
            in_range(previous, first, last),
            positions_now(in_range(positions, first, last), in_range(matches, first, last)),
            scope=in_range(reconciled, first, last),
            protected=protected,
            at=at,
        )

    return _in_passes(POSITIONS, reconciled, one_pass, logins_per_pass)


def track_trades(
    previous: pl.DataFrame,
    expected: pl.DataFrame,
    *,
    quarantine: pl.DataFrame,
    at: datetime,
    logins_per_pass: int = LOGINS_PER_PASS,
) -> ChangeSet:
    """What the bot expects, as a history: every login the source returned or held before."""
    rows = quarantine.filter(pl.col("frame") == "expected_trades")
    protected = rows.select(
        pl.format(
            "{}:{}", pl.col("raw").str.json_path_match("$.login"), pl.col("raw").str.json_path_match("$.trade_id")
        ).alias("trade_key")
    ).drop_nulls()
    scope = pl.concat([expected.select("login"), previous.select("login")]).unique()

    def one_pass(first: int, last: int) -> ChangeSet:
        return track(
            TRADES,
            in_range(previous, first, last),
            trades_now(in_range(expected, first, last)),
            scope=in_range(scope, first, last),
            protected=protected,
            at=at,
        )

    return _in_passes(TRADES, scope, one_pass, logins_per_pass)
