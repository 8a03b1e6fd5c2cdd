"""Adapter from any object with the MetaTrader5 API to typed Polars frames.

Works the same for the real `MetaTrader5` module, the RPyC bridge and the simulator: it only
calls the package's functions and reads named-tuple fields by name. MT5 times are seconds or
milliseconds since epoch in the broker server's clock; `server_offset_secs` turns them into UTC.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from mt5recon import frames
from mt5recon.snapshot import Snapshot
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.errors import error_for
from mt5recon.terminal.session import SESSION_LOST_CODES

# frame name -> the record fields it carries (everything except the snapshot keys)
_RECORD_COLUMNS = {
    name: [c for c in schema if c not in ("login", "fetched_at")] for name, schema in frames.SNAPSHOT_FRAMES.items()
}
_ACCOUNT_FLAGS = ("account_ok", "positions_ok", "orders_ok", "deals_ok")
# columns the frame adds to the record's own fields (ticks carry their symbol)
_ADDED_COLUMNS = {*_ACCOUNT_FLAGS, "symbol@ticks"}


@dataclass(frozen=True)
class FetchRequest:
    """What to fetch for one account in one cycle."""

    login: int
    fetched_at: datetime
    deals_from: datetime
    server_offset_secs: int = 0
    extra_symbols: tuple[str, ...] = ()


def _time_expr(column: str, offset_secs: int) -> pl.Expr:
    """Server-clock epoch (s or ms) -> UTC datetime; 0 means 'not set' in MT5."""
    scale = 1 if column in frames.TIME_FIELDS_MSC else 1000
    raw = pl.col(column).cast(pl.Int64, strict=False)
    utc_ms = raw * scale - offset_secs * 1000
    return pl.when(raw > 0).then(pl.from_epoch(utc_ms, time_unit="ms")).dt.replace_time_zone("UTC").alias(column)


def records_to_frame(
    name: str, records: Iterable[Any], *, login: int, fetched_at: datetime, server_offset_secs: int = 0
) -> pl.DataFrame:
    """Named tuples -> a frame with the declared dtypes; values are kept as sent (validation judges them)."""
    schema = frames.SNAPSHOT_FRAMES[name]
    columns = [c for c in _RECORD_COLUMNS[name] if c not in _ADDED_COLUMNS and f"{c}@{name}" not in _ADDED_COLUMNS]
    rows = [tuple(getattr(r, c) for c in columns) for r in records]
    raw = pl.DataFrame(rows, schema=columns, orient="row", strict=False, infer_schema_length=None)
    times = frames.TIME_FIELDS_SECS | frames.TIME_FIELDS_MSC
    converted = raw.with_columns(
        [_time_expr(c, server_offset_secs) for c in columns if c in times]
        + [pl.col(c).cast(schema[c], strict=False) for c in columns if c not in times]
    )
    keyed = converted.with_columns(
        pl.lit(login, dtype=pl.Int64).alias("login"), pl.lit(fetched_at).cast(frames.UTC_US).alias("fetched_at")
    )
    for flag in _ACCOUNT_FLAGS:
        if flag in schema:
            keyed = keyed.with_columns(pl.lit(True).alias(flag))
    return keyed.select(
        [(pl.col(c) if c in keyed.columns else pl.lit(None)).cast(dtype).alias(c) for c, dtype in schema.items()]
    )


def fetch_account(api: MT5Api, request: FetchRequest) -> Snapshot:
    """One account's snapshot. A call that returns None marks its frame failed, never empty."""
    keys: dict[str, Any] = {
        "login": request.login,
        "fetched_at": request.fetched_at,
        "server_offset_secs": request.server_offset_secs,
    }
    errors: list[str] = []
    codes: list[int] = []

    def call(label: str, result: Any) -> Any:
        if result is None:
            code, message = api.last_error()
            errors.append(f"{label}: {code} {message}")
            codes.append(code)
        return result

    started = time.perf_counter()
    terminal = api.terminal_info()
    account = call("account_info", api.account_info())
    positions = call("positions_get", api.positions_get()) if account is not None else None
    orders = call("orders_get", api.orders_get()) if account is not None else None
    offset = request.server_offset_secs
    deals = (
        call(
            "history_deals_get",
            api.history_deals_get(
                int(request.deals_from.timestamp()) + offset, int(request.fetched_at.timestamp()) + offset + 60
            ),
        )
        if account is not None
        else None
    )

    def lookup(result: Any) -> Any:
        """A symbol the terminal does not know is no error; a broken link to the terminal is."""
        if result is None:
            code, _ = api.last_error()
            if code in SESSION_LOST_CODES:
                codes.append(code)
        return result

    symbols = _symbols_of(positions or (), orders or (), request.extra_symbols)
    specs = [s for s in (lookup(api.symbol_info(name)) for name in symbols) if s is not None] if account else []
    ticks = (
        [(name, t) for name, t in ((n, lookup(api.symbol_info_tick(n))) for n in symbols) if t is not None]
        if account
        else []
    )

    accounts = _account_frame(account, positions, orders, deals, keys)
    tick_frame = records_to_frame("ticks", [t for _, t in ticks], **keys).with_columns(
        pl.Series("symbol", [n for n, _ in ticks], dtype=pl.String)
    )
    health = _health(request, terminal, account, tick_frame, codes, (time.perf_counter() - started) * 1000)
    return Snapshot(
        accounts=accounts,
        health=health,
        positions=records_to_frame("positions", positions or (), **keys),
        orders=records_to_frame("orders", orders or (), **keys),
        deals=records_to_frame("deals", deals or (), **keys),
        ticks=tick_frame,
        symbols=records_to_frame("symbols", specs, **keys),
        errors={request.login: "; ".join(errors)} if errors else {},
        error_codes={request.login: codes[0]} if codes else {},
    )


def _symbols_of(positions: Sequence[Any], orders: Sequence[Any], extra: Iterable[str]) -> list[str]:
    """Every symbol the cycle needs a spec and a quote for, in a stable order."""
    return sorted({p.symbol for p in positions} | {o.symbol for o in orders} | set(extra))


def _account_frame(account: Any, positions: Any, orders: Any, deals: Any, keys: dict[str, Any]) -> pl.DataFrame:
    frame = (
        records_to_frame("accounts", [account], **keys)
        if account is not None
        else pl.DataFrame({"login": [keys["login"]]}, schema={"login": pl.Int64}).with_columns(
            pl.lit(keys["fetched_at"]).cast(frames.UTC_US).alias("fetched_at")
        )
    )
    flags = {
        "account_ok": account is not None,
        "positions_ok": positions is not None,
        "orders_ok": orders is not None,
        "deals_ok": deals is not None,
    }
    frame = frame.with_columns([pl.lit(v).alias(k) for k, v in flags.items()])
    return frame.select(
        [(pl.col(c) if c in frame.columns else pl.lit(None)).cast(d).alias(c) for c, d in frames.ACCOUNTS.items()]
    )


def _health(
    request: FetchRequest, terminal: Any, account: Any, ticks: pl.DataFrame, codes: list[int], calls_ms: float
) -> pl.DataFrame:
    """One row of frames.HEALTH for this terminal and cycle (breaker_state is filled in later)."""
    last_tick = ticks["time_msc"].max() if ticks.height else None
    fetched = request.fetched_at
    code = codes[0] if codes else None
    row = {
        "login": request.login,
        "fetched_at": fetched,
        "connected": bool(terminal.connected) if terminal is not None else None,
        "trade_allowed": (
            bool(terminal.trade_allowed and account.trade_allowed and account.trade_expert)
            if terminal is not None and account is not None
            else None
        ),
        "ping_ms": terminal.ping_last / 1000.0 if terminal is not None else None,
        "calls_ms": calls_ms,
        "last_tick_at": last_tick,
        "data_age_secs": (fetched - last_tick).total_seconds() if isinstance(last_tick, datetime) else None,
        "error_code": code,
        "error_kind": error_for(code, "").name if code is not None else None,
        "breaker_state": None,
    }
    return pl.DataFrame([row], schema=frames.HEALTH)


def failed_account(request: FetchRequest, error: str, code: int | None = None) -> Snapshot:
    """The snapshot of an account whose terminal could not even be reached."""
    frame = pl.DataFrame({"login": [request.login]}, schema={"login": pl.Int64}).with_columns(
        pl.lit(request.fetched_at).cast(frames.UTC_US).alias("fetched_at"),
        *[pl.lit(False).alias(f) for f in _ACCOUNT_FLAGS],
    )
    accounts = frame.select(
        [(pl.col(c) if c in frame.columns else pl.lit(None)).cast(d).alias(c) for c, d in frames.ACCOUNTS.items()]
    )
    health = pl.DataFrame(
        [
            {
                "login": request.login,
                "fetched_at": request.fetched_at,
                "error_code": code,
                "error_kind": error_for(code, "").name if code is not None else "unreachable",
            }
        ],
        schema=frames.HEALTH,
    )
    return Snapshot(
        accounts=accounts,
        health=health,
        errors={request.login: error},
        error_codes={} if code is None else {request.login: code},
    )
