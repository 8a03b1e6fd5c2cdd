"""Benchmark the analysts' store over a simulated month of 10-second cycles.

    python -m bench.store_month [--accounts 100] [--days 30] [--positions 30] [--chunk-minutes 1440]
                                [--catalog sqlite|postgres] [--pg-dsn DSN] [--store DIR] [--keep]
                                [--repeat 5] [--cycles 30] [--seed 1]

The month is generated, not waited for: a deterministic simulation of the fleet (every random draw
is a seeded polars hash, no per-row Python) yields, for any range of cycles, exactly the rows the
pipeline would store for it. The month is written chunk by chunk (a day by default), each chunk ONE
DuckLake transaction of plain DELETE/INSERT ... SELECT from registered polars frames, the way
`Store.commit_cycle` writes one cycle:

* append-only tables (cycles, account_snapshots, position_changes, expected_trade_changes,
  break_events, quarantine) get every row of every cycle of the chunk, each row with the cycle id
  (`<fleet>:<time>`) of the 10-second cycle that produced it, in cycle order;
* state tables (current_positions, current_expected_trades, breaks) get, per key touched in the
  chunk, its state at the chunk's last cycle (its old row deleted first), so they end with the state
  the per-cycle pipeline would leave; the per-cycle rewrites inside a chunk (the pipeline rewrites
  every open break each cycle) are not replayed;
* the cycle ledger gets one row per simulated cycle (not per chunk), with the row counts of that
  cycle's rows in the chunk, so `commit_cycle`'s duplicate check reads a month-sized ledger.

Then it measures: size on disk (catalog and data files, file counts), rows per table, bytes per
position change, the analysts' daily queries through a read-only reader before and after
`Store.compact()` (and the compaction itself), and the store's cost per real cycle: `--cycles`
single cycles of the simulation committed with `Store.commit_cycle` on one open Store, and as the
flow does it (open_reader + read_stored_state, then Store.open + commit_cycle + close per cycle).

The simulated fleet: `--positions` slots per account, each holding one position after another
(life 30-120 min, 0-10 min apart); 97 % bot trades (85 % matched by identity, 10 % tag, 5 % fuzzy),
2 % manual, 1 % another EA's; 0-4 SL/TP/partial-close edits per position; 10 % of bot trades slip
(0.5-6 pips adverse or up to 3 favourable), 2 % fill partially; 10 % of bot edits reach the broker
1-3 cycles after the bot records them (a transient SL/TP mismatch break) and the bot learns of 10 %
of closes 1 or 3 cycles late (a missing-position break, dismissed or resolved); one failed snapshot
per account per day; a quarantined row in about 1 % of cycles.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from bench.draws import pick, round_to_digits, uniform
from bench.recon_engine import load_average, machine_lines, table
from bench.synthetic_fleet import INSTRUMENTS, instruments
from mt5recon import frames as mt5frames
from mt5recon.progress import Progress
from mt5recon.store import migrations
from mt5recon.store.lake import Store, StoreConfig, open_reader
from mt5recon.store.sqltext import identifier
from mt5recon.store.tables import STATE_KEYS, STORE_TABLES

CYCLE_SECS = 10
DIGITS = [spec[1] for spec in INSTRUMENTS]
CYCLES_PER_DAY = 86_400 // CYCLE_SECS
FLEET = "bench"
LOGIN_BASE = 5_000_000
IDENTIFIER_BASE = 100_000_000
BOT_MAGIC_BASE = 7_000_000
OTHER_EA_MAGIC = 9_000_001

MIN_LIFE, MAX_LIFE = 180, 720  # cycles: 30-120 minutes
MAX_GAP = 60  # cycles between one position of a slot closing and the next opening: 0-10 minutes
MAX_EDITS = 4
MANUAL_SHARE, OTHER_EA_SHARE = 0.02, 0.01
TAG_SHARE, FUZZY_SHARE = 0.10, 0.05
SLIPPAGE_SHARE = 0.10
PARTIAL_SHARE = 0.02
EDIT_LAG_SHARE = 0.10
LATE_CLOSE_SHARE = 0.10
REMOVE_AFTER = 360  # cycles the bot keeps reporting a closed trade (1 hour)
QUARANTINE_SHARE = 0.01  # of cycles
SUFFIXES = ["", ".m", "pro", "-ECN"]

UTC_US = mt5frames.UTC_US
BOT, MANUAL, OTHER_EA = 0, 1, 2
OPENED, CHANGED, CLOSED = 0, 1, 2  # position events
APPEARED, POSITION_ID, EDIT, CLOSED_AT, REMOVED = 0, 1, 2, 3, 4  # trade events
OBSERVED_EV, OPENED_EV, REOPENED_EV, RESOLVED_EV, DISMISSED_EV = 0, 1, 2, 3, 4  # break events
EVENT_NAMES = ["observed", "opened", "reopened", "resolved", "dismissed"]


# ---------------------------------------------------------------- draws and small helpers


def _suffixes() -> pl.DataFrame:
    return pl.DataFrame(
        {"suffix_idx": list(range(len(SUFFIXES))), "suffix": SUFFIXES}, schema_overrides={"suffix_idx": pl.Int64}
    )


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


def _ms(values: list[float]) -> list[str]:
    return [f"{1000 * statistics.median(values):,.1f}", f"{1000 * _p95(values):,.1f}", f"{1000 * max(values):,.1f}"]


# ---------------------------------------------------------------- the simulated fleet


@dataclass
class Chunk:
    """What one range of cycles stores: frames per table (with a `_k` cycle-index column), the keys
    the state tables lose, and one ledger row per cycle."""

    frames: dict[str, pl.DataFrame]
    deletes: dict[str, pl.DataFrame]
    ledger: pl.DataFrame

    def rows(self) -> int:
        return sum(f.height for f in self.frames.values())

    def for_commit(self) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
        """Frames and deletes as `Store.commit_cycle` takes them (one-cycle chunks only)."""
        return (
            {t: f.drop("_k") for t, f in self.frames.items()},
            {t: f.select(STATE_KEYS[t]) for t, f in self.deletes.items()},
        )


@dataclass
class Simulation:
    """A fleet's positions, bot trades and breaks over `horizon` cycles from `start`, planned once;
    `chunk(c0, c1)` turns the plan into the store rows of cycles c0..c1-1."""

    accounts: int
    slots: int
    horizon: int
    start: datetime
    seed: int
    positions: pl.DataFrame = field(init=False)
    position_events: pl.DataFrame = field(init=False)
    trade_events: pl.DataFrame = field(init=False)
    episodes: pl.DataFrame = field(init=False)
    break_events: pl.DataFrame = field(init=False)
    failures: pl.DataFrame = field(init=False)
    filled_with_nulls: dict[str, list[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.positions = self._plan_positions()
        edits = self._plan_edits()
        self.position_events = self._plan_position_events(edits)
        self.trade_events = self._plan_trade_events(edits)
        self.failures = self._plan_failures()
        self.episodes = self._plan_episodes(edits)
        self.break_events = self._plan_break_events()

    # ---- time

    def ts(self, k: pl.Expr, offset_ms: pl.Expr | int = 0) -> pl.Expr:
        """The time of cycle k (plus an offset in ms) as a UTC microsecond timestamp."""
        return (pl.lit(self.start).cast(UTC_US) + pl.duration(milliseconds=k * (CYCLE_SECS * 1000) + offset_ms)).cast(
            UTC_US
        )

    def cycle_ids(self, c0: int, c1: int) -> pl.DataFrame:
        ks = pl.DataFrame({"_k": pl.int_range(c0, c1, eager=True, dtype=pl.Int64)})
        return ks.with_columns(
            pl.format("{}:{}", pl.lit(FLEET), self.ts(pl.col("_k")).dt.strftime("%Y%m%dT%H%M%S.%6fZ")).alias("cycle_id")
        )

    # ---- the plan

    def _plan_positions(self) -> pl.DataFrame:
        seed, slots = self.seed, self.accounts * self.slots
        per_slot = self.horizon // MIN_LIFE + 3
        life = (MIN_LIFE + (uniform(pl.col("g"), seed, 1) * (MAX_LIFE - MIN_LIFE + 1)).floor()).cast(pl.Int64)
        gap = (uniform(pl.col("g"), seed, 2) * (MAX_GAP + 1)).floor().cast(pl.Int64)
        grid = (
            pl.DataFrame({"g": pl.int_range(slots * per_slot, eager=True, dtype=pl.Int64)})
            .with_columns((pl.col("g") // per_slot).alias("slot"), life.alias("life"), gap.alias("gap"))
            .with_columns(
                # a slot's first position opened up to a life + gap before the start: the fleet is in steady state
                (-(uniform(pl.col("slot"), seed, 3) * (MAX_LIFE + MAX_GAP)).floor().cast(pl.Int64)).alias("offset"),
                (pl.col("life") + pl.col("gap")).alias("span"),
            )
            .with_columns(
                (pl.col("offset") + pl.col("span").cum_sum().over("slot") - pl.col("span")).alias("open"),
            )
            .with_columns((pl.col("open") + pl.col("life")).alias("close"))
            .filter((pl.col("close") > 0) & (pl.col("open") < self.horizon))
            .select("slot", "open", "close")
            .with_row_index("pos_id")
            .with_columns(pl.col("pos_id").cast(pl.Int64))
        )
        key = pl.col("pos_id")
        u = {name: uniform(key, seed, 10 + i) for i, name in enumerate(POSITION_DRAWS)}
        side = pl.when(pl.col("type") == 0).then(1.0).otherwise(-1.0)
        bot = pl.col("kind") == BOT
        volumes = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
        volume = pl.lit(volumes[-1])
        for i in range(len(volumes) - 2, -1, -1):
            volume = pl.when((u["volume"] * len(volumes)).floor() == i).then(pl.lit(volumes[i])).otherwise(volume)
        planned = (
            grid.with_columns(
                (pl.col("slot") // self.slots).alias("a"),
                ((pl.col("slot") // self.slots) % len(SUFFIXES)).alias("suffix_idx"),
                pl.max_horizontal(pl.col("open"), pl.lit(0)).alias("open_seen"),
                pick(u["kind"], [1 - MANUAL_SHARE - OTHER_EA_SHARE, MANUAL_SHARE, OTHER_EA_SHARE]).alias("kind"),
                pick(u["symbol"], [s[6] for s in INSTRUMENTS]).alias("sym"),
                pl.when(u["side"] < 0.5).then(0).otherwise(1).cast(pl.Int32).alias("type"),
                volume.alias("v0"),
                pick(u["stage"], [1 - TAG_SHARE - FUZZY_SHARE, TAG_SHARE, FUZZY_SHARE]).alias("stage_code"),
                (u["edits"] * (MAX_EDITS + 1)).floor().cast(pl.Int64).alias("n_edits"),
            )
            .join(
                instruments().select("sym", "instrument", "digits", "point", "money_per_unit", "base_price", "pip"),
                on="sym",
                how="left",
            )
            .with_columns(
                (pl.col("a") + LOGIN_BASE).alias("login"),
                (pl.col("pos_id") + IDENTIFIER_BASE).alias("identifier"),
                round_to_digits(pl.col("base_price") * (1 + (u["price"] - 0.5) * 0.04), DIGITS).alias("price_open"),
                # signed slippage in pips (> 0 adverse) of the bot trades that slipped
                pl.when(bot & (u["slip"] < SLIPPAGE_SHARE))
                .then(
                    pl.when(u["slip_sign"] < 0.7)
                    .then(0.5 + u["slip_size"] * 5.5)
                    .otherwise(-(0.5 + u["slip_size"] * 2.5))
                    .round(1)
                )
                .alias("slip"),
                (bot & (u["partial"] < PARTIAL_SHARE)).alias("partial"),
                pl.when(bot & (u["late"] < LATE_CLOSE_SHARE))
                .then(pl.when(u["late_len"] < 0.75).then(1).otherwise(3))
                .otherwise(0)
                .cast(pl.Int64)
                .alias("late"),
                pl.when(u["close_reason"] < 0.5)
                .then(pl.lit("closed_by_sl"))
                .otherwise(pl.lit("closed_by_tp"))
                .alias("close_cause"),
            )
            .join(_suffixes(), on="suffix_idx", how="left")
            # the broker's spelling of the instrument differs per account
            .with_columns((pl.col("instrument") + pl.col("suffix")).alias("broker_symbol"))
        )
        planned = planned.with_columns(
            round_to_digits(
                pl.col("price_open") - side * (20 + u["sl"] * 30) * pl.col("pip"), (spec[1] for spec in INSTRUMENTS)
            ).alias("sl0"),
            round_to_digits(
                pl.col("price_open") + side * (30 + u["tp"] * 70) * pl.col("pip"), (spec[1] for spec in INSTRUMENTS)
            ).alias("tp0"),
            round_to_digits(
                pl.col("price_open") - side * pl.col("slip").fill_null(0.0) * pl.col("pip"),
                (spec[1] for spec in INSTRUMENTS),
            ).alias("price_expected"),
            side.alias("side"),
            pl.when(bot)
            .then(pl.format("bt{}", (key.hash(seed=seed + 99) % 10_000_000_000_000).cast(pl.String)))
            .alias("trade_id"),
            pl.when(bot)
            .then(pl.col("stage_code").replace_strict([0, 1, 2], ["identity", "tag", "fuzzy"], return_dtype=pl.String))
            .alias("stage"),
            pl.when(bot)
            .then(BOT_MAGIC_BASE + pl.col("slot") % 3)
            .when(pl.col("kind") == OTHER_EA)
            .then(pl.lit(OTHER_EA_MAGIC))
            .otherwise(0)
            .cast(pl.Int64)
            .alias("magic"),
            pl.when(pl.col("kind") == MANUAL).then(0).otherwise(3).cast(pl.Int32).alias("reason"),
            # milliseconds before the cycle that first saw it, or the true open time before the month
            (pl.col("open") * (CYCLE_SECS * 1000) - 1_000 - (u["open_ms"] * 8_000).floor().cast(pl.Int64)).alias(
                "open_ms"
            ),
        )
        return planned.with_columns(
            pl.format("{}:{}", pl.col("login"), pl.col("identifier")).alias("position_key"),
            pl.when(bot).then(pl.format("{}:{}", pl.col("login"), pl.col("trade_id"))).alias("trade_key"),
            pl.when(pl.col("stage") == "tag")
            .then(pl.col("trade_id"))
            .when(pl.col("kind") == OTHER_EA)
            .then(pl.lit("grid ea"))
            .otherwise(pl.lit(""))
            .alias("comment"),
        ).drop("base_price", "point", "stage_code", "suffix_idx", "suffix")

    def _plan_edits(self) -> pl.DataFrame:
        seed, pos = self.seed, self.positions
        key = pl.col("pos_id") * 8 + pl.col("i")
        span = pl.col("close") - pl.col("open_seen")
        frac = (pl.col("i") + 0.5 + (uniform(key, seed, 40) - 0.5) * 0.6) / pl.col("n_edits")
        what = uniform(key, seed, 41)
        edits = (
            pos.filter(pl.col("n_edits") > 0)
            .select("pos_id", "kind", "open_seen", "close", "n_edits", "v0")
            .with_columns(pl.int_ranges(0, pl.col("n_edits")).alias("i"))
            .explode("i")
            .with_columns((pl.col("open_seen") + (frac * span).floor().cast(pl.Int64)).alias("k"))
            .filter((pl.col("k") > pl.col("open_seen")) & (pl.col("k") < pl.col("close")))
            .unique(["pos_id", "k"], keep="first", maintain_order=True)
            .with_columns(
                pl.when((what >= 0.90) & (pl.col("v0") >= 0.02))
                .then(pl.lit("volume"))
                .when(what < 0.45)
                .then(pl.lit("sl"))
                .when(what < 0.80)
                .then(pl.lit("tp"))
                .when(what < 0.90)
                .then(pl.lit("sl,tp"))
                .otherwise(pl.lit("sl"))
                .alias("fields"),
            )
            .with_columns(
                pl.col("fields").str.contains("sl").alias("e_sl"),
                pl.col("fields").str.contains("tp").alias("e_tp"),
                (pl.col("fields") == "volume").alias("e_vol"),
            )
            .sort("pos_id", "k")
            .with_columns(
                pl.col("e_sl").cast(pl.Int64).cum_sum().over("pos_id").alias("n_sl"),
                pl.col("e_tp").cast(pl.Int64).cum_sum().over("pos_id").alias("n_tp"),
                pl.col("e_vol").cast(pl.Int64).cum_sum().over("pos_id").alias("n_vol"),
                # the bot records some SL/TP edits 1-3 cycles before the broker shows them
                pl.when(
                    (pl.col("kind") == BOT)
                    & ~pl.col("e_vol")
                    & (uniform(key, seed, 42) < EDIT_LAG_SHARE)
                    & (pl.col("k") - 3 > pl.col("open_seen"))
                )
                .then(1 + (uniform(key, seed, 43) * 3).floor().cast(pl.Int64))
                .otherwise(0)
                .alias("lag"),
            )
        )
        return edits.select("pos_id", "k", "fields", "e_sl", "e_tp", "n_sl", "n_tp", "n_vol", "lag")

    def _final_counts(self, edits: pl.DataFrame) -> pl.DataFrame:
        last = edits.group_by("pos_id").agg(pl.col("n_sl", "n_tp", "n_vol").max())
        return self.positions.select("pos_id").join(last, on="pos_id", how="left").fill_null(0)

    def _plan_position_events(self, edits: pl.DataFrame) -> pl.DataFrame:
        pos, h = self.positions, self.horizon
        zero = [pl.lit(0, dtype=pl.Int64).alias(c) for c in ("n_sl", "n_tp", "n_vol")]
        opened = pos.filter(pl.col("open_seen") < h).select(
            "pos_id",
            pl.col("open_seen").alias("k"),
            pl.lit(OPENED).alias("change"),
            pl.lit(None, pl.String).alias("fields"),
            *zero,
        )
        changed = edits.filter(pl.col("k") < h).select(
            "pos_id", "k", pl.lit(CHANGED).alias("change"), "fields", "n_sl", "n_tp", "n_vol"
        )
        closed = (
            pos.filter(pl.col("close") < h)
            .select(
                "pos_id",
                pl.col("close").alias("k"),
                pl.lit(CLOSED).alias("change"),
                pl.lit(None, pl.String).alias("fields"),
            )
            .join(self._final_counts(edits), on="pos_id", how="left")
        )
        return _events_frame([opened, changed, closed])

    def _plan_trade_events(self, edits: pl.DataFrame) -> pl.DataFrame:
        h = self.horizon
        bots = self.positions.filter(pl.col("kind") == BOT).select(
            "pos_id", "open", "open_seen", "close", "late", "stage"
        )
        identity = pl.col("stage") == "identity"
        appear = pl.max_horizontal(pl.col("open") - 1, pl.lit(0))
        zero = [pl.lit(0, dtype=pl.Int64).alias(c) for c in ("n_sl", "n_tp", "n_vol")]

        def base(k: pl.Expr, change: int, fields: str | None, has_pid: pl.Expr, closed: bool) -> list[pl.Expr]:
            return [
                pl.col("pos_id"),
                k.alias("k"),
                pl.lit(change).alias("change"),
                pl.lit(fields, pl.String).alias("fields"),
                has_pid.alias("has_pid"),
                pl.lit(closed).alias("closed"),
            ]

        appeared = bots.select(*base(appear, APPEARED, None, identity & (pl.col("open") <= 0), False), *zero)
        pid = bots.filter(identity & (pl.col("open") >= 1)).select(
            *base(pl.col("open_seen"), POSITION_ID, "position_id", pl.lit(True), False), *zero
        )
        edited = edits.join(bots.select("pos_id", "stage"), on="pos_id", how="inner").select(
            "pos_id",
            (pl.col("k") - pl.col("lag")).alias("k"),
            pl.lit(EDIT).alias("change"),
            "fields",
            identity.alias("has_pid"),
            pl.lit(False).alias("closed"),
            "n_sl",
            "n_tp",
            "n_vol",
        )
        final = self._final_counts(edits)
        closing = (pl.col("close") + pl.col("late")).alias("k")
        closed_at = bots.select(*base(closing, CLOSED_AT, "closed_at", identity, True)).join(final, on="pos_id")
        removed = bots.select(
            *base((pl.col("close") + pl.col("late") + REMOVE_AFTER), REMOVED, None, identity, True)
        ).join(final, on="pos_id")
        events = _events_frame([appeared, pid, edited, closed_at, removed])
        return events.filter(pl.col("k") < h).unique(["pos_id", "k"], keep="first", maintain_order=True)

    def _plan_failures(self) -> pl.DataFrame:
        """One failed snapshot (1-3 cycles) per account per day."""
        days = -(-self.horizon // CYCLES_PER_DAY)
        key = pl.col("a") * 1_000 + pl.col("day")
        return (
            pl.DataFrame({"a": pl.int_range(self.accounts, eager=True, dtype=pl.Int64)})
            .join(pl.DataFrame({"day": pl.int_range(days, eager=True, dtype=pl.Int64)}), how="cross")
            .with_columns(
                (pl.col("day") * CYCLES_PER_DAY + (uniform(key, self.seed, 60) * (CYCLES_PER_DAY - 10)).floor())
                .cast(pl.Int64)
                .alias("start"),
                (1 + (uniform(key, self.seed, 61) * 3).floor()).cast(pl.Int64).alias("length"),
            )
            .with_columns((pl.col("start") + pl.col("length")).alias("end"))
            .filter(pl.col("start") < self.horizon)
            .sort("start", "a")
        )

    def _plan_episodes(self, edits: pl.DataFrame) -> pl.DataFrame:
        """Every break episode: one stretch of cycles in which a divergence is present (start..end-1);
        the break clears at `end` (>= horizon: still present)."""
        pos = self.positions
        pos_cols = pos.select(
            "pos_id",
            "login",
            "trade_id",
            "identifier",
            pl.col("instrument").alias("symbol"),
            "stage",
            "open_seen",
            "close",
            "late",
            "v0",
            "price_open",
            "price_expected",
            "slip",
            "pip",
            "money_per_unit",
            "partial",
            "kind",
            "close_cause",
            "sl0",
            "tp0",
            "side",
        )
        bot = pl.col("kind") == BOT

        def episode(
            frame: pl.DataFrame,
            kind: str,
            identity: pl.Expr,
            start: pl.Expr,
            end: pl.Expr,
            confirm: int,
            **values: pl.Expr,
        ) -> pl.DataFrame:
            defaults: dict[str, pl.Expr] = {
                "cause": pl.lit(None, pl.String),
                "expected": pl.lit(None, pl.Float64),
                "actual": pl.lit(None, pl.Float64),
                "size_pips": pl.lit(None, pl.Float64),
                "size_money": pl.lit(None, pl.Float64),
            }
            defaults.update(values)
            return frame.select(
                pl.format("{}:{}:{}", pl.col("login"), pl.lit(kind), identity).alias("break_id"),
                pl.col("login"),
                pl.lit(kind).alias("kind"),
                *[defaults[c].alias(c) for c in ("cause", "expected", "actual", "size_pips", "size_money")],
                pl.col("trade_id"),
                pl.col("identifier"),
                pl.col("symbol"),
                pl.col("stage"),
                start.cast(pl.Int64).alias("start"),
                end.cast(pl.Int64).alias("end"),
                pl.lit(confirm, pl.Int64).alias("confirm"),
            )

        slipped = pos_cols.filter(pl.col("slip").is_not_null())
        slippage = episode(
            slipped,
            "slippage",
            pl.col("trade_id"),
            pl.col("open_seen"),
            pl.col("close"),
            1,
            cause=pl.when(pl.col("slip") > 0).then(pl.lit("adverse")).otherwise(pl.lit("favourable")),
            expected=pl.col("price_expected"),
            actual=pl.col("price_open"),
            size_pips=pl.col("slip"),
            size_money=(pl.col("slip") * pl.col("pip") * pl.col("money_per_unit") * pl.col("v0")).round(2),
        )
        partial = episode(
            pos_cols.filter(pl.col("partial")),
            "volume_mismatch",
            pl.col("trade_id"),
            pl.col("open_seen"),
            pl.col("close"),
            1,
            cause=pl.lit("partial_fill"),
            expected=2 * pl.col("v0"),
            actual=pl.col("v0"),
        )
        unknown = episode(
            pos_cols.filter(~bot).with_columns(pl.lit(None, pl.String).alias("stage")),
            "unknown_position",
            pl.format("pos{}", pl.col("identifier")),
            pl.col("open_seen"),
            pl.col("close"),
            2,
            cause=pl.when(pl.col("kind") == MANUAL).then(pl.lit("manual")).otherwise(pl.lit("other_ea")),
            actual=pl.col("v0"),
        )
        late = episode(
            pos_cols.filter(pl.col("late") > 0),
            "missing_position",
            pl.col("trade_id"),
            pl.col("close"),
            pl.col("close") + pl.col("late"),
            2,
            cause=pl.col("close_cause"),
            expected=pl.col("v0"),
        )
        lagging = edits.filter(pl.col("lag") > 0).join(pos_cols, on="pos_id", how="left")
        step = 5 * pl.col("pip")
        new_level = (
            pl.when(pl.col("e_sl"))
            .then(pl.col("sl0") + pl.col("side") * pl.col("n_sl") * step)
            .otherwise(pl.col("tp0") + pl.col("side") * pl.col("n_tp") * step)
        )
        levels = pl.concat(
            [
                episode(
                    lagging.filter(pl.col("e_sl") == is_sl),
                    kind,
                    pl.col("trade_id"),
                    pl.col("k") - pl.col("lag"),
                    pl.col("k"),
                    1,
                    cause=pl.lit("drift"),
                    expected=new_level.round(5),
                    actual=(new_level - pl.col("side") * step).round(5),
                    size_pips=pl.lit(5.0),
                )
                for is_sl, kind in ((True, "sl_mismatch"), (False, "tp_mismatch"))
            ]
        )
        accounts = pl.DataFrame({"a": pl.int_range(self.accounts, eager=True, dtype=pl.Int64)}).with_columns(
            (pl.col("a") + LOGIN_BASE).alias("login")
        )
        failed = episode(
            self.failures.join(accounts, on="a").with_columns(
                *[
                    pl.lit(None, dtype).alias(c)
                    for c, dtype in (
                        ("trade_id", pl.String),
                        ("identifier", pl.Int64),
                        ("symbol", pl.String),
                        ("stage", pl.String),
                    )
                ]
            ),
            "snapshot_failed",
            pl.lit("snapshot"),
            pl.col("start"),
            pl.col("end"),
            1,
            cause=pl.lit("positions_get"),
        )
        episodes = pl.concat([slippage, partial, unknown, late, levels, failed], how="vertical").filter(
            pl.col("start") < self.horizon
        )
        episodes = (
            episodes.sort("break_id", "start")
            .with_columns(
                (pl.col("end") - pl.col("start")).alias("length"),
                ((pl.col("end") - pl.col("start")) >= pl.col("confirm")).alias("opens"),
            )
            .with_columns(
                pl.int_range(pl.len()).over("break_id").alias("ep_no"),
                (pl.col("length").cum_sum().over("break_id") - pl.col("length")).alias("occ_before"),
                (pl.col("opens").cast(pl.Int64).cum_sum().over("break_id") - pl.col("opens").cast(pl.Int64)).alias(
                    "opened_before"
                ),
                pl.col("opens").shift(1).over("break_id").alias("prev_opened"),
            )
            .sort("start", "break_id")
            .with_row_index("ep")
        )
        return episodes

    def _plan_break_events(self) -> pl.DataFrame:
        """One row per lifecycle transition: (episode, cycle, event, status, previous status)."""
        eps = self.episodes
        prior = (
            pl.when(pl.col("prev_opened").is_null())
            .then(pl.lit(None, pl.String))
            .when(pl.col("prev_opened"))
            .then(pl.lit("resolved"))
            .otherwise(pl.lit("dismissed"))
        )
        first = eps.select(
            "ep",
            pl.col("start").alias("k"),
            pl.when(pl.col("confirm") > 1)
            .then(OBSERVED_EV)
            .when(pl.col("prev_opened").fill_null(False))
            .then(REOPENED_EV)
            .otherwise(OPENED_EV)
            .alias("event"),
            pl.when(pl.col("confirm") > 1).then(pl.lit("pending")).otherwise(pl.lit("open")).alias("status"),
            prior.alias("previous_status"),
        )
        confirmed = eps.filter((pl.col("confirm") > 1) & pl.col("opens")).select(
            "ep",
            (pl.col("start") + pl.col("confirm") - 1).alias("k"),
            pl.lit(OPENED_EV).alias("event"),
            pl.lit("open").alias("status"),
            pl.lit("pending").alias("previous_status"),
        )
        cleared = eps.filter(pl.col("end") < self.horizon).select(
            "ep",
            pl.col("end").alias("k"),
            pl.when(pl.col("opens")).then(RESOLVED_EV).otherwise(DISMISSED_EV).alias("event"),
            pl.when(pl.col("opens")).then(pl.lit("resolved")).otherwise(pl.lit("dismissed")).alias("status"),
            pl.when(pl.col("opens")).then(pl.lit("open")).otherwise(pl.lit("pending")).alias("previous_status"),
        )
        events = pl.concat([first, confirmed, cleared], how="vertical_relaxed")
        return events.with_columns(pl.col("event").cast(pl.Int64)).filter(pl.col("k") < self.horizon).sort("k", "ep")

    # ---- one range of cycles

    def chunk(self, c0: int, c1: int) -> Chunk:
        """The rows cycles c0..c1-1 store; state tables hold each touched key's state at cycle c1-1."""
        ks = self.cycle_ids(c0, c1)
        out: dict[str, pl.DataFrame] = {}
        out["cycles"], out["account_snapshots"] = self._accounts_rows(ks)
        pev = _slice(self.position_events, c0, c1).join(self.positions, on="pos_id", how="left")
        out["position_changes"] = self._position_changes(pev)
        last = pev.sort("k").unique("pos_id", keep="last", maintain_order=True)
        out["current_positions"] = self._current_positions(last.filter(pl.col("change") != CLOSED))
        deletes = {"current_positions": last.filter(pl.col("change") == CLOSED).select("_k", "position_key")}
        tev = _slice(self.trade_events, c0, c1).join(self.positions, on="pos_id", how="left")
        out["expected_trade_changes"] = self._trade_changes(tev)
        last_t = tev.sort("k").unique("pos_id", keep="last", maintain_order=True)
        out["current_expected_trades"] = self._current_trades(last_t.filter(pl.col("change") != REMOVED))
        deletes["current_expected_trades"] = last_t.filter(pl.col("change") == REMOVED).select("_k", "trade_key")
        out["breaks"] = self._breaks(c0, c1)
        out["break_events"] = self._break_events(_slice(self.break_events, c0, c1))
        out["quarantine"] = self._quarantine(ks)
        frames = {t: self._with_cycle_id(t, f, ks) for t, f in out.items()}
        return Chunk(frames, deletes, self._ledger(ks, frames, deletes))

    def _with_cycle_id(self, table: str, frame: pl.DataFrame, ks: pl.DataFrame) -> pl.DataFrame:
        with_ids = frame.join(ks, on="_k", how="left", maintain_order="left") if "cycle_id" not in frame else frame
        schema = STORE_TABLES[table]
        missing = [c for c in schema if c not in with_ids.columns]
        if missing:  # a column added to STORE_TABLES after this benchmark was written: stored as null
            self.filled_with_nulls[table] = missing
        columns = [pl.col(c) if c in with_ids.columns else pl.lit(None).alias(c) for c in schema]
        return with_ids.select("_k", *columns).cast(schema)

    def _accounts_rows(self, ks: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        seed = self.seed
        accounts = pl.DataFrame({"a": pl.int_range(self.accounts, eager=True, dtype=pl.Int64)})
        grid = ks.join(accounts, how="cross").with_columns(
            (pl.col("a") + LOGIN_BASE).alias("login"), (pl.col("_k") * 100_000 + pl.col("a")).alias("ka")
        )
        failed = (
            self.failures.filter((pl.col("start") < ks["_k"].max() + 1) & (pl.col("end") > ks["_k"].min()))  # type: ignore[operator]
            .with_columns(pl.int_ranges("start", "end").alias("_k"))
            .explode("_k")
            .select("a", "_k", pl.lit(True).alias("failed"))
        )
        grid = grid.join(failed, on=["a", "_k"], how="left", maintain_order="left").with_columns(
            pl.col("failed").fill_null(False)
        )
        ok = ~pl.col("failed")
        per_cycle = ks.select(
            "_k",
            (600 + uniform(pl.col("_k"), seed, 70) * 900).round(3).alias("fetch_ms"),
            (40 + uniform(pl.col("_k"), seed, 71) * 60).round(3).alias("reconcile_ms"),
            (1_600 + (uniform(pl.col("_k"), seed, 72) * 900).floor()).cast(pl.Int64).alias("finish_ms"),
        )
        grid = grid.join(per_cycle, on="_k", how="left", maintain_order="left")
        positions = pl.lit(self.slots) - (uniform(pl.col("ka"), seed, 73) * 4).floor().cast(pl.Int64)
        cycles = grid.select(
            "_k",
            "login",
            self.ts(pl.col("_k"), 3).alias("started_at"),
            self.ts(pl.col("_k"), pl.col("finish_ms")).alias("finished_at"),
            pl.when(ok).then(pl.lit("ok")).otherwise(pl.lit("failed")).alias("status"),
            pl.when(ok).then(None).otherwise(pl.lit("positions_get: (-10004, 'No IPC connection')")).alias("error"),
            pl.when(ok).then(positions).otherwise(0).alias("positions"),
            pl.when(ok).then(positions - 1).otherwise(0).alias("expected_open"),
            pl.when(ok).then(positions - 1).otherwise(0).alias("matched"),
            pl.when(ok)
            .then((uniform(pl.col("ka"), seed, 74) * 9).floor().cast(pl.Int64))
            .otherwise(1)
            .alias("divergences"),
            pl.lit(0).alias("quarantined"),
            "fetch_ms",
            "reconcile_ms",
        )
        # balance moves when positions close (every ~8 minutes), equity and margin every cycle
        step = pl.col("_k") // 48
        balance = (
            5_000
            + uniform(pl.col("a"), seed, 80) * 95_000
            + step * (uniform(pl.col("a"), seed, 81) - 0.45) * 8
            + (uniform(pl.col("a") * 1_000_000 + step, seed, 82) - 0.5) * 60
        ).round(2)
        profit = ((uniform(pl.col("ka"), seed, 83) - 0.5) * 0.04 * balance).round(2)
        margin = (balance * (0.05 + 0.1 * uniform(pl.col("a") * 1_000_000 + pl.col("_k") // 30, seed, 84))).round(2)
        snapshots = grid.with_columns(balance.alias("balance"), profit.alias("profit"), margin.alias("margin")).select(
            "_k",
            "login",
            self.ts(pl.col("_k"), 50 + (uniform(pl.col("a"), seed, 85) * 800).floor().cast(pl.Int64)).alias(
                "fetched_at"
            ),
            pl.lit(0).alias("trade_mode"),
            pl.when(uniform(pl.col("a"), seed, 86) < 0.5).then(100).otherwise(500).alias("leverage"),
            pl.lit(200).alias("limit_orders"),
            pl.lit(0).alias("margin_so_mode"),
            pl.lit(True).alias("trade_allowed"),
            pl.lit(True).alias("trade_expert"),
            pl.lit(2).alias("margin_mode"),
            pl.lit(2).alias("currency_digits"),
            pl.lit(False).alias("fifo_close"),
            "balance",
            pl.lit(0.0).alias("credit"),
            "profit",
            (pl.col("balance") + pl.col("profit")).round(2).alias("equity"),
            "margin",
            (pl.col("balance") + pl.col("profit") - pl.col("margin")).round(2).alias("margin_free"),
            ((pl.col("balance") + pl.col("profit")) / pl.col("margin") * 100).alias("margin_level"),
            pl.lit(50.0).alias("margin_so_call"),
            pl.lit(30.0).alias("margin_so_so"),
            pl.lit(0.0).alias("margin_initial"),
            pl.lit(0.0).alias("margin_maintenance"),
            pl.lit(0.0).alias("assets"),
            pl.lit(0.0).alias("liabilities"),
            pl.lit(0.0).alias("commission_blocked"),
            pl.format("Account {}", pl.col("login")).alias("name"),
            pl.format("Broker-Live{}", pl.col("a") % 4).alias("server"),
            pl.when(uniform(pl.col("a"), seed, 87) < 0.9)
            .then(pl.lit("USD"))
            .otherwise(pl.lit("EUR"))
            .alias("currency"),
            pl.lit("Broker Markets Ltd").alias("company"),
            pl.lit(True).alias("account_ok"),
            ok.alias("positions_ok"),
            pl.lit(True).alias("orders_ok"),
            pl.lit(True).alias("deals_ok"),
        )
        return cycles, snapshots

    @staticmethod
    def _levels() -> list[pl.Expr]:
        step = 5 * pl.col("pip")
        return [
            round_to_digits(
                pl.col("sl0") + pl.col("side") * pl.col("n_sl") * step, (spec[1] for spec in INSTRUMENTS)
            ).alias("sl"),
            round_to_digits(
                pl.col("tp0") + pl.col("side") * pl.col("n_tp") * step, (spec[1] for spec in INSTRUMENTS)
            ).alias("tp"),
            (pl.col("v0") / (2 ** pl.col("n_vol"))).round(2).clip(lower_bound=0.01).alias("volume"),
        ]

    def _position_columns(self) -> list[pl.Expr | str]:
        return [
            "position_key",
            "login",
            "identifier",
            pl.col("identifier").alias("ticket"),
            pl.col("broker_symbol").alias("symbol"),
            "type",
            "magic",
            "reason",
            "volume",
            "price_open",
            "sl",
            "tp",
            (pl.lit(self.start).cast(mt5frames.UTC_MS) + pl.duration(milliseconds=pl.col("open_ms")))
            .cast(mt5frames.UTC_MS)
            .alias("time"),
            "comment",
            "trade_id",
            "stage",
        ]

    def _position_changes(self, pev: pl.DataFrame) -> pl.DataFrame:
        move = (uniform(pl.col("pos_id") * 1_000_000 + pl.col("k"), self.seed, 90) - 0.45) * 40 * pl.col("pip")
        return (
            pev.with_columns(*self._levels())
            .with_columns(round_to_digits(pl.col("price_open") + move, DIGITS).alias("price_current"))
            .select(
                "_k",
                pl.col("change").replace_strict(
                    [OPENED, CHANGED, CLOSED], ["opened", "changed", "closed"], return_dtype=pl.String
                ),
                pl.col("fields").alias("changed_fields"),
                self.ts(pl.col("k")).alias("changed_at"),
                *self._position_columns(),
                "price_current",
                (
                    (pl.col("price_current") - pl.col("price_open"))
                    * pl.col("side")
                    * pl.col("volume")
                    * pl.col("money_per_unit")
                )
                .round(2)
                .alias("profit"),
                (-(pl.col("k") - pl.col("open")) / CYCLES_PER_DAY * pl.col("volume") * 5).round(2).alias("swap"),
            )
        )

    def _current_positions(self, last: pl.DataFrame) -> pl.DataFrame:
        return last.with_columns(*self._levels()).select(
            "_k",
            *self._position_columns(),
            self.ts(pl.col("open_seen")).alias("first_seen_at"),
            self.ts(pl.col("k")).alias("changed_at"),
        )

    def _trade_columns(self) -> list[pl.Expr | str]:
        expected_volume = pl.when(pl.col("partial")).then(2 * pl.col("volume")).otherwise(pl.col("volume"))
        return [
            "trade_key",
            "trade_id",
            "login",
            pl.col("instrument").alias("symbol"),
            pl.when(pl.col("type") == 0).then(pl.lit("buy")).otherwise(pl.lit("sell")).alias("side"),
            expected_volume.alias("volume"),
            pl.col("price_expected").alias("price"),
            "sl",
            "tp",
            "magic",
            pl.when(pl.col("has_pid")).then(pl.col("identifier")).alias("position_id"),
            self.ts(pl.col("open"), -2_000).alias("opened_at"),
            pl.when(pl.col("closed")).then(self.ts(pl.col("close"), -1_500)).alias("closed_at"),
        ]

    def _trade_changes(self, tev: pl.DataFrame) -> pl.DataFrame:
        change = pl.col("change").replace_strict(
            [APPEARED, POSITION_ID, EDIT, CLOSED_AT, REMOVED],
            ["appeared", "changed", "changed", "changed", "removed"],
            return_dtype=pl.String,
        )
        return tev.with_columns(*self._levels()).select(
            "_k",
            change.alias("change"),
            pl.col("fields").alias("changed_fields"),
            self.ts(pl.col("k")).alias("changed_at"),
            *self._trade_columns(),
        )

    def _current_trades(self, last: pl.DataFrame) -> pl.DataFrame:
        return last.with_columns(*self._levels()).select(
            "_k",
            *self._trade_columns(),
            self.ts(pl.max_horizontal(pl.col("open") - 1, pl.lit(0))).alias("first_seen_at"),
            self.ts(pl.col("k")).alias("changed_at"),
        )

    def _breaks(self, c0: int, c1: int) -> pl.DataFrame:
        cl = c1 - 1
        touched = (
            self.episodes.filter((pl.col("start") <= cl) & (pl.col("end") >= c0))
            .sort("start")
            .unique("break_id", keep="last", maintain_order=True)
        )
        present = pl.col("end") > cl
        last_seen = pl.min_horizontal(pl.lit(cl), pl.col("end") - 1)
        observations = last_seen - pl.col("start") + 1
        opened = pl.when(present).then(observations >= pl.col("confirm")).otherwise(pl.col("opens"))
        touched_at = pl.min_horizontal(pl.lit(cl), pl.col("end"))
        return touched.select(
            touched_at.alias("_k"),
            "break_id",
            "login",
            "kind",
            pl.when(present & opened)
            .then(pl.lit("open"))
            .when(present)
            .then(pl.lit("pending"))
            .when(opened)
            .then(pl.lit("resolved"))
            .otherwise(pl.lit("dismissed"))
            .alias("status"),
            "cause",
            "trade_id",
            pl.col("identifier").alias("ticket"),
            "identifier",
            "symbol",
            "stage",
            "expected",
            "actual",
            "size_pips",
            "size_money",
            pl.col("size_pips").alias("worst_size_pips"),
            pl.col("size_money").alias("worst_size_money"),
            self.ts(pl.col("start")).alias("first_seen_at"),
            pl.when(opened).then(self.ts(pl.col("start") + pl.col("confirm") - 1)).alias("opened_at"),
            self.ts(last_seen).alias("last_seen_at"),
            pl.when(~present).then(self.ts(pl.col("end"))).alias("resolved_at"),
            self.ts(touched_at).alias("updated_at"),
            ((touched_at - pl.col("start")) * float(CYCLE_SECS)).alias("age_secs"),
            observations.alias("observations"),
            (pl.col("occ_before") + observations).alias("occurrences"),
            (pl.col("opened_before") + opened.cast(pl.Int64)).alias("episodes"),
        )

    def _break_events(self, events: pl.DataFrame) -> pl.DataFrame:
        joined = events.join(self.episodes, on="ep", how="left")
        first = pl.col("k") == pl.col("start")
        at = self.ts(pl.col("k"))
        name = pl.col("event").replace_strict(list(range(len(EVENT_NAMES))), EVENT_NAMES, return_dtype=pl.String)
        present_cycles = pl.min_horizontal(pl.col("k") + 1, pl.col("end")) - pl.col("start")
        return joined.select(
            "_k",
            pl.concat_str([pl.col("break_id"), name, at.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")], separator="|").alias(
                "event_id"
            ),
            "break_id",
            "login",
            "kind",
            name.alias("event"),
            at.alias("event_at"),
            "status",
            "previous_status",
            "cause",
            pl.when(first & (pl.col("ep_no") == 0)).then(None).otherwise(pl.col("cause")).alias("previous_cause"),
            "symbol",
            "trade_id",
            "expected",
            "actual",
            "size_pips",
            "size_money",
            (pl.col("occ_before") + present_cycles).alias("occurrences"),
            ((pl.col("k") - pl.col("start")) * float(CYCLE_SECS)).alias("age_secs"),
        )

    def _quarantine(self, ks: pl.DataFrame) -> pl.DataFrame:
        seed = self.seed
        key = pl.col("_k") * 8 + pl.col("i")
        return (
            ks.filter(uniform(pl.col("_k"), seed, 100) < QUARANTINE_SHARE)
            .with_columns(
                pl.int_ranges(0, 1 + (uniform(pl.col("_k"), seed, 101) * 3).floor().cast(pl.Int64)).alias("i")
            )
            .explode("i")
            .with_columns(
                (LOGIN_BASE + (uniform(key, seed, 102) * self.accounts).floor().cast(pl.Int64)).alias("login"),
                (IDENTIFIER_BASE + 90_000_000 + key).alias("ticket"),
            )
            .select(
                "_k",
                pl.lit("positions").alias("frame"),
                "login",
                (uniform(key, seed, 103) * self.slots).floor().cast(pl.Int64).alias("row_index"),
                pl.lit("unknown symbol: XAUUSD.x is not in the symbol map").alias("reason"),
                pl.concat_str(
                    pl.lit('{"login": '),
                    pl.col("login"),
                    pl.lit(', "ticket": '),
                    pl.col("ticket"),
                    pl.lit(', "symbol": "XAUUSD.x", "type": 0, "volume": 0.1, "price_open": 2351.2}'),
                ).alias("raw"),
                self.ts(pl.col("_k"), 900).alias("quarantined_at"),
            )
        )

    def _ledger(
        self, ks: pl.DataFrame, frames: dict[str, pl.DataFrame], deletes: dict[str, pl.DataFrame]
    ) -> pl.DataFrame:
        """One ledger row per cycle, its row counts as json.dumps(counts, sort_keys=True) writes them."""
        counts = ks
        names = sorted(
            [*frames, *(f"{t}:deleted" for t in deletes)]
        )  # ":" sorts before letters: "x" < "x:deleted" < "x_y"
        for name, frame in [*frames.items(), *((f"{t}:deleted", f) for t, f in deletes.items())]:
            per_cycle = frame.group_by("_k").len(name=name)
            counts = counts.join(per_cycle, on="_k", how="left", maintain_order="left")
        counts = counts.with_columns(pl.col(n).fill_null(0).cast(pl.Int64) for n in names)
        pieces: list[pl.Expr] = []
        for name in names:
            piece = pl.concat_str(pl.lit(f'"{name}": '), pl.col(name))
            if name.endswith(":deleted"):  # commit_cycle records a deletion count only when it is non-zero
                piece = pl.when(pl.col(name) > 0).then(piece)
            pieces.append(piece)
        return counts.select(
            "cycle_id",
            self.ts(pl.col("_k"), 2_700).alias("committed_at"),
            pl.concat_str(pl.lit("{"), pl.concat_str(pieces, separator=", ", ignore_nulls=True), pl.lit("}")).alias(
                "row_counts"
            ),
        )


POSITION_DRAWS = [
    "kind",
    "symbol",
    "side",
    "volume",
    "stage",
    "edits",
    "price",
    "slip",
    "slip_sign",
    "slip_size",
    "partial",
    "late",
    "late_len",
    "close_reason",
    "sl",
    "tp",
    "open_ms",
]


def _events_frame(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate event parts into one frame sorted by cycle (k), so a range of cycles is a slice."""
    frame = pl.concat(
        [p.with_columns(pl.col("k").cast(pl.Int64), pl.col("change").cast(pl.Int8)) for p in parts],
        how="vertical_relaxed",
    )
    return frame.sort("k", "pos_id")


def _slice(events: pl.DataFrame, c0: int, c1: int) -> pl.DataFrame:
    """The events of cycles c0..c1-1 (events are sorted by k), with `_k` = the cycle they happen in."""
    k = events["k"]
    lo = int(k.search_sorted(c0, side="left"))
    hi = int(k.search_sorted(c1, side="left"))
    return events.slice(lo, hi - lo).with_columns(pl.col("k").alias("_k"))


# ---------------------------------------------------------------- writing the month


def write_chunk(store: Store, chunk: Chunk) -> None:
    """One DuckLake transaction, as commit_cycle writes one cycle: state keys deleted, rows appended,
    the chunk's ledger rows inserted."""
    con = store.connection
    alias = identifier(store.config.alias)
    con.execute("BEGIN TRANSACTION")
    try:
        for table, key in STATE_KEYS.items():
            if table not in chunk.frames:
                continue  # a state table the month does not simulate (the guards' state)
            keys = [chunk.frames[table].select(key)]
            if table in chunk.deletes:
                keys.append(chunk.deletes[table].select(key))
            gone = pl.concat(keys).unique()
            if gone.height:
                con.register("_bench_keys", gone)
                try:
                    con.execute(
                        f"DELETE FROM {alias}.{identifier(table)} WHERE {identifier(key)} IN "  # noqa: S608 - registry names
                        f"(SELECT {identifier(key)} FROM _bench_keys)"
                    )
                finally:
                    con.unregister("_bench_keys")
        for table, frame in chunk.frames.items():
            if frame.height:
                _insert(con, f"{alias}.{identifier(table)}", frame.drop("_k"))
        con.register("_bench_ledger", chunk.ledger)
        try:
            con.execute(
                f"INSERT INTO {alias}.{identifier(migrations.LEDGER)} "  # noqa: S608 - registry names
                "SELECT cycle_id, committed_at, CAST(row_counts AS JSON) FROM _bench_ledger"
            )
        finally:
            con.unregister("_bench_ledger")
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def _insert(con: duckdb.DuckDBPyConnection, target: str, frame: pl.DataFrame) -> None:
    columns = ", ".join(identifier(c) for c in frame.columns)
    con.register("_bench_frame", frame)
    try:
        con.execute(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM _bench_frame")  # noqa: S608 - registry names
    finally:
        con.unregister("_bench_frame")


@dataclass
class MonthStats:
    chunks: int = 0
    plan_secs: float = 0.0
    generate_secs: float = 0.0
    write_secs: float = 0.0
    write_times: list[float] = field(default_factory=list)
    rows: int = 0


def write_month(config: StoreConfig, sim: Simulation, cycles: int, chunk_cycles: int) -> MonthStats:
    stats = MonthStats()
    bounds = list(range(0, cycles, chunk_cycles))
    with Store.open(config) as store, Progress("writing the month", len(bounds), stream=sys.stdout) as progress:
        for c0 in bounds:
            c1 = min(cycles, c0 + chunk_cycles)
            started = time.perf_counter()
            chunk = sim.chunk(c0, c1)
            generated = time.perf_counter()
            write_chunk(store, chunk)
            written = time.perf_counter()
            stats.chunks += 1
            stats.rows += chunk.rows() + chunk.ledger.height
            stats.generate_secs += generated - started
            stats.write_secs += written - generated
            stats.write_times.append(written - generated)
            progress.advance(
                note=f"cycles {c0:,}-{c1 - 1:,}: {chunk.rows():,} rows, generated {generated - started:.2f} s, "
                f"written {written - generated:.2f} s; load {load_average()}"
            )
        progress.done(f"wrote {stats.rows:,} rows of {cycles:,} cycles in {stats.chunks} transactions")
    return stats


# ---------------------------------------------------------------- measuring


@dataclass
class Sizes:
    catalog_bytes: int
    catalog_detail: str
    disk_files: int
    disk_bytes: int
    disk_delete_files: int
    live: pl.DataFrame  # per table: data files, bytes, delete files, bytes (the catalog's view)

    @property
    def total_bytes(self) -> int:
        return self.catalog_bytes + self.disk_bytes


def catalog_size(config: StoreConfig) -> tuple[int, str]:
    path = config.sqlite_path
    if path is not None:
        parts = {suffix or "db": Path(str(path) + suffix) for suffix in ("", "-wal", "-shm")}
        sizes = {name: p.stat().st_size if p.exists() else 0 for name, p in parts.items()}
        detail = ", ".join(f"{name} {_fmt_bytes(size)}" for name, size in sizes.items())
        return sum(sizes.values()), f"SQLite file: {detail}"
    import psycopg

    dsn, schema = config.postgres_dsn, config.metadata_schema
    with psycopg.connect(dsn or "", autocommit=True) as pg:
        row = pg.execute(
            "SELECT count(*), coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
            [schema],
        ).fetchone()
    tables, size = (int(row[0]), int(row[1])) if row else (0, 0)
    return size, f"Postgres schema {schema}: {tables} tables, with indexes and TOAST"


def store_sizes(config: StoreConfig) -> Sizes:
    catalog_bytes, detail = catalog_size(config)
    files = [p for p in Path(config.data_path).rglob("*") if p.is_file()]
    deletes = [p for p in files if p.name.endswith("-delete.parquet")]
    reader = open_reader(config)
    try:
        live = reader.execute(
            "SELECT table_name, file_count, file_size_bytes, delete_file_count, delete_file_size_bytes "
            "FROM ducklake_table_info(?) ORDER BY table_name",
            [config.alias],
        ).pl()
    finally:
        reader.close()
    return Sizes(catalog_bytes, detail, len(files), sum(p.stat().st_size for p in files), len(deletes), live)


def row_counts(config: StoreConfig) -> dict[str, int]:
    reader = open_reader(config)
    try:
        counts = {}
        for name in [*STORE_TABLES, migrations.LEDGER]:
            row = reader.execute(f"SELECT count(*) FROM {identifier(name)}").fetchone()  # noqa: S608 - registry names
            counts[name] = int(row[0]) if row else 0
        return counts
    finally:
        reader.close()


def print_sizes(title: str, sizes: Sizes, counts: dict[str, int]) -> None:
    print(f"\n== {title} ==")
    print(f"catalog:    {_fmt_bytes(sizes.catalog_bytes)} ({sizes.catalog_detail}; includes inlined rows)")
    print(
        f"data files: {_fmt_bytes(sizes.disk_bytes)} in {sizes.disk_files:,} files on disk "
        f"({sizes.disk_delete_files:,} of them delete files; files replaced by compaction stay until cleanup)"
    )
    print(f"total:      {_fmt_bytes(sizes.total_bytes)}")
    live = {r["table_name"]: r for r in sizes.live.iter_rows(named=True)}
    rows = []
    for name in [*STORE_TABLES, migrations.LEDGER]:
        info = live.get(name, {})
        data_bytes = int(info.get("file_size_bytes") or 0)
        n = counts.get(name, 0)
        rows.append(
            [
                name,
                _n(n),
                _n(info.get("file_count") or 0),
                _fmt_bytes(data_bytes),
                _n(info.get("delete_file_count") or 0),
                _fmt_bytes(int(info.get("delete_file_size_bytes") or 0)),
                f"{data_bytes / n:,.1f}" if n else "-",
            ]
        )
    print("live in the catalog (the current snapshot's files):")
    print(table(["table", "rows", "data files", "data bytes", "delete files", "delete bytes", "bytes/row"], rows))
    changes = counts.get("position_changes", 0)
    pc = live.get("position_changes", {})
    if changes:
        pc_bytes = int(pc.get("file_size_bytes") or 0) + int(pc.get("delete_file_size_bytes") or 0)
        print(
            f"bytes per position change: {pc_bytes / changes:,.1f} (position_changes data files / rows), "
            f"{sizes.total_bytes / changes:,.1f} (whole store on disk / position_changes rows)"
        )


def print_growth(
    before: Sizes, after: Sizes, rows_before: dict[str, int], rows_after: dict[str, int], cycles: int
) -> None:
    """What the single-cycle commits added: the store as per-cycle commits leave it, before compaction."""

    def live(s: Sizes, table_name: str | None = None) -> tuple[int, int, int]:
        frame = s.live if table_name is None else s.live.filter(pl.col("table_name") == table_name)
        return (
            int(frame["file_count"].sum()),
            int(frame["delete_file_count"].sum()),
            int(frame["file_size_bytes"].sum()) + int(frame["delete_file_size_bytes"].sum()),
        )

    files0, deletes0, bytes0 = live(before)
    files1, deletes1, bytes1 = live(after)
    pc0, pc1 = live(before, "position_changes"), live(after, "position_changes")
    changes = rows_after["position_changes"] - rows_before["position_changes"]
    print(
        f"these {cycles} single-cycle commits added {(files1 - files0) / cycles:,.1f} data files and "
        f"{(deletes1 - deletes0) / cycles:,.1f} delete files per cycle, {_fmt_bytes((bytes1 - bytes0) / cycles)} of "
        f"files and {_fmt_bytes((after.catalog_bytes - before.catalog_bytes) / cycles)} of catalog per cycle "
        "(rows of 10 or fewer are inlined into the catalog)"
    )
    if changes and pc1[0] > pc0[0]:
        print(
            f"position_changes as committed cycle by cycle: {changes:,} rows in {pc1[0] - pc0[0]:,} files, "
            f"{(pc1[2] - pc0[2]) / changes:,.1f} bytes per row (vs the chunk-sized files above)"
        )
    elif changes:
        print(f"position_changes as committed cycle by cycle: {changes:,} rows, all inlined into the catalog")


QUERIES: list[tuple[str, str]] = [
    ("open breaks", "SELECT * FROM open_breaks"),
    (
        "slippage by symbol and day",
        "SELECT symbol, date_trunc('day', hour) AS day, sum(slipped_trades) AS trades, sum(cost_money) AS cost, "
        "sum(adverse_money) AS adverse, sum(favourable_money) AS favourable "
        "FROM slippage_cost GROUP BY ALL ORDER BY day, symbol",
    ),
    ("latest equity", "SELECT * FROM latest_equity"),
    ("breaks by kind and age", "SELECT * FROM breaks_by_kind_age"),
    ("stale accounts", "SELECT * FROM stale_accounts"),
    ("one account: position history", "SELECT * FROM position_changes WHERE login = $login ORDER BY changed_at"),
    (
        "one account: equity by hour",
        "SELECT date_trunc('hour', fetched_at) AS hour, min(equity) AS low, max(equity) AS high, "
        "arg_max(equity, fetched_at) AS close FROM account_snapshots WHERE login = $login GROUP BY ALL ORDER BY hour",
    ),
    (
        "one account: break events",
        "SELECT * FROM break_events WHERE login = $login ORDER BY event_at",
    ),
]


def time_queries(config: StoreConfig, repeat: int, login: int) -> tuple[float, list[list[str]]]:
    """Each query `repeat` times on one read-only reader: rows, first run, median, max."""
    started = time.perf_counter()
    reader = open_reader(config)
    open_secs = time.perf_counter() - started
    rows: list[list[str]] = []
    try:
        for label, sql in QUERIES:
            params = {"login": login} if "$login" in sql else None
            times: list[float] = []
            height = 0
            for _ in range(repeat):
                started = time.perf_counter()
                height = reader.execute(sql, params).pl().height
                times.append(time.perf_counter() - started)
            rows.append(
                [
                    label,
                    _n(height),
                    f"{1000 * times[0]:,.1f}",
                    f"{1000 * statistics.median(times):,.1f}",
                    f"{1000 * max(times):,.1f}",
                ]
            )
    finally:
        reader.close()
    return open_secs, rows


QUERY_HEADER = ["query", "rows", "first ms", "median ms", "max ms"]


@dataclass
class CommitTimes:
    open_once_secs: float = 0.0
    commit: list[float] = field(default_factory=list)  # one open Store
    flow_read: list[float] = field(default_factory=list)  # open_reader + read_stored_state + close
    flow_open: list[float] = field(default_factory=list)  # Store.open
    flow_commit: list[float] = field(default_factory=list)
    flow_close: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    breaks: list[int] = field(default_factory=list)

    def table_rows(self, label: str) -> list[list[str]]:
        flow_total = [
            sum(parts) for parts in zip(self.flow_read, self.flow_open, self.flow_commit, self.flow_close, strict=True)
        ]
        return [
            [f"{label}: commit_cycle, one open Store", str(len(self.commit)), *_ms(self.commit)],
            [f"{label}: flow - open_reader + read_stored_state", str(len(self.flow_read)), *_ms(self.flow_read)],
            [f"{label}: flow - Store.open", str(len(self.flow_open)), *_ms(self.flow_open)],
            [f"{label}: flow - commit_cycle", str(len(self.flow_commit)), *_ms(self.flow_commit)],
            [f"{label}: flow - Store.close", str(len(self.flow_close)), *_ms(self.flow_close)],
            [f"{label}: flow - all of the above", str(len(flow_total)), *_ms(flow_total)],
        ]


COMMIT_HEADER = ["per cycle", "cycles", "median ms", "p95 ms", "max ms"]


def time_commits(config: StoreConfig, chunks: Iterator[Chunk], count: int, accounts: int) -> CommitTimes:
    """`count` cycles committed on one open Store, then `count` more as the flow does it."""
    from mt5recon.store.stored_state import read_stored_state

    out = CommitTimes()
    started = time.perf_counter()
    with Store.open(config) as store:
        out.open_once_secs = time.perf_counter() - started
        for _ in range(count):
            chunk = next(chunks)
            frames, deletes = chunk.for_commit()
            cycle_id = frames["cycles"]["cycle_id"][0]
            started = time.perf_counter()
            result = store.commit_cycle(cycle_id, frames, deletes)
            out.commit.append(time.perf_counter() - started)
            assert not result.duplicate
            out.rows.append(chunk.rows())
            out.breaks.append(frames["breaks"].height)
    logins = [LOGIN_BASE + a for a in range(accounts)]
    for _ in range(count):
        chunk = next(chunks)
        frames, deletes = chunk.for_commit()
        cycle_id = frames["cycles"]["cycle_id"][0]
        t0 = time.perf_counter()
        reader = open_reader(config)
        try:
            read_stored_state(reader, logins, frames["breaks"]["break_id"].to_list())
        finally:
            reader.close()
        t1 = time.perf_counter()
        store = Store.open(config)
        t2 = time.perf_counter()
        try:
            result = store.commit_cycle(cycle_id, frames, deletes)
            t3 = time.perf_counter()
        finally:
            store.close()
        t4 = time.perf_counter()
        assert not result.duplicate
        out.flow_read.append(t1 - t0)
        out.flow_open.append(t2 - t1)
        out.flow_commit.append(t3 - t2)
        out.flow_close.append(t4 - t3)
        out.rows.append(chunk.rows())
        out.breaks.append(frames["breaks"].height)
    return out


def compact(config: StoreConfig) -> tuple[float, float]:
    started = time.perf_counter()
    with Store.open(config) as store:
        opened = time.perf_counter()
        store.compact()
        compacted = time.perf_counter()
    return opened - started, compacted - opened


def expire_and_clean(config: StoreConfig) -> tuple[float, int, int]:
    """What housekeeping does after compaction: expire every older snapshot, delete the files only they used."""
    started = time.perf_counter()
    with Store.open(config) as store:
        con = store.connection
        alias = config.alias
        expired = con.execute("CALL ducklake_expire_snapshots(?, older_than => now())", [alias]).fetchall()
        removed = con.execute("CALL ducklake_cleanup_old_files(?, cleanup_all => true)", [alias]).fetchall()
    return time.perf_counter() - started, len(expired), len(removed)


# ---------------------------------------------------------------- the run


@contextlib.contextmanager
def store_location(args: argparse.Namespace) -> Iterator[tuple[StoreConfig, str]]:
    """The store's config and a description; a temp home (and a fresh Postgres schema) removed afterwards."""
    home = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="mt5recon-store-month-"))
    remove_home = not args.store and not args.keep
    schema = None
    options: dict[str, Any] = {}
    if args.catalog == "postgres":
        schema = f"mt5recon_bench_{uuid.uuid4().hex[:12]}"
        options = {"catalog": f"postgres:{args.pg_dsn}", "metadata_schema": schema}
    config = StoreConfig.under(home, **options)
    if config.exists() and config.sqlite_path is not None:
        raise SystemExit(f"{config.sqlite_path} exists: pass an empty --store folder")
    where = f"home {'(temp) ' if not args.store else ''}{'kept' if not remove_home else 'removed at the end'}"
    if schema:
        fate = "kept" if args.keep else "dropped at the end"
        where += f"; Postgres catalog {args.pg_dsn!r}, metadata schema {schema} ({fate})"
    try:
        yield config, where
    finally:
        if schema and not args.keep:
            import psycopg
            from psycopg import sql

            with psycopg.connect(args.pg_dsn, autocommit=True) as pg:
                pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        if remove_home:
            shutil.rmtree(home, ignore_errors=True)
        elif args.keep or args.store:
            print(f"store kept in {home}")


def _chunks(sim: Simulation, first: int) -> Iterator[Chunk]:
    k = first
    while True:
        yield sim.chunk(k, k + 1)
        k += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_month", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--positions", type=int, default=30, help="open positions per account (slots)")
    parser.add_argument("--chunk-minutes", type=int, default=1440, help="simulated minutes per DuckLake transaction")
    parser.add_argument("--catalog", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--pg-dsn", default=os.environ.get("MT5RECON_TEST_PG_DSN", "dbname=test host=127.0.0.1 port=5432")
    )
    parser.add_argument("--store", help="home folder for the store (default: a temp folder, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the temp store (and the Postgres schema)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per query timing")
    parser.add_argument("--cycles", type=int, default=30, help="real single cycles committed per measurement")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    wall = time.perf_counter()

    print("mt5-recon store benchmark: a month of 10-second cycles")
    print("\n".join(machine_lines()))
    print(f"duckdb {duckdb.__version__}, polars {pl.__version__} ({pl.thread_pool_size()} threads)")
    month = round(args.days * CYCLES_PER_DAY)
    extra = 4 * args.cycles
    chunk_cycles = max(1, args.chunk_minutes * 60 // CYCLE_SECS)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(seconds=now.second % CYCLE_SECS) - timedelta(seconds=(month + extra) * CYCLE_SECS)

    with store_location(args) as (config, where):
        print(f"\nstore: {args.catalog} catalog, {where}")
        print(
            f"fleet: {args.accounts} accounts x {args.positions} position slots, {args.days:g} days = "
            f"{month:,} cycles of {CYCLE_SECS} s from {start:%Y-%m-%d %H:%M} UTC, then {extra} real cycles"
        )
        started = time.perf_counter()
        sim = Simulation(args.accounts, args.positions, month + extra, start, args.seed)
        plan_secs = time.perf_counter() - started
        print(
            f"plan: {sim.positions.height:,} positions, {sim.position_events.height:,} position events, "
            f"{sim.trade_events.height:,} bot-trade events, {sim.episodes.height:,} break episodes, "
            f"{sim.break_events.height:,} break events ({plan_secs:.1f} s)"
        )
        print(
            f"\n== Writing the month: {-(-month // chunk_cycles)} chunks of {chunk_cycles:,} cycles, "
            "one DuckLake transaction each =="
        )
        stats = write_month(config, sim, month, chunk_cycles)
        times = stats.write_times
        print(
            f"month written: {stats.rows:,} rows in {stats.chunks} transactions; polars generation "
            f"{stats.generate_secs:.1f} s, DuckLake writes {stats.write_secs:.1f} s (per chunk: first "
            f"{times[0]:.2f} s, median {statistics.median(times):.2f} s, last {times[-1]:.2f} s)"
        )
        print(
            f"the ledger holds one row per simulated cycle ({month:,}), written with its chunk; rows carry their "
            "own cycle's id; state tables got one write per touched key per chunk"
        )
        if sim.filled_with_nulls:
            print(f"columns this benchmark does not generate, stored as null: {sim.filled_with_nulls}")

        counts = row_counts(config)
        sizes = store_sizes(config)
        print_sizes("Store after the month", sizes, counts)
        per_cycle = {t: counts[t] / month for t in STORE_TABLES}
        print(
            "rows stored per simulated cycle (state tables: one write per touched key per chunk): "
            + ", ".join(f"{t} {v:,.1f}" for t, v in per_cycle.items())
        )

        login = LOGIN_BASE + args.accounts // 2
        print(
            f"\n== Daily analyst queries BEFORE compaction (read-only reader, {args.repeat} runs each; "
            f"one account = login {login}) =="
        )
        open_secs, before = time_queries(config, args.repeat, login)
        print(f"open_reader: {1000 * open_secs:,.1f} ms")
        print(table(QUERY_HEADER, before))

        chunks = _chunks(sim, month)
        print(f"\n== Commit time per cycle BEFORE compaction ({args.cycles} + {args.cycles} real single cycles) ==")
        commits_before = time_commits(config, chunks, args.cycles, args.accounts)
        print(
            f"rows per cycle: median {statistics.median(commits_before.rows):,.0f} "
            f"(breaks rewritten: median {statistics.median(commits_before.breaks):,.0f}); "
            f"Store.open once: {1000 * commits_before.open_once_secs:,.1f} ms"
        )
        print(table(COMMIT_HEADER, commits_before.table_rows("before")))
        live_before = store_sizes(config)
        print_growth(sizes, live_before, counts, row_counts(config), 2 * args.cycles)
        print("\n== Compaction (Store.compact: flush inlined rows, merge adjacent files) ==")
        open_secs, compact_secs = compact(config)
        live_after = store_sizes(config)
        print(f"Store.open {open_secs:.2f} s, compact() {compact_secs:.1f} s")
        file_rows = []
        for label, s in (("before", live_before), ("after", live_after)):
            live_files = int(s.live["file_count"].sum())
            live_deletes = int(s.live["delete_file_count"].sum())
            live_bytes = int(s.live["file_size_bytes"].sum()) + int(s.live["delete_file_size_bytes"].sum())
            file_rows.append(
                [
                    label,
                    _n(live_files),
                    _n(live_deletes),
                    _fmt_bytes(live_bytes),
                    _n(s.disk_files),
                    _fmt_bytes(s.disk_bytes),
                    _fmt_bytes(s.catalog_bytes),
                ]
            )
        print(
            table(
                ["", "live data files", "live delete files", "live bytes", "files on disk", "bytes on disk", "catalog"],
                file_rows,
            )
        )
        print_sizes("Store after compaction", live_after, row_counts(config))

        print(f"\n== Daily analyst queries AFTER compaction ({args.repeat} runs each) ==")
        open_secs, after = time_queries(config, args.repeat, login)
        print(f"open_reader: {1000 * open_secs:,.1f} ms")
        print(table(QUERY_HEADER, after))
        side = [
            [b[0], b[3], a[3], f"{float(b[3].replace(',', '')) / max(float(a[3].replace(',', '')), 1e-9):.2f}x"]
            for b, a in zip(before, after, strict=True)
        ]
        print("median ms, before vs after compaction:")
        print(table(["query", "before", "after", "before/after"], side))

        print(f"\n== Commit time per cycle AFTER compaction ({args.cycles} + {args.cycles} real single cycles) ==")
        commits_after = time_commits(config, chunks, args.cycles, args.accounts)
        print(table(COMMIT_HEADER, commits_after.table_rows("after")))

        # what a periodic (e.g. hourly) compaction costs once the month is compacted: only the new cycles
        # are small files, but merging may rewrite the big files they are adjacent to
        before_again = store_sizes(config)
        open_secs, again_secs = compact(config)
        after_again = store_sizes(config)
        print(
            f"\n== Compaction again, after the {2 * args.cycles} new single cycles ==\n"
            f"compact() {again_secs:.1f} s (Store.open {open_secs:.2f} s): live data files "
            f"{int(before_again.live['file_count'].sum()):,} -> {int(after_again.live['file_count'].sum()):,}, "
            f"{_fmt_bytes(after_again.disk_bytes - before_again.disk_bytes)} of new files written"
        )

        print("\n== Housekeeping's clean-up after compaction (expire all older snapshots, delete unused files) ==")
        clean_secs, expired, removed = expire_and_clean(config)
        cleaned = store_sizes(config)
        print(
            f"{clean_secs:.1f} s: {expired:,} snapshots expired, {removed:,} files deleted; now "
            f"{cleaned.disk_files:,} files, {_fmt_bytes(cleaned.disk_bytes)} data + "
            f"{_fmt_bytes(cleaned.catalog_bytes)} catalog = {_fmt_bytes(cleaned.total_bytes)}"
        )
        final = row_counts(config)
        print(
            f"bytes per position change after clean-up: {cleaned.total_bytes / final['position_changes']:,.1f} "
            "(whole store / position_changes rows)"
        )
    print(f"\ntotal wall time: {time.perf_counter() - wall:.0f} s; load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
