"""The deal cache's folder reads back exactly what `absorb` left in memory, whatever the cycles
did: deals booked late inside the overlap, deals taken back, failed deals calls, malformed deals,
full fetches, and rewrites at any threshold."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mt5recon import deal_segments, frames
from mt5recon.deal_cache import Asked, DealPolicy
from mt5recon.snapshot import Snapshot

T0 = datetime(2026, 11, 21, 12, tzinfo=UTC)
LOGINS = (11, 12, 13)
WINDOW_SECS = 600
POLICY = DealPolicy(overlap_secs=60, full_refresh_secs=300)


@dataclass
class Broker:
    """Each account's booked deals: ticket -> time (seconds after T0)."""

    deals: dict[int, dict[int, int]] = field(default_factory=lambda: {login: {} for login in LOGINS})
    next_ticket: int = 1

    def book(self, login: int, at: int) -> None:
        self.deals[login][self.next_ticket] = at
        self.next_ticket += 1


# one cycle, per account: (new deals' ages in seconds, take back the newest deal, deals call fails, malformed)
account_steps = st.tuples(
    st.lists(st.integers(min_value=0, max_value=90), max_size=3), st.booleans(), st.booleans(), st.booleans()
)
cycles = st.lists(st.tuples(*[account_steps] * len(LOGINS)), min_size=1, max_size=14)


def _deal_rows(login: int, fetched_at: datetime, rows: list[tuple[int | None, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "login": [login] * len(rows),
            "fetched_at": [fetched_at] * len(rows),
            "ticket": [ticket for ticket, _ in rows],
            "time": [T0 + timedelta(seconds=at) for _, at in rows],
        },
        schema={"login": pl.Int64, "fetched_at": frames.UTC_US, "ticket": pl.Int64, "time": frames.UTC_MS},
    ).select(
        [
            (pl.col(c) if c in ("login", "fetched_at", "ticket", "time") else pl.lit(None)).cast(d).alias(c)
            for c, d in frames.DEALS.items()
        ]
    )


def _accounts(fetched_at: datetime, ok: dict[int, bool]) -> pl.DataFrame:
    flags = pl.DataFrame(
        {"login": list(ok), "fetched_at": [fetched_at] * len(ok), "deals_ok": list(ok.values())},
        schema={"login": pl.Int64, "fetched_at": frames.UTC_US, "deals_ok": pl.Boolean},
    )
    return flags.select(
        [(pl.col(c) if c in flags.columns else pl.lit(None)).cast(d).alias(c) for c, d in frames.ACCOUNTS.items()]
    )


def _by_login(deals: pl.DataFrame) -> pl.DataFrame:
    """Each account's deals in their order, without `fetched_at`: a kept deal's copy says when it
    was fetched, and carrying it into a snapshot stamps that snapshot's time on it."""
    return deals.drop("fetched_at").sort("login", maintain_order=True)


@settings(max_examples=40, deadline=None)
@given(
    steps=cycles,
    max_segments=st.integers(min_value=1, max_value=8),
    dead_share=st.sampled_from([0.0, 0.5, 1.0, 1e9]),
)
def test_the_folder_reads_back_what_absorb_left(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[tuple[list[int], bool, bool, bool], ...]],
    max_segments: int,
    dead_share: float,
) -> None:
    folder = tmp_path_factory.mktemp("deals")  # one folder per example (a fixture's tmp_path is shared)
    broker = Broker()
    for login in LOGINS:
        for at in (-500, -200, -30):
            broker.book(login, at)
    for index, step in enumerate(steps):
        now = 10 * (index + 1)
        fetched_at = T0 + timedelta(seconds=now)
        window_from = fetched_at - timedelta(seconds=WINDOW_SECS)
        cache = deal_segments.load(folder)
        asked, parts, ok = [], [], {}
        for login, (ages, take_back, fails, malformed) in zip(LOGINS, step, strict=True):
            for age in ages:  # booked now, or back-dated up to 90 s (inside or before the overlap)
                broker.book(login, now - age)
            if take_back and broker.deals[login]:
                del broker.deals[login][max(broker.deals[login])]
            since = cache.since(login, window_from, fetched_at, 0, POLICY)
            start = int(((since or window_from) - T0).total_seconds())
            asked.append(Asked(login, fetched_at, window_from, since, 0))
            ok[login] = not fails
            if fails:
                continue
            answer = sorted(
                ((ticket, at) for ticket, at in broker.deals[login].items() if at >= start), key=lambda d: d[1]
            )
            rows: list[tuple[int | None, int]] = list(answer)
            if malformed and rows:
                rows[-1] = (None, rows[-1][1])
            parts.append(_deal_rows(login, fetched_at, rows))
        snapshot = Snapshot(accounts=_accounts(fetched_at, ok), deals=pl.concat([frames.empty("deals"), *parts]))
        cache.absorb(snapshot, asked)
        deal_segments.save(folder, cache, max_segments=max_segments, dead_share=dead_share)
        loaded = deal_segments.load(folder)
        assert loaded.spans == cache.spans, f"cycle {index}: the spans"
        assert _by_login(loaded.deals).equals(_by_login(cache.deals)), f"cycle {index}: the deals, in their order"
        assert len(loaded.on_disk.segments if loaded.on_disk else []) <= max_segments, f"cycle {index}"
