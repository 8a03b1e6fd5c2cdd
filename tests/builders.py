"""Inline frame builders for tests: a row is a dict of the fields that matter, the rest defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from mt5recon import frames

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=10)

_DEFAULTS: dict[str, dict[str, Any]] = {
    "accounts": {
        "fetched_at": NOW,
        "trade_mode": 0,
        "leverage": 100,
        "limit_orders": 200,
        "margin_so_mode": 0,
        "trade_allowed": True,
        "trade_expert": True,
        "margin_mode": 2,
        "currency_digits": 2,
        "fifo_close": False,
        "balance": 10_000.0,
        "credit": 0.0,
        "profit": 0.0,
        "equity": 10_000.0,
        "margin": 100.0,
        "margin_free": 9_900.0,
        "margin_level": 10_000.0,
        "margin_so_call": 100.0,
        "margin_so_so": 50.0,
        "margin_initial": 0.0,
        "margin_maintenance": 0.0,
        "assets": 0.0,
        "liabilities": 0.0,
        "commission_blocked": 0.0,
        "name": "test",
        "server": "Test-Server",
        "currency": "USD",
        "company": "Test",
        "account_ok": True,
        "positions_ok": True,
        "orders_ok": True,
        "deals_ok": True,
    },
    "positions": {
        "fetched_at": NOW,
        "time": EARLIER,
        "time_msc": EARLIER,
        "time_update": EARLIER,
        "time_update_msc": EARLIER,
        "type": 0,
        "magic": 777,
        "reason": 3,
        "volume": 0.1,
        "price_open": 1.10000,
        "sl": 0.0,
        "tp": 0.0,
        "price_current": 1.1,
        "swap": 0.0,
        "profit": 0.0,
        "symbol": "EURUSD",
        "comment": "",
        "external_id": "",
    },
    "deals": {
        "fetched_at": NOW,
        "order": 0,
        "time": EARLIER,
        "time_msc": EARLIER,
        "type": 0,
        "entry": 0,
        "magic": 777,
        "reason": 3,
        "volume": 0.1,
        "price": 1.1,
        "commission": 0.0,
        "swap": 0.0,
        "profit": 0.0,
        "fee": 0.0,
        "symbol": "EURUSD",
        "comment": "",
        "external_id": "",
    },
    "symbols": {
        "fetched_at": NOW,
        "digits": 5,
        "point": 0.00001,
        "trade_contract_size": 100_000.0,
        "trade_tick_value": 1.0,
        "trade_tick_size": 0.00001,
        "volume_min": 0.01,
        "volume_step": 0.01,
        "currency_profit": "USD",
    },
    "expected_trades": {
        "symbol": "EURUSD",
        "side": "buy",
        "volume": 0.1,
        "price": 1.10000,
        "sl": None,
        "tp": None,
        "magic": 777,
        "position_id": None,
        "opened_at": EARLIER,
        "closed_at": None,
    },
    "ticks": {
        "fetched_at": NOW,
        "time": NOW,
        "bid": 1.1,
        "ask": 1.10002,
        "last": 0.0,
        "volume": 0,
        "time_msc": NOW,
        "flags": 6,
        "volume_real": 0.0,
    },
    "orders": {},
}


def frame(name: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows with defaults filled in, typed by the frame's declared schema."""
    schema = frames.ALL_FRAMES[name]
    full = [{**_DEFAULTS[name], **row} for row in rows]
    if name == "positions":
        full = [{"identifier": r.get("ticket"), **r} for r in full]
    return pl.DataFrame(full, schema=schema, strict=False) if full else pl.DataFrame(schema=schema)


SYMBOL_SPECS = {
    "EURUSD": {"digits": 5, "point": 0.00001, "trade_contract_size": 100_000.0},
    "USDJPY": {
        "digits": 3,
        "point": 0.001,
        "trade_contract_size": 100_000.0,
        "currency_profit": "JPY",
        "trade_tick_value": 0.6667,  # 100 JPY at USDJPY 150.00, in the USD account's currency
        "trade_tick_size": 0.001,
    },
    "XAUUSD": {
        "digits": 2,
        "point": 0.01,
        "trade_contract_size": 100.0,
        "trade_tick_value": 1.0,
        "trade_tick_size": 0.01,
    },
}


def symbols_for(logins: list[int], names: list[str] | None = None) -> pl.DataFrame:
    return frame(
        "symbols",
        [
            {"login": login, "name": n, **SYMBOL_SPECS.get(n.split(".")[0], {})}
            for login in logins
            for n in (names or list(SYMBOL_SPECS))
        ],
    )
