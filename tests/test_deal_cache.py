"""Deals kept between cycles: a terminal is asked only for what is new, and every snapshot still
holds the whole window, the frame a full fetch gives."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sim_cycle import sim_fleet_config

from mt5recon import deal_cache, deal_segments, pipeline
from mt5recon.deal_cache import DealCache, DealPolicy, Span
from mt5recon.fleet import AccountConfig
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.factory import open_terminal
from mt5recon.terminal.sim_host import use_in_process_fleet
from mt5recon.terminal.simulator.clock import SimClock
from mt5recon.terminal.simulator.config import ScenarioRates
from mt5recon.terminal.simulator.fleet import DEFAULT_START, SimFleet

T0 = datetime(2026, 11, 21, 12, tzinfo=UTC)
SPAN = Span(covered_from=T0 - timedelta(hours=6), covered_to=T0, server_offset_secs=7200, refreshed_at=T0)


HOUR = 3600


def _at(secs: int) -> datetime:
    return T0 + timedelta(seconds=secs)


# times are seconds from T0; the kept span covers T0 - 6 h .. T0, last fetched whole at T0
@pytest.mark.parametrize(
    ("description", "kept", "window_from", "fetched_at", "offset", "refresh_secs", "expected"),
    [
        ("no deals kept for the account",                          False, -6 * HOUR,      10,   7200, HOUR, None),
        ("the next cycle asks from the last answer minus the overlap", True, -6 * HOUR + 10, 10, 7200, HOUR, -60),
        ("a window starting after the overlap starts where the window does", True, -5,   10,   7200, HOUR, -5),
        ("a window reaching further back than the kept deals",     True,  -7 * HOUR,      10,   7200, HOUR, None),
        ("the server clock's offset changed",                      True,  -6 * HOUR,      10,   3600, HOUR, None),
        ("the whole window is due again",                          True,  -5 * HOUR,      HOUR, 7200, HOUR, None),
        ("a clock that went backwards",                            True,  -6 * HOUR,      -1,   7200, HOUR, None),
        ("caching switched off",                                   True,  -6 * HOUR,      10,   7200, 0,    None),
    ],
)  # fmt: skip
def test_where_a_deals_call_starts(
    description: str,
    kept: bool,
    window_from: int,
    fetched_at: int,
    offset: int,
    refresh_secs: int,
    expected: int | None,
) -> None:
    cache = DealCache(spans={5001: SPAN} if kept else {})
    policy = DealPolicy(overlap_secs=60, full_refresh_secs=refresh_secs)
    since = cache.since(5001, _at(window_from), _at(fetched_at), offset, policy)
    assert since == (None if expected is None else _at(expected)), description


class CountedDeals:
    """Adds up the deals each terminal sends (no `read_many`: the fetch makes its calls one by
    one through this wrapper, so every deals call is seen)."""

    read_many = None

    def __init__(self, api: MT5Api, sent: list[int]) -> None:
        self._api, self._sent = api, sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def history_deals_get(self, *args: Any, **kwargs: Any) -> Any:
        deals = self._api.history_deals_get(*args, **kwargs)
        self._sent.append(len(deals or ()))
        return deals


@pytest.mark.parametrize(
    ("description", "cycles", "max_segments", "dead_share", "refresh_secs", "later_overlap_secs"),
    [
        ("the default folder: segments appended, rewritten whole when due", 40, deal_segments.MAX_SEGMENTS, deal_segments.DEAD_SHARE, 3600, None),
        ("rewritten whole every third cycle", 12, 3, deal_segments.DEAD_SHARE, 3600, None),
        ("never rewritten for its dead deals, only for its segments", 16, 6, 1e9, 3600, None),
        ("accounts fetched whole every minute between rewrites", 20, 40, 1e9, 60, None),
        ("the overlap raised from 60 to 300 s half-way", 24, 40, 1e9, 3600, 300),
    ],
)  # fmt: skip
def test_cycles_of_a_trading_fleet_give_the_full_fetch_window_every_cycle(
    tmp_path: Path,
    description: str,
    cycles: int,
    max_segments: int,
    dead_share: float,
    refresh_secs: int,
    later_overlap_secs: int | None,
) -> None:
    """Bots trading, scenarios booking deposits, manual trades and stop-outs, a server clock two
    hours ahead, the window sliding and one account's deals call failing now and then: each
    cycle's deals frame equals the full fetch's, the cache going through its folder every cycle."""
    rates = replace(
        ScenarioRates(), manual_trade_per_hour=20.0, deposit_per_hour=20.0, stop_out_per_hour=5.0,
        disconnect_per_hour=0.0, timeout_per_hour=0.0, none_snapshot_per_hour=0.0, malformed_per_hour=0.0,
    )  # fmt: skip
    sim = SimFleet.demo(seed=11, clock=SimClock(DEFAULT_START), accounts=6, rates=rates, server_offset_secs=7200)
    fleet = sim_fleet_config(sim, server_offset_secs=7200).model_copy(
        update={"deals_lookback_secs": 1800, "deals_full_refresh_secs": refresh_secs}
    )
    folder = tmp_path / "state" / "deals-test"
    sent = {"cached": [], "full": []}
    segments_held = []

    def opener(kind: str) -> pipeline.TerminalOpener:
        def open_counted(account: AccountConfig) -> MT5Api:
            return CountedDeals(open_terminal(account), sent[kind])  # type: ignore[return-value]

        return open_counted

    use_in_process_fleet(sim)
    try:
        for cycle in range(cycles):
            sim.clock.advance(10.0)
            if cycle == cycles // 2 and later_overlap_secs is not None:
                fleet = fleet.model_copy(update={"deals_overlap_secs": later_overlap_secs})
            at, expected = sim.now(), sim.expected_trades()
            if cycle % 7 == 3:
                sim.account(5002).fail_snapshot(calls=1, methods={"history_deals_get"})
            cache = deal_segments.load(folder)
            cached, _ = pipeline.fetch_fleet(
                fleet, fetched_at=at, open_terminal=opener("cached"), expected_raw=expected, deals=cache
            )
            deal_segments.save(folder, cache, max_segments=max_segments, dead_share=dead_share)
            segments_held.append(len(json.loads((folder / deal_segments.MANIFEST).read_text())["segments"]))
            full, _ = pipeline.fetch_fleet(fleet, fetched_at=at, open_terminal=opener("full"), expected_raw=expected)
            answered = cached.accounts.filter(pl.col("deals_ok"))["login"]
            if cycle % 7 == 3:
                assert 5002 not in answered.to_list(), "the failed deals call is reported failed, never empty"
            mine = full.deals.filter(pl.col("login").is_in(answered.implode()))
            assert cached.deals.equals(mine), f"{description}, cycle {cycle}: the window whole, in a full fetch's order"
    finally:
        use_in_process_fleet(None)
    fewer = 5 if refresh_secs >= 3600 else 2  # fetched whole every 6th cycle: fewer saved
    assert sum(sent["cached"]) * fewer < sum(sent["full"]), (
        f"{description}: deals sent: cached {sum(sent['cached'])}, full {sum(sent['full'])}"
    )
    assert len(deal_segments.segment_files(folder)) <= 2 * max_segments, f"{description}: replaced files are removed"
    if later_overlap_secs is None:
        assert max(segments_held) == min(max_segments, cycles), f"{description}: a segment per cycle ({segments_held})"
    if max_segments < cycles or later_overlap_secs is not None:
        assert 1 in segments_held[1:], f"{description}: rewritten whole at times ({segments_held})"


@pytest.mark.parametrize(
    ("description", "manifest"),
    [
        ("not JSON", "not json {"),
        ("JSON of another shape", "[1, 2, 3]"),
        ("another format", '{"format": 1, "spans": {}}'),
        ("a segment that is not there", '{"format": 2, "next_seq": 2, "segments": [{"seq": 1, "deals": "deals-1-00.parquet", "cuts": null, "rows": 3}], "spans": {"5001": [0, 10, 0, 0, 1, null]}}'),
        ("a span with a field missing", '{"format": 2, "next_seq": 1, "segments": [], "spans": {"5001": [0, 10, 0, 0]}}'),
    ],
)  # fmt: skip
def test_an_unreadable_or_foreign_folder_is_an_empty_cache(tmp_path: Path, description: str, manifest: str) -> None:
    (tmp_path / deal_segments.MANIFEST).write_text(manifest)
    assert deal_segments.load(tmp_path).spans == {}, description


def test_a_missing_folder_an_old_single_file_and_a_foreign_segment_are_an_empty_cache(tmp_path: Path) -> None:
    assert deal_segments.load(tmp_path / "missing").spans == {}
    old = tmp_path / "deals-fleet.parquet"
    frames_empty = deal_cache.DealCache().deals
    frames_empty.write_parquet(old)
    assert deal_segments.load(old).spans == {}, "the single file of earlier versions is not a folder"
    pl.DataFrame({"x": [1]}).write_parquet(tmp_path / "deals-1-00.parquet")
    (tmp_path / deal_segments.MANIFEST).write_text(
        '{"format": 2, "next_seq": 2, "segments": [{"seq": 1, "deals": "deals-1-00.parquet", "cuts": null, '
        '"rows": 1}], "spans": {"5001": [0, 10, 0, 0, 1, null]}}'
    )
    assert deal_segments.load(tmp_path).spans == {}, "a segment of other columns"


def test_an_account_with_a_deal_lacking_a_ticket_is_fetched_whole_next_time() -> None:
    from mt5recon import frames
    from mt5recon.snapshot import Snapshot

    deals = frames.empty("deals").vstack(
        pl.DataFrame(
            {"login": [5001, 5002], "fetched_at": [T0, T0], "ticket": [None, 7], "time": [T0, T0], "time_msc": [T0, T0]}
        ).select(
            [
                (pl.col(c) if c in ("login", "fetched_at", "ticket", "time", "time_msc") else pl.lit(None))
                .cast(d)
                .alias(c)
                for c, d in frames.DEALS.items()
            ]
        )
    )
    accounts = frames.empty("accounts").vstack(
        pl.DataFrame({"login": [5001, 5002], "deals_ok": [True, True]}).select(
            [
                (pl.col(c) if c in ("login", "deals_ok") else pl.lit(None)).cast(d).alias(c)
                for c, d in frames.ACCOUNTS.items()
            ]
        )
    )
    cache = DealCache()
    asked = [deal_cache.Asked(login, T0, T0 - timedelta(hours=6), None, 0) for login in (5001, 5002)]
    cache.absorb(Snapshot(accounts=accounts, deals=deals), asked)
    assert set(cache.spans) == {5002}, "the malformed account keeps nothing"
    assert cache.deals["login"].to_list() == [5002]


def _cancel_deal(sim: SimFleet, login: int, ticket: int) -> None:
    """The broker takes a booked deal back (a correction)."""
    book = sim.account(login).book
    index = next(i for i, deal in enumerate(book.deals) if deal.ticket == ticket)
    deal = book.deals.pop(index)
    book.deal_times.pop(index)
    by_position = book.deals_by_position.get(deal.position_id, [])
    if deal in by_position:
        by_position.remove(deal)


@pytest.mark.parametrize("through_folder", [False, True], ids=["in memory", "through the folder each cycle"])
def test_a_deal_taken_back_leaves_the_window_at_once_inside_the_overlap_and_by_the_next_full_fetch_before_it(
    tmp_path: Path, through_folder: bool
) -> None:
    sim = SimFleet.demo(seed=5, clock=SimClock(DEFAULT_START), accounts=2, rates=ScenarioRates.zero())
    fleet = sim_fleet_config(sim).model_copy(update={"deals_full_refresh_secs": 600, "deals_overlap_secs": 60})
    kept = {"cache": DealCache()}
    folder = tmp_path / "deals"
    use_in_process_fleet(sim)

    def tickets() -> list[int]:
        cache = deal_segments.load(folder) if through_folder else kept["cache"]
        snapshot, _ = pipeline.fetch_fleet(fleet, fetched_at=sim.now(), open_terminal=open_terminal, deals=cache)
        if through_folder:
            deal_segments.save(folder, cache)
        return snapshot.deals.filter(pl.col("login") == 5001)["ticket"].to_list()

    try:
        old = tickets()[0]  # the window's oldest deal, well before the overlap
        sim.clock.advance(10.0)
        recent = sim.account(5001).deposit(100.0)
        assert recent in tickets()
        sim.clock.advance(10.0)
        _cancel_deal(sim, 5001, recent)
        _cancel_deal(sim, 5001, old)
        seen = tickets()
        assert recent not in seen, "inside the overlap the terminal is asked again: the deal is gone"
        for step in (70.0, 10.0):  # then the deal's time is before the overlap: kept deals from there are carried
            sim.clock.advance(step)
            assert recent not in tickets(), "and it does not come back from an older segment"
        assert old in seen, "before the overlap the kept deal stays until the account is fetched whole"
        sim.clock.advance(600.0)
        assert old not in tickets(), "the full fetch every deals_full_refresh_secs drops it"
    finally:
        use_in_process_fleet(None)


def _by_login(deals: pl.DataFrame) -> pl.DataFrame:
    """Each account's deals in their order, accounts in login order (the folder keeps the first)."""
    return deals.sort("login", maintain_order=True)


def test_the_folder_reads_back_the_cache_as_absorb_left_it_after_two_absorbs_between_saves(tmp_path: Path) -> None:
    sim = SimFleet.demo(seed=3, clock=SimClock(DEFAULT_START), accounts=3, rates=ScenarioRates.zero())
    fleet = sim_fleet_config(sim)
    folder = tmp_path / "deals"
    use_in_process_fleet(sim)
    try:
        for _ in range(3):  # a few ordinary cycles: segments in the folder
            cache = deal_segments.load(folder)
            pipeline.fetch_fleet(fleet, fetched_at=sim.now(), open_terminal=open_terminal, deals=cache)
            deal_segments.save(folder, cache)
            sim.clock.advance(10.0)
        cache = deal_segments.load(folder)
        for _ in range(2):  # two cycles on one cache, each with a deal of its own
            sim.account(5001).deposit(50.0)
            pipeline.fetch_fleet(fleet, fetched_at=sim.now(), open_terminal=open_terminal, deals=cache)
            sim.clock.advance(10.0)
        deal_segments.save(folder, cache)
    finally:
        use_in_process_fleet(None)
    loaded = deal_segments.load(folder)
    assert loaded.spans == cache.spans
    assert _by_login(loaded.deals).equals(_by_login(cache.deals)), "both cycles' deals are in the folder"
