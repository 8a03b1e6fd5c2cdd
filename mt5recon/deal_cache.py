"""Deals already fetched, kept between cycles so that a terminal is asked only for what is new.

A cycle needs every deal of its lookback window (6 h, or back to the bot's oldest open trade): in
the cycle benchmark's fleet that is 185 of the 265 records a terminal sends per cycle. Deals are
history: once executed, a deal does not change. So each account's deals are kept with the span
they cover, and the next cycle asks the terminal only from its last answer minus an overlap. The
snapshot still carries the whole window: the frame a full fetch gives, so validation, the engine,
recordings and replays see no difference.

Safe by construction. A request is narrowed only where the cache covers the window's start, was
filled by a deals call that answered under the same server clock, and holds only deals with a
ticket and a time. Anything else is a full fetch for that account: no cache, a new account, a
window reaching further back, a failed call, a malformed deal. Every `deals_full_refresh_secs` an
account is fetched whole again, so a deal the broker books with a time older than the overlap is
seen within that time. Between runs the cache is a folder beside the breaker book
(`mt5recon.deal_segments`): losing it costs one full fetch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl

from mt5recon import frames
from mt5recon.snapshot import Snapshot


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


@dataclass(frozen=True)
class Segment:
    """One file of the cache's folder: the deals one cycle added (or a compaction's whole cache),
    and the cuts that cycle made."""

    seq: int
    deals_file: str | None
    cuts_file: str | None
    rows: int


@dataclass
class OnDisk:
    """What the cache's folder held when it was loaded: its segments, and per account the first
    segment its deals are read from (`base_seq`: its last full fetch or compaction) and its last cut."""

    segments: list[Segment]
    next_seq: int
    base_seq: dict[int, int]
    last_cut: dict[int, datetime]

    @property
    def rows(self) -> int:
        return sum(segment.rows for segment in self.segments)


@dataclass
class Change:
    """What this cycle changed, as one segment can record it: the deals the terminals sent for
    the kept accounts, where each narrowed account's answer starts (older segments' deals of that
    account from there on are replaced by it) and which accounts were fetched whole."""

    deals: pl.DataFrame
    cuts: dict[int, datetime]
    whole: set[int]
    irregular: bool = False  # something only a whole rewrite records (a kept deal sent again, ...)


class DealCache:
    """The deals of earlier cycles (raw, as the terminal sent them) and each account's span.

    `on_disk` and `change` are for the folder (`mt5recon.deal_segments`): what it held when
    loaded, and what `absorb` changed since."""

    def __init__(
        self,
        deals: pl.DataFrame | None = None,
        spans: dict[int, Span] | None = None,
        on_disk: OnDisk | None = None,
    ) -> None:
        self.deals = deals if deals is not None else frames.empty("deals")
        self.spans = spans if spans is not None else {}
        self.on_disk = on_disk
        self.change: Change | None = None

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
        carried, sent_again = _carried(self.deals, narrowed, fetched)
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
        kept = self._keep(snapshot.deals, [a for a in asked if a.login in answered], answered)
        self.change = Change(
            deals=fetched if set(kept) >= answered else fetched.filter(pl.col("login").is_in(list(kept))),
            cuts={a.login: a.since.replace(microsecond=0) for a in kept.values() if a.since is not None},
            whole={a.login for a in kept.values() if a.since is None},
            # absorbed twice between saves: one segment cannot hold both cycles' changes
            irregular=sent_again or self.change is not None,
        )
        return snapshot

    def _keep(self, deals: pl.DataFrame, answered_asks: list[Asked], answered: set[int]) -> dict[int, Asked]:
        """This cycle's windows replace the answered accounts' entries; an account with a deal
        lacking a ticket or a time is not kept (its next fetch is a full one). Returns the kept
        accounts' requests."""
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
        return keep


def _carried(kept: pl.DataFrame, narrowed: pl.DataFrame, fetched: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
    """Kept deals older than what the terminal was just asked for, and whether it showed one of
    them again (that one is taken from its answer). The cache is a whole fleet's window (~250 MB
    at 10,000 accounts), so the rows are chosen by a mask built from per-login bounds and copied once."""
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
    sent_again = chosen.select("login", "ticket").join(keys, on=["login", "ticket"], how="semi").height > 0
    if sent_again:
        chosen = chosen.join(keys, on=["login", "ticket"], how="anti", maintain_order="left")
    return chosen.select(list(frames.DEALS)), sent_again


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
