"""Polars dtypes of every frame: the MT5 named-tuple fields plus `login` and `fetched_at`.

One place says what each column is, so the connector, the replay reader, the schemas and
the store agree. MT5 times become UTC datetimes (`*_msc` with millisecond precision).
"""

from __future__ import annotations

import polars as pl

UTC_MS = pl.Datetime("ms", "UTC")
UTC_US = pl.Datetime("us", "UTC")

_SNAPSHOT_KEYS: dict[str, pl.DataType] = {"login": pl.Int64(), "fetched_at": UTC_US}

ACCOUNTS = pl.Schema(
    {
        **_SNAPSHOT_KEYS,
        "trade_mode": pl.Int32(),
        "leverage": pl.Int64(),
        "limit_orders": pl.Int64(),
        "margin_so_mode": pl.Int32(),
        "trade_allowed": pl.Boolean(),
        "trade_expert": pl.Boolean(),
        "margin_mode": pl.Int32(),
        "currency_digits": pl.Int32(),
        "fifo_close": pl.Boolean(),
        "balance": pl.Float64(),
        "credit": pl.Float64(),
        "profit": pl.Float64(),
        "equity": pl.Float64(),
        "margin": pl.Float64(),
        "margin_free": pl.Float64(),
        "margin_level": pl.Float64(),
        "margin_so_call": pl.Float64(),
        "margin_so_so": pl.Float64(),
        "margin_initial": pl.Float64(),
        "margin_maintenance": pl.Float64(),
        "assets": pl.Float64(),
        "liabilities": pl.Float64(),
        "commission_blocked": pl.Float64(),
        "name": pl.String(),
        "server": pl.String(),
        "currency": pl.String(),
        "company": pl.String(),
        # which calls of this snapshot succeeded: a failed fetch is not an empty account
        "account_ok": pl.Boolean(),
        "positions_ok": pl.Boolean(),
        "orders_ok": pl.Boolean(),
        "deals_ok": pl.Boolean(),
    }
)

POSITIONS = pl.Schema(
    {
        **_SNAPSHOT_KEYS,
        "ticket": pl.Int64(),
        "time": UTC_MS,
        "time_msc": UTC_MS,
        "time_update": UTC_MS,
        "time_update_msc": UTC_MS,
        "type": pl.Int32(),
        "magic": pl.Int64(),
        "identifier": pl.Int64(),
        "reason": pl.Int32(),
        "volume": pl.Float64(),
        "price_open": pl.Float64(),
        "sl": pl.Float64(),
        "tp": pl.Float64(),
        "price_current": pl.Float64(),
        "swap": pl.Float64(),
        "profit": pl.Float64(),
        "symbol": pl.String(),
        "comment": pl.String(),
        "external_id": pl.String(),
    }
)

ORDERS = pl.Schema(
    {
        **_SNAPSHOT_KEYS,
        "ticket": pl.Int64(),
        "time_setup": UTC_MS,
        "time_setup_msc": UTC_MS,
        "time_done": UTC_MS,
        "time_done_msc": UTC_MS,
        "time_expiration": UTC_MS,
        "type": pl.Int32(),
        "type_time": pl.Int32(),
        "type_filling": pl.Int32(),
        "state": pl.Int32(),
        "magic": pl.Int64(),
        "position_id": pl.Int64(),
        "position_by_id": pl.Int64(),
        "reason": pl.Int32(),
        "volume_initial": pl.Float64(),
        "volume_current": pl.Float64(),
        "price_open": pl.Float64(),
        "sl": pl.Float64(),
        "tp": pl.Float64(),
        "price_current": pl.Float64(),
        "price_stoplimit": pl.Float64(),
        "symbol": pl.String(),
        "comment": pl.String(),
        "external_id": pl.String(),
    }
)

DEALS = pl.Schema(
    {
        **_SNAPSHOT_KEYS,
        "ticket": pl.Int64(),
        "order": pl.Int64(),
        "time": UTC_MS,
        "time_msc": UTC_MS,
        "type": pl.Int32(),
        "entry": pl.Int32(),
        "magic": pl.Int64(),
        "position_id": pl.Int64(),
        "reason": pl.Int32(),
        "volume": pl.Float64(),
        "price": pl.Float64(),
        "commission": pl.Float64(),
        "swap": pl.Float64(),
        "profit": pl.Float64(),
        "fee": pl.Float64(),
        "symbol": pl.String(),
        "comment": pl.String(),
        "external_id": pl.String(),
    }
)

TICKS = pl.Schema(
    {
        **_SNAPSHOT_KEYS,
        "symbol": pl.String(),
        "time": UTC_MS,
        "bid": pl.Float64(),
        "ask": pl.Float64(),
        "last": pl.Float64(),
        "volume": pl.Int64(),
        "time_msc": UTC_MS,
        "flags": pl.Int32(),
        "volume_real": pl.Float64(),
    }
)

SYMBOLS = pl.Schema(
    {
        **_SNAPSHOT_KEYS,
        "name": pl.String(),
        "digits": pl.Int32(),
        "point": pl.Float64(),
        "trade_contract_size": pl.Float64(),
        # value of one trade_tick_size move for one lot, in the ACCOUNT's currency (MT5 computes it)
        "trade_tick_value": pl.Float64(),
        "trade_tick_size": pl.Float64(),
        "volume_min": pl.Float64(),
        "volume_step": pl.Float64(),
        "currency_profit": pl.String(),
        "path": pl.String(),  # e.g. Forex\\Majors\\EURUSD: the asset class for the market guard
    }
)

EXPECTED_TRADES = pl.Schema(
    {
        "trade_id": pl.String(),
        "login": pl.Int64(),
        "symbol": pl.String(),
        "side": pl.String(),
        "volume": pl.Float64(),
        "price": pl.Float64(),
        "sl": pl.Float64(),
        "tp": pl.Float64(),
        "magic": pl.Int64(),
        "position_id": pl.Int64(),
        "opened_at": UTC_US,
        "closed_at": UTC_US,
    }
)

# a row that failed validation: which frame, whose, where it was, why, and the row as received (JSON)
QUARANTINE = pl.Schema(
    {
        "frame": pl.String(),
        "login": pl.Int64(),
        "row_index": pl.Int64(),
        "reason": pl.String(),
        "raw": pl.String(),
        "quarantined_at": UTC_US,
    }
)

# per terminal and cycle: what an operator needs to trust (or not) the account's data
HEALTH = pl.Schema(
    {
        "login": pl.Int64(),
        "fetched_at": UTC_US,
        "connected": pl.Boolean(),  # terminal_info().connected: the terminal talks to its server
        "trade_allowed": pl.Boolean(),  # terminal and account allow (expert) trading
        "ping_ms": pl.Float64(),  # terminal_info().ping_last, in ms
        "calls_ms": pl.Float64(),  # wall time of this cycle's snapshot calls
        "last_tick_at": UTC_MS,  # newest quote among the account's symbols
        "data_age_secs": pl.Float64(),  # fetched_at - last_tick_at
        "error_code": pl.Int64(),  # last_error() of the first failed call
        "error_kind": pl.String(),  # its type (terminal.errors), e.g. ipc_timeout, auth_failed
        "breaker_state": pl.String(),  # closed | open | half_open after this cycle
    }
)

SNAPSHOT_FRAMES: dict[str, pl.Schema] = {
    "accounts": ACCOUNTS,
    "positions": POSITIONS,
    "orders": ORDERS,
    "deals": DEALS,
    "ticks": TICKS,
    "symbols": SYMBOLS,
}

ALL_FRAMES: dict[str, pl.Schema] = {**SNAPSHOT_FRAMES, "expected_trades": EXPECTED_TRADES}

# MT5 integer time fields and their unit (seconds or milliseconds since epoch, server clock)
TIME_FIELDS_SECS = {"time", "time_update", "time_setup", "time_done", "time_expiration"}
TIME_FIELDS_MSC = {"time_msc", "time_update_msc", "time_setup_msc", "time_done_msc"}


def empty(name: str) -> pl.DataFrame:
    """An empty frame with the right columns and dtypes."""
    return pl.DataFrame(schema=ALL_FRAMES[name])
