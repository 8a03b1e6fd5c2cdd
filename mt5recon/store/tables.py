"""Every table of the analysts' store and its columns: the one place the store's shape is declared.

Each table carries `cycle_id`, the key that makes a cycle's commit idempotent.
"""

from __future__ import annotations

import polars as pl

from mt5recon import frames

CYCLE_ID = {"cycle_id": pl.String()}

CYCLES = pl.Schema(
    {
        **CYCLE_ID,
        "login": pl.Int64(),
        "started_at": frames.UTC_US,
        "finished_at": frames.UTC_US,
        # ok | failed (a snapshot call failed: nothing reconciled as flat)
        "status": pl.String(),
        "error": pl.String(),
        "positions": pl.Int64(),
        "expected_open": pl.Int64(),
        "matched": pl.Int64(),
        "divergences": pl.Int64(),
        "quarantined": pl.Int64(),
        "fetch_ms": pl.Float64(),
        "reconcile_ms": pl.Float64(),
    }
)

ACCOUNT_SNAPSHOTS = pl.Schema({**CYCLE_ID, **frames.ACCOUNTS})
POSITIONS = pl.Schema({**CYCLE_ID, **frames.POSITIONS})

MATCHES = pl.Schema(
    {
        **CYCLE_ID,
        "login": pl.Int64(),
        "trade_id": pl.String(),
        "ticket": pl.Int64(),
        "identifier": pl.Int64(),
        "symbol": pl.String(),
        # identity | tag | fuzzy | netting
        "stage": pl.String(),
        "price_diff_pips": pl.Float64(),
        "volume_ratio": pl.Float64(),
    }
)

# one row per break (a divergence with identity), rewritten whenever the cycle `cycle_id` touched it
BREAKS = pl.Schema(
    {
        **CYCLE_ID,
        "break_id": pl.String(),  # login:kind:identity (trade id, pos<identifier>, sym<instrument>, snapshot)
        "login": pl.Int64(),
        "kind": pl.String(),
        # pending (seen, awaiting confirmation) | open | resolved | dismissed (cleared before confirmation)
        "status": pl.String(),
        "cause": pl.String(),
        "trade_id": pl.String(),
        "ticket": pl.Int64(),
        "identifier": pl.Int64(),
        "symbol": pl.String(),
        "stage": pl.String(),
        "expected": pl.Float64(),
        "actual": pl.Float64(),
        "size_pips": pl.Float64(),
        "size_money": pl.Float64(),
        "worst_size_pips": pl.Float64(),
        "worst_size_money": pl.Float64(),
        "first_seen_at": frames.UTC_US,
        "opened_at": frames.UTC_US,
        "last_seen_at": frames.UTC_US,
        "resolved_at": frames.UTC_US,
        "updated_at": frames.UTC_US,
        "age_secs": pl.Float64(),
        "observations": pl.Int64(),
        "occurrences": pl.Int64(),
        "episodes": pl.Int64(),
    }
)

# append-only audit log: one row per lifecycle transition
BREAK_EVENTS = pl.Schema(
    {
        **CYCLE_ID,
        "event_id": pl.String(),
        "break_id": pl.String(),
        "login": pl.Int64(),
        "kind": pl.String(),
        # observed | opened | updated | resolved | dismissed | reopened
        "event": pl.String(),
        "event_at": frames.UTC_US,
        "status": pl.String(),
        "previous_status": pl.String(),
        "cause": pl.String(),
        "previous_cause": pl.String(),
        "symbol": pl.String(),
        "trade_id": pl.String(),
        "expected": pl.Float64(),
        "actual": pl.Float64(),
        "size_pips": pl.Float64(),
        "size_money": pl.Float64(),
        "occurrences": pl.Int64(),
        "age_secs": pl.Float64(),
    }
)

QUARANTINE = pl.Schema(
    {
        **CYCLE_ID,
        "frame": pl.String(),
        "login": pl.Int64(),
        "row_index": pl.Int64(),
        "reason": pl.String(),
        "raw": pl.String(),
        "quarantined_at": frames.UTC_US,
    }
)

STORE_TABLES: dict[str, pl.Schema] = {
    "cycles": CYCLES,
    "account_snapshots": ACCOUNT_SNAPSHOTS,
    "positions": POSITIONS,
    "matches": MATCHES,
    "breaks": BREAKS,
    "break_events": BREAK_EVENTS,
    "quarantine": QUARANTINE,
}
# tables that hold current state: a commit replaces the rows whose key it writes (the rest append)
STATE_KEYS: dict[str, str] = {"breaks": "break_id"}
