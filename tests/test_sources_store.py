"""The `store` expected-trades source: a bot upserts into the store, the pipeline reads it back.

Bad rows that reach the table anyway are quarantined by the ordinary validation; the writer
waits (bounded) for the SQLite writer lock another process holds.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from builders import EARLIER, NOW, frame
from polars.testing import assert_frame_equal
from pydantic import ValidationError
from store_catalogs import catalog_config

from mt5recon import frames
from mt5recon.fleet import ExpectedTradesSource
from mt5recon.sources import read_expected_trades
from mt5recon.store.bot_writer import StoreBusyError, write_expected_trades
from mt5recon.store.lake import Store, StoreConfig, StoreLockedError, open_reader
from mt5recon.store.writer_lock import WriterLock
from mt5recon.validation import validate_frame

SOURCE = ExpectedTradesSource(kind="store")
TIMEOUT = 60


@pytest.fixture()
def config(tmp_path: Path, extension_dir: Path) -> StoreConfig:
    return StoreConfig.under(tmp_path / "home", extension_dir=extension_dir)


def trades(*rows: dict[str, Any]) -> pl.DataFrame:
    return frame("expected_trades", list(rows))


def read_back(config: StoreConfig) -> pl.DataFrame:
    return read_expected_trades(SOURCE, Path("unused"), store=config)


def stored_rows(config: StoreConfig) -> pl.DataFrame:
    """Every row of the bot table, `written_at` included."""
    con = open_reader(config)
    try:
        return con.execute("SELECT * FROM expected_trades ORDER BY login, trade_id").pl()
    finally:
        con.close()


THREE = trades(
    {"trade_id": "t1", "login": 101},
    {"trade_id": "t2", "login": 101, "side": "sell", "volume": 0.5, "sl": 1.2},
    {"trade_id": "t1", "login": 202, "symbol": "USDJPY", "price": 150.0, "position_id": 9001},
)


# ---- config and an empty store ---------------------------------------------------------


def test_store_kind_takes_no_location() -> None:
    assert ExpectedTradesSource(kind="store").kind == "store"
    assert ExpectedTradesSource(kind="store", query="SELECT * FROM expected_trades").query
    with pytest.raises(ValidationError, match="drop path"):
        ExpectedTradesSource(kind="store", path="bot.sqlite")
    with pytest.raises(ValidationError, match="drop table"):
        ExpectedTradesSource(kind="store", table="other")


def test_store_kind_needs_the_pipelines_store_config() -> None:
    with pytest.raises(ValueError, match="StoreConfig"):
        read_expected_trades(SOURCE, Path("."))


def test_missing_or_empty_store_reads_as_no_trades(config: StoreConfig) -> None:
    assert_frame_equal(read_back(config), frames.empty("expected_trades"))
    assert not config.exists(), "reading never creates the store"
    Store.open(config).close()
    assert_frame_equal(read_back(config), frames.empty("expected_trades"))


# ---- the bot writes, the pipeline reads --------------------------------------------------


def test_bot_writes_then_closes_one_and_source_reads_current_rows(config: StoreConfig) -> None:
    assert write_expected_trades(config, THREE) == 3
    first = stored_rows(config)
    closed_at = NOW + timedelta(minutes=5)
    assert write_expected_trades(config, trades({"trade_id": "t2", "login": 101, "closed_at": closed_at})) == 1

    read = read_back(config)
    assert read.columns == list(frames.EXPECTED_TRADES)
    assert read.height == 3
    t2 = read.filter(login=101, trade_id="t2").row(0, named=True)
    assert t2["closed_at"] == closed_at
    assert t2["side"] == "buy", "the update replaced the whole row with what the bot wrote"
    assert_frame_equal(read.filter(trade_id="t1"), THREE.filter(trade_id="t1").sort("login"))

    validated = validate_frame("expected_trades", read, now=NOW)
    assert validated.valid.height == 3
    assert validated.quarantined.height == 0

    later = stored_rows(config)
    unchanged = later.filter(trade_id="t1")
    assert_frame_equal(unchanged, first.filter(trade_id="t1"))
    assert later.filter(trade_id="t2")["written_at"][0] > first.filter(trade_id="t2")["written_at"][0]


def test_same_key_written_again_replaces_never_duplicates(config: StoreConfig) -> None:
    write_expected_trades(config, THREE)
    write_expected_trades(config, THREE)
    write_expected_trades(config, THREE.with_columns(volume=pl.lit(2.0)))
    read = read_back(config)
    assert read.height == 3, "one row per (login, trade_id); t1 exists under two logins"
    assert read.select("login", "trade_id").is_unique().all()
    assert read["volume"].to_list() == [2.0, 2.0, 2.0]


def test_lossless_dtypes_are_accepted_and_stored_in_contract_dtypes(config: StoreConfig) -> None:
    berlin = datetime(2026, 11, 20, 13, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    loose = pl.DataFrame(
        {
            "closed_at": [None],  # all-null: dtype Null
            "trade_id": ["z1"],
            "login": pl.Series([303], dtype=pl.Int32),
            "symbol": pl.Series(["EURUSD"], dtype=pl.Categorical),
            "side": ["buy"],
            "volume": pl.Series([1], dtype=pl.Int16),
            "price": [1.1],
            "sl": [None],
            "tp": [None],
            "magic": pl.Series([7], dtype=pl.UInt8),
            "position_id": [None],
            "opened_at": pl.Series([berlin]).dt.cast_time_unit("ms"),
        }
    )
    assert write_expected_trades(config, loose) == 1
    row = read_back(config).row(0, named=True)
    assert read_back(config).schema == frames.EXPECTED_TRADES
    assert row["opened_at"] == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert (row["login"], row["volume"], row["magic"]) == (303, 1.0, 7)


REJECTED: list[tuple[str, Any, str]] = [
    ("missing column", lambda f: f.drop("side", "opened_at"), r"missing columns \['side', 'opened_at'\]"),
    ("unexpected column", lambda f: f.with_columns(comment=pl.lit("x")), r"unexpected columns \['comment'\]"),
    ("text volume", lambda f: f.with_columns(pl.col("volume").cast(pl.String)), "volume: String, expected Float64"),
    ("integer trade id", lambda f: f.with_columns(trade_id=pl.lit(5)), "trade_id: Int32, expected String"),
    (
        "naive time",
        lambda f: f.with_columns(pl.col("opened_at").dt.replace_time_zone(None)),
        "opened_at: a naive",
    ),
    ("float login", lambda f: f.with_columns(pl.col("login").cast(pl.Float64)), "login: Float64, expected Int64"),
    ("login too large", lambda f: f.with_columns(login=pl.lit(2**64 - 1, dtype=pl.UInt64)), "column login"),
    ("null key", lambda f: f.with_columns(trade_id=pl.lit(None, dtype=pl.String)), "without a login or trade_id"),
    ("key twice", lambda f: pl.concat([f, f.head(1)]), r"more than once in one call: \['101:t1'\]"),
]


@pytest.mark.parametrize(("case", "spoil", "message"), REJECTED, ids=[c[0] for c in REJECTED])
def test_malformed_frames_are_rejected_before_anything_is_written(
    case: str, spoil: Any, message: str, config: StoreConfig
) -> None:
    with pytest.raises(ValueError, match=message):
        write_expected_trades(config, spoil(THREE))
    assert not config.exists(), f"{case}: rejected before the store was even opened"


def test_a_rejected_write_leaves_the_stored_rows_alone(config: StoreConfig) -> None:
    write_expected_trades(config, THREE)
    before = stored_rows(config)
    with pytest.raises(ValueError, match="side"):
        write_expected_trades(config, THREE.drop("side"))
    assert_frame_equal(stored_rows(config), before)


# ---- rows that bypass the API ------------------------------------------------------------


def test_bad_rows_written_around_the_api_are_quarantined_with_their_reason(config: StoreConfig) -> None:
    write_expected_trades(config, THREE)
    with Store.open(config) as store:  # a bot that writes the table with its own SQL
        store.connection.executemany(
            "INSERT INTO expected_trades (trade_id, login, symbol, side, volume, price, opened_at, written_at)"
            " VALUES (?, ?, 'EURUSD', ?, ?, 1.1, ?, now())",
            [["bad-side", 101, "long", 0.1, EARLIER], ["bad-volume", 101, "buy", -0.5, EARLIER]],
        )
    read = read_back(config)
    validated = validate_frame("expected_trades", read, now=NOW)

    assert read.height == validated.valid.height + validated.quarantined.height
    assert sorted(validated.valid["trade_id"].to_list()) == ["t1", "t1", "t2"]
    reasons = dict(
        zip(
            [read["trade_id"][i] for i in validated.quarantined["row_index"]],
            validated.quarantined["reason"],
            strict=True,
        )
    )
    assert set(reasons) == {"bad-side", "bad-volume"}
    assert "side" in reasons["bad-side"]
    assert "volume" in reasons["bad-volume"]


# ---- the writer lock ---------------------------------------------------------------------

HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mt5recon.store.writer_lock import WriterLock

    lock = WriterLock.acquire(Path(sys.argv[1]))
    print("locked", flush=True)
    sys.stdin.readline()  # hold it until the test says so
    lock.release()
    """
)


class _Seen(logging.Handler):
    """Sets an event when the writer logs that it is waiting for the lock."""

    def __init__(self, words: str) -> None:
        super().__init__(logging.INFO)
        self.words = words
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.words in record.getMessage():
            self.event.set()


@pytest.fixture()
def waiting_logged(caplog: pytest.LogCaptureFixture) -> Iterator[threading.Event]:
    caplog.set_level(logging.INFO, logger="mt5recon.store.bot_writer")
    seen = _Seen("waiting up to")
    logger = logging.getLogger("mt5recon.store.bot_writer")
    logger.addHandler(seen)
    try:
        yield seen.event
    finally:
        logger.removeHandler(seen)


def test_writer_waits_for_a_lock_another_process_holds(config: StoreConfig, waiting_logged: threading.Event) -> None:
    Store.open(config).close()  # created (and extensions installed) before the clock matters
    lock_path = config.writer_lock_path
    assert lock_path is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        with ThreadPoolExecutor(1) as pool:
            writing = pool.submit(write_expected_trades, config, THREE, wait_secs=TIMEOUT)
            assert waiting_logged.wait(TIMEOUT), "the writer met the held lock"
            assert not writing.done(), "and is waiting for it"
            holder.stdin.write("release\n")
            holder.stdin.flush()
            assert writing.result(timeout=TIMEOUT) == 3
        assert holder.wait(timeout=TIMEOUT) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert read_back(config).height == 3


def test_writer_gives_up_with_a_clear_error_when_the_lock_is_never_released(config: StoreConfig) -> None:
    lock_path = config.writer_lock_path
    assert lock_path is not None
    held = WriterLock.acquire(lock_path)  # another open file description: conflicts like another process
    try:
        started = time.monotonic()
        with pytest.raises(StoreBusyError, match=r"still held after 0\.3 s.*nothing was written") as caught:
            write_expected_trades(config, THREE, wait_secs=0.3)
        assert 0.3 <= time.monotonic() - started < 10
        assert isinstance(caught.value, StoreLockedError)
    finally:
        held.release()
    assert_frame_equal(read_back(config), frames.empty("expected_trades"))


# ---- several bots on a Postgres catalog --------------------------------------------------


@pytest.fixture()
def pg_config(tmp_path: Path, extension_dir: Path) -> Iterator[StoreConfig]:
    with catalog_config("postgres", tmp_path / "home", extension_dir) as config:
        yield config


def test_bots_writing_one_postgres_store_at_once_take_turns(pg_config: StoreConfig) -> None:
    Store.open(pg_config).close()
    shared = trades(*({"trade_id": f"s{i}", "login": 101} for i in range(5)))

    def bot(number: int) -> None:
        own = trades({"trade_id": f"own{number}", "login": 202})
        for round_ in (1, 2):  # every bot rewrites the shared keys: each write deletes them
            write_expected_trades(pg_config, pl.concat([shared.with_columns(volume=pl.lit(float(round_))), own]))

    with ThreadPoolExecutor(3) as pool:
        for done in [pool.submit(bot, n) for n in range(3)]:
            done.result(timeout=TIMEOUT * 3)
    read = read_back(pg_config)
    assert read.height == 5 + 3
    assert read.select("login", "trade_id").is_unique().all()
    assert read.filter(login=101)["volume"].to_list() == [2.0] * 5
