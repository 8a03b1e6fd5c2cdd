"""Adapter from any object with the MetaTrader5 API to typed Polars frames.

Works the same for the real `MetaTrader5` module, the RPyC bridge and the simulator: it only
calls the package's functions and reads named-tuple fields by name. MT5 times are seconds or
milliseconds since epoch in the broker server's clock; `server_offset_secs` turns them into UTC.

Two steps, so a fan-out over a thousand terminals stays cheap: `fetch_records` makes one
account's calls and keeps the answers as they came (plain Python, no frames), and
`build_snapshot` turns the answers of every account into each frame once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    # where the deals call starts when earlier cycles' deals already cover the window's start
    deals_since: datetime | None = None


def _time_expr(column: str) -> pl.Expr:
    """Server-clock epoch (s or ms) -> UTC datetime; 0 means 'not set' in MT5."""
    scale = 1 if column in frames.TIME_FIELDS_MSC else 1000
    raw = pl.col(column).cast(pl.Int64, strict=False)
    utc_ms = raw * scale - pl.col(_OFFSET) * 1000
    return pl.when(raw > 0).then(pl.from_epoch(utc_ms, time_unit="ms")).dt.replace_time_zone("UTC").alias(column)


_OFFSET = "__server_offset_secs"
Batch = tuple[Iterable[Any], int, datetime, int]
"""(records, login, fetched_at, server_offset_secs) of one account."""


def records_to_frame(name: str, batches: Sequence[Batch]) -> pl.DataFrame:
    """Named tuples of any number of accounts -> one frame with the declared dtypes; values are
    kept as sent (validation judges them)."""
    schema = frames.SNAPSHOT_FRAMES[name]
    columns = [c for c in _RECORD_COLUMNS[name] if c not in _ADDED_COLUMNS and f"{c}@{name}" not in _ADDED_COLUMNS]
    records: list[Any] = []
    counts: list[int] = []
    for batch, *_ in batches:
        before = len(records)
        records.extend(batch)
        counts.append(len(records) - before)
    values = _by_column(records, columns)
    times = frames.TIME_FIELDS_SECS | frames.TIME_FIELDS_MSC
    raw = pl.DataFrame(
        {c: _raw_series(c, values[c], pl.Int64() if c in times else schema[c]) for c in columns},
        height=len(records),
    ).with_columns(_batch_keys(batches, counts))
    keyed = raw.with_columns(
        pl.col("login").cast(pl.Int64),
        pl.col("fetched_at").cast(frames.UTC_US),
        pl.col(_OFFSET).cast(pl.Int64),
    ).with_columns(
        [_time_expr(c) for c in columns if c in times]
        + [_cast_expr(c, raw.schema[c], schema[c]) for c in columns if c not in times]
    )
    for flag in _ACCOUNT_FLAGS:
        if flag in schema:
            keyed = keyed.with_columns(pl.lit(True).alias(flag))
    return keyed.select(
        [(pl.col(c) if c in keyed.columns else pl.lit(None)).cast(dtype).alias(c) for c, dtype in schema.items()]
    )


def _batch_keys(batches: Sequence[Batch], counts: list[int]) -> pl.DataFrame:
    """Each record's account keys, one value per batch repeated over its records (a per-row list
    of datetimes would go through Polars' slow any-value path)."""
    per_batch = pl.DataFrame(
        {
            "login": [b[1] for b in batches],
            "fetched_at": [b[2] for b in batches],
            _OFFSET: [b[3] for b in batches],
            "__records": counts,
        },
        schema={"login": pl.Int64, "fetched_at": frames.UTC_US, _OFFSET: pl.Int64, "__records": pl.Int64},
    )
    return per_batch.filter(pl.col("__records") > 0).select(pl.exclude("__records").repeat_by("__records").explode())


def _cast_expr(column: str, sent: pl.DataType, declared: pl.DataType) -> pl.Expr:
    """The declared dtype, or null where the value does not fit it: a fraction in an integer field
    is not truncated into another ticket or magic."""
    value = pl.col(column)
    if declared.is_integer() and sent.is_float():
        value = pl.when(value == value.round(0)).then(value)
    return value.cast(declared, strict=False).alias(column)


def _raw_series(name: str, values: Sequence[Any], declared: pl.DataType) -> pl.Series:
    """One field's values: built as the declared kind when every value is of it (the typed path is
    several times faster), else as sent, for validation to judge (a terminal's bad value is not
    this step's to reject)."""
    kind = pl.Int64() if declared.is_integer() else declared
    try:
        return pl.Series(name, values, dtype=kind, strict=True)
    except (TypeError, OverflowError, pl.exceptions.PolarsError):
        return pl.Series(name, values, strict=False)


def _by_column(records: list[Any], columns: list[str]) -> dict[str, Sequence[Any]]:
    """Field values column by column: one transpose when every record is the same named tuple
    (the usual case, ~10x faster than reading each field of each row), else field by field."""
    if not records:
        return {c: [] for c in columns}
    kind = type(records[0])
    fields = getattr(kind, "_fields", None)
    if isinstance(fields, tuple) and set(columns) <= set(fields) and all(type(r) is kind for r in records):
        transposed = list(zip(*records, strict=True))
        return {c: transposed[fields.index(c)] for c in columns}
    return {c: [getattr(r, c) for r in records] for c in columns}


@dataclass
class Fetched:
    """One account's answers as the terminal gave them (None: the call failed)."""

    request: FetchRequest
    terminal: Any = None
    account: Any = None
    positions: Sequence[Any] | None = None
    orders: Sequence[Any] | None = None
    deals: Sequence[Any] | None = None
    specs: list[Any] = field(default_factory=list)
    ticks: list[tuple[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    calls_ms: float = 0.0

    def batch(self, records: Iterable[Any]) -> Batch:
        r = self.request
        return records, r.login, r.fetched_at, r.server_offset_secs


Call = tuple[str, tuple[Any, ...]]


def read_calls(api: MT5Api, calls: Sequence[Call]) -> list[tuple[Any, tuple[int, str] | None]]:
    """Each call's result and, when it returned None, the terminal's last_error for it.

    A terminal that takes a batch (the bridge: `read_many`) gets the calls in one round trip;
    any other gets them one by one. The calls and their order are the same either way."""
    batch = getattr(api, "read_many", None)
    if callable(batch):
        return [(result, error if result is None else None) for result, error in batch(calls)]
    answers: list[tuple[Any, tuple[int, str] | None]] = []
    for name, args in calls:
        result = getattr(api, name)(*args)
        answers.append((result, api.last_error() if result is None else None))
    return answers


def fetch_records(api: MT5Api, request: FetchRequest) -> Fetched:
    """One account's calls, in three exchanges (who am I; what do I hold; the specs and quotes of
    its symbols). A call that returns None marks its frame failed, never empty."""
    got = Fetched(request)

    def call(label: str, answer: tuple[Any, tuple[int, str] | None]) -> Any:
        result, error = answer
        if error is not None:
            got.errors.append(f"{label}: {error[0]} {error[1]}")
            got.codes.append(error[0])
        return result

    def lookup(answer: tuple[Any, tuple[int, str] | None]) -> Any:
        """A symbol the terminal does not know is no error; a broken link to the terminal is."""
        result, error = answer
        if error is not None and error[0] in SESSION_LOST_CODES:
            got.codes.append(error[0])
        return result

    started = time.perf_counter()
    terminal, account = read_calls(api, [("terminal_info", ()), ("account_info", ())])
    got.terminal = terminal[0]
    got.account = call("account_info", account)
    if got.account is not None:
        offset = request.server_offset_secs
        deals_from = request.deals_since or request.deals_from
        window = (int(deals_from.timestamp()) + offset, int(request.fetched_at.timestamp()) + offset + 60)
        positions, orders, deals = read_calls(
            api, [("positions_get", ()), ("orders_get", ()), ("history_deals_get", window)]
        )
        got.positions = call("positions_get", positions)
        got.orders = call("orders_get", orders)
        got.deals = call("history_deals_get", deals)
        symbols = _symbols_of(got.positions or (), got.orders or (), request.extra_symbols)
        answers = read_calls(api, [(kind, (name,)) for kind in ("symbol_info", "symbol_info_tick") for name in symbols])
        specs, ticks = answers[: len(symbols)], answers[len(symbols) :]
        got.specs = [spec for spec in map(lookup, specs) if spec is not None]
        got.ticks = [(name, tick) for name, tick in zip(symbols, map(lookup, ticks), strict=True) if tick is not None]
    got.calls_ms = (time.perf_counter() - started) * 1000
    return got


def build_snapshot(fetched: Sequence[Fetched]) -> Snapshot:
    """Every account's answers -> the snapshot frames, each built once for all accounts."""
    ticks = records_to_frame("ticks", [f.batch(t for _, t in f.ticks) for f in fetched]).with_columns(
        pl.Series("symbol", [name for f in fetched for name, _ in f.ticks], dtype=pl.String)
    )
    return Snapshot(
        accounts=_account_frame(fetched),
        health=pl.DataFrame([_health(f) for f in fetched], schema=frames.HEALTH),
        positions=records_to_frame("positions", [f.batch(f.positions or ()) for f in fetched]),
        orders=records_to_frame("orders", [f.batch(f.orders or ()) for f in fetched]),
        deals=records_to_frame("deals", [f.batch(f.deals or ()) for f in fetched]),
        ticks=ticks,
        symbols=records_to_frame("symbols", [f.batch(f.specs) for f in fetched]),
        errors={f.request.login: "; ".join(f.errors) for f in fetched if f.errors},
        error_codes={f.request.login: f.codes[0] for f in fetched if f.codes},
    )


def fetch_account(api: MT5Api, request: FetchRequest) -> Snapshot:
    """One account's snapshot (a fleet builds its frames once: `build_snapshot`)."""
    return build_snapshot([fetch_records(api, request)])


def _symbols_of(positions: Sequence[Any], orders: Sequence[Any], extra: Iterable[str]) -> list[str]:
    """Every symbol the cycle needs a spec and a quote for, in a stable order."""
    return sorted({p.symbol for p in positions} | {o.symbol for o in orders} | set(extra))


def _account_frame(fetched: Sequence[Fetched]) -> pl.DataFrame:
    """One row per account: the record's fields where account_info answered, the call flags always."""
    records = records_to_frame("accounts", [f.batch([f.account]) for f in fetched if f.account is not None])
    flags = pl.DataFrame(
        [
            {
                "login": f.request.login,
                "fetched_at": f.request.fetched_at,
                "account_ok": f.account is not None,
                "positions_ok": f.positions is not None,
                "orders_ok": f.orders is not None,
                "deals_ok": f.deals is not None,
            }
            for f in fetched
        ],
        schema={"login": pl.Int64, "fetched_at": frames.UTC_US, **dict.fromkeys(_ACCOUNT_FLAGS, pl.Boolean)},
    )
    frame = flags.join(records.drop("fetched_at", *_ACCOUNT_FLAGS), on="login", how="left", maintain_order="left")
    return frame.select(
        [(pl.col(c) if c in frame.columns else pl.lit(None)).cast(d).alias(c) for c, d in frames.ACCOUNTS.items()]
    )


def _last_tick(f: Fetched) -> datetime | None:
    newest = max((t.time_msc for _, t in f.ticks if t.time_msc and t.time_msc > 0), default=None)
    if newest is None:
        return None
    return datetime.fromtimestamp(newest / 1000 - f.request.server_offset_secs, UTC)


def _health(f: Fetched) -> dict[str, Any]:
    """One row of frames.HEALTH for this terminal and cycle (breaker_state is filled in later)."""
    terminal, account = f.terminal, f.account
    last_tick = _last_tick(f)
    code = f.codes[0] if f.codes else None
    return {
        "login": f.request.login,
        "fetched_at": f.request.fetched_at,
        "connected": bool(terminal.connected) if terminal is not None else None,
        "trade_allowed": (
            bool(terminal.trade_allowed and account.trade_allowed and account.trade_expert)
            if terminal is not None and account is not None
            else None
        ),
        "ping_ms": terminal.ping_last / 1000.0 if terminal is not None else None,
        "calls_ms": f.calls_ms,
        "last_tick_at": last_tick,
        "data_age_secs": (f.request.fetched_at - last_tick).total_seconds() if last_tick is not None else None,
        "error_code": code,
        "error_kind": error_for(code, "").name if code is not None else None,
        "breaker_state": None,
    }


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
