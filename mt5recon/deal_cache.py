"""Deals already fetched, kept between cycles so that a terminal is asked only for what is new.

A cycle needs every deal of its lookback window (6 h, or back to the bot's oldest open trade): in
the cycle benchmark's fleet that is 185 of the 265 records a terminal sends per cycle. Deals are
history: once executed, a deal does not change. So each account's deals are kept with the span
they cover, and the next cycle asks the terminal only from its last answer minus an overlap. The
snapshot still carries the whole window: the frame a full fetch gives, so validation, the engine,
recordings and replays see no difference.

Safe by construction. A request is narrowed only where the cache covers the window's start, was
filled by a deals call that answered under the same server clock, and holds only deals with a
ticket and a time. Anything else is a full fetch for that account: no cache file, a new account, a
window reaching further back, a failed call, a malformed deal. Every `deals_full_refresh_secs` an
account is fetched whole again, so a deal the broker books with a time older than the overlap is
seen within that time. The cache is a file beside the breaker book: losing it costs one full fetch.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from mt5recon import frames
from mt5recon.snapshot import Snapshot

_COVERAGE_KEY = "mt5recon.deal_coverage"
_FORMAT = 1


@dataclass(frozen=True)
class DealPolicy:
    """How far back an incremental request reaches, and how often an account is fetched whole."""

    overlap_secs: int = 60
    full_refresh_secs: int = 3600

    @property
    def enabled(self) -> bool:
        return self.full_refresh_secs > 0


@dataclass(frozen=True)
class Span:
    """What the cache holds for one account: every deal timed in [covered_from, covered_to]
    that the terminal showed at `covered_to`."""

    covered_from: datetime
    covered_to: datetime
    server_offset_secs: int
    refreshed_at: datetime  # the last full fetch


@dataclass(frozen=True)
class Asked:
    """One account's deals request of this cycle."""

    login: int
    fetched_at: datetime
    window_from: datetime  # the window the snapshot must hold
    since: datetime | None  # what the terminal was asked from, when narrower than the window
    server_offset_secs: int


class DealCache:
    """The deals of earlier cycles (raw, as the terminal sent them) and each account's span."""

    def __init__(self, deals: pl.DataFrame | None = None, spans: dict[int, Span] | None = None) -> None:
        self.deals = deals if deals is not None else frames.empty("deals")
        self.spans = spans if spans is not None else {}

    def since(
        self, login: int, window_from: datetime, fetched_at: datetime, server_offset_secs: int, policy: DealPolicy
    ) -> datetime | None:
        """Where this account's deals call may start, or None for the whole window."""
        span = self.spans.get(login)
        if (
            span is None
            or not policy.enabled
            or span.server_offset_secs != server_offset_secs
            or span.covered_from > window_from
            or span.covered_to > fetched_at
            or (fetched_at - span.refreshed_at).total_seconds() >= policy.full_refresh_secs
        ):
            return None
        return max(window_from, span.covered_to - timedelta(seconds=policy.overlap_secs))

    def absorb(self, snapshot: Snapshot, asked: Sequence[Asked]) -> Snapshot:
        """The snapshot with each narrowed account's window completed from the cache; the cache
        then holds this cycle's windows (accounts whose deals call failed keep what they had)."""
        answered = set(snapshot.accounts.filter(pl.col("deals_ok"))["login"].to_list())
        fetched = snapshot.deals
        narrowed = _asked_frame([a for a in asked if a.since is not None and a.login in answered])
        carried = _carried(self.deals, narrowed, fetched)
        # the accounts not answered keep what they had; the rest of the loaded window is let go
        # before the merge, so the fleet's window is not held three times at once
        unanswered = pl.Series("login", [login for login in self.spans if login not in answered], dtype=pl.Int64)
        self.deals = self.deals.filter(pl.col("login").is_in(unanswered.implode()))
        if carried.height:
            position = {a.login: i for i, a in enumerate(asked)}
            # each account's kept deals come before its new ones, as the terminal lists them by time;
            # the order is one column, so the rows are moved once
            merged = (
                pl.concat([carried, fetched], how="vertical")
                .with_columns(
                    pl.col("login").replace_strict(position, default=None, return_dtype=pl.Int64).alias("__order")
                )
                .sort("__order", maintain_order=True, nulls_last=True)
                .drop("__order")
            )
            snapshot = replace(snapshot, deals=merged)
        self._keep(snapshot.deals, [a for a in asked if a.login in answered], answered)
        return snapshot

    def _keep(self, deals: pl.DataFrame, answered_asks: list[Asked], answered: set[int]) -> None:
        """This cycle's windows replace the answered accounts' entries; an account with a deal
        lacking a ticket or a time is not kept (its next fetch is a full one)."""
        malformed = set(deals.filter(pl.col("ticket").is_null() | pl.col("time").is_null())["login"].to_list())
        keep = {a.login: a for a in answered_asks if a.login not in malformed}
        kept_before = {login: span for login, span in self.spans.items() if login not in answered}
        spans = dict(kept_before)
        for login, ask in keep.items():
            previous = self.spans.get(login)
            spans[login] = Span(
                covered_from=ask.window_from,
                covered_to=ask.fetched_at,
                server_offset_secs=ask.server_offset_secs,
                refreshed_at=ask.fetched_at if ask.since is None or previous is None else previous.refreshed_at,
            )
        new = pl.Series("login", list(keep), dtype=pl.Int64)
        old = pl.Series("login", list(kept_before), dtype=pl.Int64)
        kept_old = self.deals.filter(pl.col("login").is_in(old.implode()))  # already only these (absorb)
        fresh = deals["login"].is_in(new.implode()).fill_null(False)
        # usually every account answered and is kept: the snapshot's frame is shared, not copied
        kept_new = deals if fresh.all() else deals.filter(fresh)
        self.deals = kept_new if kept_old.height == 0 else pl.concat([kept_old, kept_new], how="vertical")
        self.spans = spans


def _carried(kept: pl.DataFrame, narrowed: pl.DataFrame, fetched: pl.DataFrame) -> pl.DataFrame:
    """Kept deals older than what the terminal was just asked for. A kept deal it shows again is
    taken from its answer. The cache is a whole fleet's window (~250 MB at 10,000 accounts), so
    the rows are chosen by a mask built from per-login bounds and copied once."""
    window_from = dict(zip(narrowed["login"].to_list(), narrowed["window_from"].to_list(), strict=True))
    since = dict(zip(narrowed["login"].to_list(), narrowed["since"].to_list(), strict=True))
    fetched_at = dict(zip(narrowed["login"].to_list(), narrowed["fetched_at"].to_list(), strict=True))

    def per_login(values: dict[int, object], dtype: pl.DataType) -> pl.Expr:
        return pl.col("login").replace_strict(values, default=None, return_dtype=dtype)

    time_type = narrowed.schema["since"]
    chosen = kept.filter(
        (pl.col("time") >= per_login(window_from, time_type)) & (pl.col("time") < per_login(since, time_type))
    ).with_columns(per_login(fetched_at, narrowed.schema["fetched_at"]).alias("fetched_at"))
    keys = fetched.select("login", "ticket")
    if chosen.select("login", "ticket").join(keys, on=["login", "ticket"], how="semi").height:
        chosen = chosen.join(keys, on=["login", "ticket"], how="anti", maintain_order="left")
    return chosen.select(list(frames.DEALS))


def _asked_frame(asked: Sequence[Asked]) -> pl.DataFrame:
    """login, fetched_at, window_from, since of narrowed requests; both starts are compared in
    whole seconds, as the terminal compares `date_from`."""
    return pl.DataFrame(
        {
            "login": [a.login for a in asked],
            "fetched_at": [a.fetched_at for a in asked],
            "window_from": [a.window_from.replace(microsecond=0) for a in asked],
            "since": [a.since.replace(microsecond=0) if a.since else None for a in asked],
        },
        schema={"login": pl.Int64, "fetched_at": frames.UTC_US, "window_from": frames.UTC_MS, "since": frames.UTC_MS},
    )


# ---------------------------------------------------------------- the file between runs


def load(path: Path) -> DealCache:
    """The cache a previous run saved; a missing, unreadable or foreign file is an empty cache."""
    try:
        meta = pl.read_parquet_metadata(path)
        stored = json.loads(meta[_COVERAGE_KEY])
        if stored.get("format") != _FORMAT:
            return DealCache()
        deals = pl.read_parquet(path)
        if deals.schema != frames.DEALS:
            return DealCache()
        spans = {int(login): _span(values) for login, values in stored["spans"].items()}
    except (OSError, KeyError, ValueError, TypeError, pl.exceptions.PolarsError):
        return DealCache()
    return DealCache(deals, spans)


def save(path: Path, cache: DealCache) -> None:
    """Write the cache whole, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    coverage = {
        "format": _FORMAT,
        "spans": {str(login): _span_values(span) for login, span in cache.spans.items()},
    }
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        cache.deals.write_parquet(temp, compression="lz4", metadata={_COVERAGE_KEY: json.dumps(coverage)})
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _span_values(span: Span) -> list[int]:
    return [
        _micros(span.covered_from),
        _micros(span.covered_to),
        span.server_offset_secs,
        _micros(span.refreshed_at),
    ]


def _span(values: list[int]) -> Span:
    covered_from, covered_to, offset, refreshed_at = values
    return Span(_instant(covered_from), _instant(covered_to), int(offset), _instant(refreshed_at))


def _micros(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _instant(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
