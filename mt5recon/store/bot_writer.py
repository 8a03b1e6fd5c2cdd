"""The bot's side of the `store` expected-trades source: upsert what the bot holds into the store.

A bot writes its trades into the store's `expected_trades` table (one row per login and
trade id, replaced on every write of that key); the pipeline reads the table read-only each
cycle (fleet file: `[expected_trades] kind = "store"`) and validates it like any other source,
so a bad row is quarantined, never reconciled.

A SQLite-catalog store has ONE writer process at a time (an OS lock): the pipeline holds it
for about a second every cycle, so the bot waits for it, polling, up to `wait_secs`. A
Postgres-catalog store admits several writers; bots then take turns on the table through a
Postgres advisory lock with the same bounded wait.

Example (a bot on the pipeline's machine, with the pipeline's MT5RECON_* environment)::

    from datetime import UTC, datetime

    import polars as pl

    from mt5recon.settings import Settings
    from mt5recon.store.bot_writer import write_expected_trades

    config = Settings().store_config()  # the store the pipeline writes and reads
    opened = pl.DataFrame(
        {
            "trade_id": ["T-1001"],
            "login": [5_000_001],
            "symbol": ["EURUSD"],
            "side": ["buy"],
            "volume": [0.10],
            "price": [1.08512],
            "sl": [1.08012],
            "tp": [None],
            "magic": [42],
            "position_id": [None],
            "opened_at": [datetime.now(UTC)],
            "closed_at": [None],
        }
    )
    write_expected_trades(config, opened)  # -> 1
    # later: the same key again replaces the row (here: the trade is closed)
    write_expected_trades(config, opened.with_columns(closed_at=pl.lit(datetime.now(UTC))))
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import duckdb
import polars as pl

from mt5recon import frames
from mt5recon.store.cycle_lock import advisory_key
from mt5recon.store.lake import Store, StoreConfig, StoreLockedError
from mt5recon.store.migrations import BOT_TABLE
from mt5recon.store.sqltext import identifier
from mt5recon.store.tables import BOT_EXPECTED_TRADES

__all__ = ["StoreBusyError", "conform_trades", "open_store_waiting", "write_expected_trades"]

_log = logging.getLogger(__name__)

KEY = ("login", "trade_id")
_WRITTEN_AT = "written_at"
_VIEW = "_mt5recon_bot_expected_trades"
_TURN = "bot-expected-trades"  # the Postgres advisory lock name bots take turns on
_FIRST_POLL_SECS = 0.02
_MAX_POLL_SECS = 0.25  # the pipeline holds the lock ~1 s per cycle: never wait much past its release


class StoreBusyError(StoreLockedError):
    """The store stayed locked by another writer for the whole wait; nothing was written."""


def _dtype_problem(column: str, source: pl.DataType, target: pl.DataType) -> str | None:
    """Why a column of dtype `source` cannot be stored as `target` without guessing, or None."""
    if source == target or source == pl.Null:
        return None
    if target == pl.Int64 and source.is_integer():
        return None
    if target == pl.Float64 and (source.is_integer() or source.is_float()):
        return None
    if target == pl.String and isinstance(source, pl.Categorical | pl.Enum):
        return None
    if isinstance(target, pl.Datetime) and isinstance(source, pl.Datetime):
        if source.time_zone is None:
            return f"{column}: a naive {source}; give it a zone (e.g. .dt.replace_time_zone('UTC'))"
        return None
    return f"{column}: {source}, expected {target}"


def _cast(column: str, source: pl.DataType, target: pl.DataType) -> pl.Expr:
    expr = pl.col(column)
    if isinstance(target, pl.Datetime) and isinstance(source, pl.Datetime) and source.time_zone != "UTC":
        expr = expr.dt.convert_time_zone("UTC")
    return expr.cast(target, strict=True)


def conform_trades(trades: pl.DataFrame) -> pl.DataFrame:
    """The trades in the contract's columns and dtypes, or a ValueError naming what is wrong.

    Exactly the contract columns (frames.EXPECTED_TRADES), in any order; lossless dtypes are
    accepted (narrower integers, integers for floats, all-null columns, any time zone), guesses
    are not (text for numbers or times, naive datetimes). Every row needs a login and a trade id,
    and a (login, trade_id) key appears once. Row values (side, volume > 0, ...) are the
    pipeline's validation's business: a bad one is quarantined there with its reason.
    """
    schema = frames.EXPECTED_TRADES
    missing = [c for c in schema if c not in trades.columns]
    extra = [c for c in trades.columns if c not in schema]
    problems: list[str] = []
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unexpected columns {extra} (the writer sets {_WRITTEN_AT!r} itself)")
    if problems:
        raise ValueError("expected trades rejected: " + "; ".join(problems))
    wrong = [p for c, t in schema.items() if (p := _dtype_problem(c, trades.schema[c], t)) is not None]
    if wrong:
        raise ValueError("expected trades rejected, wrong column types: " + "; ".join(wrong))
    columns: list[pl.Series] = []
    for name, dtype in schema.items():
        try:
            columns.append(trades.select(_cast(name, trades.schema[name], dtype)).to_series())
        except pl.exceptions.PolarsError as exc:
            raise ValueError(f"expected trades rejected, column {name}: {exc}") from exc
    conformed = pl.DataFrame(columns)
    keyless = conformed.filter(pl.any_horizontal(pl.col(KEY).is_null())).height
    if keyless:
        raise ValueError(f"expected trades rejected: {keyless} row(s) without a login or trade_id")
    repeated = conformed.filter(pl.struct(KEY).is_duplicated()).select(KEY).unique(maintain_order=True)
    if repeated.height:
        keys = [f"{login}:{trade_id}" for login, trade_id in repeated.head(5).iter_rows()]
        raise ValueError(f"expected trades rejected: (login, trade_id) written more than once in one call: {keys}")
    return conformed


@contextlib.contextmanager
def _postgres_turn(config: StoreConfig, deadline: float) -> Iterator[None]:
    """Hold the bots' advisory lock on a Postgres catalog for the block, waiting until `deadline`."""
    dsn = config.postgres_dsn
    if dsn is None:
        yield
        return
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as session:
        row = session.execute("SELECT current_database()").fetchone()
        key = advisory_key(f"{row[0] if row else ''}/{config.metadata_schema or ''}", _TURN)
        poll = _FIRST_POLL_SECS
        while True:
            got = session.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
            if got is not None and got[0]:
                break
            next_poll = _pause(poll, deadline)
            if next_poll is None:
                raise StoreBusyError(
                    "another bot held the turn on the store's expected_trades table throughout the wait "
                    "(wait_secs); nothing was written"
                )
            poll = next_poll
        try:
            yield
        finally:
            if not session.closed and not session.broken:
                session.execute("SELECT pg_advisory_unlock(%s)", [key])


def _pause(poll: float, deadline: float) -> float | None:
    """Sleep before the next try (jittered, growing) and return the next pause; None once the wait is over."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    time.sleep(min(remaining, poll * random.uniform(0.5, 1.5)))
    return min(poll * 2, _MAX_POLL_SECS)


def open_store_waiting(config: StoreConfig, *, wait_secs: float = 10.0) -> Store:
    """`Store.open`, polling while another process holds the SQLite writer lock, for up to `wait_secs`.

    Raises StoreBusyError (a StoreLockedError) when the lock is still held after `wait_secs`.
    """
    if wait_secs < 0:
        raise ValueError("wait_secs must be >= 0")
    return _open_waiting(config, time.monotonic() + wait_secs, wait_secs)


def _open_waiting(config: StoreConfig, deadline: float, wait_secs: float) -> Store:
    """`Store.open` retried until `deadline` while the writer lock is held (`wait_secs` is for messages)."""
    poll = _FIRST_POLL_SECS
    waiting_since: float | None = None
    while True:
        try:
            store = Store.open(config)
        except StoreLockedError as exc:
            if waiting_since is None:
                waiting_since = time.monotonic()
                _log.info(
                    "store writer lock held by another process; waiting up to %.1f s",
                    max(0.0, deadline - waiting_since),
                )
            next_poll = _pause(poll, deadline)
            if next_poll is None:
                raise StoreBusyError(
                    f"the store's writer lock ({config.writer_lock_path}) was still held after {wait_secs:g} s "
                    "(the pipeline holds it about 1 s per cycle; a longer holder is another writer: a replay, "
                    "compaction, another bot); nothing was written"
                ) from exc
            poll = next_poll
            continue
        if waiting_since is not None:
            _log.info("store writer lock acquired after %.2f s", time.monotonic() - waiting_since)
        return store


def write_expected_trades(config: StoreConfig, trades: pl.DataFrame, *, wait_secs: float = 10.0) -> int:
    """Upsert the bot's trades into the store by (login, trade_id); returns the rows written.

    The frame has exactly the contract columns (frames.EXPECTED_TRADES); it is checked first
    (ValueError naming the columns or keys at fault, nothing written). Then, in ONE transaction,
    the rows with these keys are deleted and the new ones inserted with `written_at` = now: a
    key written again replaces its row, never duplicates it. The store is created and migrated
    if it is new. Waits for the writer lock (SQLite catalog) or the bots' turn (Postgres) up to
    `wait_secs`, then raises StoreBusyError.
    """
    if wait_secs < 0:
        raise ValueError("wait_secs must be >= 0")
    conformed = conform_trades(trades)
    if conformed.height == 0:
        return 0
    deadline = time.monotonic() + wait_secs
    poll = _FIRST_POLL_SECS
    while True:
        with _open_waiting(config, deadline, wait_secs) as store:
            try:
                with _postgres_turn(config, deadline):
                    _upsert(store, conformed, written_at=datetime.now(UTC))
            except duckdb.TransactionException as exc:  # a concurrent catalog commit (Postgres) won
                _log.info("expected trades write conflicted, retrying: %s", exc)
                conflict: duckdb.TransactionException | None = exc
            else:
                conflict = None
        if conflict is None:
            _log.debug("wrote %d expected trades", conformed.height)
            return conformed.height
        next_poll = _pause(poll, deadline)
        if next_poll is None:
            raise StoreBusyError(
                f"the write kept conflicting with other writers for {wait_secs:g} s; nothing was written"
            ) from conflict
        poll = next_poll


def _upsert(store: Store, trades: pl.DataFrame, *, written_at: datetime) -> None:
    """Delete the trades' keys and insert the trades, in one transaction (identifiers from our registry)."""
    rows = trades.with_columns(pl.lit(written_at, dtype=BOT_EXPECTED_TRADES[_WRITTEN_AT]).alias(_WRITTEN_AT))
    con = store.connection
    table = f"{identifier(store.config.alias)}.{identifier(BOT_TABLE)}"
    key = ", ".join(identifier(c) for c in KEY)
    columns = ", ".join(identifier(c) for c in BOT_EXPECTED_TRADES)
    view = identifier(_VIEW)
    con.register(_VIEW, rows.select(list(BOT_EXPECTED_TRADES)))
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {view})")  # noqa: S608
            con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {view}")  # noqa: S608
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
    finally:
        con.unregister(_VIEW)
