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

DIVERGENCES = pl.Schema(
    {
        **CYCLE_ID,
        "break_id": pl.String(),
        "login": pl.Int64(),
        "kind": pl.String(),
        "trade_id": pl.String(),
        "ticket": pl.Int64(),
        "identifier": pl.Int64(),
        "symbol": pl.String(),
        "stage": pl.String(),
        "expected": pl.Float64(),
        "actual": pl.Float64(),
        "size_pips": pl.Float64(),
        "size_money": pl.Float64(),
        "cause": pl.String(),
        "detected_at": frames.UTC_US,
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
    "divergences": DIVERGENCES,
    "quarantine": QUARANTINE,
}
