"""Every table of the analysts' store and its columns: the one place the store's shape is declared.

Each table carries `cycle_id`, the key that makes a cycle's commit idempotent.
"""

from __future__ import annotations

import polars as pl

from mt5recon import frames
from mt5recon.guards import drawdown, market, protect

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
TERMINAL_HEALTH = pl.Schema({**CYCLE_ID, **frames.HEALTH})

# a position's identity and the fields whose change is recorded (TradePosition names)
_POSITION = {
    "position_key": pl.String(),  # login:identifier (the identifier never changes; the ticket may)
    "login": pl.Int64(),
    "identifier": pl.Int64(),
    "ticket": pl.Int64(),
    "symbol": pl.String(),
    "type": pl.Int32(),
    "magic": pl.Int64(),
    "reason": pl.Int32(),
    "volume": pl.Float64(),
    "price_open": pl.Float64(),
    "sl": pl.Float64(),
    "tp": pl.Float64(),
    "time": frames.UTC_MS,
    "comment": pl.String(),
    # the bot trade matched to it, and by which stage (null: unknown position)
    "trade_id": pl.String(),
    "stage": pl.String(),
    # how far the pair is apart: |broker - bot price| in pips, broker / bot volume (not tracked: a
    # netting average moves with every fill; the values are those of the row's change)
    "match_price_pips": pl.Float64(),
    "match_volume_ratio": pl.Float64(),
}
# what changed: opened | changed | closed, the tracked fields that changed, and when it was seen
_CHANGE = {"change": pl.String(), "changed_fields": pl.String(), "changed_at": frames.UTC_US}

# append-only: a row when a position appears, changes (volume, SL, TP, ticket, match) or disappears
POSITION_CHANGES = pl.Schema(
    {
        **CYCLE_ID,
        **_CHANGE,
        **_POSITION,
        "price_current": pl.Float64(),
        "profit": pl.Float64(),
        "swap": pl.Float64(),
    }
)
# current state: the open positions as last seen, one row each, replaced when they change
CURRENT_POSITIONS = pl.Schema({**CYCLE_ID, **_POSITION, "first_seen_at": frames.UTC_US, "changed_at": frames.UTC_US})

_EXPECTED = {"trade_key": pl.String(), **frames.EXPECTED_TRADES}  # trade_key = login:trade_id
# append-only: a row when a bot trade appears, changes (volume, price, SL, TP, position id, close) or disappears
EXPECTED_TRADE_CHANGES = pl.Schema({**CYCLE_ID, **_CHANGE, **_EXPECTED})
CURRENT_EXPECTED_TRADES = pl.Schema(
    {**CYCLE_ID, **_EXPECTED, "first_seen_at": frames.UTC_US, "changed_at": frames.UTC_US}
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

QUARANTINE = pl.Schema({**CYCLE_ID, **frames.QUARANTINE})

# guards: alerts (append-only), their current state, and the protective close's audit trail
GUARD_ALERTS = pl.Schema({**CYCLE_ID, **drawdown.ALERT_COLUMNS})
DRAWDOWN_STATE = pl.Schema({**CYCLE_ID, **drawdown.STATE_SCHEMA})
# market state per scope (the fleet, or one shard of it) and symbol: shards never share a row
MARKET_STATE = pl.Schema({**CYCLE_ID, "state_key": pl.String(), "scope": pl.String(), **market.STATE_SCHEMA})
PROTECT_PENDING = pl.Schema({**CYCLE_ID, **protect.PENDING_SCHEMA})
PROTECTIVE_ACTIONS = pl.Schema({**CYCLE_ID, **protect.ACTION_SCHEMA})
POSITIONS_AT_RISK = pl.Schema({**CYCLE_ID, **market.AT_RISK_SCHEMA})
GUARD_TABLES = (
    "guard_alerts",
    "drawdown_state",
    "market_state",
    "protect_pending",
    "protective_actions",
    "positions_at_risk",
)

STORE_TABLES: dict[str, pl.Schema] = {
    "cycles": CYCLES,
    "account_snapshots": ACCOUNT_SNAPSHOTS,
    "terminal_health": TERMINAL_HEALTH,
    "position_changes": POSITION_CHANGES,
    "current_positions": CURRENT_POSITIONS,
    "expected_trade_changes": EXPECTED_TRADE_CHANGES,
    "current_expected_trades": CURRENT_EXPECTED_TRADES,
    "breaks": BREAKS,
    "break_events": BREAK_EVENTS,
    "quarantine": QUARANTINE,
    "guard_alerts": GUARD_ALERTS,
    "drawdown_state": DRAWDOWN_STATE,
    "market_state": MARKET_STATE,
    "protect_pending": PROTECT_PENDING,
    "protective_actions": PROTECTIVE_ACTIONS,
    "positions_at_risk": POSITIONS_AT_RISK,
}
# tables that hold current state: a commit replaces the rows whose key it writes, and deletes the
# keys it is told to (a closed position); every other table only appends
STATE_KEYS: dict[str, str] = {
    "breaks": "break_id",
    "current_positions": "position_key",
    "current_expected_trades": "trade_key",
    "drawdown_state": "login",
    "market_state": "state_key",
    "protect_pending": "login",
}

# the bot's own table, when the bot writes its expected trades into the store (not per cycle)
BOT_EXPECTED_TRADES = pl.Schema({**frames.EXPECTED_TRADES, "written_at": frames.UTC_US})
